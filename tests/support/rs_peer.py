#!/usr/bin/env python3
"""A MongoDB replica set emulated at the wire level over ONE real nx-27017 store (the test peer for the route that
reaches every replica-set member through the bastion).

Run: `python tests/support/rs_peer.py --config CONFIG.json` (tests use `support.replset.ReplSet`, which writes the
config, starts this process, reads its ready file and drives its control port). Needs only the stdlib and `bson`
(from pymongo).

What IS emulated (every member is a listener on its own loopback address, e.g. 127.0.0.2/3/4, random port):
- The wire protocol: OP_MSG (kind 0 body + kind 1 document sequences, checksum flag accepted and ignored,
  `moreToCome` requests answered with silence) and OP_QUERY on `db.$cmd` (answered with OP_REPLY; pymongo's first
  handshake uses it). OP_COMPRESSED is not supported and compression is never advertised.
- `hello` / `isMaster` / `ismaster` answered as a replica-set member: setName, setVersion (1), hosts (every member
  as "127.0.0.x:port", in member order), primary (omitted while there is none), me, isWritablePrimary (for
  `hello`) or ismaster (for the legacy names), secondary, helloOk (echoed when asked), electionId (on the primary
  only, like mongod; "7fffffff" + the term, so it rises with every election), lastWrite {opTime, lastWriteDate,
  majorityOpTime, majorityWriteDate} (shared by all members, advanced by every executed write),
  min/maxWireVersion 0/21, maxBsonObjectSize, maxMessageSizeBytes, maxWriteBatchSize,
  logicalSessionTimeoutMinutes 30, connectionId, localTime, readOnly false, ok 1; saslSupportedMechs when the
  hello names a known "db.user". `speculativeAuthenticate` is ignored (the reply never carries it, so drivers fall
  back to saslStart). Arbiters, hidden members, passives and tags are not emulated.
- Monitoring is POLLING ONLY: `topologyVersion` is never sent, so drivers do not use the streaming (awaitable
  hello / exhaust) protocol; the Rust driver 3.9 then re-checks every heartbeatFrequencyMS and, after an error,
  no sooner than 500 ms after its last check.
- Roles: exactly one primary (or none after `step_down` with elect=false). Secondaries refuse writes (insert,
  update, delete, findAndModify, create, drop, dropDatabase, renameCollection, createIndexes, dropIndexes,
  collMod, bulkWrite, aggregate with $out/$merge, ...) with ok:0, code 10107 NotWritablePrimary, "not primary",
  plus errorLabels ["RetryableWriteError"] when the command carries txnNumber. Reads (find, aggregate, count,
  distinct, list*, dbStats, collStats, explain, ...) on a secondary need a `$readPreference` other than primary (or
  OP_QUERY's secondaryOk flag), else 13435 NotPrimaryNoSecondaryOk. Every other command is relayed by every member.
- All data lives in the one nx-27017 instance: every member sees every write at once (no replication lag). Client
  commands go to it over a pool of upstream connections (so cursors survive a client connection and getMore works
  from any pooled connection), with OP_MSG flags cleared (nx-27017 misreads moreToCome) and the fields it mishandles
  removed: lsid, txnNumber, autocommit, startTransaction (nx-27017 would open a transaction it never ends),
  $clusterTime, $readPreference, readConcern, apiVersion/apiStrict/apiDeprecationErrors.
- Retryable writes: a write carrying lsid.id + txnNumber runs at most once; its reply is cached process-wide (so
  across members, as config.transactions would be after a failover) and a retry gets the cached reply. Concurrent
  retries of one (lsid, txnNumber) are serialised.
- Elections are commands from the harness, not a protocol: `step_down` makes the next reachable member (or a given
  one) primary at once and raises the term/electionId. Like MongoDB >= 4.2, the old primary's connections stay
  open (drivers learn from the 10107 reply and their next check); pass close_connections=true to get the pre-4.2
  behaviour (every connection of the old primary is aborted). `replSetStepDown` from a client does the same.
- Reachability per member: "refuse" (listener closed, its connections aborted: clients see connection refused /
  reset) or "blackhole" (listener kept, nothing is read or answered: clients see timeouts; the TLS handshake of a
  new connection still completes). `restore` re-binds the same port / resumes.
- TLS (option): each member has its own certificate (made by the harness, IP SANs); the client certificate is
  ignored, optional or required. SCRAM-SHA-256 and SCRAM-SHA-1 (option): RFC 5802/7677 server side over
  saslStart/saslContinue with MongoDB's conversationId and done flags, both with and without
  options.skipEmptyExchange; SCRAM-SHA-256 passwords go through SASLprep (pymongo's implementation, else ASCII
  only); SCRAM-SHA-1 uses the hex MD5 of "user:mongo:password". Until a connection has authenticated, everything but
  hello/isMaster/ping/buildInfo/saslStart/saslContinue/getnonce/logout gets 13 Unauthorized. A wrong password or an
  unknown user gets 18 AuthenticationFailed. Any authenticated user may do anything (no roles).
- Fault injection: `fail_next` makes a member close a connection before or after executing the next matching
  command, or answer it with a given reply document.

What is NOT emulated: an oplog, replication or lag, real elections (terms only move when told), write concern
(w:"majority" is accepted and means nothing), read concern, causal consistency ($clusterTime/operationTime are
never sent), multi-document transactions (startTransaction/autocommit get 20 IllegalOperation), sessions beyond
the retry cache, change streams across failover, x509 authentication, roles/privileges, compression, awaitable
hello, maxStalenessSeconds semantics (all members report the same lastWrite), killOp/currentOp of in-flight writes
on stepdown.

Control: JSON lines on 127.0.0.1:<control_port>, one request per line, one reply per line ({"ok": true, ...} or
{"ok": false, "error": "..."}): {"op": "status"}, {"op": "step_down", "to": i|null, "elect": bool,
"close_connections": bool}, {"op": "isolate", "member": i, "mode": "refuse"|"blackhole"}, {"op": "restore",
"member": i}, {"op": "fail_next", "member": i, "command": name, "action": "close_before"|"close_after"|"reply",
"reply": doc, "times": n}, {"op": "reset_stats"}.

Ready file (written atomically once every listener is bound): {"pid", "control_port", "set_name",
"members": [{"host", "port"}]}.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import signal
import socket
import ssl
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import bson
from bson import Int64, ObjectId, Timestamp
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.raw_bson import RawBSONDocument

log = logging.getLogger("rs_peer")

OP_REPLY, OP_QUERY, OP_COMPRESSED, OP_MSG = 1, 2004, 2012, 2013
MSG_CHECKSUM_PRESENT, MSG_MORE_TO_COME = 1 << 0, 1 << 1
QUERY_SECONDARY_OK = 1 << 2
MAX_BSON = 16 * 1024 * 1024
MAX_MESSAGE = 48_000_000
MAX_WRITE_BATCH = 100_000
MIN_WIRE, MAX_WIRE = 0, 21

# Top-level values are decoded; nested documents stay raw bytes, so relayed commands keep their exact BSON.
RAW = CodecOptions(document_class=RawBSONDocument, datetime_conversion=DatetimeConversion.DATETIME_AUTO)

HELLO = {"hello", "ismaster"}
NO_AUTH = {"hello", "ismaster", "ping", "buildinfo", "saslstart", "saslcontinue", "getnonce", "logout",
           "authenticate"}
WRITES = {"insert", "update", "delete", "findandmodify", "create", "drop", "dropdatabase", "renamecollection",
          "createindexes", "dropindexes", "collmod", "bulkwrite", "createuser", "dropuser", "updateuser",
          "clonecollectionascapped", "converttocapped", "commitTransaction".lower(), "aborttransaction"}
READS = {"find", "aggregate", "count", "distinct", "listcollections", "listindexes", "listdatabases", "dbstats",
         "collstats", "datasize", "explain", "mapreduce", "geosearch", "validate"}
STRIP = {"lsid", "txnNumber", "autocommit", "startTransaction", "$clusterTime", "$readPreference", "readConcern",
         "apiVersion", "apiStrict", "apiDeprecationErrors"}
SECONDARY_MODES = {"secondary", "secondaryPreferred", "primaryPreferred", "nearest"}


class CloseConnection(Exception):
    """Drop the client connection without a reply (fault injection, isolation, protocol errors)."""


# ---------------------------------------------------------------------------------------------- wire format

async def read_message(reader: asyncio.StreamReader) -> tuple[int, int, int, bytes]:
    """(request_id, response_to, opcode, body after the 16-byte header)."""
    header = await reader.readexactly(16)
    length, request_id, response_to, opcode = struct.unpack("<iiii", header)
    if length < 16 or length > MAX_MESSAGE + 16 * 1024:
        raise CloseConnection(f"bad message length {length}")
    return request_id, response_to, opcode, await reader.readexactly(length - 16)


def frame(request_id: int, response_to: int, opcode: int, body: bytes) -> bytes:
    return struct.pack("<iiii", 16 + len(body), request_id, response_to, opcode) + body


def op_msg(request_id: int, response_to: int, doc: bytes, sequences: bytes = b"", flags: int = 0) -> bytes:
    return frame(request_id, response_to, OP_MSG, struct.pack("<I", flags) + b"\x00" + doc + sequences)


def op_reply(request_id: int, response_to: int, doc: bytes) -> bytes:
    return frame(request_id, response_to, OP_REPLY, struct.pack("<Iqii", 0, 0, 0, 1) + doc)


def parse_op_msg(body: bytes) -> tuple[int, bytes, bytes]:
    """(flagBits, the kind-0 document, the kind-1 sections verbatim)."""
    flags = struct.unpack_from("<I", body)[0]
    end = len(body) - (4 if flags & MSG_CHECKSUM_PRESENT else 0)
    pos, doc, sequences = 4, None, bytearray()
    while pos < end:
        kind = body[pos]
        size = struct.unpack_from("<i", body, pos + 1)[0]
        if size < 5 or pos + 1 + size > end:
            raise CloseConnection(f"bad OP_MSG section size {size}")
        if kind == 0:
            doc = body[pos + 1:pos + 1 + size]
            pos += 1 + size
        elif kind == 1:
            sequences += body[pos:pos + 1 + size]
            pos += 1 + size
        else:
            raise CloseConnection(f"unknown OP_MSG section kind {kind}")
    if doc is None:
        raise CloseConnection("OP_MSG without a body section")
    return flags, doc, bytes(sequences)


def parse_op_query(body: bytes) -> tuple[int, str, bytes]:
    """(flags, fullCollectionName, query document)."""
    flags = struct.unpack_from("<i", body)[0]
    nul = body.index(b"\x00", 4)
    name = body[4:nul].decode()
    pos = nul + 1 + 8  # numberToSkip, numberToReturn
    size = struct.unpack_from("<i", body, pos)[0]
    return flags, name, body[pos:pos + size]


def error_doc(code: int, code_name: str, errmsg: str, labels: list[str] | None = None) -> dict:
    doc: dict[str, Any] = {"ok": 0.0, "errmsg": errmsg, "code": code, "codeName": code_name}
    if labels:
        doc["errorLabels"] = labels
    return doc


# ---------------------------------------------------------------------------------------------- SCRAM

try:
    from pymongo.saslprep import saslprep as _saslprep
except ImportError:  # pragma: no cover - pymongo is installed with bson
    def _saslprep(data: str, prohibit_unassigned_code_points: bool = True) -> str:
        if not data.isascii():
            raise ValueError("only ASCII passwords without pymongo's saslprep")
        return data


class ScramCredential:
    """What mongod stores for one user and mechanism: salt, iteration count, StoredKey and ServerKey."""

    def __init__(self, mechanism: str, user: str, password: str, iterations: int = 4096):
        self.mechanism = mechanism
        self.hash = "sha1" if mechanism == "SCRAM-SHA-1" else "sha256"
        if mechanism == "SCRAM-SHA-1":
            secret = hashlib.md5(f"{user}:mongo:{password}".encode()).hexdigest()
        else:
            secret = _saslprep(password)
        self.salt = os.urandom(16 if mechanism == "SCRAM-SHA-1" else 28)
        self.iterations = iterations
        salted = hashlib.pbkdf2_hmac(self.hash, secret.encode(), self.salt, iterations)
        self.stored_key = hashlib.new(self.hash, self._hmac(salted, b"Client Key")).digest()
        self.server_key = self._hmac(salted, b"Server Key")

    def _hmac(self, key: bytes, msg: bytes) -> bytes:
        return hmac.new(key, msg, self.hash).digest()

    def verify(self, auth_message: bytes, proof: bytes) -> bytes | None:
        """The ServerSignature if `proof` is right, else None."""
        signature = self._hmac(self.stored_key, auth_message)
        if len(proof) != len(signature):
            return None
        client_key = bytes(a ^ b for a, b in zip(proof, signature))
        if not hmac.compare_digest(hashlib.new(self.hash, client_key).digest(), self.stored_key):
            return None
        return self._hmac(self.server_key, auth_message)


def _scram_attrs(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(","):
        if len(part) < 2 or part[1] != "=":
            raise ValueError(f"malformed SCRAM attribute {part!r}")
        out[part[0]] = part[2:]
    return out


@dataclass
class ScramConversation:
    cred: ScramCredential
    user_key: tuple[str, str]
    gs2_header: str
    client_first_bare: str
    server_first: str
    nonce: str
    skip_empty: bool
    step: int = 1


# ---------------------------------------------------------------------------------------------- state

@dataclass
class Fault:
    command: str
    action: str
    reply: dict | None
    times: int


@dataclass
class Member:
    index: int
    host: str
    port: int
    tls: ssl.SSLContext | None
    server: asyncio.AbstractServer | None = None
    placeholder: socket.socket | None = None  # holds the port while the member refuses connections
    conns: set["Conn"] = field(default_factory=set)
    mode: str = "up"  # "up" | "refuse" | "blackhole"
    unblocked: asyncio.Event = field(default_factory=asyncio.Event)
    faults: list[Fault] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def reset_stats(self) -> None:
        self.stats = {"connections_accepted": 0, "hellos": 0, "commands": 0, "by_command": {}, "apps": {},
                      "drivers": {}, "auth_succeeded": 0, "auth_failed": 0, "unauthorized": 0,
                      "writes_refused": 0, "reads_refused": 0, "writes_executed": 0}


class Upstream:
    """A pool of connections to nx-27017, shared by every member (one request in flight per connection)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.next_id = 1

    async def command(self, doc: bytes, sequences: bytes = b"") -> bytes:
        """Runs one command; returns the reply document's bytes."""
        conn = self.idle.pop() if self.idle else await asyncio.open_connection(self.host, self.port)
        reader, writer = conn
        self.next_id += 1
        try:
            writer.write(op_msg(self.next_id, 0, doc, sequences))
            await writer.drain()
            _, _, opcode, body = await read_message(reader)
        except BaseException:
            writer.close()
            raise
        self.idle.append(conn)
        if opcode != OP_MSG:
            raise CloseConnection(f"nx-27017 answered with opcode {opcode}")
        return parse_op_msg(body)[1]


