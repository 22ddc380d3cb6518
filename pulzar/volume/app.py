"""A volume's HTTP routes: parse, call `VolumeService`, map the answer."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from pulzar.core.errors import BadRequest, KeyNotFound, PulzarError
from pulzar.core.keys import parse_key
from pulzar.core.tickets import WriteTicket, verify_ticket
from pulzar.http import fastpath
from pulzar.http.fastpath import BodyRoute, FastAnswer, FastRoute, Respond
from pulzar.http.internal import check_signed
from pulzar.http.keys import key_from, ttl_days_from
from pulzar.http.responses import envelope, query_int
from pulzar.jobs.channel import Channel, close_all
from pulzar.storage.records import MAX_U64
from pulzar.volume import peers
from pulzar.volume.batching import REPLICA_BATCH_MAX, unpack_replicas
from pulzar.volume.service import BodyBytes, Upload, VolumeService
from pulzar.volume.serving import value_headers, value_response

SERVICE = web.AppKey("service", VolumeService)
#: The channels other volumes opened to this one (closed at shutdown).
PEER_CHANNELS: web.AppKey[set[Channel]] = web.AppKey("peer_channels")
DAY = 86400.0

routes = web.RouteTableDef()
# `(?s:.*)` lets a key hold any character, `\n` included, so that the key rules answer
# (400), not the router (404).


def _svc(request: web.Request) -> VolumeService:
    return request.app[SERVICE]


def _upload(request: web.Request) -> Upload:
    content_type = request.headers.get("Content-Type")
    if content_type is not None and not content_type.isascii():
        try:  # aiohttp keeps the bytes it cannot read as UTF-8 as lone surrogates
            content_type.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("Content-Type is not valid UTF-8") from None
    return Upload(content_type, request.content_length, request.content)


@routes.put("/add_key/{key:(?s:.*)}")
async def add_key(request: web.Request) -> web.Response:
    svc = _svc(request)
    key = key_from(request, "/add_key")
    ticket = svc.ticket_for(request.query.get("t"), key, time.time())
    ttl = ticket.ttl
    if ttl is None:
        days = ttl_days_from(request)  # `temporal` appended to a get_node URL
        ttl = None if days is None else days * DAY
    await svc.write(ticket, _upload(request), ttl)
    return envelope(_added(svc, ticket), "key added", status=201)


def _added(svc: VolumeService, ticket: WriteTicket) -> dict[str, Any]:
    return {"url": f"{svc.master}/get_key{quote(ticket.key)}", "version": ticket.version}


def fast_add_key(svc: VolumeService) -> BodyRoute:
    """`add_key` answered from the socket (see `pulzar.http.fastpath`) for a small body that
    came whole with its head, with a valid ticket and no other query (`temporal`) or CORS;
    anything else, a bad ticket included, is left to `add_key`."""

    def accept(path: str, query: str, headers: dict[str, str], now: float) -> Respond | None:
        params = fastpath.plain_query(query)
        if params is None or not params.keys() <= {"t", "rid"} or "origin" in headers:
            return None
        try:
            ticket = svc.ticket_for(params.get("t"), parse_key(path[8:]), now)
        except PulzarError:
            return None
        content_type, rid = headers.get("content-type"), params.get("rid", "")

        async def respond(body: bytes) -> tuple[int, bytes, str]:
            try:
                await svc.write(
                    ticket, Upload(content_type, len(body), BodyBytes(body)), ticket.ttl
                )
            except PulzarError as exc:
                return fastpath.error_answer("PUT", path, exc, rid)
            return fastpath.envelope_answer(201, _added(svc, ticket), "key added", rid)

        return respond

    return BodyRoute("/add_key/", "/add_key/{key}", "PUT", svc.config.volume.inline_max, accept)


@routes.get("/get_key/{key:(?s:.*)}")
async def get_key(request: web.Request) -> web.StreamResponse:
    """Serve a value. Asked by the master for a version this node lacks or holds corrupt,
    send the reader back to the master, which picks another replica (`skip` grows by this
    node, so a reader never loops)."""
    svc = _svc(request)
    key = key_from(request, "/get_key")
    version = query_int(request, "v", None, maximum=MAX_U64)
    stored = svc.store.get(key, version)
    if stored is not None and not await svc.verify(stored):
        await svc.report_corrupt(stored.meta)
        stored = None
    if stored is None and version is not None:
        skip = ",".join(filter(None, (request.query.get("skip"), svc.node_id)))
        again = f"{svc.master}/get_key{quote(key)}?skip={skip}"
        if "rt" in request.query:  # the read ticket lets the reader back in without a token
            again += f"&rt={request.query['rt']}"
        raise web.HTTPTemporaryRedirect(again)
    if stored is None or stored.meta.is_expired(time.time()):
        raise KeyNotFound(f"key not found on this volume: {key}")
    return await value_response(request, stored)


def fast_get_key(svc: VolumeService) -> FastRoute:
    """`get_key` of a small value this node holds, answered from the socket (see
    `pulzar.http.fastpath`). Ranges, conditional requests, CORS, files, misses, expired or
    corrupt copies and unusual queries are left to `get_key`."""

    def answer(path: str, query: str, headers: dict[str, str], now: float) -> FastAnswer:
        if "range" in headers or "if-none-match" in headers or "origin" in headers:
            return None
        params = fastpath.plain_query(query)
        if params is None:
            return None
        version, rid = params.get("v", ""), params.get("rid", "")
        if not (version.isdigit() and len(version) <= 20 and int(version) <= MAX_U64):
            return None
        try:
            key = parse_key(path[8:])
        except PulzarError:
            return None
        stored = svc.store.get(key, int(version))
        if (
            stored is None
            or stored.data is None
            or stored.meta.is_expired(now)
            or not stored.verify()
        ):
            return None
        head = "".join(f"{name}: {value}\r\n" for name, value in value_headers(stored.meta).items())
        return 200, fastpath.response(200, head, stored.data), rid

    return FastRoute("/get_key/", "/get_key/{key}", answer)


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    svc = _svc(request)
    if svc.registered:
        return envelope({"node": svc.node_id}, "healthy")
    return envelope({"node": svc.node_id}, "not registered with the master", 503, ok=False)


# -- internal, signed with the cluster secret ----------------------------------------------


@routes.put("/internal/replica/{key:(?s:.*)}")
async def replica(request: web.Request) -> web.Response:
    svc = _svc(request)
    check_signed(request, svc.secret)
    key = key_from(request, "/internal/replica")
    ticket = svc.ticket_for(request.query.get("t"), key, time.time())
    try:
        modified = float(request.query["modified"])
        expires = float(request.query["expires"]) if request.query.get("expires") else None
    except (KeyError, ValueError):
        raise BadRequest("replica needs 'modified' and 'expires'") from None
    await svc.receive(ticket, _upload(request), modified=modified, expires=expires)
    return envelope(None, "stored")


@routes.post("/internal/replicas")
async def replicas(request: web.Request) -> web.Response:
    """Small replicas batched by a primary (`pack_replicas`), when its channel to this volume
    is down (see `pulzar.volume.peers`)."""
    svc = _svc(request)
    check_signed(request, svc.secret)
    length = request.content_length
    if length is None or length > REPLICA_BATCH_MAX:
        raise BadRequest(f"a replica batch needs a Content-Length of at most {REPLICA_BATCH_MAX}")
    entries = unpack_replicas(await request.content.readexactly(length))
    return envelope({"stored": await svc.receive_replicas(entries, time.time())})


@routes.get(peers.PATH)
async def peer_channel(request: web.Request) -> web.WebSocketResponse:
    """A primary's channel to this volume, for batches of small replicas and finalizes."""
    svc = _svc(request)
    check_signed(request, svc.secret)
    ws = web.WebSocketResponse(max_msg_size=REPLICA_BATCH_MAX)
    await ws.prepare(request)

    async def handle(data: dict[str, Any]) -> Any:
        kind, payload = data.get("kind"), data.get("payload")
        if kind == "replicas" and isinstance(payload, bytes):
            return {"stored": await svc.receive_replicas(unpack_replicas(payload), time.time())}
        if kind == "finalize":
            return {"queued": finalize_values(svc, data.get("values"))}
        raise BadRequest("the channel takes 'replicas' (with their bytes) and 'finalize'")

    link = Channel(ws, handle)
    request.app[PEER_CHANNELS].add(link)
    try:
        await link.serve()
    finally:
        request.app[PEER_CHANNELS].discard(link)
    return ws


