"""OpenSSH certificates: host certificates trusted through known_hosts' @cert-authority lines, user certificates from
a file, beside the key, or held by the agent. CAs and certificates are made with `ssh-keygen -s` at test time."""

import pytest

from support import Agent, Sshd, keygen
from support.ssh import current_user, public_key, sign

EXPIRED = "20200101000000Z:20200102000000Z"


def cert_sshd(stack, tmp_path, name="cert-sshd", **options) -> Sshd:
    return Sshd(tmp_path / name, authorized_keys=[stack.key], log_level="DEBUG1", **options)


def check(stack, sshd, name, **ssh):
    return stack.nexus(name, start=False, ssh={"port": sshd.port, **ssh}).run("check")


# --- host certificates -------------------------------------------------------------------------------------------

def test_a_host_certificate_from_a_listed_authority_is_trusted(stack, tmp_path):
    ca = keygen(tmp_path, "host_ca")
    sshd = cert_sshd(stack, tmp_path, host_ca=ca)
    # No plain key for the host at all: only the authority.
    stack.known_hosts.write_text(f"@cert-authority [127.0.0.1]:{sshd.port},other.example {public_key(ca)}\n")
    result = check(stack, sshd, "trusted")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kex: host key algorithm: ssh-ed25519-cert-v01@openssh.com" in sshd.log.read_text(errors="replace")


def test_certificate_algorithms_are_offered_only_when_an_authority_could_match(stack, tmp_path):
    ca = keygen(tmp_path, "host_ca")
    sshd = cert_sshd(stack, tmp_path, host_ca=ca)
    stack.known_hosts.write_text(sshd.known_hosts_line() + f"@cert-authority elsewhere.example {public_key(ca)}\n")
    result = check(stack, sshd, "plain")
    assert result.returncode == 0, result.stdout + result.stderr
    log = sshd.log.read_text(errors="replace")
    assert "kex: host key algorithm: ssh-ed25519 " in log
    assert "kex: host key algorithm: ssh-ed25519-cert" not in log


@pytest.mark.parametrize("case", ["wrong-ca", "expired", "wrong-principal", "revoked-ca"])
def test_a_host_certificate_that_fails_a_check_is_refused_under_strict(stack, tmp_path, case):
    ca, other = keygen(tmp_path, "host_ca"), keygen(tmp_path, "other_ca")
    options = {
        "wrong-ca": {"host_ca": other},
        "expired": {"host_ca": ca, "host_validity": EXPIRED},
        "wrong-principal": {"host_ca": ca, "host_principals": ["db.example"]},
        "revoked-ca": {"host_ca": ca},
    }[case]
    sshd = cert_sshd(stack, tmp_path, **options)
    lines = f"@cert-authority * {public_key(ca)}\n"
    if case == "revoked-ca":
        lines += f"@revoked * {public_key(ca)}\n"
    stack.known_hosts.write_text(lines)
    result = check(stack, sshd, case)
    assert result.returncode == 11, result.stdout
    expected = {
        "wrong-ca": "SSH_HOST_KEY_UNKNOWN: host certificate of",
        "expired": "refused: it expired at 2020-01-02T00:00:00Z;",
        "wrong-principal": 'refused: its principals [db.example] do not include the host name "127.0.0.1";',
        "revoked-ca": "SSH_HOST_KEY_MISMATCH: the certificate authority of the host certificate of",
    }[case]
    assert expected in result.stdout
    if case == "wrong-ca":
        assert "is not a @cert-authority for this host" in result.stdout
    if case == "revoked-ca":
        assert "is marked @revoked" in result.stdout
    assert 'key id "test host"' in result.stdout or case == "revoked-ca"


# --- user certificates -------------------------------------------------------------------------------------------

@pytest.fixture
def user_ca(tmp_path):
    return keygen(tmp_path, "user_ca")


def ca_only_sshd(tmp_path, user_ca, **options) -> Sshd:
    """An sshd that trusts the user CA and no plain key."""
    return Sshd(tmp_path / "ca-only-sshd", trusted_user_ca=user_ca, **options)


