"""Starting a throwaway local cluster for a benchmark run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from collections.abc import Iterator

import httpx


def free_port_block(count: int) -> int:
    """A base port with `count` free ports after it (best effort)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count >= 65535:
            continue
        ok = True
        for p in range(base, base + count):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port block")


@contextmanager
def local_cluster(volumes: int = 2) -> Iterator[str]:
    """`pulzar up` in a temp dir with access logs off; yields the master URL."""
    port = free_port_block(volumes + 1)
    with tempfile.TemporaryDirectory(prefix="pulzar-bench-") as data:
        env = dict(os.environ, PULZAR_SERVER_ACCESS_LOG="false")
        proc = subprocess.Popen(
            [sys.executable, "-m", "pulzar", "up", "--data", data, "--port", str(port),
             "--volumes", str(volumes)],
            env=env, stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/health").json()["data"]["live_volumes"] == volumes:
                        break
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    pass
                time.sleep(0.1)
            else:
                raise RuntimeError("cluster did not come up")
            yield url
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
