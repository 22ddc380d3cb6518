"""A volume's HTTP routes: parse, call `VolumeService`, map the answer."""

from __future__ import annotations

import time
from urllib.parse import quote

import orjson
from aiohttp import web

from pulzar.core.errors import BadRequest, KeyNotFound
from pulzar.core.tickets import verify_ticket
from pulzar.http.internal import check_signed
from pulzar.http.keys import key_from, ttl_days_from
from pulzar.http.responses import envelope, query_int
from pulzar.volume.service import Upload, VolumeService, dump_entry
from pulzar.volume.serving import value_response

SERVICE = web.AppKey("service", VolumeService)
DAY = 86400.0

routes = web.RouteTableDef()
# `(?s:.*)` lets a key hold any character, `\n` included, so that the key rules answer
# (400), not the router (404).


def _svc(request: web.Request) -> VolumeService:
    return request.app[SERVICE]


def _upload(request: web.Request) -> Upload:
    return Upload(request.headers.get("Content-Type"), request.content_length, request.content)


@routes.put("/add_key/{key:(?s:.*)}")
async def add_key(request: web.Request) -> web.Response:
    svc = _svc(request)
    key = key_from(request, "/add_key")
    ticket = verify_ticket(svc.secret, request.query.get("t"), time.time())
    svc.check_ticket(ticket, key)
    ttl = ticket.ttl
    if ttl is None:
        days = ttl_days_from(request)  # `temporal` appended to a get_node URL
        ttl = None if days is None else days * DAY
    await svc.write(ticket, _upload(request), ttl)
    url = f"{svc.master}/get_key{quote(key)}"
    return envelope({"url": url, "version": ticket.version}, "key added", status=201)


@routes.get("/get_key/{key:(?s:.*)}")
async def get_key(request: web.Request) -> web.StreamResponse:
    """Serve a value. Asked by the master for a version this node lacks or holds corrupt,
    send the reader back to the master, which picks another replica (`skip` grows by this
    node, so a reader never loops)."""
    svc = _svc(request)
    key = key_from(request, "/get_key")
    version = query_int(request, "v", None)
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
    ticket = verify_ticket(svc.secret, request.query.get("t"), time.time())
    svc.check_ticket(ticket, key)
    try:
        modified = float(request.query["modified"])
        expires = float(request.query["expires"]) if request.query.get("expires") else None
    except (KeyError, ValueError):
        raise BadRequest("replica needs 'modified' and 'expires'") from None
    await svc.receive(ticket, _upload(request), modified=modified, expires=expires)
    return envelope(None, "stored")


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
        "values": [dump_entry(meta) for meta in committed],
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
    version = query_int(request, "v", None)
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
        pairs = [(str(k), int(v)) for k, v in orjson.loads(await request.read())["values"]]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise BadRequest('finalize_many needs {"values": [[key, version], ...]}') from None
    for key, version in pairs:
        svc.store.finalize_later(key, version)
    return envelope({"queued": len(pairs)}, "queued")


@routes.delete("/internal/values/{key:(?s:.*)}")
async def delete_values(request: web.Request) -> web.Response:
    """Drop one version (`?v=N`) or every version up to one (`?upto=N`)."""
    svc = _svc(request)
    check_signed(request, svc.secret)
    key = key_from(request, "/internal/values")
    exact, upto = query_int(request, "v", None), query_int(request, "upto", None)
    if exact is not None:
        await svc.store.discard(key, exact)
        return envelope({"dropped": 1}, "dropped")
    if upto is None:
        raise BadRequest("give 'v' or 'upto'")
    return envelope({"dropped": await svc.store.delete(key, upto)}, "dropped")
