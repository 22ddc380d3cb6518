"""Assembling a volume process: config -> store, service, app, heartbeat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from pulzar.core.config import Config, data_path
from pulzar.core.errors import ConfigError
from pulzar.http import metrics
from pulzar.http.auth import AccessPolicy, middlewares
from pulzar.http.cors import dashboard_origins, enable_cors
from pulzar.http.fastpath import FAST, FastPath
from pulzar.http.serve import every
from pulzar.storage.values import ValueStore
from pulzar.volume.app import (
    PEER_CHANNELS,
    SERVICE,
    close_peer_channels,
    fast_add_key,
    fast_get_key,
    routes,
)
from pulzar.volume.gauges import volume_gauges
from pulzar.volume.heartbeat import run_heartbeat
from pulzar.volume.job_routes import setup_jobs
from pulzar.volume.service import VolumeService

log = logging.getLogger(__name__)

NODE_ID_FILE = "node_id"


def node_id(data_dir: Path) -> str:
    """This volume's identity, made once and kept in its data directory."""
    path = data_dir / NODE_ID_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    new = secrets.token_hex(8)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new + "\n")
    tmp.replace(path)
    return new


def create_app(config: Config) -> web.Application:
    secret = config.security.cluster_secret
    if not secret:
        raise ConfigError(
            "config error: a volume needs the master's cluster secret: set "
            "PULZAR_CLUSTER_SECRET or [security] cluster_secret (pulzar up does this for you)"
        )
    data_dir = data_path(config.volume.dir)
    store = ValueStore(
        data_dir,
        map_size_gb=config.storage.map_size_gb,
        max_bytes=config.volume.max_bytes,
        cache_bytes=config.volume.cache_mb * 1024 * 1024,
    )
    service = VolumeService(config, store, secret, node_id(data_dir))
    policy = AccessPolicy(
        config.security.token,
        config.security.admin_token,
        config.security.reads_open,
        secret,
        ticketed=("/add_key/",),
    )
    app = web.Application(middlewares=middlewares(policy), client_max_size=1024**2)
    app[SERVICE] = service
    app.add_routes(routes)
    app[PEER_CHANNELS] = set()
    app.on_shutdown.append(close_peer_channels)
    # Writes carry their ticket: only the reads depend on the token settings.
    reads = [fast_get_key(service)] if policy.reads_need_no_token else []
    app[FAST] = FastPath(reads, [fast_add_key(service)])
    enable_cors(app, dashboard_origins(config.volume.master))
    runner = setup_jobs(app, service)
    metrics.setup(app, "volume", lambda: volume_gauges(service, runner))

    async def settle(now: float) -> None:
        if service.registered:
            await service.settle_pending(now - config.security.ticket_ttl)

    position: bytes | None = None

    async def scrub(now: float) -> None:
        nonlocal position
        if service.registered:
            _, position = await service.scrub(position)

    async def background(app: web.Application) -> AsyncIterator[None]:
        tasks = [
            asyncio.ensure_future(run_heartbeat(service)),
            asyncio.ensure_future(every(config.timers.ttl_sweep, settle, "settle")),
            asyncio.ensure_future(every(config.timers.scrub, scrub, "scrub")),
        ]
        log.info("volume %s listening on %s (data in %s)", service.node_id, service.url, data_dir)
        yield
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        await service.close()
        store.close()

    app.cleanup_ctx.append(background)
    return app
