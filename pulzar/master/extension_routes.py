"""`GET|PUT /extension/{app_id}/{args...}?params`: the master's HTTP edge of extensions.

Parses the call, spools a PUT body, hands the call to `ExtensionService` (which runs it in a
worker process) and answers in the envelope. Registered by `pulzar.master.server`.
"""

from __future__ import annotations

from urllib.parse import unquote

import orjson
from aiohttp import web
from aiohttp.http import HttpVersion11

from pulzar.core.errors import NotFound
from pulzar.extensions.service import ExtensionService
from pulzar.http.responses import envelope, error_response
from pulzar.master.service import MasterService

EXTENSIONS = web.AppKey("extensions", ExtensionService)
ROUTE = "/extension/"


def parse_call(raw_path: str) -> tuple[str, list[str]]:
    """`/extension/{app_id}/{arg}/...` -> (app_id, args), each segment percent-decoded once
    (`%2F` stays inside its argument); empty segments are dropped, as the original did."""
    path = raw_path.split("?", 1)[0]
    segments = [unquote(s) for s in path[len(ROUTE) :].split("/") if s]
    if not segments:
        raise NotFound("no extension given: /extension/{app_id}/{args...}")
    return segments[0], segments[1:]


def _params(request: web.Request) -> dict[str, list[str]]:
    return {name: request.query.getall(name) for name in dict.fromkeys(request.query.keys())}


async def run_extension(request: web.Request) -> web.Response:
    svc = request.app[EXTENSIONS]
    app_id, args = parse_call(request.raw_path)
    path = svc.find(app_id)
    params = _params(request)
    if request.method == "PUT":
        chunks = request.content.iter_chunked(256 * 1024)
        async with svc.spooled(chunks, request.content_length) as file_path:
            reply = await svc.run(app_id, path, args, params, file_path)
    else:
        reply = await svc.run(app_id, path, args, params, None)
    if reply.status != 200:
        return error_response(reply.status, reply.message)
    return envelope(orjson.Fragment(reply.body))


async def _expect(request: web.Request) -> web.Response | None:
    """Refuse a body over maxsize before the client sends it; else `100 Continue`."""
    svc = request.app[EXTENSIONS]
    limit = svc.max_bytes
    if request.content_length is not None and request.content_length > limit:
        response = error_response(
            413, f"body of {request.content_length} bytes is over the limit of {limit} bytes"
        )
        response.force_close()
        return response
    if request.version == HttpVersion11:
        if request.headers.get("Expect", "").lower() != "100-continue":
            raise web.HTTPExpectationFailed(text="only 'Expect: 100-continue' is supported")
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
    return None


def add_extension_routes(app: web.Application, master: MasterService) -> None:
    """Serve extensions on `app`; their worker pool stops with the app."""

    def cluster_urls() -> list[str]:
        return [node.url for node in master.nodes.all()]

    svc = ExtensionService(master.config, cluster_urls)
    app[EXTENSIONS] = svc
    app.router.add_route("GET", ROUTE + "{tail:.*}", run_extension)
    app.router.add_route("PUT", ROUTE + "{tail:.*}", run_extension, expect_handler=_expect)

    async def close(app: web.Application) -> None:
        await svc.close()

    app.on_cleanup.append(close)
