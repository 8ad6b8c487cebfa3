"""Host keys: fail-closed by default, accept-new learns once, a changed key is always refused."""

from support import Sshd


def test_strict_refuses_an_unknown_host_and_logs_its_fingerprint(stack):
    stack.known_hosts.write_text("")
    nexus = stack.nexus()
    nexus.wait_until(lambda: "SSH_HOST_KEY_UNKNOWN" in nexus.logs(), 15, "an unknown-host-key refusal")
    assert stack.sshd.fingerprint() in nexus.logs()
    nexus.wait_until(lambda: nexus.check("sshTunnel").get("class") == "SSH_HOST_KEY_UNKNOWN", 10,
                     "/ready to name the unknown host key")
    assert nexus.status("/ready") == 503

    result = stack.nexus("check", start=False).run("check")
    assert result.returncode == 11 and "SSH_HOST_KEY_UNKNOWN" in result.stdout
    assert stack.sshd.fingerprint() in result.stdout


def test_a_changed_key_is_refused_under_strict_and_accept_new(stack):
    stack.sshd.kill()
    stack.sshd.regenerate_host_key()
    stack.sshd.start()
    for policy in ("strict", "accept-new"):
        result = stack.nexus(policy, start=False, ssh={"host_key_policy": policy}).run("check")
        assert result.returncode == 11, result.stdout
        assert "SSH_HOST_KEY_MISMATCH" in result.stdout and "HOST KEY MISMATCH" in result.stdout
    nexus = stack.nexus("serving", ssh={"host_key_policy": "accept-new"})
    nexus.wait_until(lambda: nexus.logs().count("SSH_HOST_KEY_MISMATCH") >= 2, 15, "mismatch at every attempt")
    errors = [l for l in nexus.log_lines() if l.get("class") == "SSH_HOST_KEY_MISMATCH"]
    assert errors and all(l["level"] == "ERROR" for l in errors), "never retried silently"
    assert nexus.status("/ready") == 503


def test_accept_new_learns_an_unknown_host_once(stack):
    stack.known_hosts.write_text("")
    nexus = stack.nexus(ssh={"host_key_policy": "accept-new"})
    nexus.wait_ready()
    assert stack.known_hosts.read_text().strip() == stack.sshd.known_hosts_line().strip()
    assert "learned the host key" in nexus.logs()


def test_insecure_accept_any_connects_and_warns_loudly(stack):
    stack.known_hosts.write_text("")
    nexus = stack.nexus(ssh={"host_key_policy": "insecure-accept-any"})
    nexus.wait_ready()
    assert "INSECURE: host key NOT verified" in nexus.logs()


def test_a_line_that_is_not_utf8_is_skipped_like_openssh_does(stack):
    """Regression: one bad byte anywhere in known_hosts made every connect fail, even with a valid line present."""
    stack.known_hosts.write_bytes(b"# ours\nbroken \xff\xfe line\n" + stack.sshd.known_hosts_line().encode())
    nexus = stack.nexus()
    nexus.wait_ready()
    skipped = [l for l in nexus.log_lines() if "not UTF-8" in l.get("message", "")]
    assert skipped and skipped[0]["line"] == 2, skipped
