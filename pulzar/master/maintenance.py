"""Maintenance routes: rebuilding the index from volumes, draining and retiring a volume."""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from pulzar.core.errors import BadRequest, Conflict, NotFound
from pulzar.http.keys import key_from
from pulzar.http.responses import envelope, json_object, request_id
from pulzar.master.app import SERVICE
from pulzar.master.restore import RestoreProgress, rebuild
from pulzar.master.service import MasterService, WriteRequest
from pulzar.storage.records import ValueMeta

log = logging.getLogger(__name__)

RESTORE = web.AppKey("restore", RestoreProgress)
RESTORE_TASKS = web.AppKey("restore_tasks", set)

routes = web.RouteTableDef()
#: A restored version moves the master's version counter past it, and versions are unsigned
#: 64-bit on disk: a restore must leave room for the versions after it (2**53 - 1 is also
#: the largest that every JSON reader holds exactly). Times are epoch seconds, stored in
#: milliseconds as unsigned 64-bit: up to the end of the year 9999.
MAX_VERSION = 2**53 - 1
MAX_TIME = 253402300799.0


def start_restore(app: web.Application, service: MasterService, urls: list[str]) -> None:
    """Rebuild the index from the volumes at `urls` in the background."""
    progress = app[RESTORE]
    if progress.running:
        raise Conflict("a restore is already running")
    copies = service.config.general.replicas or 1

    async def run() -> None:
        try:
            await rebuild(
                service.index, service.secret, urls, progress, copies, service.config.security
            )
            log.info("index rebuilt from %s: %d keys", ", ".join(urls), progress.keys_restored)
        except Exception as exc:
            log.error("restore from %s failed: %s", ", ".join(urls), exc)

    progress.running = True
    task = asyncio.ensure_future(run())
    app[RESTORE_TASKS].add(task)
    task.add_done_callback(app[RESTORE_TASKS].discard)


@routes.post("/admin/restore")
async def restore(request: web.Request) -> web.Response:
    """Rebuild the index from volumes: `{"volumes": [urls]}` (default: every registered
    volume). Refused on a non-empty index unless `"force": true`."""
    service = request.app[SERVICE]
    body = json_object(await request.read())
    urls = body.get("volumes")
    if urls is None or urls == []:
        urls = [n.url for n in service.nodes.all()]
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise BadRequest("'volumes' must be a list of volume URLs")
    if not urls:
        raise BadRequest("no volume to restore from: give 'volumes' or start the volumes first")
    # A boolean only: "force": "false" must not merge into a non-empty index.
    if not isinstance(body.get("force", False), bool):
        raise BadRequest("'force' must be true or false")
    if not service.index.is_empty() and not body.get("force"):
        raise Conflict("the index is not empty: pass force to merge into it")
    start_restore(request.app, service, urls)
    return envelope(request.app[RESTORE].to_json(), "restore started", status=202)


@routes.get("/admin/restore")
async def restore_status(request: web.Request) -> web.Response:
    return envelope(request.app[RESTORE].to_json())


@routes.get("/admin/restore_node/{key:(?s:.*)}")
async def restore_node(request: web.Request) -> web.Response:
    """Like GET /get_node, for loading a backup: the value keeps the version and the times
    given here (`version`, `created`, `modified`, `expires` epoch seconds, `size`)."""
    q = request.query
    try:
        meta = ValueMeta(
            key=key_from(request, "/admin/restore_node"),
            version=int(q["version"]),
            size=int(q.get("size", "0")),
            checksum=b"",
            created=float(q["created"]),
            modified=float(q["modified"]),
            expires=float(q["expires"]) if q.get("expires") else None,
        )
    except (KeyError, ValueError):
        raise BadRequest("restore_node needs version, created and modified (numbers)") from None
    if not 1 <= meta.version <= MAX_VERSION:
        raise BadRequest(f"version must be between 1 and {MAX_VERSION}")
    if meta.size < 0 or not all(
        0 <= t <= MAX_TIME for t in (meta.created, meta.modified, meta.expires or 0.0)
    ):
        raise BadRequest(f"size must not be negative, and times between 0 and {MAX_TIME:.0f}")
    asked = WriteRequest(meta.key, meta.size, request_id=request_id(request), restoring=meta)
    plan = await request.app[SERVICE].plan_write(asked, time.time())
    return envelope({"node": plan.url, "version": plan.ticket.version})


@routes.post("/admin/drain/{node}")
async def drain(request: web.Request) -> web.Response:
    """Stop placing copies on a volume and move its copies away (see /admin/network)."""
    nodes = request.app[SERVICE].nodes
    node = nodes.get(request.match_info["node"])
    if node is None:
        raise NotFound(f"no node with id or name {request.match_info['node']!r}")
    nodes.set_draining(node, request.query.get("undo") not in ("1", "true"))
    return envelope(node.to_json(), "draining" if node.draining else "draining stopped")


@routes.delete("/admin/network/{node}")
async def forget(request: web.Request) -> web.Response:
    """Retire a volume that is no longer alive: the cluster stops counting it."""
    service = request.app[SERVICE]
    node = service.nodes.get(request.match_info["node"])
    if node is None:
        raise NotFound(f"no node with id or name {request.match_info['node']!r}")
    if node.alive:
        raise Conflict(f"{node.name} is alive: drain it and stop it first")
    service.nodes.forget(node.id)
    await service.index.forget_node(node.id)
    return envelope(node.to_json(), "node forgotten")


def setup(app: web.Application) -> None:
    app[RESTORE] = RestoreProgress()
    app[RESTORE_TASKS] = set()
    app.add_routes(routes)