async def close_peer_channels(app: web.Application) -> None:
    """At shutdown (see `close_all`)."""
    links: set[Channel] = app[PEER_CHANNELS]
    await close_all(links)


@routes.get("/internal/dump")
async def dump(request: web.Request) -> web.Response:
    """A page of this node's committed values with their metadata, in key order (to rebuild
    the master index); the first page also carries the deletes this node was told of."""
    svc = _svc(request)
    check_signed(request, svc.secret)
    limit = query_int(request, "limit", 1000, minimum=1, maximum=10000)
    assert limit is not None
    try:
        after = bytes.fromhex(request.query.get("after", ""))
    except ValueError:
        raise BadRequest("'after' must be the hex token of the previous page") from None
    values, position = svc.store.scan(after or None, limit)
    committed = [v.meta for v in values if not svc.store.is_pending(v.meta.key, v.meta.version)]
    page = {
        "node": svc.node_id,
        "cluster": svc.cluster_id or "",
        "values": [meta.to_json() for meta in committed],
        "tombs": [] if after else [list(t) for t in svc.store.tombstones()],
        "next": position.hex() if position else None,
    }
    return envelope(page)


@routes.post("/internal/copy/{key:(?s:.*)}")
async def copy(request: web.Request) -> web.Response:
    """Push this node's copy of a version to the volume named in the master's ticket."""
    svc = _svc(request)
    check_signed(request, svc.secret)
    ticket = verify_ticket(svc.secret, request.query.get("t"), time.time())
    if ticket.key != key_from(request, "/internal/copy"):
        raise BadRequest("ticket is for another key")
    if not await svc.push_copy(ticket):
        raise KeyNotFound(f"no copy of {ticket.key} version {ticket.version} here to send")
    return envelope(None, "copied")


