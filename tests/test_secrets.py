"""No secret (password, passphrase, key material, URI credentials, bearer token) leaves the process."""

from pathlib import Path

from support import Sshd, keygen
from support.ssh import TEST_USER, password_user_secret


def test_secrets_never_appear_in_logs_probes_metrics_or_check(stack, tmp_path):
    password = password_user_secret()
    passphrase = "pass-Phrase-7781"
    mongo_password = "m0ngo-S3cret-991"
    token = "tok-0123456789abcdef-XYZ"
    key = keygen(tmp_path, "enc", passphrase=passphrase)
    key_material = "".join(Path(key).read_text().splitlines()[1:3])
    sshd = Sshd(tmp_path / "pw", password_auth=True)
    stack.known_hosts.write_text(sshd.known_hosts_line())
    tokens = tmp_path / "tokens"
    tokens.write_text(f"tester:{token}\n")
    config = dict(
        ssh={"host": sshd.host, "port": sshd.port, "user": TEST_USER, "password": password,
             "private_key": str(key), "private_key_passphrase": passphrase},
        # nx-27017 has no authentication: the credentials make the mongodb stage fail (MONGO_AUTH_FAILED or
        # unreachable), which exercises the error paths too.
        mongo={"uri": f"mongodb://app:{mongo_password}@127.0.0.1:{stack.mongo.port}/shop?authSource=admin"},
        server={"auth_tokens_file": str(tokens)},
    )
    nexus = stack.nexus(**config)
    nexus.wait_until(lambda: "stage failed" in nexus.logs() or nexus.status("/ready") == 200, 20,
                     "the mongodb stage to be tried")
    bodies = [str(nexus.get(p)[1]) for p in ("/health", "/ready", "/startup")]
    metrics = str(nexus.get("/metrics")[1])
    check = stack.nexus("check", start=False, **config).run("check")
    unauthorized = nexus.get("/mcp", headers={"Authorization": "Bearer wrong-token-0123456789"})
    assert unauthorized[0] == 401
    everything = "\n".join([nexus.logs(), *bodies, metrics, check.stdout, check.stderr, str(unauthorized[1])])
    for secret in (password, passphrase, mongo_password, token, key_material):
        assert secret not in everything, f"a secret leaked: {secret[:4]}…"
    assert "app:***@" in nexus.logs() or "mongodb://" not in nexus.logs()
    sshd.kill()
