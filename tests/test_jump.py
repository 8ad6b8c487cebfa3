"""ProxyJump: the bastion is reachable only through a jump host; both host keys are verified."""

from support import Sshd
from support.ssh import current_user


def test_proxy_jump_through_two_sshd(stack, tmp_path):
    # The inner bastion listens on another loopback address; the jump host may only open a forward to it.
    inner = Sshd(tmp_path / "inner", host="127.0.0.2", authorized_keys=[stack.key],
                 permit_open=[f"127.0.0.1:{stack.mongo.port}"])
    jump = Sshd(tmp_path / "jump", authorized_keys=[stack.key], permit_open=[f"127.0.0.2:{inner.port}"])
    stack.known_hosts.write_text(jump.known_hosts_line() + inner.known_hosts_line())
    nexus = stack.nexus(ssh={"host": "127.0.0.2", "port": inner.port,
                             "jump": [f"{current_user()}@127.0.0.1:{jump.port}"]})
    nexus.wait_ready()
    assert '"hops":2' in nexus.logs().replace(" ", "")
    assert "Accepted publickey" in jump.log_text() and "Accepted publickey" in inner.log_text()

    # The jump host is verified too: an unknown jump host key refuses the whole chain.
    stack.known_hosts.write_text(inner.known_hosts_line())
    result = stack.nexus("unknown-jump", start=False, ssh={"host": "127.0.0.2", "port": inner.port,
                                                          "jump": [f"{current_user()}@127.0.0.1:{jump.port}"]}).run("check")
    assert result.returncode == 11 and "SSH_HOST_KEY_UNKNOWN" in result.stdout
    assert f"127.0.0.1:{jump.port}" in result.stdout
    inner.kill()
    jump.kill()