def test_a_user_certificate_is_accepted_and_the_key_alone_is_not(stack, tmp_path, user_ca):
    sshd = ca_only_sshd(tmp_path, user_ca)
    stack.known_hosts.write_text(sshd.known_hosts_line())
    cert = sign(user_ca, stack.key, identity="tunnel cert", principals=[current_user()], out=tmp_path / "tunnel.cert")
    result = check(stack, sshd, "with-cert", certificate=str(cert))
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'ED25519-CERT' in sshd.log.read_text(errors="replace") and 'ID tunnel cert' in sshd.log.read_text(errors="replace")

    alone = check(stack, sshd, "key-alone")
    assert alone.returncode == 11
    assert f"SSH_AUTH_FAILED: authentication as {current_user()}@127.0.0.1:{sshd.port} failed; tried: publickey " \
           f"{stack.key}" in alone.stdout


def test_a_certificate_beside_the_key_is_used_like_openssh_does(stack, tmp_path, user_ca):
    sshd = ca_only_sshd(tmp_path, user_ca)
    stack.known_hosts.write_text(sshd.known_hosts_line())
    assert sign(user_ca, stack.key, identity="beside", principals=[current_user()]).name == "id_ed25519-cert.pub"
    result = check(stack, sshd, "beside")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ID beside" in sshd.log.read_text(errors="replace")


def test_an_expired_user_certificate_is_named(stack, tmp_path, user_ca):
    sshd = ca_only_sshd(tmp_path, user_ca)
    stack.known_hosts.write_text(sshd.known_hosts_line())
    cert = sign(user_ca, stack.key, identity="old", principals=[current_user()], validity=EXPIRED,
                out=tmp_path / "old.cert")
    result = check(stack, sshd, "expired", certificate=str(cert))
    assert result.returncode == 11
    assert (f'certificate {cert} (key id "old", principals [{current_user()}]) not offered: it expired at '
            "2020-01-02T00:00:00Z") in result.stdout
    assert "SSH_AUTH_FAILED" in result.stdout


def test_a_certificate_for_other_principals_is_named(stack, tmp_path, user_ca):
    sshd = ca_only_sshd(tmp_path, user_ca)
    stack.known_hosts.write_text(sshd.known_hosts_line())
    cert = sign(user_ca, stack.key, identity="alice", principals=["alice"], out=tmp_path / "alice.cert")
    result = check(stack, sshd, "principal", certificate=str(cert))
    assert result.returncode == 11 and "SSH_AUTH_FAILED" in result.stdout
    assert f'not offered: its principals [alice] do not include the user "{current_user()}"' in result.stdout


def test_a_principal_the_server_does_not_accept_is_explained(stack, tmp_path, user_ca):
    sshd = ca_only_sshd(tmp_path, user_ca, authorized_principals=["ops-only"])
    stack.known_hosts.write_text(sshd.known_hosts_line())
    cert = sign(user_ca, stack.key, identity="mine", principals=[current_user()], out=tmp_path / "mine.cert")
    result = check(stack, sshd, "server-refused", certificate=str(cert))
    assert result.returncode == 11 and "SSH_AUTH_FAILED" in result.stdout
    assert (f'the server refused certificate {cert} (key id "mine", principals [{current_user()}]) for user '
            f'"{current_user()}": it must trust the signing CA') in result.stdout


def test_a_certificate_held_by_the_agent(stack, tmp_path, user_ca):
    sshd = ca_only_sshd(tmp_path, user_ca)
    stack.known_hosts.write_text(sshd.known_hosts_line())
    key = keygen(tmp_path, "agent_key")
    sign(user_ca, key, identity="from agent", principals=[current_user()])
    agent = Agent(tmp_path)
    agent.add(key)  # ssh-add loads agent_key-cert.pub with it
    nexus = stack.nexus(env=agent.env, ssh={"port": sshd.port, "agent": True, "private_key": None})
    nexus.wait_ready()
    assert "ID from agent" in sshd.log.read_text(errors="replace")
    agent.stop()
