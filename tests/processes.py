"""Real `pulzar` processes on 127.0.0.1 for the tests that need them (tests/integration,
tests/dashboard): waiting with a deadline, free ports, a clean environment, and a process
started, paused, killed and stopped by its PID."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

HOST = "127.0.0.1"
PYTHON = sys.executable


# -- waiting ------------------------------------------------------------------------------


class ProcessDied(AssertionError):
    """A process the test waits on has exited: no use waiting longer."""


def wait_until(
    check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll `check()` until it returns something truthy (which is returned); fail after
    `timeout` seconds. Exceptions from `check` count as "not yet", except `ProcessDied`."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
        except ProcessDied:
            raise
        except Exception as exc:
            result, last_error = None, exc
        if result:
            return result
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{detail}")
        time.sleep(interval)


# -- ports and environment ----------------------------------------------------------------

_handed_out: set[int] = set()
_port_lock = threading.Lock()


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_ports(count: int = 1) -> int:
    """The first of `count` consecutive free ports on 127.0.0.1.

    Taken below the kernel's ephemeral range (32768+), so that no outgoing connection of
    this machine sits on them, away from Pulzar's default ports (314xx), and never the same
    twice in one test session.
    """
    with _port_lock:
        for _ in range(1000):
            base = random.randrange(20000, 32000 - count)
            ports = range(base, base + count)
            if any(p in _handed_out or 31400 <= p < 31500 for p in ports):
                continue
            if all(_bindable(p) for p in ports):
                _handed_out.update(ports)
                return base
    raise RuntimeError("no free ports on 127.0.0.1")


def pulzar_env(settings: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without any PULZAR_* setting of the caller's, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULZAR_")}
    env["PULZAR_SERVER_ACCESS_LOG"] = "false"
    env.update(settings or {})
    return env


# -- processes ----------------------------------------------------------------------------


@dataclass
class Proc:
    """One `python -m pulzar ...` process, restartable with the same arguments."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    cwd: Path
    popen: subprocess.Popen[bytes] | None = None
    paused: bool = False
    starts: int = 0

    def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        self.starts += 1
        with open(self.log, "ab") as log:
            log.write(f"---- start #{self.starts}: {' '.join(self.args)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                [PYTHON, "-m", "pulzar", *self.args],
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.paused = False

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def send(self, sig: int) -> None:
        if self.running:
            os.kill(self.pid, sig)
            if sig == signal.SIGSTOP:
                self.paused = True
            elif sig == signal.SIGCONT:
                self.paused = False

    def kill9(self) -> None:
        """kill -9, and reap it."""
        if self.popen is not None and self.running:
            self.popen.kill()
        if self.popen is not None:
            self.popen.wait(10)
        self.paused = False

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM (after SIGCONT if paused), then SIGKILL after `timeout`; the exit code."""
        if self.popen is None:
            return None
        if self.running:
            if self.paused:
                self.send(signal.SIGCONT)
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self.paused = False
        return self.popen.returncode

    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if not self.running:
            raise ProcessDied(
                f"{self.name} exited with {self.popen.returncode if self.popen else None}:\n"
                + self.log_tail()
            )