class ReplicaSet:
    def __init__(self, config: dict):
        self.set_name: str = config.get("set_name", "rs0")
        host, port = config["upstream"].rsplit(":", 1)
        self.upstream = Upstream(host, int(port))
        self.members = [Member(i, m["host"], int(m.get("port", 0)), _server_tls(m, config.get("tls")))
                        for i, m in enumerate(config["members"])]
        self.users: dict[tuple[str, str], dict[str, ScramCredential]] = {}
        for u in config.get("users", []):
            mechs = u.get("mechanisms", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
            self.users[(u.get("db", "admin"), u["user"])] = {
                m: ScramCredential(m, u["user"], u["password"]) for m in mechs}
        self.term = 0
        self.primary: int | None = None
        self.election_id: ObjectId | None = None
        self.optime = (Timestamp(int(time.time()), 1), _now())
        self.retry_cache: dict[tuple[bytes, int], bytes] = {}
        self.retry_locks: dict[tuple[bytes, int], asyncio.Lock] = {}
        self.next_connection_id = 0
        self.stats: dict[str, int] = {}
        self.reset_stats()
        self.elect(int(config.get("primary", 0)))

    def reset_stats(self) -> None:
        self.stats = {"retries_deduplicated": 0, "writes_executed": 0, "elections": 0}
        for m in self.members:
            m.reset_stats()

    # -- elections

    def elect(self, index: int | None) -> None:
        self.term += 1
        self.primary = index
        self.election_id = ObjectId(f"7fffffff{self.term:016x}")
        self.stats["elections"] += 1
        log.info("term %d: primary is %s", self.term, "none" if index is None else f"member {index}")

    def step_down(self, to: int | None, elect: bool, close_connections: bool) -> int | None:
        old = self.primary
        if not elect:
            new = None
        elif to is not None:
            if not 0 <= to < len(self.members):
                raise ValueError(f"no member {to}")
            new = to
        else:
            start = -1 if old is None else old
            candidates = [(start + k) % len(self.members) for k in range(1, len(self.members) + 1)]
            reachable = [i for i in candidates if i != old and self.members[i].mode == "up"]
            if not reachable:
                raise ValueError("no reachable member to elect")
            new = reachable[0]
        self.elect(new)
        if close_connections and old is not None and old != new:
            for conn in list(self.members[old].conns):
                conn.abort()
        return new

    def bump_optime(self) -> None:
        ts = self.optime[0]
        now = int(time.time())
        self.optime = (Timestamp(now, ts.inc + 1 if ts.time == now else 1), _now())

    # -- reachability

    async def start_member(self, m: Member) -> None:
        sock, m.placeholder = m.placeholder or _bound_socket(m.host, m.port), None
        sock.listen(128)
        sock.setblocking(False)
        m.server = await asyncio.start_server(lambda r, w: Conn(self, m, r, w).run(), sock=sock, ssl=m.tls,
                                              ssl_handshake_timeout=10 if m.tls else None)
        m.port = sock.getsockname()[1]
        m.mode = "up"
        m.unblocked.set()

    async def isolate(self, index: int, mode: str) -> None:
        m = self.members[index]
        if mode not in ("refuse", "blackhole"):
            raise ValueError(f"unknown isolation mode {mode!r}")
        await self.restore(index)
        m.mode = mode
        if mode == "refuse":
            assert m.server is not None
            m.server.close()
            m.server = None
            # Keep the port: a bound socket that does not listen answers SYNs with RST (connection refused), and
            # no other process (a parallel test's peer) can take the port before `restore` listens on it again.
            m.placeholder = _bound_socket(m.host, m.port)
            for conn in list(m.conns):
                conn.abort()
        else:
            m.unblocked.clear()
        log.info("member %d (%s) isolated: %s", index, m.address, mode)

    async def restore(self, index: int) -> None:
        m = self.members[index]
        if m.mode == "refuse":
            await self.start_member(m)
        m.mode = "up"
        m.unblocked.set()
        log.info("member %d (%s) reachable", index, m.address)

    def status(self) -> dict:
        return {
            "set_name": self.set_name, "term": self.term, "primary": self.primary,
            "election_id": str(self.election_id), **self.stats,
            "members": [{"index": m.index, "host": m.host, "port": m.port, "address": m.address,
                         "state": "PRIMARY" if m.index == self.primary else "SECONDARY", "reachability": m.mode,
                         "connections_open": len(m.conns), **m.stats} for m in self.members],
        }

    # -- hello

    def hello(self, member: Member, conn: "Conn", name: str, doc: dict) -> dict:
        is_primary = member.index == self.primary
        reply: dict[str, Any] = {}
        if doc.get("helloOk"):
            reply["helloOk"] = True
        reply["isWritablePrimary" if name == "hello" else "ismaster"] = is_primary
        # No "topologyVersion", deliberately: drivers then poll instead of streaming (see the module doc).
        reply.update({
            "setName": self.set_name, "setVersion": 1, "hosts": [m.address for m in self.members],
            "me": member.address, "secondary": not is_primary, "readOnly": False,
        })
        if self.primary is not None:
            reply["primary"] = self.members[self.primary].address
        if is_primary:
            reply["electionId"] = self.election_id
        ts, date = self.optime
        optime = {"ts": ts, "t": Int64(self.term)}
        reply["lastWrite"] = {"opTime": optime, "lastWriteDate": date, "majorityOpTime": optime,
                              "majorityWriteDate": date}
        reply.update({
            "maxBsonObjectSize": MAX_BSON, "maxMessageSizeBytes": MAX_MESSAGE, "maxWriteBatchSize": MAX_WRITE_BATCH,
            "localTime": _now(), "logicalSessionTimeoutMinutes": 30, "connectionId": conn.connection_id,
            "minWireVersion": MIN_WIRE, "maxWireVersion": MAX_WIRE,
        })
        mechs = doc.get("saslSupportedMechs")
        if isinstance(mechs, str) and "." in mechs:
            creds = self.users.get(tuple(mechs.split(".", 1)))  # type: ignore[arg-type]
            if creds:
                reply["saslSupportedMechs"] = list(creds)
        reply["ok"] = 1.0
        return reply


def _bound_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _now() -> dt.datetime:
    now = dt.datetime.now(dt.timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _server_tls(member: dict, tls: dict | None) -> ssl.SSLContext | None:
    if not tls:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(member["cert"], member["key"])
    mode = tls.get("client_cert", "none")
    if mode != "none":
        ctx.load_verify_locations(tls["ca"])
        ctx.verify_mode = ssl.CERT_REQUIRED if mode == "required" else ssl.CERT_OPTIONAL
    return ctx


# ---------------------------------------------------------------------------------------------- connections

@dataclass
class Command:
    name: str  # as sent
    db: str
    doc: dict  # top-level fields decoded, nested documents raw
    sequences: bytes  # OP_MSG kind-1 sections, verbatim
    secondary_ok: bool

    @property
    def lname(self) -> str:
        return self.name.lower()


class Conn:
    def __init__(self, rs: ReplicaSet, member: Member, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.rs, self.member, self.reader, self.writer = rs, member, reader, writer
        rs.next_connection_id += 1
        self.connection_id = rs.next_connection_id
        self.user: tuple[str, str] | None = None
        self.sasl: ScramConversation | None = None
        self.saw_client_metadata = False

    def abort(self) -> None:
        self.writer.transport.abort()

    async def run(self) -> None:
        m = self.member
        m.conns.add(self)
        m.stats["connections_accepted"] += 1
        try:
            while True:
                await m.unblocked.wait()
                request_id, _, opcode, body = await read_message(self.reader)
                await m.unblocked.wait()
                reply = await self.handle(request_id, opcode, body)
                if reply is not None:
                    await m.unblocked.wait()
                    self.writer.write(reply)
                    await self.writer.drain()
        except (CloseConnection, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError) as e:
            log.debug("%s: connection %d closed: %r", m.address, self.connection_id, e)
        except Exception:  # noqa: BLE001 - a peer bug must show in the log and drop only this connection
            log.exception("%s: connection %d failed", m.address, self.connection_id)
        finally:
            m.conns.discard(self)
            self.writer.transport.abort()

    async def handle(self, request_id: int, opcode: int, body: bytes) -> bytes | None:
        if opcode == OP_MSG:
            flags, raw, sequences = parse_op_msg(body)
            doc = dict(bson.decode(raw, codec_options=RAW).items())
            rp = doc.get("$readPreference")
            mode = rp.get("mode") if rp is not None else None
            cmd = Command(next(iter(doc), ""), str(doc.get("$db", "admin")), doc, sequences, mode in SECONDARY_MODES)
            reply = await self.dispatch(cmd)
            if flags & MSG_MORE_TO_COME:
                return None
            return op_msg(_next_reply_id(), request_id, reply)
        if opcode == OP_QUERY:
            flags, ns, raw = parse_op_query(body)
            if not ns.endswith(".$cmd"):
                raise CloseConnection(f"OP_QUERY on {ns} (only commands are supported)")
            doc = dict(bson.decode(raw, codec_options=RAW).items())
            secondary_ok = bool(flags & QUERY_SECONDARY_OK)
            if "$query" in doc:
                rp = doc.get("$readPreference")
                secondary_ok = secondary_ok or (rp is not None and rp.get("mode") in SECONDARY_MODES)
                doc = dict(doc["$query"].items())
            db = ns[: -len(".$cmd")]
            doc["$db"] = db
            reply = await self.dispatch(Command(next(iter(doc), ""), db, doc, b"", secondary_ok))
            return op_reply(_next_reply_id(), request_id, reply)
        raise CloseConnection(f"unsupported opcode {opcode}")

    async def dispatch(self, cmd: Command) -> bytes:
        rs, m, name = self.rs, self.member, cmd.lname
        m.stats["commands"] += 1
        m.stats["by_command"][cmd.name] = m.stats["by_command"].get(cmd.name, 0) + 1
        if name in HELLO:
            m.stats["hellos"] += 1
            self._record_client(cmd.doc)
            return bson.encode(rs.hello(m, self, name, cmd.doc))
        close_after = False
        for fault in list(m.faults):
            if fault.command.lower() == name:
                fault.times -= 1
                if fault.times <= 0:
                    m.faults.remove(fault)
                log.info("%s: fault %s on %s", m.address, fault.action, cmd.name)
                if fault.action == "close_before":
                    raise CloseConnection("injected fault")
                if fault.action == "reply":
                    return bson.encode(fault.reply or {"ok": 1.0})
                close_after = True
                break
        reply = await self._dispatch(cmd)
        if close_after:
            raise CloseConnection("injected fault after executing")
        return reply

    async def _dispatch(self, cmd: Command) -> bytes:
        rs, m, name = self.rs, self.member, cmd.lname
        if rs.users and self.user is None and name not in NO_AUTH:
            m.stats["unauthorized"] += 1
            return bson.encode(error_doc(13, "Unauthorized", f"command {cmd.name} requires authentication"))
        if name == "saslstart":
            return bson.encode(self.sasl_start(cmd))
        if name == "saslcontinue":
            return bson.encode(self.sasl_continue(cmd))
        if name == "logout":
            self.user = None
            return bson.encode({"ok": 1.0})
        if name == "endsessions":
            return bson.encode({"ok": 1.0})
        if name == "replsetgetstatus":
            return bson.encode(self.repl_status())
        if "startTransaction" in cmd.doc or "autocommit" in cmd.doc:
            return bson.encode(error_doc(20, "IllegalOperation",
                                         "multi-document transactions are not emulated by rs_peer"))
        is_primary = m.index == rs.primary
        write = _is_write(cmd)
        if name == "replsetstepdown":
            if not is_primary:
                return bson.encode(error_doc(10107, "NotWritablePrimary", "not primary so can't step down"))
            rs.step_down(None, True, False)
            return bson.encode({"ok": 1.0})
        if not is_primary:
            if write:
                m.stats["writes_refused"] += 1
                labels = ["RetryableWriteError"] if "txnNumber" in cmd.doc else None
                return bson.encode(error_doc(10107, "NotWritablePrimary", "not primary", labels))
            if name in READS and not cmd.secondary_ok:
                m.stats["reads_refused"] += 1
                return bson.encode(error_doc(13435, "NotPrimaryNoSecondaryOk", "not primary and secondaryOk=false"))
        key = _retry_key(cmd) if write else None
        if key is None:
            return await self.relay(cmd, write)
        lock = rs.retry_locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = rs.retry_cache.get(key)
            if cached is not None:
                rs.stats["retries_deduplicated"] += 1
                log.info("%s: retry of txnNumber %d answered from the cache", m.address, key[1])
                return cached
            reply = await self.relay(cmd, write)
            if bson.decode(reply, codec_options=RAW).get("ok") == 1:
                rs.retry_cache[key] = reply
            return reply

    async def relay(self, cmd: Command, write: bool) -> bytes:
        doc = {k: v for k, v in cmd.doc.items() if k not in STRIP}
        try:
            reply = await self.rs.upstream.command(bson.encode(doc), cmd.sequences)
        except (OSError, asyncio.IncompleteReadError) as e:
            raise CloseConnection(f"nx-27017 unreachable: {e!r}") from e
        if write and bson.decode(reply, codec_options=RAW).get("ok") == 1:
            self.rs.bump_optime()
            self.rs.stats["writes_executed"] += 1
            self.member.stats["writes_executed"] += 1
        return reply

    def _record_client(self, doc: dict) -> None:
        client = doc.get("client")
        if self.saw_client_metadata or client is None:
            return
        self.saw_client_metadata = True
        stats = self.member.stats
        for section, counts in (("application", stats["apps"]), ("driver", stats["drivers"])):
            sub = client.get(section)
            name = sub.get("name") if sub is not None else None
            if isinstance(name, str):
                counts[name] = counts.get(name, 0) + 1

    def repl_status(self) -> dict:
        rs = self.rs
        return {"set": self.rs.set_name, "myState": 1 if self.member.index == rs.primary else 2, "term": Int64(rs.term),
                "members": [{"_id": m.index, "name": m.address, "health": 1.0 if m.mode == "up" else 0.0,
                             "state": 1 if m.index == rs.primary else 2,
                             "stateStr": "PRIMARY" if m.index == rs.primary else "SECONDARY",
                             "self": m is self.member} for m in rs.members],
                "ok": 1.0}

    # -- SCRAM server side

    def _auth_failed(self, why: str) -> dict:
        self.sasl = None
        self.member.stats["auth_failed"] += 1
        log.info("%s: authentication failed: %s", self.member.address, why)
        return error_doc(18, "AuthenticationFailed", "Authentication failed.")

    def sasl_start(self, cmd: Command) -> dict:
        mechanism = cmd.doc.get("mechanism")
        if mechanism not in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
            return error_doc(2, "BadValue", f"Received authentication for mechanism {mechanism} which is unknown "
                                            "or not enabled")
        try:
            text = bytes(cmd.doc.get("payload", b"")).decode()
            if not text.startswith(("n,", "y,")):
                raise ValueError("channel binding is not supported")
            first_comma = text.index(",")
            second_comma = text.index(",", first_comma + 1)
            gs2_header, bare = text[: second_comma + 1], text[second_comma + 1:]
            attrs = _scram_attrs(bare)
            user = attrs["n"].replace("=2C", ",").replace("=3D", "=")
            client_nonce = attrs["r"]
        except (ValueError, KeyError) as e:
            return error_doc(17, "ProtocolError", f"malformed SCRAM client-first message: {e}")
        user_key = (cmd.db, user)
        creds = self.rs.users.get(user_key)
        if creds is None:
            return self._auth_failed(f"no user {user} in db {cmd.db}")
        cred = creds.get(mechanism)
        if cred is None:
            return error_doc(334, "MechanismUnavailable", f"Unable to use {mechanism} based authentication for user "
                                                          f"without any {mechanism} credentials registered")
        nonce = client_nonce + base64.b64encode(os.urandom(24)).decode()
        server_first = f"r={nonce},s={base64.b64encode(cred.salt).decode()},i={cred.iterations}"
        options = cmd.doc.get("options")
        skip_empty = bool(options is not None and options.get("skipEmptyExchange"))
        self.sasl = ScramConversation(cred, user_key, gs2_header, bare, server_first, nonce, skip_empty)
        return {"conversationId": 1, "done": False, "payload": server_first.encode(), "ok": 1.0}

    def sasl_continue(self, cmd: Command) -> dict:
        conv = self.sasl
        if conv is None or cmd.doc.get("conversationId") != 1:
            return error_doc(17, "ProtocolError", "No SASL session state found")
        if conv.step == 2:
            self.sasl = None
            self._authenticated(conv)
            return {"conversationId": 1, "done": True, "payload": b"", "ok": 1.0}
        try:
            text = bytes(cmd.doc.get("payload", b"")).decode()
            without_proof, proof_b64 = text.rsplit(",p=", 1)
            attrs = _scram_attrs(without_proof)
            proof = base64.b64decode(proof_b64, validate=True)
        except (ValueError, KeyError) as e:
            return error_doc(17, "ProtocolError", f"malformed SCRAM client-final message: {e}")
        if attrs.get("c") != base64.b64encode(conv.gs2_header.encode()).decode():
            return self._auth_failed("channel binding mismatch")
        if attrs.get("r") != conv.nonce:
            return self._auth_failed("nonce mismatch")
        auth_message = f"{conv.client_first_bare},{conv.server_first},{without_proof}".encode()
        server_signature = conv.cred.verify(auth_message, proof)
        if server_signature is None:
            return self._auth_failed(f"wrong password for {conv.user_key[1]}")
        conv.step = 2
        if conv.skip_empty:
            self.sasl = None
            self._authenticated(conv)
        payload = f"v={base64.b64encode(server_signature).decode()}".encode()
        return {"conversationId": 1, "done": conv.skip_empty, "payload": payload, "ok": 1.0}

    def _authenticated(self, conv: ScramConversation) -> None:
        self.user = conv.user_key
        self.member.stats["auth_succeeded"] += 1


_reply_ids = iter(range(1, 2**31))


def _next_reply_id() -> int:
    return next(_reply_ids)


def _is_write(cmd: Command) -> bool:
    name = cmd.lname
    if name in WRITES:
        return True
    if name == "aggregate":
        pipeline = cmd.doc.get("pipeline") or []
        return bool(pipeline) and any(k in ("$out", "$merge") for k in pipeline[-1].keys())
    return False


def _retry_key(cmd: Command) -> tuple[bytes, int] | None:
    lsid, txn = cmd.doc.get("lsid"), cmd.doc.get("txnNumber")
    if lsid is None or txn is None or "id" not in lsid:
        return None
    return bytes(lsid["id"]), int(txn)


# ---------------------------------------------------------------------------------------------- control port

async def control(rs: ReplicaSet, request: dict) -> dict:
    op = request.get("op")
    if op == "status":
        return rs.status()
    if op == "step_down":
        new = rs.step_down(request.get("to"), request.get("elect", True), request.get("close_connections", False))
        return {"primary": new, "term": rs.term, "election_id": str(rs.election_id)}
    if op == "isolate":
        await rs.isolate(int(request["member"]), request.get("mode", "refuse"))
        return {}
    if op == "restore":
        await rs.restore(int(request["member"]))
        return {}
    if op == "fail_next":
        action = request.get("action", "close_after")
        if action not in ("close_before", "close_after", "reply"):
            raise ValueError(f"unknown fault action {action!r}")
        rs.members[int(request["member"])].faults.append(
            Fault(request["command"], action, request.get("reply"), int(request.get("times", 1))))
        return {}
    if op == "reset_stats":
        rs.reset_stats()
        return {}
    raise ValueError(f"unknown op {op!r}")


async def serve_control(rs: ReplicaSet, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            try:
                answer = {"ok": True, **await control(rs, json.loads(line))}
            except Exception as e:  # noqa: BLE001 - every failure goes back to the harness
                answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            writer.write(json.dumps(answer, default=str).encode() + b"\n")
            await writer.drain()
    finally:
        writer.close()


# ---------------------------------------------------------------------------------------------- main

def _config_from_args(args: argparse.Namespace) -> dict:
    if args.config:
        with open(args.config) as f:
            return json.load(f)
    if not args.upstream:
        raise SystemExit("rs_peer: give --config FILE or --upstream HOST:PORT")
    return {"upstream": args.upstream, "set_name": args.set_name, "ready_file": args.ready_file,
            "members": [{"host": f"127.0.0.{i + 2}", "port": 0} for i in range(args.members)]}


async def amain(config: dict) -> None:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: log.debug("asyncio: %s", ctx.get("message")))
    rs = ReplicaSet(config)
    for m in rs.members:
        await rs.start_member(m)
    ctl = await asyncio.start_server(lambda r, w: serve_control(rs, r, w), "127.0.0.1", 0)
    ready = {"pid": os.getpid(), "control_port": ctl.sockets[0].getsockname()[1], "set_name": rs.set_name,
             "members": [{"host": m.host, "port": m.port} for m in rs.members]}
    if config.get("ready_file"):
        tmp = config["ready_file"] + ".tmp"
        with open(tmp, "w") as f:
            json.dump(ready, f)
        os.replace(tmp, config["ready_file"])
    print(json.dumps(ready), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="MongoDB replica set emulated over one nx-27017 (test peer)")
    p.add_argument("--config", help="JSON config written by support.replset.ReplSet")
    p.add_argument("--upstream", help="nx-27017 HOST:PORT (without --config)")
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--set-name", default="rs0")
    p.add_argument("--ready-file")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(amain(_config_from_args(args)))


if __name__ == "__main__":
    main()
