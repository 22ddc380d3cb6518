"""In-process clusters for the HTTP API tests.

A cluster is one master app and N volume apps (`pulzar.master.server.create_app`,
`pulzar.volume.server.create_app`), each served by an aiohttp `AppRunner` on a socket bound to
a free port on 127.0.0.1 in the test's own event loop, with its data in `tmp_path`, one shared
cluster secret and fast timers. Tests talk to it over real HTTP (aiohttp's client, or raw
sockets where the exact bytes on the wire matter) and may look inside the apps' service
objects to check what is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from pulzar.core.config import Config, load_config
from pulzar.master import app as master_app
from pulzar.master import server as master_server
from pulzar.master.service import MasterService
from pulzar.storage.values import ValueStore
from pulzar.volume import app as volume_app
from pulzar.volume import server as volume_server
from pulzar.volume.service import VolumeService

SECRET = "in-process-test-cluster-secret"
HOST = "127.0.0.1"

FAST_TIMERS: dict[tuple[str, str], Any] = {
    ("timers", "heartbeat"): 0.1,
    # A killed volume is seen dead at once (its heartbeat connection drops); silence only
    # matters for a hung one, and a busy machine must not make a healthy one look dead.
    ("timers", "suspect_after"): 1.0,
    ("timers", "dead_after"): 2.0,
    ("timers", "ttl_sweep"): 0.2,
    ("timers", "reconnect"): 0.1,
    # Address space only, but a small map keeps many short-lived environments cheap.
    ("storage", "map_size_gb"): 1,
}

Overrides = dict[tuple[str, str], Any]


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
    what: str = "condition",
) -> None:
    """Poll `check` until it is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


def bind_free_socket(port: int = 0) -> socket.socket:
    """A listening-ready TCP socket on 127.0.0.1 (port 0: a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.setblocking(False)
    return sock


def make_config(overrides: Overrides) -> Config:
    """A config from an explicit environment (never os.environ) plus flag-like overrides."""
    return load_config(
        env={"PULZAR_CLUSTER_SECRET": SECRET}, overrides={**FAST_TIMERS, **overrides}
    )


@dataclass
class Served:
    """One app served on 127.0.0.1."""

    app: web.Application
    runner: web.AppRunner
    config: Config
    port: int
    url: str
    stopped: bool = False

    async def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            await self.runner.cleanup()


async def serve(app: web.Application, sock: socket.socket, config: Config) -> Served:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    port = sock.getsockname()[1]
    return Served(app, runner, config, port, f"http://{HOST}:{port}")


@dataclass
class Cluster:
    """A master and its volumes in this event loop, plus a client session to drive them."""

    root: Path
    http: aiohttp.ClientSession
    master_overrides: Overrides = field(default_factory=dict)
    volume_overrides: Overrides = field(default_factory=dict)
    master: Served | None = None
    volumes: list[Served] = field(default_factory=list)
    master_port: int = 0

    # -- life cycle -----------------------------------------------------------------------

    async def start_master(self, **overrides: Any) -> Served:
        """Start (or restart, on the same port and data directory) the master."""
        sock = bind_free_socket(self.master_port)
        self.master_port = sock.getsockname()[1]
        config = make_config(
            {
                ("server", "host"): HOST,
                ("server", "port"): self.master_port,
                ("server", "data"): str(self.root / "master"),
                ("server", "access_log"): False,
                **self.master_overrides,
                **_flat(overrides),
            }
        )
        try:
            app = master_server.create_app(config)
        except BaseException:
            sock.close()
            raise
        self.master = await serve(app, sock, config)
        return self.master

    async def stop_master(self) -> None:
        assert self.master is not None
        await self.master.stop()

    async def add_volume(self, **overrides: Any) -> Served:
        assert self.master is not None, "start the master first: a volume needs its URL"
        n = len(self.volumes)
        sock = bind_free_socket()
        port = sock.getsockname()[1]
        config = make_config(
            {
                ("volume", "host"): HOST,
                ("volume", "port"): port,
                ("volume", "dir"): str(self.root / f"volume{n}"),
                ("volume", "master"): self.master.url,
                ("volume", "name"): f"vol{n}",
                **self.volume_overrides,
                **_flat(overrides),
            }
        )
        try:
            app = volume_server.create_app(config)
        except BaseException:
            sock.close()
            raise
        served = await serve(app, sock, config)
        self.volumes.append(served)
        return served

    async def wait_live(self, count: int | None = None, timeout: float = 5.0) -> None:
        """Poll the master's /health until `count` volumes (default: all started) are live."""
        want = len([v for v in self.volumes if not v.stopped]) if count is None else count

        async def live() -> bool:
            async with self.http.get(self.url("/health")) as resp:
                body = await resp.json()
            return bool(body["data"]["live_volumes"] >= want and (want == 0 or resp.status == 200))

        await eventually(live, timeout=timeout, what=f"{want} live volumes")

    async def close(self) -> None:
        for volume in self.volumes:
            await volume.stop()
        if self.master is not None:
            await self.master.stop()

    # -- looking inside -------------------------------------------------------------------

    @property
    def master_url(self) -> str:
        assert self.master is not None
        return self.master.url

    @property
    def service(self) -> MasterService:
        assert self.master is not None
        return self.master.app[master_app.SERVICE]

    def volume_service(self, n: int = 0) -> VolumeService:
        return self.volumes[n].app[volume_app.SERVICE]

    def store(self, n: int = 0) -> ValueStore:
        return self.volume_service(n).store

    def snapshot(self) -> tuple[list[tuple[str, int]], list[list[tuple[str, int, bytes]]]]:
        """What is stored: the index's (key, version) and every volume's (key, version, sum)."""
        index = sorted((r.meta.key, r.meta.version) for r in self.service.index.iter_records())
        values = [
            sorted(
                (v.meta.key, v.meta.version, v.meta.checksum) for v in self.store(i).iter_values()
            )
            for i, volume in enumerate(self.volumes)
            if not volume.stopped
        ]
        return index, values

    # -- helpers for tests (so that test modules need not import this conftest) -------------

    secret = SECRET

    @staticmethod
    async def wait_for(
        check: Callable[[], Awaitable[bool]] | Callable[[], bool],
        *,
        timeout: float = 5.0,
        what: str = "condition",
    ) -> None:
        await eventually(check, timeout=timeout, what=what)

    async def raw(self, base_url: str | None = None) -> RawConnection:
        """A hand-driven HTTP connection to the master (or to `base_url`)."""
        return await RawConnection.open(base_url or self.master_url)

    # -- talking to it --------------------------------------------------------------------

    def url(self, path: str) -> URL:
        """A master URL with `path` sent exactly as written (no normalisation)."""
        return URL(self.master_url + path, encoded=True)

    async def put(
        self,
        key: str,
        data: bytes = b"",
        *,
        headers: dict[str, str] | None = None,
        query: str = "",
    ) -> tuple[int, dict[str, Any]]:
        """PUT through the master's 307 (followed); the status and JSON envelope."""
        async with self.http.put(
            self.url(f"/add_key{key}{query}"), data=data, headers=headers
        ) as resp:
            return resp.status, await resp.json()

    async def get(
        self, key: str, *, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, aiohttp.ClientResponse]:
        async with self.http.get(self.url(f"/get_key{key}"), headers=headers) as resp:
            return resp.status, await resp.read(), resp

    async def list_keys(self, prefix: str = "", query: str = "") -> tuple[int, dict[str, Any]]:
        async with self.http.get(self.url(f"/list_keys/{prefix.lstrip('/')}{query}")) as resp:
            return resp.status, await resp.json()

    async def stat(self, key: str) -> tuple[int, dict[str, Any]]:
        async with self.http.get(self.url(f"/stat_key{key}")) as resp:
            return resp.status, await resp.json()


