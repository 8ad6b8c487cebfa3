"""Test harness: real OpenSSH sshd, the nx-27017 MongoDB-wire server, the real nexus-mcp binary, on loopback.

Every process is started in its own process group, recorded, and stopped by PID at teardown (and at exit, as a
safety net). Ports are picked at random; tests may run in parallel.
"""

from .procs import Proc, free_port, wait_until
from .ssh import Agent, Sshd, keygen
from .mongo import MongoWire
from .nexus import Nexus, REPO
from .stack import Stack
from .mcpclient import call_tool, list_tools, read_resource, session
from .tsclient import ts_call_tool, ts_list_tools, ts_read_resource, ts_run

__all__ = [
    "Agent", "MongoWire", "Nexus", "Proc", "REPO", "Sshd", "Stack", "call_tool", "free_port", "keygen",
    "list_tools", "read_resource", "session", "ts_call_tool", "ts_list_tools", "ts_read_resource", "ts_run",
    "wait_until",
]
