"""The PTY keeper: a PTY session makes OpenSSH send without Nagle delays; a bastion that refuses PTYs still works.
(Its effect on bulk-read speed is measured in `make bench`, not asserted here.)"""

import pymongo

from support import Sshd


def test_the_keeper_opens_one_pty_session_beside_the_forward(stack):
    nexus = stack.nexus()
    nexus.wait_ready()
    nexus.wait_until(lambda: "Starting session: command on pts/" in stack.sshd.log_text(), 5, "the PTY session")


def test_a_bastion_without_ptys_still_forwards(stack, tmp_path):
    sshd = Sshd(tmp_path / "no-tty", authorized_keys=[stack.key], extra=["PermitTTY no"])
    stack.known_hosts.write_text(sshd.known_hosts_line())
    nexus = stack.nexus(ssh={"port": sshd.port})
    nexus.wait_ready()
    assert "refused a PTY" in nexus.logs()
    with pymongo.MongoClient(f"mongodb://127.0.0.1:{nexus.forward_port}/", directConnection=True,
                             serverSelectionTimeoutMS=3000) as c:
        assert c.shop.orders.count_documents({}) > 0
    sshd.kill()


def test_the_keeper_can_be_turned_off(stack):
    nexus = stack.nexus(ssh={"pty_keeper": False})
    nexus.wait_ready()
    assert "Starting session" not in stack.sshd.log_text()
