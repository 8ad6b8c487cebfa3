"""The nx-27017 MongoDB-wire server (SQLite-backed) on loopback, with data kept across restarts."""

from __future__ import annotations

from pathlib import Path

from .procs import Proc, free_port, wait_until
from .nexus import REPO

NX = REPO / ".venv" / "bin" / "nx-27017"


class MongoWire:
    def __init__(self, directory: Path, port: int | None = None):
        if not NX.exists():
            raise RuntimeError(f"{NX} is missing: run `make deps` (scripts/install-test-deps.sh)")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: Proc | None = None
        self.start()

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> None:
        # One SQLite file for every logical database (admin commands such as renameCollection need it).
        self.proc = Proc([str(NX), "--db", str(self.dir / "nx.db"), "--host", "127.0.0.1", "-p", str(self.port),
                          "--log-file", str(self.dir / "nx.log"), "--pid-file", str(self.dir / "nx.pid")],
                         self.dir / "nx.out")
        wait_until(self.ping, 20, f"nx-27017 on port {self.port}", on_timeout=self.proc.text)

    def client(self):
        import pymongo
        return pymongo.MongoClient(self.uri, directConnection=True, serverSelectionTimeoutMS=2000,
                                   connectTimeoutMS=2000)

    def ping(self) -> bool:
        with self.client() as c:
            return c.admin.command("ping").get("ok") == 1

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