def _flat(overrides: dict[str, Any]) -> Overrides:
    """`section__key=value` keyword arguments as load_config overrides."""
    out: Overrides = {}
    for name, value in overrides.items():
        section, _, key = name.partition("__")
        out[(section, key)] = value
    return out


ClusterFactory = Callable[..., Awaitable[Cluster]]


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class RawConnection:
    """One TCP connection speaking HTTP/1.1 by hand: for what a client library hides
    (`Expect: 100-continue`, a body that is never sent, keep-alive after a redirect)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, base_url: str) -> RawConnection:
        url = URL(base_url)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_response(self, *, timeout: float = 5.0) -> RawResponse:
        """The next response: status line, headers and a Content-Length body."""

        async def read() -> RawResponse:
            status_line = await self.reader.readuntil(b"\r\n")
            status = int(status_line.split()[1])
            headers: dict[str, str] = {}
            while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await self.reader.readexactly(length) if length else b""
            return RawResponse(status, headers, body)

        return await asyncio.wait_for(read(), timeout)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await self.writer.wait_closed()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
async def make_cluster(
    tmp_path: Path, http: aiohttp.ClientSession
) -> AsyncIterator[ClusterFactory]:
    """`await make_cluster(volumes=2, master={...}, volume={...})`: started and registered.

    `master` and `volume` map `(section, key)` to a setting for that kind of process.
    """
    clusters: list[Cluster] = []

    async def start(
        volumes: int = 1,
        master: Overrides | None = None,
        volume: Overrides | None = None,
    ) -> Cluster:
        cluster = Cluster(
            tmp_path / f"cluster{len(clusters)}",
            http,
            master_overrides=dict(master or {}),
            volume_overrides=dict(volume or {}),
        )
        clusters.append(cluster)
        await cluster.start_master()
        for _ in range(volumes):
            await cluster.add_volume()
        await cluster.wait_live(volumes)
        return cluster

    yield start
    for cluster in reversed(clusters):
        await cluster.close()


@pytest.fixture
async def cluster(make_cluster: ClusterFactory) -> Cluster:
    """A master with one volume."""
    return await make_cluster()


@pytest.fixture
async def cluster2(make_cluster: ClusterFactory) -> Cluster:
    """A master with two volumes (copies per value as configured by default)."""
    return await make_cluster(volumes=2)
