"""A volume's job endpoints (internal, signed): take runs from the master, cancel one; and its
job channel to the master (pulzar.jobs.channel), which carries runs and events while it is up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from pulzar.core.errors import BadRequest, NotFound
from pulzar.http.internal import check_signed, signed_headers
from pulzar.http.responses import envelope
from pulzar.jobs import channel as job_channel
from pulzar.jobs.pool import Event
from pulzar.jobs.runner import JobRunner
from pulzar.volume.app import SERVICE
from pulzar.volume.service import VolumeService

log = logging.getLogger(__name__)

RUNNER = web.AppKey("job_runner", JobRunner)
#: Seconds the master has to record a batch of events sent over the channel.
EVENTS_TIMEOUT = 30.0
routes = web.RouteTableDef()


@routes.post("/internal/jobs")
async def take(request: web.Request) -> web.Response:
    check_signed(request, request.app[SERVICE].secret)
    try:  # past the public 1 MiB body limit: a batch of runs can be larger (signed, internal)
        specs = orjson.loads(await request.content.read())["jobs"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise BadRequest('runs must come as {"jobs": [...]}') from None
    return envelope({"need_code": request.app[RUNNER].accept(specs)})


@routes.post("/internal/jobs/cancel/{id}")
async def cancel(request: web.Request) -> web.Response:
    check_signed(request, request.app[SERVICE].secret)
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest(f"job id must be a number, got {raw!r}")
    if not request.app[RUNNER].cancel(int(raw)):
        raise NotFound("no such run here")
    return envelope(None, "cancelled")


def setup_jobs(app: web.Application, service: VolumeService) -> JobRunner:
    config = service.config
    link: job_channel.Channel | None = None

    async def send_events(batch: list[Event]) -> None:
        if link is not None and not link.closed:
            try:
                await link.request("events", {"events": batch}, EVENTS_TIMEOUT)
                return
            except job_channel.ChannelClosed:
                pass  # over HTTP then (the master ignores an event it already has)
        await service.call_master(
            "POST", "/internal/jobs/events", {"node": service.node_id, "events": batch}
        )

    async def handle(data: dict[str, Any]) -> Any:
        if data.get("kind") != "jobs" or not isinstance(data.get("jobs"), list):
            raise BadRequest('runs must come as {"jobs": [...]}')
        return {"need_code": runner.accept(data["jobs"])}

    async def keep_channel() -> None:
        """Keep a job channel open to the master (HTTP does while it is down)."""
        nonlocal link
        while True:
            try:
                headers = signed_headers(service.secret, "GET", job_channel.PATH)
                async with service.client().ws_connect(
                    service.master + job_channel.PATH, headers=headers, max_msg_size=0
                ) as ws:
                    await ws.send_bytes(orjson.dumps({"node": service.node_id, "url": service.url}))
                    link = service.master_channel = job_channel.Channel(ws, handle)
                    await link.serve()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.debug("job channel to %s not up (%s); retrying", service.master, exc)
            except Exception:
                log.exception("job channel failed; retrying")
            finally:
                link = service.master_channel = None
            await asyncio.sleep(config.timers.reconnect)

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
        keeper = asyncio.ensure_future(keep_channel())
        yield
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        await runner.close()

    app.cleanup_ctx.append(lifecycle)
    return runner
