"""The common case: a client key, one sshd bastion, nx-27017 with the sample data, and nexus-mcp through it."""

from __future__ import annotations

import sys
from pathlib import Path

from .mongo import MongoWire
from .nexus import REPO, Nexus
from .ssh import Sshd, current_user, keygen

sys.path.insert(0, str(REPO / "scripts"))
from sample_data import seed  # noqa: E402


class Stack:
    def __init__(self, directory: Path, *, seed_data: bool = True):
        self.dir = directory
        self.key = keygen(directory)
        self.sshd = Sshd(directory / "sshd", authorized_keys=[self.key])
        self.mongo = MongoWire(directory / "mongo")
        if seed_data:
            with self.mongo.client() as client:
                seed(client, scale=0.1)
        self.known_hosts = directory / "known_hosts"
        self.known_hosts.write_text(self.sshd.known_hosts_line())
        self.nexuses: list[Nexus] = []

    def config(self, **sections) -> dict:
        """nexus-mcp's config through this stack; `sections` (e.g. mcp={...}) are merged over it; a key set to
        None is removed."""
        config = {
            "ssh": {
                "host": self.sshd.host,
                "port": self.sshd.port,
                "user": current_user(),
                "private_key": str(self.key),
                "known_hosts": str(self.known_hosts),
                "keepalive_interval": "1s",
                "keepalive_max": 2,
                "connect_timeout": "3s",
                "reconnect_min_delay": "100ms",
                "reconnect_max_delay": "500ms",
            },
            "mongo": {"uri": self.mongo.uri, "health_interval": "500ms", "server_selection_timeout": "2s"},
            # Tests fire requests far faster than an agent; the rate limit has its own test.
            "server": {"rate_limit": 0.0},
        }
        for section, keys in sections.items():
            target = config.setdefault(section, {})
            for key, value in keys.items():
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value
        return config

    def nexus(self, name: str = "nexus", *, args: list[str] = (), env: dict | None = None, start: bool = True,
              **sections) -> Nexus:
        n = Nexus(self.dir / name, self.config(**sections), args=args, env=env, start=start)
        self.nexuses.append(n)
        return n

    def close(self) -> None:
        for n in self.nexuses:
            n.stop()
        self.sshd.kill()
        self.mongo.stop()
