"""OpenSSH on loopback: keys, an sshd per test, an ssh-agent."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

from .procs import Proc, descendants, free_port, wait_until

SSHD = "/usr/sbin/sshd"


def _require(path: str, hint: str) -> None:
    if not os.path.exists(path):
        raise RuntimeError(f"{path} is missing: {hint}")


def keygen(directory: Path, name: str = "id_ed25519", kind: str = "ed25519", passphrase: str = "") -> Path:
    """Generates a key pair; returns the private key path (the public key is `<path>.pub`)."""
    path = directory / name
    bits = ["-b", "2048"] if kind == "rsa" else []
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *bits, "-N", passphrase, "-C", name, "-f", str(path)],
                   check=True)
    return path


def sign(ca: Path, key: Path, *, identity: str, principals: list[str], host: bool = False,
         validity: str | None = None, out: Path | None = None) -> Path:
    """Certifies `key`'s public key with the CA private key `ca` (`ssh-keygen -s`); returns the certificate's path:
    `<key>-cert.pub` (where OpenSSH looks for it), or `out` (moved there)."""
    args = ["ssh-keygen", "-q", "-s", str(ca), "-I", identity, "-n", ",".join(principals)]
    args += ["-h"] if host else []
    args += ["-V", validity] if validity else []
    subprocess.run([*args, f"{key}.pub"], check=True, capture_output=True)
    cert = Path(f"{key}-cert.pub")
    if out is not None:
        cert.rename(out)
        return out
    return cert


def public_key(key: Path) -> str:
    """`type base64` of `<key>.pub` (no comment)."""
    return " ".join(Path(f"{key}.pub").read_text().split()[:2])


def _test_user() -> str:
    """This checkout's own password-auth test user (.run/test-user, created by `make deps`)."""
    from .nexus import REPO
    path = REPO / ".run" / "test-user"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `make deps` (scripts/install-test-deps.sh)")
    return path.read_text().strip()


TEST_USER = _test_user()


def password_user_secret() -> str:
    """The password of TEST_USER (.run/test-user-password, set by `make deps`; no other checkout changes it)."""
    from .nexus import REPO
    return (REPO / ".run" / "test-user-password").read_text().strip()


def current_user() -> str:
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


class Sshd:
    """An OpenSSH sshd on `host:port` with its own host key, config and log."""

    def __init__(self, directory: Path, *, authorized_keys: list[Path] = (), host: str = "127.0.0.1",
                 password_auth: bool = False, permit_open: list[str] | None = None,
                 allow_tcp_forwarding: str = "yes", extra: list[str] = (), log_level: str = "VERBOSE",
                 host_ca: Path | None = None, host_principals: list[str] | None = None,
                 host_validity: str | None = None, trusted_user_ca: Path | None = None,
                 authorized_principals: list[str] | None = None):
        """`host_ca` signs the host key (principals: `host_principals`, default the listen address) and the
        certificate is served (`HostCertificate`); `trusted_user_ca` accepts user certificates it signed
        (`TrustedUserCAKeys`), for the principals in `authorized_principals` if given (else the user's name)."""
        _require(SSHD, "run `make deps` (scripts/install-test-deps.sh) to install openssh-server")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = free_port(host)
        self.host_key = self.dir / "ssh_host_ed25519_key"
        if not self.host_key.exists():  # kept across runs (the demo), so known_hosts stays valid
            keygen(self.dir, "ssh_host_ed25519_key")
        certificates = []
        if host_ca is not None:
            cert = sign(host_ca, self.host_key, identity="test host", host=True, validity=host_validity,
                        principals=host_principals if host_principals is not None else [host])
            certificates.append(f"HostCertificate {cert}")
        if trusted_user_ca is not None:
            certificates.append(f"TrustedUserCAKeys {trusted_user_ca}.pub")
        if authorized_principals is not None:
            principals = self.dir / "authorized_principals"
            principals.write_text("".join(f"{p}\n" for p in authorized_principals))
            certificates.append(f"AuthorizedPrincipalsFile {principals}")
        self.authorized = self.dir / "authorized_keys"
        self.authorized.write_text("".join(Path(f"{k}.pub").read_text() for k in authorized_keys))
        self.config = self.dir / "sshd_config"
        lines = [
            f"ListenAddress {host}:{self.port}",
            f"HostKey {self.host_key}",
            f"PidFile {self.dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized}",
            "StrictModes no",
            "UsePAM no",
            "PermitRootLogin prohibit-password",
            f"PasswordAuthentication {'yes' if password_auth else 'no'}",
            "KbdInteractiveAuthentication no",
            f"AllowTcpForwarding {allow_tcp_forwarding}",
            f"LogLevel {log_level}",
            "MaxStartups 100",
        ]
        if permit_open:
            lines.append("PermitOpen " + " ".join(permit_open))
        self.config.write_text("\n".join([*lines, *certificates, *extra]) + "\n")
        self.log = self.dir / "sshd.log"
        self.proc: Proc | None = None
        self.start()

    def start(self) -> None:
        """Starts (or restarts, same port and host key) and waits for the SSH banner."""
        os.makedirs("/run/sshd", exist_ok=True)
        self.proc = Proc([SSHD, "-D", "-e", "-f", str(self.config)], self.log)
        wait_until(self._banner, 10, f"sshd on {self.host}:{self.port}", on_timeout=self.log_text)

    def _banner(self) -> bool:
        with socket.create_connection((self.host, self.port), timeout=1) as s:
            return s.recv(64).startswith(b"SSH-2.0")

    def known_hosts_line(self) -> str:
        key = " ".join(Path(f"{self.host_key}.pub").read_text().split()[:2])
        name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{name} {key}\n"

    def fingerprint(self) -> str:
        out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", f"{self.host_key}.pub"],
                             check=True, capture_output=True, text=True).stdout
        return out.split()[1]

    def regenerate_host_key(self) -> None:
        """A new host key (the next start offers a "changed" key)."""
        for suffix in ("", ".pub"):
            Path(f"{self.host_key}{suffix}").unlink()
        keygen(self.dir, "ssh_host_ed25519_key")

    def session_pids(self) -> list[int]:
        return descendants(self.proc.pid) if self.proc and self.proc.alive() else []

    def kill(self) -> None:
        """A bastion crash: SIGKILL the listener and every session."""
        if self.proc:
            self.proc.kill()

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def freeze_sessions(self) -> list[int]:
        """A silent partition: SIGSTOP every session process (the listener keeps accepting)."""
        frozen = []
        for pid in self.session_pids():
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                continue  # a short-lived child (e.g. the PTY keeper's shell) exited meanwhile
            frozen.append(pid)
        return frozen

    def thaw(self, pids: list[int]) -> None:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def wait_log(self, text: str, timeout: float) -> None:
        wait_until(lambda: text in self.log_text(), timeout, f"sshd to log {text!r}", on_timeout=self.log_text)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


class Agent:
    """An ssh-agent on its own socket."""

    def __init__(self, directory: Path):
        self.socket = directory / "agent.sock"
        self.proc = Proc(["ssh-agent", "-D", "-a", str(self.socket)], directory / "agent.log")
        wait_until(self.socket.exists, 5, "ssh-agent socket")

    @property
    def env(self) -> dict[str, str]:
        return {"SSH_AUTH_SOCK": str(self.socket)}

    def add(self, key: Path) -> None:
        subprocess.run(["ssh-add", str(key)], check=True, capture_output=True,
                       env={**os.environ, **self.env})

    def stop(self) -> None:
        self.proc.stop()
