"""A replica set emulated by `rs_peer.py` over one nx-27017, as a test fixture: start, control, inspect, stop.

    rs = ReplSet(tmp_path, tls=True, users={"alice": "s3cret"})
    rs.hosts            -> ["127.0.0.2:41233", "127.0.0.3:39211", "127.0.0.4:45677"]
    rs.uri("alice", "s3cret", appName="x") -> mongodb://alice:s3cret@<hosts>/?replicaSet=rs0&tls=true&tlsCAFile=...
    rs.step_down()      -> index of the new primary (the next reachable member); rs.primary -> that index
    rs.isolate(2); rs.restore(2); rs.fail_next(0, "update", "close_after"); rs.stats(); rs.close()

See rs_peer.py's module doc for what is and is not emulated.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import struct
import sys
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote_plus, urlencode

import bson

from .mongo import MongoWire
from .procs import Proc, wait_until

PEER = Path(__file__).resolve().with_name("rs_peer.py")


class ReplSet:
    """`members` emulated members on 127.0.0.2, 127.0.0.3, ... (random ports) in front of one nx-27017.

    - `tls`: members serve TLS with certificates from a CA made here (`ca_file`); `bad_cert_members` get a
      certificate for 127.0.0.99 / wrong-host.invalid instead of their own address (hostname verification must
      refuse them); `client_cert` is "none" | "optional" | "required" (`client_pem` is a CA-signed client cert+key).
    - `users`: {user: password} in db "admin"; members then require SCRAM (SHA-256 and SHA-1).
    - `mongo`: an existing MongoWire to store into (not stopped by `close`); by default one is started here.
    """

    def __init__(self, directory: Path, members: int = 3, *, set_name: str = "rs0", primary: int = 0,
                 tls: bool = False, bad_cert_members: Iterable[int] = (), client_cert: str = "none",
                 users: dict[str, str] | None = None, mongo: MongoWire | None = None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.set_name = set_name
        self.tls = tls
        self.users = dict(users or {})
        self._own_mongo = mongo is None
        self.mongo = mongo or MongoWire(self.dir / "nx")
        self.proc: Proc | None = None
        addresses = [f"127.0.0.{i + 2}" for i in range(members)]
        config: dict[str, Any] = {
            "upstream": f"127.0.0.1:{self.mongo.port}", "set_name": set_name, "primary": primary,
            "ready_file": str(self.dir / "rs_peer.ready"),
            "members": [{"host": a, "port": 0} for a in addresses],
            "users": [{"db": "admin", "user": u, "password": p} for u, p in self.users.items()],
        }
        self.ca_file: Path | None = None
        self.client_pem: Path | None = None
        if tls:
            ca = TestCA(self.dir / "tls", "rs_peer test CA")
            self.ca_file = ca.cert_file
            bad = set(bad_cert_members)
            for i, (a, m) in enumerate(zip(addresses, config["members"])):
                ips, dns = (["127.0.0.99"], ["wrong-host.invalid"]) if i in bad else ([a], [])
                m["cert"], m["key"] = (str(p) for p in ca.issue(f"member{i}", ips=ips, dns=dns))
            self.client_pem = ca.issue_pem("client", dns=["client"], client=True)
            config["tls"] = {"ca": str(ca.cert_file), "client_cert": client_cert}
        self._config_file = self.dir / "rs_peer.json"
        self._config_file.write_text(json.dumps(config, indent=1))
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        ready = self.dir / "rs_peer.ready"
        ready.unlink(missing_ok=True)
        self.proc = Proc([sys.executable, str(PEER), "--config", str(self._config_file)], self.dir / "rs_peer.log")
        info = wait_until(lambda: self.proc.alive() and ready.exists() and json.loads(ready.read_text()), 20,
                          "rs_peer ready file", on_timeout=self.proc.text)
        self.control_port: int = info["control_port"]
        self.members: list[tuple[str, int]] = [(m["host"], m["port"]) for m in info["members"]]

    # -- addresses

    @property
    def hosts(self) -> list[str]:
        """Every member as "127.0.0.x:port", in member order (as in `hello.hosts`)."""
        return [f"{h}:{p}" for h, p in self.members]

    @property
    def seed(self) -> str:
        return ",".join(self.hosts)

    def uri(self, user: str | None = None, password: str | None = None, *, members: Iterable[int] | None = None,
            direct: int | None = None, **options: Any) -> str:
        """A connection string for the whole set (or `members`), or `direct=i` for one member
        (directConnection=true). TLS options (tls, tlsCAFile) are added when the set serves TLS, unless tls=False."""
        if direct is not None:
            hosts, opts = [self.hosts[direct]], {"directConnection": "true"}
        else:
            hosts = [self.hosts[i] for i in members] if members is not None else self.hosts
            opts = {"replicaSet": self.set_name}
        if self.tls and options.get("tls", True):
            opts.update({"tls": "true", "tlsCAFile": str(self.ca_file)})
        opts.update({k: _uri_value(v) for k, v in options.items()})
        auth = f"{quote_plus(user)}:{quote_plus(password or '')}@" if user is not None else ""
        return f"mongodb://{auth}{','.join(hosts)}/?{urlencode(opts)}"

    def client(self, user: str | None = None, password: str | None = None, **options: Any):
        """A pymongo client for the set (short timeouts and heartbeats unless overridden)."""
        import pymongo
        defaults = {"serverSelectionTimeoutMS": 5000, "connectTimeoutMS": 2000, "heartbeatFrequencyMS": 500}
        return pymongo.MongoClient(self.uri(user, password, **{**defaults, **options}))

    def direct_client(self, index: int, user: str | None = None, password: str | None = None, **options: Any):
        import pymongo
        defaults = {"serverSelectionTimeoutMS": 3000, "connectTimeoutMS": 2000}
        return pymongo.MongoClient(self.uri(user, password, direct=index, **{**defaults, **options}))

    # -- control

    def control(self, op: str, **args: Any) -> dict:
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=10) as s:
            s.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
            line = s.makefile("rb").readline()
        if not line:
            raise RuntimeError(f"rs_peer closed the control connection\n{self.proc.text() if self.proc else ''}")
        answer = json.loads(line)
        if not answer.pop("ok"):
            raise RuntimeError(f"rs_peer {op}: {answer['error']}")
        return answer

    def stats(self) -> dict:
        """{"primary": i|None, "term", "election_id", "retries_deduplicated", "writes_executed", "elections",
        "members": [{"address", "state", "reachability", "connections_accepted", "connections_open", "hellos",
        "commands", "by_command", "apps", "drivers", "auth_succeeded", "auth_failed", "unauthorized",
        "writes_refused", "reads_refused", "writes_executed"}, ...]}"""
        return self.control("status")

    @property
    def primary(self) -> int | None:
        return self.stats()["primary"]

    def step_down(self, to: int | None = None, *, elect: bool = True, close_connections: bool = False) -> int | None:
        """Elect `to` (default: the next reachable member) with a higher electionId; `elect=False` leaves the set
        without a primary. The old primary's connections stay open unless `close_connections`."""
        return self.control("step_down", to=to, elect=elect, close_connections=close_connections)["primary"]

    def isolate(self, index: int, mode: str = "refuse") -> None:
        """"refuse": listener closed and connections reset; "blackhole": nothing read or answered."""
        self.control("isolate", member=index, mode=mode)

    def restore(self, index: int) -> None:
        self.control("restore", member=index)

    def fail_next(self, index: int, command: str, action: str = "close_after", *, reply: dict | None = None,
                  times: int = 1) -> None:
        """The next `times` `command`s on member `index`: "close_before" (drop the connection, not executed),
        "close_after" (executed, then dropped without a reply) or "reply" (answered with `reply`)."""
        self.control("fail_next", member=index, command=command, action=action, reply=reply, times=times)

    def reset_stats(self) -> None:
        self.control("reset_stats")

    # -- raw wire access (no driver in between)

    def raw(self, index: int, timeout: float = 10) -> "RawConnection":
        host, port = self.members[index]
        return RawConnection(host, port, self.ca_file if self.tls else None, timeout)

    def raw_command(self, index: int, command: dict, db: str = "admin") -> dict:
        with self.raw(index) as c:
            return c.command(command, db)

    def close(self) -> None:
        if self.proc:
            self.proc.stop()
        if self._own_mongo:
            self.mongo.stop()

    def __enter__(self) -> "ReplSet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _uri_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class RawConnection:
    """One wire-protocol connection to a member: OP_MSG and OP_QUERY commands, replies decoded."""

    def __init__(self, host: str, port: int, ca_file: Path | None = None, timeout: float = 10):
        sock = socket.create_connection((host, port), timeout=timeout)
        if ca_file:
            ctx = ssl.create_default_context(cafile=str(ca_file))
            sock = ctx.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.request_id = 0

    def _recv(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("connection closed by the member")
            out += chunk
        return bytes(out)

    def _roundtrip(self, opcode: int, body: bytes) -> tuple[int, bytes]:
        self.request_id += 1
        self.sock.sendall(struct.pack("<iiii", 16 + len(body), self.request_id, 0, opcode) + body)
        length, _, response_to, reply_opcode = struct.unpack("<iiii", self._recv(16))
        assert response_to == self.request_id, (response_to, self.request_id)
        return reply_opcode, self._recv(length - 16)

    def command(self, command: dict, db: str = "admin", flags: int = 0) -> dict:
        opcode, body = self._roundtrip(2013, struct.pack("<I", flags) + b"\x00" + bson.encode({**command, "$db": db}))
        assert opcode == 2013 and body[4] == 0, (opcode, body[:5])
        return bson.decode(body[5:])

    def query(self, command: dict, db: str = "admin", flags: int = 0) -> dict:
        """A legacy OP_QUERY command on `db.$cmd` (as pymongo's first handshake)."""
        body = struct.pack("<i", flags) + f"{db}.$cmd".encode() + b"\x00" + struct.pack("<ii", 0, -1)
        opcode, reply = self._roundtrip(2004, body + bson.encode(command))
        assert opcode == 1, opcode
        assert struct.unpack_from("<i", reply, 16)[0] == 1  # numberReturned
        return bson.decode(reply[20:])

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TestCA:
    """A throwaway CA (EC P-256) that issues server and client certificates with IP/DNS SANs, as PEM files."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.timezone.utc)
        ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(ski, critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_file = self.dir / f"{name.replace(' ', '_')}.pem"
        self.cert_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, stem: str, *, ips: Iterable[str] = (), dns: Iterable[str] = (),
              client: bool = False) -> tuple[Path, Path]:
        """(certificate file, key file) for `stem`."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        ips, dns = list(ips), list(dns)
        sans = [x509.IPAddress(ipaddress.ip_address(i)) for i in ips] + [x509.DNSName(d) for d in dns]
        now = dt.datetime.now(dt.timezone.utc)
        usage = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (ips + dns + [stem])[0])]))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = self.dir / f"{stem}.crt.pem", self.dir / f"{stem}.key.pem"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_file.chmod(0o600)
        return cert_file, key_file

    def issue_pem(self, stem: str, **kw: Any) -> Path:
        """One PEM with certificate then key (what `tlsCertificateKeyFile` expects)."""
        cert_file, key_file = self.issue(stem, **kw)
        pem = self.dir / f"{stem}.pem"
        pem.write_bytes(cert_file.read_bytes() + key_file.read_bytes())
        pem.chmod(0o600)
        return pem
