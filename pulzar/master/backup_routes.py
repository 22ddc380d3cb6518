"""Job and schedule records for backups: read them all, load them into an empty cluster."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import orjson
from aiohttp import web

from pulzar.core.errors import BadRequest, Conflict
from pulzar.http.responses import envelope, query_int
from pulzar.jobs.model import Job, JobState, Schedule
from pulzar.master.job_routes import JOBS

routes = web.RouteTableDef()


@routes.get("/admin/backup/jobs")
async def export_jobs(request: web.Request) -> web.Response:
    """Raw run records, oldest first, a page at a time (`after` = the last id seen)."""
    svc = request.app[JOBS]
    limit = query_int(request, "limit", 1000, minimum=1, maximum=10000)
    after = query_int(request, "after", None, minimum=1)
    assert limit is not None
    page: list[dict[str, Any]] = []
    for record in svc.store.jobs(newest_first=False, after=after):
        page.append(asdict(svc.active.get(record.id) or record))
        if len(page) >= limit:
            break
    next_after = page[-1]["id"] if len(page) == limit else None
    return envelope({"jobs": page, "next": next_after})


@routes.get("/admin/backup/schedules")
async def export_schedules(request: web.Request) -> web.Response:
    return envelope([asdict(s) for s in request.app[JOBS].schedules.values()])


@routes.post("/admin/backup/jobs")
async def import_records(request: web.Request) -> web.Response:
    """`{"jobs": [...], "schedules": [...]}` as exported, into a cluster with no job records
    yet (admin token)."""
    svc = request.app[JOBS]
    try:
        body = orjson.loads(await request.read())
        jobs = [Job(**{**j, "state": JobState(j["state"])}) for j in body.get("jobs", [])]
        schedules = [Schedule(**s) for s in body.get("schedules", [])]
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise BadRequest(f"job records are malformed: {exc}") from None
    if svc.schedules or next(svc.store.jobs(), None) is not None:
        raise Conflict("this cluster already has job records: load them into a new cluster")
    await svc.import_records(jobs, schedules, time.time())
    return envelope({"jobs": len(jobs), "schedules": len(schedules)}, "job records loaded")


def add_backup_routes(app: web.Application) -> None:
    app.add_routes(routes)
