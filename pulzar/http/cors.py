"""Letting the dashboard's page talk to a volume (CORS).

The dashboard is a page of the master (`/ui`), and its browser reaches the volumes directly, as
every Pulzar client does: a download follows the master's 307 to a volume, an upload PUTs to
the volume URL that `/get_node` hands out (with its signed write ticket). A volume is another
origin (another port, often another host), so the browser needs the volume's leave to read its
answers and to send it PUTs.

Only the dashboard's own origins get it: the origin of the master URL the volume was given
(and, for a master on a loopback address, the other loopback names of that port). A page from
any other site gets no CORS headers, so its browser will not hand it the values. Errors carry
the headers as well, so the page can show their message (a 413, a 507, an expired ticket).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from yarl import URL

ALLOWED_METHODS = ("GET", "HEAD", "PUT")
ALLOWED_HEADERS = "Authorization, Content-Type, If-Match, If-None-Match, Range, X-Request-Id"
EXPOSED_HEADERS = (
    "Content-Length, Content-Range, ETag, Last-Modified, X-Pulzar-Version, X-Request-Id"
)
#: The routes a dashboard uses on a volume.
DASHBOARD_ROUTES = ("/add_key", "/get_key")
PREFLIGHT_MAX_AGE = "600"
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def dashboard_origins(master_url: str) -> frozenset[str]:
    """The origins a browser may show the dashboard from, given the master's URL."""
    url = URL(master_url)
    if not url.scheme or not url.host:
        return frozenset()
    origins = {str(url.origin())}
    host = f"[{url.host}]" if ":" in url.host else url.host
    if host in _LOOPBACK:
        port = "" if url.is_default_port() else f":{url.port}"
        origins.update(f"{url.scheme}://{name}{port}" for name in _LOOPBACK)
    return frozenset(origins)


def enable_cors(
    app: web.Application, origins: Iterable[str], routes: Iterable[str] = DASHBOARD_ROUTES
) -> None:
    """Answer preflights on `routes` and add CORS headers to their answers for `origins`."""
    allowed = frozenset(origins)
    prefixes = tuple(route.rstrip("/") + "/" for route in routes)

    def allowed_origin(request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        if origin in allowed and request.path.startswith(prefixes):
            return origin
        return None

    async def preflight(request: web.Request) -> web.Response:
        origin = allowed_origin(request)
        method = request.headers.get("Access-Control-Request-Method", "")
        if origin is None or method not in ALLOWED_METHODS:
            # No CORS headers: the browser refuses the request it was asking about.
            return web.Response(status=204, headers={"Vary": "Origin"})
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
            "Vary": "Origin",
        }
        if request.headers.get("Access-Control-Request-Private-Network") == "true":
            headers["Access-Control-Allow-Private-Network"] = "true"
        return web.Response(status=204, headers=headers)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        if request.method == "OPTIONS":
            return
        origin = allowed_origin(request)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            response.headers.add("Vary", "Origin")

    for prefix in prefixes:
        app.router.add_route("OPTIONS", prefix + "{tail:(?s:.*)}", preflight)
    app.on_response_prepare.append(add_headers)
