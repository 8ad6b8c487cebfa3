"""Processes started by tests: own process group, log file, stopped by PID."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Sequence

_RUNNING: set["Proc"] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (callers retry on the rare collision)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05,
               on_timeout: Callable[[], str] | None = None):
    """Polls `predicate` until it returns a truthy value (returned); raises with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - polled predicates may fail while things start
            last_error = e
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 f"{f' (last error: {last_error!r})' if last_error else ''}\n{detail}")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def descendants(pid: int) -> list[int]:
    """All descendant PIDs of `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class Proc:
    """A child process with its output in `log`."""

    def __init__(self, argv: Sequence[str], log: Path, env: dict[str, str] | None = None,
                 stdin=subprocess.DEVNULL, stdout=None):
        self.argv = list(argv)
        self.log = log
        self._log_file = open(log, "ab")
        self.popen = subprocess.Popen(
            self.argv, stdin=stdin, stdout=stdout if stdout is not None else self._log_file,
            stderr=self._log_file, env=env, start_new_session=True,
        )
        _RUNNING.add(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the process group, then SIGKILL after `timeout`; returns the exit code."""
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL the process and every descendant."""
        for pid in [self.pid, *descendants(self.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._close()

    def _close(self) -> None:
        _RUNNING.discard(self)
        if not self._log_file.closed:
            self._log_file.close()

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@atexit.register
def _stop_all() -> None:
    for proc in list(_RUNNING):
        proc.kill()
