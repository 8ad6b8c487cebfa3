"""Two named targets, as a team has them: `prod` and `staging`, each a bastion (its own sshd and client key) in
front of its own MongoDB-wire peer. Each peer holds the sample data plus `nexus.env` = {"_id": "env", "name": <its
name>}, so a test can tell which database answered."""

from __future__ import annotations

from pathlib import Path

from .nexus import Nexus
from .stack import Stack

NAMES = ("prod", "staging")


class Targets:
    def __init__(self, directory: Path):
        self.dir = directory
        for name in NAMES:
            (directory / name).mkdir(parents=True, exist_ok=True)
        self.stacks = {name: Stack(directory / name) for name in NAMES}
        for name, stack in self.stacks.items():
            with stack.mongo.client() as client:
                client["nexus"]["env"].insert_one({"_id": "env", "name": name})
        self.nexuses: list[Nexus] = []

    def __getitem__(self, name: str) -> Stack:
        return self.stacks[name]

    def config(self, *, required: dict[str, bool] | None = None, mcp: dict[str, dict] | None = None,
               **sections) -> dict:
        """`[targets.<name>.ssh|mongo]` for each stack (`[targets.<name>] required` and `.mcp` when given), plus
        top-level `sections`."""
        config: dict = {}
        for name, stack in self.stacks.items():
            base = stack.config()
            if required is not None:
                config[f"targets.{name}"] = {"required": required[name]}
            config[f"targets.{name}.ssh"] = base["ssh"]
            config[f"targets.{name}.mongo"] = base["mongo"]
            if mcp and name in mcp:
                config[f"targets.{name}.mcp"] = mcp[name]
        config["server"] = {"rate_limit": 0.0}
        for section, keys in sections.items():
            config.setdefault(section, {}).update(keys)
        return config

    def nexus(self, name: str = "nexus", *, start: bool = True, **config) -> Nexus:
        n = Nexus(self.dir / name, self.config(**config), start=start)
        self.nexuses.append(n)
        return n

    def close(self) -> None:
        for n in self.nexuses:
            n.stop()
        for stack in self.stacks.values():
            stack.close()
