"""SSH authentication methods: encrypted keys, RSA/ECDSA keys, passwords, the agent."""

from pathlib import Path

from support import Agent, Sshd, keygen
from support.ssh import TEST_USER, password_user_secret


def test_an_encrypted_key_with_its_passphrase(stack, tmp_path):
    key = keygen(tmp_path, "enc", passphrase="correct horse")
    stack.sshd.authorized.write_text(Path(f"{key}.pub").read_text())
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse\n")
    nexus = stack.nexus(ssh={"private_key": str(key), "private_key_passphrase_file": str(secret)})
    nexus.wait_ready()


def test_a_wrong_passphrase_is_an_auth_failure(stack, tmp_path):
    key = keygen(tmp_path, "enc", passphrase="correct horse")
    stack.sshd.authorized.write_text(Path(f"{key}.pub").read_text())
    guess = "Tr0ub4dor&3"
    result = stack.nexus(start=False, ssh={"private_key": str(key), "private_key_passphrase": guess}).run("check")
    assert result.returncode == 11
    assert "SSH_AUTH_FAILED" in result.stdout and "wrong passphrase" in result.stdout
    assert guess not in result.stdout + result.stderr


def test_rsa_and_ecdsa_keys(stack, tmp_path):
    for kind in ("rsa", "ecdsa"):
        key = keygen(tmp_path, f"id_{kind}", kind=kind)
        stack.sshd.authorized.write_text(Path(f"{key}.pub").read_text())
        result = stack.nexus(kind, start=False, ssh={"private_key": str(key)}).run("check")
        assert result.returncode == 0, result.stdout


def test_password_authentication(tmp_path, stack):
    password = password_user_secret()
    sshd = Sshd(tmp_path / "pw-sshd", password_auth=True)
    stack.known_hosts.write_text(sshd.known_hosts_line())
    config = {"host": sshd.host, "port": sshd.port, "user": TEST_USER, "password": password,
              "private_key": None}
    nexus = stack.nexus(ssh=config)
    nexus.wait_ready()
    assert password not in nexus.logs()
    sshd.kill()


def test_a_wrong_key_names_the_methods_tried(stack, tmp_path):
    other = keygen(tmp_path, "other")
    result = stack.nexus(start=False, ssh={"private_key": str(other)}).run("check")
    assert result.returncode == 11
    assert "SSH_AUTH_FAILED" in result.stdout and "tried: publickey" in result.stdout


def test_ssh_agent(stack, tmp_path):
    agent = Agent(tmp_path)
    agent.add(stack.key)
    nexus = stack.nexus(env=agent.env, ssh={"agent": True, "private_key": None})
    nexus.wait_ready()
    agent.stop()