@routes.post("/internal/finalize/{key:(?s:.*)}")
async def finalize(request: web.Request) -> web.Response:
    svc = _svc(request)
    check_signed(request, svc.secret)
    version = query_int(request, "v", None, maximum=MAX_U64)
    if version is None:
        raise BadRequest("finalize needs 'v'")
    await svc.store.finalize(key_from(request, "/internal/finalize"), version)
    return envelope(None, "finalized")


@routes.post("/internal/finalize_many")
async def finalize_many(request: web.Request) -> web.Response:
    """Finalize several values (`{"values": [[key, version], ...]}`; the write path batches
    them per replica). They ride the next write batch: nobody waits for them, and one lost in
    a crash stays pending and is settled with the master."""
    svc = _svc(request)
    check_signed(request, svc.secret)
    try:
        values = orjson.loads(await request.read())["values"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise BadRequest('finalize_many needs {"values": [[key, version], ...]}') from None
    return envelope({"queued": finalize_values(svc, values)}, "queued")


def finalize_values(svc: VolumeService, values: Any) -> int:
    """Queue the finalize of each `[key, version]` (also asked over a peer channel)."""
    try:
        pairs = [(str(k), int(v)) for k, v in values]
    except (TypeError, ValueError):
        raise BadRequest('finalize_many needs {"values": [[key, version], ...]}') from None
    for key, version in pairs:
        svc.store.finalize_later(key, version)
    return len(pairs)


@routes.delete("/internal/values/{key:(?s:.*)}")
async def delete_values(request: web.Request) -> web.Response:
    """Drop one version (`?v=N`) or every version up to one (`?upto=N`)."""
    svc = _svc(request)
    check_signed(request, svc.secret)
    key = key_from(request, "/internal/values")
    exact = query_int(request, "v", None, maximum=MAX_U64)
    upto = query_int(request, "upto", None, maximum=MAX_U64)
    if exact is not None:
        await svc.store.discard(key, exact)
        return envelope({"dropped": 1}, "dropped")
    if upto is None:
        raise BadRequest("give 'v' or 'upto'")
    return envelope({"dropped": await svc.store.delete(key, upto)}, "dropped")
