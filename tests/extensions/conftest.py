"""Fixtures of the extension tests (see `extension_cluster`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from extension_cluster import (
    FAST,
    HOST,
    SECRET,
    Master,
    MasterFactory,
    Node,
    extensions_dir,
    free_port,
    serve,
)

from pulzar.core.config import load_config
from pulzar.master import server as master_server
from pulzar.volume import server as volume_server


@pytest.fixture
async def ext_http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


@pytest.fixture
async def make_master(
    tmp_path: Path, ext_http: aiohttp.ClientSession
) -> AsyncIterator[MasterFactory]:
    """`await make_master(volumes=0, extensions={...}, general={...})`: a started master (and
    registered volumes) whose extensions directory holds `TEST_EXTENSIONS`."""
    nodes: list[Node] = []

    async def start(volumes: int = 0, **sections: dict[str, Any]) -> Master:
        root = tmp_path / f"cluster{sum(isinstance(n, Master) for n in nodes)}"
        port = free_port()
        overrides: dict[tuple[str, str], Any] = {
            **FAST,
            ("server", "host"): HOST,
            ("server", "port"): port,
            ("server", "data"): str(root / "master"),
            ("extensions", "dir"): str(extensions_dir(root)),
            ("extensions", "timeout"): 30.0,
        }
        for section, values in sections.items():
            overrides.update({(section, key): value for key, value in values.items()})
        config = load_config(env={"PULZAR_CLUSTER_SECRET": SECRET}, overrides=overrides)
        app = master_server.create_app(config)
        runner, port = await serve(app, port)
        master = Master(app, runner, config, port, ext_http)
        nodes.append(master)
        for n in range(volumes):
            vport = free_port()
            vconfig = load_config(
                env={"PULZAR_CLUSTER_SECRET": SECRET},
                overrides={
                    **FAST,
                    ("volume", "host"): HOST,
                    ("volume", "port"): vport,
                    ("volume", "dir"): str(root / f"volume{n}"),
                    ("volume", "master"): master.url,
                    ("volume", "name"): f"vol{n}",
                },
            )
            vapp = volume_server.create_app(vconfig)
            vrunner, vport = await serve(vapp, vport)
            nodes.append(Node(vapp, vrunner, vconfig, vport))
        deadline = time.monotonic() + 10
        while len(master.service.nodes.live()) < volumes:
            assert time.monotonic() < deadline, "volumes did not register"
            await asyncio.sleep(0.02)
        return master

    yield start
    for node in reversed(nodes):
        await node.close()


@pytest.fixture
async def master(make_master: MasterFactory) -> Master:
    """A master without volumes (extensions that need no stored key)."""
    return await make_master()


@pytest.fixture
async def master_volume(make_master: MasterFactory) -> Master:
    """A master with one volume."""
    return await make_master(volumes=1)
