"""A volume's job endpoints (internal, signed): take runs from the master, cancel one."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import orjson
from aiohttp import web

from pulzar.core.errors import BadRequest, NotFound
from pulzar.http.internal import check_signed
from pulzar.http.responses import envelope
from pulzar.jobs.pool import Event
from pulzar.jobs.runner import JobRunner
from pulzar.volume.app import SERVICE
from pulzar.volume.service import VolumeService

RUNNER = web.AppKey("job_runner", JobRunner)
routes = web.RouteTableDef()


@routes.post("/internal/jobs")
async def take(request: web.Request) -> web.Response:
    check_signed(request, request.app[SERVICE].secret)
    try:
        specs = orjson.loads(await request.read())["jobs"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise BadRequest('runs must come as {"jobs": [...]}') from None
    return envelope({"need_code": request.app[RUNNER].accept(specs)})


@routes.post("/internal/jobs/cancel/{id}")
async def cancel(request: web.Request) -> web.Response:
    check_signed(request, request.app[SERVICE].secret)
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise BadRequest(f"job id must be a number, got {raw!r}")
    if not request.app[RUNNER].cancel(int(raw)):
        raise NotFound("no such run here")
    return envelope(None, "cancelled")


def setup_jobs(app: web.Application, service: VolumeService) -> JobRunner:
    config = service.config

    async def send_events(batch: list[Event]) -> None:
        await service.call_master(
            "POST", "/internal/jobs/events", {"node": service.node_id, "events": batch}
        )

    runner = JobRunner(
        config.jobs.workers or os.cpu_count() or 1,
        service.store,
        send_events,
        retry_after=config.timers.reconnect,
    )
    app[RUNNER] = runner
    app.add_routes(routes)
    service.extra_stats.append(runner.stats)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await runner.start()
        yield
        await runner.close()

    app.cleanup_ctx.append(lifecycle)
    return runner
