"""Starting a throwaway local cluster (`pulzar up`) for a benchmark run, and watching its RSS."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

#: Benchmarks run without the access log (one log line a request costs ~10% of a GET).
BENCH_ENV = {"PULZAR_SERVER_ACCESS_LOG": "false"}


def free_port_block(count: int) -> int:
    """The first of `count` consecutive free ports on 127.0.0.1, below the kernel's ephemeral
    range (32768 and up), so that no outgoing connection takes one before it is bound."""
    for _ in range(500):
        base = random.randrange(20000, 32000 - count)
        ok = True
        for port in range(base, base + count):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free ports on 127.0.0.1")


@dataclass
class Cluster:
    url: str
    volumes: list[str]
    data: Path
    proc: subprocess.Popen[bytes]

    def processes(self) -> list[psutil.Process]:
        """`pulzar up` and the master and volume processes it started."""
        try:
            parent = psutil.Process(self.proc.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


def wait_healthy(
    url: str, volumes: int, proc: subprocess.Popen[bytes], timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the cluster exited during start-up")
        try:
            if httpx.get(f"{url}/health").json()["data"]["live_volumes"] >= volumes:
                return
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass
        time.sleep(0.1)
    raise RuntimeError("cluster did not come up")


@contextmanager
def local_cluster(
    volumes: int = 2, env: dict[str, str] | None = None, data_dir: Path | None = None
) -> Iterator[Cluster]:
    """`pulzar up` in a temp dir (or in `data_dir`, kept) with access logs off; stopped
    (SIGTERM, by PID) afterwards."""
    port = free_port_block(volumes + 1)
    with tempfile.TemporaryDirectory(prefix="pulzar-bench-") as tmp:
        data = str(data_dir or tmp)
        full_env = dict(os.environ, **BENCH_ENV, **(env or {}))
        # PULZAR_BENCH_LOG=FILE keeps the cluster's log (it is dropped otherwise).
        log_path = os.environ.get("PULZAR_BENCH_LOG")
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "pulzar", "up", "--data", data, "--port", str(port),
             "--volumes", str(volumes)],
            env=full_env, stderr=log,
        )
        if log_path:
            log.close()  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, volumes, proc)
            yield Cluster(
                url=url,
                volumes=[f"http://127.0.0.1:{port + i}" for i in range(1, volumes + 1)],
                data=Path(data),
                proc=proc,
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class RssSampler:
    """Samples the RSS of some processes every `interval` seconds in a thread; `peak` holds
    the highest RSS seen per process name."""

    processes: list[psutil.Process]
    interval: float = 0.05
    peak: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @staticmethod
    def name(proc: psutil.Process) -> str:
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            return str(proc.pid)
        if "pulzar" in cmd:
            role = cmd[cmd.index("pulzar") + 1] if cmd.index("pulzar") + 1 < len(cmd) else "?"
            port = cmd[cmd.index("--port") + 1] if "--port" in cmd else ""
            return f"{role}:{port}" if port else role
        if "-c" in cmd:  # the master's extension workers (`python -c <boot> FD`)
            return f"extension-worker:{proc.pid}"
        return f"{proc.name()}:{proc.pid}"

    def __enter__(self) -> RssSampler:
        names = {p.pid: self.name(p) for p in self.processes}

        def loop() -> None:
            while not self._stop.is_set():
                for proc in self.processes:
                    try:
                        rss = proc.memory_info().rss
                    except psutil.Error:
                        continue
                    key = names[proc.pid]
                    self.peak[key] = max(self.peak.get(key, 0), rss)
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def peak_mb(self) -> dict[str, float]:
        return {name: rss / 1024 / 1024 for name, rss in sorted(self.peak.items())}
