"""Assembling the master process: config -> index, registry, service, app, background loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from pulzar import backup as backups
from pulzar.core.config import Config, data_path
from pulzar.core.tickets import new_secret
from pulzar.http import metrics
from pulzar.http.auth import AccessPolicy, middlewares
from pulzar.http.fastpath import FAST, FastPath
from pulzar.http.serve import every
from pulzar.master import maintenance
from pulzar.master.app import CONNECTIONS, REPAIR, SERVICE, add_routes, fast_get_key, fast_put_key
from pulzar.master.backup_routes import add_backup_routes
from pulzar.master.extension_routes import add_extension_routes
from pulzar.master.gauges import master_gauges
from pulzar.master.job_routes import fast_launch_job, setup_jobs
from pulzar.master.nodes import Heartbeat, NodeRegistry
from pulzar.master.repair import Repairer
from pulzar.master.service import MasterService
from pulzar.master.web_routes import add_web_routes
from pulzar.storage.index import Index

log = logging.getLogger(__name__)

SECRET_FILE = "cluster.secret"


def cluster_secret(config: Config, data_dir: Path) -> str:
    """The configured secret, else the one stored in the data directory, else a new one
    (written with mode 0600). Never a default."""
    if config.security.cluster_secret:
        return config.security.cluster_secret
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = new_secret()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    return secret


def create_app(config: Config, restore_from: list[str] | None = None) -> web.Application:
    """The master application; `restore_from` rebuilds the index from those volumes at
    start (`pulzar master --restore URL`)."""
    data_dir = data_path(config.server.data)
    secret = cluster_secret(config, data_dir)
    index = Index(data_dir / "index", map_size_gb=config.storage.map_size_gb)
    nodes = NodeRegistry(config.timers.suspect_after, config.timers.dead_after)
    nodes.load(
        [Heartbeat.from_json({"node_id": n["id"], **n}) for n in index.known_nodes()], time.time()
    )
    service = MasterService(config, index, nodes, secret)
    repairer = Repairer(
        service,
        grace=config.timers.repair_after,
        parallel=config.repair.parallel,
        bandwidth=config.repair.bandwidth * 1024 * 1024,
    )

    policy = AccessPolicy(
        config.security.token, config.security.admin_token, config.security.reads_open, secret
    )
    app = web.Application(middlewares=middlewares(policy), client_max_size=1024**2)
    app[SERVICE] = service
    app[REPAIR] = repairer
    app[CONNECTIONS] = {}
    add_routes(app)
    add_extension_routes(app, service)
    maintenance.setup(app)
    jobs = setup_jobs(app, service)
    fast = [fast_get_key(service)] if policy.reads_need_no_token else []
    if not policy.token:
        fast.append(fast_put_key(service))
    # Launching needs the admin token as soon as any token is set (`ADMIN_ROUTES`).
    launches = [] if policy.enabled else [fast_launch_job(jobs)]
    if fast or launches:
        app[FAST] = FastPath(fast, launches)
    add_backup_routes(app)
    metrics.setup(app, "master", lambda: master_gauges(service, repairer, jobs, time.time()))
    add_web_routes(app)

    async def scheduled_backup(now: float) -> None:
        dest = Path(config.backup.dest).expanduser()
        made = await asyncio.to_thread(
            backups.scheduled_backup,
            config.master_url,
            dest,
            config.backup.keep,
            config.security.token or None,
        )
        log.info("scheduled backup written to %s", made)

    async def tick(now: float) -> None:
        for node in nodes.tick(now):
            log.warning("node %s (%s) is now %s", node.name, node.id, node.state.value)

    async def background(app: web.Application) -> AsyncIterator[None]:
        tasks = [
            asyncio.ensure_future(every(config.timers.heartbeat / 2, tick, "node check")),
            asyncio.ensure_future(
                every(config.timers.ttl_sweep, service.sweep_expired, "TTL sweep")
            ),
            asyncio.ensure_future(every(config.timers.repair, repairer.step, "repair")),
        ]
        if config.backup.active:
            tasks.append(
                asyncio.ensure_future(
                    every(config.backup.interval * 3600, scheduled_backup, "scheduled backup")
                )
            )
        log.info("master listening on %s (data in %s)", config.master_url, data_dir)
        if restore_from:
            maintenance.start_restore(app, service, restore_from)
        yield
        for task in tasks:
            task.cancel()
        await service.volumes.close()
        index.close()

    async def close_heartbeats(app: web.Application) -> None:
        # Close the volumes' heartbeat connections before the server waits for its handlers
        # to finish: an open one would hold the shutdown for the whole shutdown timeout.
        for ws in list(app[CONNECTIONS].values()):
            with contextlib.suppress(Exception):
                await ws.close()

    app.on_shutdown.append(close_heartbeats)
    app.cleanup_ctx.append(background)
    return app
