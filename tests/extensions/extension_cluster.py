"""An in-process master (and, where stored keys are needed, a volume) for the extension tests.

Each app is served by an aiohttp `AppRunner` on 127.0.0.1 in the test's event loop, as
`pulzar master` and `pulzar volume` serve them, with its data in `tmp_path`; the master's
extension workers are real processes. `TEST_EXTENSIONS` holds small extensions written into the
configured extensions directory for the fault tests.
"""

from __future__ import annotations

import socket
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from pulzar.core.config import Config
from pulzar.extensions.service import ExtensionService
from pulzar.master.app import SERVICE
from pulzar.master.extension_routes import EXTENSIONS
from pulzar.master.service import MasterService

SECRET = "extension-tests-cluster-secret"
HOST = "127.0.0.1"
FAST = {
    ("timers", "heartbeat"): 0.1,
    ("timers", "suspect_after"): 0.5,
    ("timers", "dead_after"): 1.0,
    ("storage", "map_size_gb"): 1,
    ("server", "access_log"): False,
}

TEST_EXTENSIONS = {
    "refuse": """
        from pulzar.extensions import Extension, ExtensionError

        class Refuse(Extension):
            def execute(self):
                raise ExtensionError("no thanks: " + ",".join(self.arguments))
    """,
    "boom": """
        from pulzar.extensions import Extension

        class Boom(Extension):
            def execute(self):
                raise ValueError("kaboom")
    """,
    "sleepy": """
        import time
        from pulzar.extensions import Extension

        class Sleepy(Extension):
            def execute(self):
                seconds = float(self.params.get("seconds", ["0"])[0])
                time.sleep(seconds)
                return {"slept": seconds}
    """,
    "peek": """
        import os
        from pulzar.extensions import Extension

        class Peek(Extension):
            def execute(self):
                path = self.file_path
                with open(path, "rb") as fh:
                    data = fh.read()
                return {"path": path, "size": len(data), "head": data[:16].decode("latin-1")}
    """,
    "notjson": """
        from pulzar.extensions import Extension

        class Notjson(Extension):
            def execute(self):
                return {"value": object()}
    """,
    "exits": """
        import os
        from pulzar.extensions import Extension

        class Exits(Extension):
            def execute(self):
                os._exit(3)
    """,
    "noclass": """
        def execute():
            return 1
    """,
    # An extension written for the original Pulzar, unchanged.
    "legacy": """
        from pulzarutils.extension import Extension

        class Legacy(Extension):
            def __init__(self, arguments, params, file_path=None):
                self.args = arguments
                self.params = params

            def execute(self):
                return {"args": self.args, "params": self.params}
    """,
    # Named like a standard library module: loaded under its own name, never instead of it.
    "json": """
        import json as stdlib_json
        from pulzar.extensions import Extension

        class Json(Extension):
            def execute(self):
                return {"stdlib_dumps": stdlib_json.dumps([1])}
    """,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def extensions_dir(root: Path) -> Path:
    directory = root / "extensions"
    directory.mkdir(parents=True, exist_ok=True)
    for name, source in TEST_EXTENSIONS.items():
        (directory / f"{name}.py").write_text(textwrap.dedent(source).lstrip())
    return directory


@dataclass
class Node:
    """One app served on 127.0.0.1."""

    app: web.Application
    runner: web.AppRunner
    config: Config
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def close(self) -> None:
        await self.runner.cleanup()


async def serve(app: web.Application, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    return runner, port


@dataclass
class Master(Node):
    http: aiohttp.ClientSession

    @property
    def service(self) -> MasterService:
        return self.app[SERVICE]

    @property
    def extensions(self) -> ExtensionService:
        return self.app[EXTENSIONS]

    async def call(
        self, path: str, *, data: Any = None, method: str | None = None, **kwargs: Any
    ) -> tuple[int, dict[str, Any]]:
        """An extension call: GET, or PUT when there is a body; status and JSON envelope."""
        method = method or ("GET" if data is None else "PUT")
        url = f"{self.url}{path}"
        async with self.http.request(method, url, data=data, **kwargs) as resp:
            return resp.status, await resp.json()

    async def put_key(self, key: str, data: bytes) -> None:
        async with self.http.put(f"{self.url}/add_key{key}", data=data) as resp:
            assert resp.status == 201, await resp.text()


MasterFactory = Callable[..., Awaitable[Master]]
