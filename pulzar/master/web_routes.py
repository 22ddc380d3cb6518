"""The dashboard: the static files of `pulzar/web`, served by the master at `/ui`.

No build step: plain HTML, CSS and JavaScript modules. The files that can be served are listed
once, when the routes are added (the plain files directly in the directory whose type is
known); a request names one of them or gets a 404, so no path can reach anything else.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from pulzar.core.errors import NotFound

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

# The pages load nothing from elsewhere and run no inline code. `connect-src` stays open to
# http(s) because the browser talks to the volumes directly (downloads follow the master's
# 307; uploads go to the URL `/get_node` gives).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self' http: https:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Revalidate each time (a 304 when unchanged), so an upgraded master serves its own files.
    "Cache-Control": "no-cache",
}


def web_assets(root: Path = WEB_DIR) -> dict[str, Path]:
    """File name -> path for every file `/ui/{name}` may serve."""
    if not root.is_dir():
        return {}
    return {
        path.name: path
        for path in sorted(root.iterdir())
        if path.is_file() and path.suffix in CONTENT_TYPES and not path.name.startswith(".")
    }


def _file(path: Path) -> web.FileResponse:
    headers = {"Content-Type": CONTENT_TYPES[path.suffix], **SECURITY_HEADERS}
    return web.FileResponse(path, headers=headers)


def add_web_routes(app: web.Application, root: Path = WEB_DIR) -> None:
    """`GET /ui` and `/ui/`: the dashboard's page; `GET /ui/{name}`: its assets."""
    assets = web_assets(root)

    async def index(request: web.Request) -> web.FileResponse:
        if "index.html" not in assets:
            raise NotFound(f"the dashboard's files are missing from {root}")
        return _file(assets["index.html"])

    async def asset(request: web.Request) -> web.FileResponse:
        name = request.match_info["name"]
        path = assets.get(name)
        if path is None:
            raise NotFound(f"no dashboard file {name!r}")
        return _file(path)

    app.router.add_get("/ui", index)
    app.router.add_get("/ui/", index)
    app.router.add_get("/ui/{name}", asset)
