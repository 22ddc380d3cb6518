"""The job API of the master (the original's routes, fixed) and the job service's loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from pulzar.core.errors import BadRequest, NotFound, PulzarError
from pulzar.http import fastpath
from pulzar.http.fastpath import BodyRoute, Respond
from pulzar.http.internal import check_signed
from pulzar.http.responses import envelope, json_body, query_int
from pulzar.jobs import channel as job_channel
from pulzar.jobs.catalog import Catalog
from pulzar.jobs.model import JobState
from pulzar.jobs.service import JobService
from pulzar.jobs.store import JobStore
from pulzar.master import commits
from pulzar.master.app import SERVICE
from pulzar.master.service import MasterService

log = logging.getLogger(__name__)

JOBS = web.AppKey("jobs", JobService)
#: Volume URL -> its job channel (a WebSocket it opened; see pulzar.jobs.channel).
CHANNELS = web.AppKey("job_channels", dict)
#: Seconds a volume has to take a batch of runs over its channel.
SEND_TIMEOUT = 10.0
routes = web.RouteTableDef()


def _jobs(request: web.Request) -> JobService:
    return request.app[JOBS]


async def _body(request: web.Request) -> Any:
    return json_body(await request.read())


#: Job and schedule ids are unsigned 64-bit (pulzar.jobs.store): a larger number names none.
MAX_ID = 2**64 - 1


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    # ASCII digits only: `str.isdigit` also takes '²', which `int` refuses.
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest(f"job id must be a number, got {raw!r}")
    if int(raw) > MAX_ID:
        raise NotFound(f"no job or schedule with id {raw}")
    return int(raw)


@routes.post("/launch_job/{name:.*}")
async def launch_job(request: web.Request) -> web.Response:
    job_id = await _jobs(request).launch(
        request.match_info["name"], await _body(request), time.time()
    )
    return envelope({"job_id": job_id}, f"Job added with id {job_id}")


#: The largest launch body answered from the socket (see `fast_launch_job`); larger ones go
#: through aiohttp, up to the master's 1 MiB.
FAST_LAUNCH_BODY = 64 * 1024


def fast_launch_job(jobs: JobService) -> BodyRoute:
    """`launch_job` answered from the socket (see `pulzar.http.fastpath`) for a body that came
    whole with its head: the launch is most of what a job costs the master through aiohttp.
    A percent-encoded name is left to `launch_job`."""

    def accept(path: str, query: str, headers: dict[str, str], now: float) -> Respond | None:
        if "%" in path:
            return None
        # `launch_job`'s answer carries no request id: the log shows the client's, if any.
        name, rid = path[len("/launch_job/") :], headers.get("x-request-id", "")

        async def respond(body: bytes) -> tuple[int, bytes, str]:
            try:
                job_id = await jobs.launch(name, json_body(body), now)
            except PulzarError as exc:
                return fastpath.error_answer("POST", path, exc, rid)
            return fastpath.envelope_answer(
                200, {"job_id": job_id}, f"Job added with id {job_id}", rid
            )

        return respond

    return BodyRoute("/launch_job/", "/launch_job/{name}", "POST", FAST_LAUNCH_BODY, accept)


@routes.post("/cancel_job/{id}")
async def cancel_job(request: web.Request) -> web.Response:
    job_id = _id(request)
    msg = await _jobs(request).cancel(job_id, time.time())
    return envelope({"job_id": job_id}, msg)


@routes.get("/admin/jobs")
async def board(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 100, minimum=1, maximum=10000)
    assert limit is not None
    return envelope(_jobs(request).board(limit))


@routes.get("/admin/jobs/{id}")
async def job(request: web.Request) -> web.Response:
    svc = _jobs(request)
    return envelope(svc.job(_id(request)).details(svc.node_names()))


@routes.get("/admin/all_jobs")
async def all_jobs(request: web.Request) -> web.Response:
    """Every job record, newest first, a page at a time (`limit`, `after` = last id seen)."""
    svc = _jobs(request)
    limit = query_int(request, "limit", 1000, minimum=1, maximum=10000)
    after = query_int(request, "after", None, minimum=1, maximum=MAX_ID)
    assert limit is not None
    names, page = svc.node_names(), []
    for record in svc.store.jobs(newest_first=True, after=after):
        page.append(
            (svc.active.get(record.id) or svc.saving.get(record.id) or record).summary(names)
        )
        if len(page) >= limit:
            break
    next_after = page[-1]["job_id"] if len(page) == limit else None
    return envelope({"jobs": page, "next": next_after})


@routes.get("/admin/scheduled_jobs")
async def schedules(request: web.Request) -> web.Response:
    return envelope([s.summary() for s in _jobs(request).schedules.values()])


@routes.get("/admin/scheduled_jobs/{which}")
async def scheduled_runs(request: web.Request) -> web.Response:
    """`ok` / `failed`: runs fired by schedules that ended so; `{id}`: one schedule and its
    recent runs."""
    svc, which = _jobs(request), request.match_info["which"]
    names = svc.node_names()
    if which in ("ok", "failed"):
        state = JobState.READY if which == "ok" else JobState.FAILED
        runs = [
            j.summary(names)
            for j in reversed(svc.recent)
            if j.schedule_id is not None and j.state is state
        ]
        return envelope(runs)
    if not (which.isascii() and which.isdigit()):
        raise BadRequest("use /admin/scheduled_jobs/ok, /failed or /{schedule id}")
    schedule = svc.schedules.get(int(which))
    if schedule is None:
        raise NotFound(f"no schedule with id {which}")
    runs = [j.summary(names) for j in svc.store.jobs() if j.schedule_id == schedule.id][:100]
    return envelope({**schedule.summary(), "runs": runs})


@routes.get("/admin/job_catalog")
async def catalog(request: web.Request) -> web.Response:
    return envelope(_jobs(request).catalog.entries())


@routes.post("/admin/jobs/deploy")
async def deploy(request: web.Request) -> web.Response:
    """`{"files": {"group/name.py": "source", ...}}` into the master's job directory."""
    body = await _body(request)
    files = body.get("files") if isinstance(body, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise BadRequest('deploy needs {"files": {"group/name.py": "source", ...}}')
    written = _jobs(request).catalog.deploy(files)
    return envelope({"deployed": written}, f"{len(written)} job files deployed")


@routes.post("/internal/jobs/events")
async def events(request: web.Request) -> web.Response:
    check_signed(request, request.app[SERVICE].secret)
    # Read past the public 1 MiB body limit: a batch carries logs and results (signed, internal).
    try:
        body = orjson.loads(await request.content.read())
        node, batch = str(body["node"]), list(body["events"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise BadRequest("events need 'node' and 'events'") from None
    await _jobs(request).on_events(node, batch, time.time())
    return envelope(None, "ok")


@routes.get(job_channel.PATH)
async def channel(request: web.Request) -> web.WebSocketResponse:
    """A volume's job channel: runs go down it, events come up; the first message says which
    volume it is (`{"node", "url"}`)."""
    check_signed(request, request.app[SERVICE].secret)
    ws = web.WebSocketResponse(max_msg_size=0)  # batches of events carry logs and results
    await ws.prepare(request)
    try:
        who = orjson.loads((await ws.receive(timeout=10)).data)
        node, url = str(who["node"]), str(who["url"])
    except (orjson.JSONDecodeError, KeyError, TypeError, TimeoutError):
        await ws.close(message=b"the first message must be {node, url}")
        return ws
    svc = _jobs(request)

    async def handle(data: dict[str, Any]) -> Any:
        kind = data.get("kind")
        if kind == "events":
            await svc.on_events(node, list(data["events"]), time.time())
            return None
        if kind == "commits":
            master = request.app[SERVICE]
            return {"results": await commits.apply(master, data.get("commits"), time.time())}
        raise BadRequest(f"unknown request {kind!r}")

    link = job_channel.Channel(ws, handle)
    channels = request.app[CHANNELS]
    channels[url] = link
    try:
        await link.serve()
    finally:
        if channels.get(url) is link:
            del channels[url]
    return ws


def setup_jobs(app: web.Application, master: MasterService) -> JobService:
    """Create the job service over the master's store and run its loops with the app."""
    config = master.config
    calls = master.volumes
    channels: dict[str, job_channel.Channel] = {}
    app[CHANNELS] = channels

    async def send(url: str, specs: list[dict[str, Any]]) -> list[str]:
        link = channels.get(url)
        if link is not None and not link.closed:
            answer = await link.request("jobs", {"jobs": specs}, SEND_TIMEOUT)
        else:
            answer = await calls.post_json(url, "/internal/jobs", {"jobs": specs})
        return list(answer.get("need_code", []))

    async def cancel_remote(url: str, job_id: int) -> bool:
        return await calls.call("POST", url, f"/internal/jobs/cancel/{job_id}")

    service = JobService(
        config,
        JobStore(master.index.env, master.index.writer),
        Catalog(Path(config.jobs.dir).expanduser().resolve()),
        master.nodes,
        master.index,
        send,
        cancel_remote,
    )
    app[JOBS] = service
    app.add_routes(routes)
    master.join_listeners.append(lambda node: service.node_joined(node.id, list(node.beat.jobs)))

    async def dispatcher() -> None:
        while True:
            await service.wake.wait()
            service.wake.clear()
            try:
                await service.dispatch(time.time())
            except Exception:
                log.exception("job dispatch failed")
            if service.queue:  # some wait (backoff, data locality, no slot): look again soon
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(service.wake.wait(), 0.05)
                service.wake.set()

    async def scheduler() -> None:
        while True:
            due = service.next_due()
            delay = 1.0 if due is None else max(0.0, min(1.0, due - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(service.schedules_changed.wait(), delay)
            service.schedules_changed.clear()
            try:
                await service.fire_due(time.time())
            except Exception:
                log.exception("firing schedules failed")

    async def housekeeping() -> None:
        last_purge = 0.0
        while True:
            await asyncio.sleep(config.timers.heartbeat / 2)
            service.check_nodes()
            now = time.time()
            if now - last_purge > 3600:
                last_purge = now
                try:
                    await service.purge(now)
                except Exception:
                    log.exception("purging old job records failed")

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        service.load(time.time())
        tasks = [asyncio.ensure_future(t()) for t in (dispatcher, scheduler, housekeeping)]
        service.wake.set()
        yield
        for task in tasks:
            task.cancel()

    async def close_channels(app: web.Application) -> None:
        await job_channel.close_all(channels.values())

    app.on_shutdown.append(close_channels)
    app.cleanup_ctx.append(lifecycle)
    return service
