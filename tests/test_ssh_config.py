"""~/.ssh/config support: `ssh.host` names a Host alias in `ssh.config_file`; OpenSSH's own `ssh -G` is the
reference for what the file resolves to; nexus-mcp's explicit settings win; what cannot be honoured is refused."""

import subprocess

from support import Sshd
from support.ssh import current_user

NO_SSH = {"host": None, "port": None, "user": None, "private_key": None}


def settings(stdout: str) -> dict[str, tuple[str, str]]:
    """`check`'s "ssh KEY VALUE  (from ORIGIN)" lines → {key: (value, origin)}."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith("ssh "):
            _, key, rest = line.split(None, 2)
            value, _, origin = rest.rpartition("  (from ")
            out[key] = (value.strip(), origin.removesuffix(")"))
    return out


def openssh(config, alias) -> dict[str, str]:
    text = subprocess.run(["ssh", "-G", "-F", str(config), alias], check=True, capture_output=True,
                          text=True).stdout
    return {k: v for k, _, v in (line.partition(" ") for line in text.splitlines())}


def two_hops(stack, tmp_path):
    inner = Sshd(tmp_path / "inner", host="127.0.0.2", authorized_keys=[stack.key],
                 permit_open=[f"127.0.0.1:{stack.mongo.port}"])
    jump = Sshd(tmp_path / "jump", authorized_keys=[stack.key], permit_open=[f"127.0.0.2:{inner.port}"])
    stack.known_hosts.write_text(jump.known_hosts_line() + inner.known_hosts_line())
    return inner, jump


def test_an_alias_resolves_like_openssh_through_a_jump_host(stack, tmp_path):
    inner, jump = two_hops(stack, tmp_path)
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host prod-bastion\n"
        "  HostName 127.0.0.2\n"
        f"  Port {inner.port}\n"
        f"  User {current_user()}\n"
        f"  IdentityFile {stack.key}\n"
        "  ProxyJump prod-jump\n"
        "Host prod-jump\n"
        "  HostName 127.0.0.1\n"
        f"  Port {jump.port}\n"
        "Host *\n"
        "  Port 1\n"
        "  ServerAliveInterval 2\n")
    # keepalive_interval unset: the built-in default (5s) must not hide ServerAliveInterval either.
    nexus = stack.nexus(ssh={**NO_SSH, "host": "prod-bastion", "config_file": str(config),
                             "keepalive_interval": None})
    result = nexus.run("check")
    assert result.returncode == 0, result.stdout + result.stderr
    ours, theirs = settings(result.stdout), openssh(config, "prod-bastion")
    assert ours["host"] == (f"{theirs['hostname']} (alias prod-bastion)", f"{config}:2")
    assert ours["port"] == (theirs["port"], f"{config}:3")  # the built-in default 22 does not hide Port
    assert ours["user"] == (theirs["user"], f"{config}:4")
    assert ours["private_key"] == (theirs["identityfile"], f"{config}:5")
    assert ours["jump"] == (theirs["proxyjump"], f"{config}:6")
    assert ours["keepalive_interval"] == ("2s", f"{config}:12")
    assert ours["config_file"] == (str(config), f"--config {nexus.config_path}")
    assert ours["known_hosts"] == (str(stack.known_hosts), f"--config {nexus.config_path}")
    assert ours["host_key_policy"] == ("strict", "default")
    nexus.wait_ready()
    assert "Accepted publickey" in jump.log_text() and "Accepted publickey" in inner.log_text()
    inner.kill()
    jump.kill()


def test_explicit_settings_win_over_the_file(stack, tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text(f"Host db\n  HostName 127.0.0.1\n  Port 1\n  User nobody-here\n  IdentityFile {tmp_path}/none\n"
                      "  StrictHostKeyChecking no\n")
    password = "not-a-real-password-42"
    nexus = stack.nexus(ssh={"host": "db", "config_file": str(config), "password": password},
                        env={"NEXUS_SSH__USER": current_user()})
    result = nexus.run("check")
    assert result.returncode == 0, result.stdout + result.stderr
    ours = settings(result.stdout)
    assert ours["host"] == ("127.0.0.1 (alias db)", f"{config}:2")
    assert ours["port"] == (str(stack.sshd.port), f"--config {nexus.config_path}")
    assert ours["user"] == (current_user(), "environment")
    assert ours["private_key"] == (str(stack.key), f"--config {nexus.config_path}")
    assert ours["host_key_policy"] == ("strict", f"default ({config}:6: StrictHostKeyChecking no is weaker and "
                                                 "ignored; set ssh.host_key_policy to choose it)")
    assert ours["password"] == ("*** (set)", f"--config {nexus.config_path}")
    assert password not in result.stdout + result.stderr


def test_match_and_proxy_command_are_refused_naming_file_and_line(stack, tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host db\n  HostName 127.0.0.1\n\nMatch host db exec \"true\"\n  User other\n")
    result = stack.nexus("match", start=False, ssh={"host": "db", "config_file": str(config)}).run("check")
    assert result.returncode == 64
    assert f"configuration error: ssh.config_file: {config}:4: `Match` is not supported" in result.stderr

    config.write_text("Host elsewhere\n  ProxyCommand nc %h %p\nHost db\n  ProxyCommand ssh -W %h:%p gw\n")
    result = stack.nexus("proxy", start=False, ssh={"host": "db", "config_file": str(config)}).run("check")
    assert result.returncode == 64
    assert f"ssh.config_file: {config}:4: `ProxyCommand` (applies to \"db\") is not supported" in result.stderr


def test_a_missing_config_file_is_named_and_none_disables(stack, tmp_path):
    missing = tmp_path / "absent"
    result = stack.nexus("missing", start=False, ssh={"config_file": str(missing)}).run("check")
    assert result.returncode == 64
    assert f"ssh.config_file: {missing}: no such file" in result.stderr
    result = stack.nexus("none", start=False, ssh={"config_file": "none"}).run("check")
    assert result.returncode == 0, result.stdout
    assert settings(result.stdout)["config_file"][0] == "none"
