"""The master's HTTP routes: parse, call `MasterService`, map the answer. Nothing more."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from pulzar.core.errors import BadRequest, NotFound, PulzarError
from pulzar.core.keys import parse_key
from pulzar.http import fastpath
from pulzar.http.fastpath import FastAnswer, FastRoute
from pulzar.http.internal import check_signed
from pulzar.http.keys import condition_from, key_from, prefix_from, ttl_days_from
from pulzar.http.openapi import document
from pulzar.http.responses import REQUEST_ID, envelope, json_object, query_int, request_id
from pulzar.master import commits
from pulzar.master.repair import Repairer
from pulzar.master.service import MasterService, WriteRequest
from pulzar.master.views import key_json

SERVICE = web.AppKey("service", MasterService)
CONNECTIONS = web.AppKey("connections", dict)
REPAIR = web.AppKey("repair", Repairer)
# Bodies up to this size that arrive with a PUT anyway are drained (the connection is kept);
# larger ones make the master close the connection after its 307, so they are not read twice.
DRAIN_LIMIT = 1024 * 1024

OPENAPI = document()
routes = web.RouteTableDef()
# `(?s:.*)` lets a key hold any character, `\n` included, so that the key rules answer
# (400), not the router (404).


def _svc(request: web.Request) -> MasterService:
    return request.app[SERVICE]


async def _no_continue(request: web.Request) -> None:
    """Answer `Expect: 100-continue` with the 307 itself: the body goes to the volume only."""
    return None


def _asked(request: web.Request, key: str, size: int | None) -> WriteRequest:
    """A write as the request asks it (query and headers); 400 for a bad option."""
    return WriteRequest(
        key,
        size,
        ttl_days=ttl_days_from(request),
        replicas=query_int(request, "replicas", None, minimum=1, maximum=16),
        condition=condition_from(request),
        request_id=request_id(request),
    )


async def put_key(request: web.Request, route: str) -> web.Response:
    key = key_from(request, route)
    plan = await _svc(request).plan_write(_asked(request, key, request.content_length), time.time())
    response = web.Response(
        status=307, headers={"Location": plan.url, REQUEST_ID: plan.ticket.request_id}
    )
    expecting = bool(request.headers.get("Expect"))
    large = (request.content_length or DRAIN_LIMIT + 1) > DRAIN_LIMIT
    if (expecting or large) and request.content_length != 0:
        response.force_close()
    return response


@routes.get("/get_key/{key:(?s:.*)}")
async def get_key(request: web.Request) -> web.Response:
    key = key_from(request, "/get_key")
    url, _ = _svc(request).locate(key, time.time(), request.query.get("skip", ""))
    rid = request_id(request)
    return web.Response(status=307, headers={"Location": f"{url}&rid={rid}", REQUEST_ID: rid})


def fast_get_key(svc: MasterService) -> FastRoute:
    """`get_key` answered from the socket (see `pulzar.http.fastpath`): the 307 only; any
    query (`skip=`, a read ticket), a bad key or a refusal is left to `get_key`."""

    def answer(path: str, query: str, headers: dict[str, str], now: float) -> FastAnswer:
        if query:
            return None
        try:
            url, _ = svc.locate(parse_key(path[8:]), now)
        except PulzarError:
            return None
        rid = fastpath.request_id_of(headers)
        location = f"Location: {url}&rid={rid}\r\n{REQUEST_ID}: {rid}\r\n"
        return 307, fastpath.response(307, location), rid

    return FastRoute("/get_key/", "/get_key/{key}", answer)


def fast_put_key(svc: MasterService) -> FastRoute:
    """`put_key`'s 307 answered from the socket for a plain write (no query, no condition) of
    a body up to `DRAIN_LIMIT`, which is read past; everything else is left to `put_key`."""

    def answer(path: str, query: str, headers: dict[str, str], now: float) -> FastAnswer:
        if query or "if-match" in headers or "if-none-match" in headers:
            return None
        length = headers.get("content-length")
        if length is None:
            return None  # `put_key` closes the connection after an upload of unknown size
        rid = fastpath.request_id_of(headers)
        try:
            key = parse_key(path[8:])
            size = int(length)
            plan = svc.plan_write_now(WriteRequest(key, size, request_id=rid), now)
        except PulzarError:
            return None
        if plan is None:
            return None
        location = f"Location: {plan.url}\r\n{REQUEST_ID}: {rid}\r\n"
        return 307, fastpath.response(307, location), rid

    return FastRoute("/add_key/", "/add_key/{key}", answer, "PUT", DRAIN_LIMIT)


@routes.delete("/delete_key/{key:(?s:.*)}")
async def delete_key(request: web.Request) -> web.Response:
    await _svc(request).delete(key_from(request, "/delete_key"), time.time())
    return envelope(None, "key deleted")


@routes.get("/get_node/{key:(?s:.*)}")
async def get_node(request: web.Request) -> web.Response:
    key = key_from(request, "/get_node")
    asked = _asked(request, key, query_int(request, "size", None))
    plan = await _svc(request).plan_write(asked, time.time())
    return envelope({"node": plan.url, "version": plan.ticket.version})


@routes.get("/list_keys")
@routes.get("/list_keys/{prefix:(?s:.*)}")
async def list_keys(request: web.Request) -> web.Response:
    prefix = prefix_from(request, "/list_keys")
    limit = query_int(request, "limit", 1000, minimum=1, maximum=10000)
    assert limit is not None
    after = request.query.get("after") or None
    records, next_token = _svc(request).index.scan(prefix, after, limit, time.time())
    return envelope({"keys": [key_json(r.meta) for r in records], "next": next_token})


@routes.get("/stat_key/{key:(?s:.*)}")
async def stat_key(request: web.Request) -> web.Response:
    svc = _svc(request)
    record = svc.record(key_from(request, "/stat_key"), time.time())
    return envelope(svc.describe(record))


@routes.get("/admin/status")
async def admin_status(request: web.Request) -> web.Response:
    return envelope(_svc(request).index.stat())


@routes.get("/admin/network")
async def admin_network(request: web.Request) -> web.Response:
    nodes = [n.to_json() for n in _svc(request).nodes.all()]
    return envelope(nodes, extra={"repair": request.app[REPAIR].progress.to_json()})


@routes.get("/admin/network/{node}")
async def admin_node(request: web.Request) -> web.Response:
    node = _svc(request).nodes.get(request.match_info["node"])
    if node is None:
        raise NotFound(f"no node with id or name {request.match_info['node']!r}")
    return envelope(node.to_json())


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI, dumps=lambda d: orjson.dumps(d).decode())


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    svc = _svc(request)
    live = len(svc.nodes.live())
    if svc.healthy():
        return envelope({"live_volumes": live}, "healthy")
    return envelope({"live_volumes": live}, "no live volume", status=503, ok=False)


# -- internal, signed with the cluster secret ----------------------------------------------


async def _signed_json(request: web.Request) -> dict[str, Any]:
    check_signed(request, _svc(request).secret)
    return json_object(await request.read())


@routes.post("/internal/commit")
async def commit(request: web.Request) -> web.Response:
    record, condition = commits.parse(await _signed_json(request))
    result = await _svc(request).commit(record, condition, time.time())
    return envelope({"applied": result.applied})


@routes.post("/internal/commits")
async def commit_batch(request: web.Request) -> web.Response:
    """Several commits in one request (a volume under load batches them); see `commits.apply`."""
    entries = (await _signed_json(request)).get("commits")
    return envelope({"results": await commits.apply(_svc(request), entries, time.time())})


@routes.post("/internal/lookup")
async def lookup(request: web.Request) -> web.Response:
    """For each [key, version]: is it the key's current version (and, when `node` is given,
    does the index list that node as holding it)?"""
    body = await _signed_json(request)
    try:
        pairs = [(str(k), int(v)) for k, v in body.get("values", [])]
    except (TypeError, ValueError):
        raise BadRequest("values must be [key, version] pairs") from None
    keep = _svc(request).holds(body.get("node"), pairs, time.time())
    return envelope({"keep": keep})


@routes.post("/internal/lost")
async def lost(request: web.Request) -> web.Response:
    """A volume lost its copy of a version (corrupt, or its disk went away)."""
    body = await _signed_json(request)
    try:
        key, version, node = str(body["key"]), int(body["version"]), str(body["node"])
    except (KeyError, TypeError, ValueError):
        raise BadRequest("lost needs key, version and node") from None
    await _svc(request).copy_lost(key, version, node, time.time())
    return envelope(None, "noted")


@routes.get("/internal/heartbeat")
async def heartbeat(request: web.Request) -> web.WebSocketResponse:
    """A volume's heartbeat connection: one JSON message per beat; closing it means death."""
    svc = _svc(request)
    check_signed(request, svc.secret)
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    node_id = None
    connections = request.app[CONNECTIONS]
    try:
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            node = svc.heartbeat(orjson.loads(msg.data), time.time())
            if node_id is None:
                node_id = node.id
                connections[node_id] = ws
                svc.joined(node)
            ack = {"ok": True, "node": node.id, "cluster": svc.index.cluster_id}
            await ws.send_bytes(orjson.dumps(ack))
    finally:
        if node_id is not None and connections.get(node_id) is ws:
            del connections[node_id]
            svc.nodes.disconnected(node_id)
    return ws


def add_routes(app: web.Application) -> None:
    for route in ("/add_key", "/get_node"):

        async def handler(request: web.Request, route: str = route) -> web.Response:
            return await put_key(request, route)

        app.router.add_route("PUT", route + "/{key:(?s:.*)}", handler, expect_handler=_no_continue)
    app.add_routes(routes)
