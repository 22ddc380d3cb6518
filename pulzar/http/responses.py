"""The JSON envelope and the one place where errors become HTTP statuses."""

from __future__ import annotations

import itertools
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from pulzar.core.errors import BadRequest, PulzarError

log = logging.getLogger("pulzar.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = "X-Request-Id"
INTERNAL_ERROR = "internal error (logged on the server)"
# New request ids: a random prefix per process and a counter (no system call per request).
_RID_PREFIX = secrets.token_hex(3)
_rid_counter = itertools.count(secrets.randbelow(1 << 24))


def envelope(
    data: Any = None,
    msg: str = "ok",
    status: int = 200,
    ok: bool = True,
    extra: dict[str, Any] | None = None,
) -> web.Response:
    """`{"data": ..., "status": "ok"|"ko", "msg": ...}` as the body of an answer (`extra`
    adds top-level fields beside those three)."""
    body = envelope_body(data, msg, ok, extra)
    return web.Response(body=body, status=status, content_type="application/json")


def envelope_body(
    data: Any, msg: str, ok: bool = True, extra: dict[str, Any] | None = None
) -> bytes:
    payload = {"data": data, "status": "ok" if ok else "ko", "msg": msg}
    if extra:
        payload.update(extra)
    return orjson.dumps(payload)


def error_response(status: int, msg: str) -> web.Response:
    return envelope(None, msg, status=status, ok=False)


def request_id(request: web.Request) -> str:
    """The id this request is logged under: from the 307 (`rid=`), a header, or new (when
    neither is usable)."""
    for given in (request.query.get("rid"), request.headers.get(REQUEST_ID)):
        if given is not None and usable_request_id(given):
            return given
    return new_request_id()


#: What a client's request id may be made of to travel as it is, in a header, in the query of
#: a 307's Location and in a log line.
_USABLE_ID = re.compile(r"[A-Za-z0-9._~:/=@-]{1,128}")


def usable_request_id(given: str) -> bool:
    return _USABLE_ID.fullmatch(given) is not None


def new_request_id() -> str:
    return f"{_RID_PREFIX}{next(_rid_counter) & 0xFFFFFF:06x}"


def error_body(method: str, path: str, exc: PulzarError) -> bytes:
    """The envelope of a request's `PulzarError`, logged when it is the server's (5xx)."""
    if exc.status >= 500:
        log.warning("%s %s -> %d %s", method, path, exc.status, exc.message)
    return envelope_body(None, exc.message, ok=False)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except PulzarError as exc:
        body = error_body(request.method, request.path, exc)
        return web.Response(body=body, status=exc.status, content_type="application/json")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = {404: "no such route", 405: "method not allowed for this route"}.get(
            exc.status, exc.reason
        )
        response = error_response(exc.status, f"{reason}: {request.method} {request.path}")
        # Keep what the status needs besides the body: `Allow` on a 405, `Content-Range`
        # on a 416.
        for name, value in exc.headers.items():
            if name.lower() not in ("content-type", "content-length"):
                response.headers.add(name, value)
        return response
    except (ConnectionResetError, web.RequestPayloadError) as exc:
        log.info("%s %s: client went away: %s", request.method, request.path, exc)
        return error_response(400, f"request body was cut short: {exc}")
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, INTERNAL_ERROR)


def json_body(raw: bytes) -> Any:
    """A request's body read as JSON (`{}` when it is empty or blank); 400 when it is not."""
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None


def json_object(raw: bytes) -> dict[str, Any]:
    """`json_body` of a body that must be a JSON object."""
    body = json_body(raw)
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def query_int(
    request: web.Request,
    name: str,
    default: int | None = None,
    *,
    minimum: int = 0,
    maximum: int | None = None,
) -> int | None:
    """An integer query parameter, or a 400 that names it."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"'{name}' must be an integer, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and {maximum}" if maximum is not None else ""
        raise BadRequest(f"'{name}' must be between {minimum}{upper}, got {value}")
    return value


class EnvelopeRequestHandler(RequestHandler):
    """aiohttp's connection protocol, with the errors aiohttp answers itself (a request it
    cannot parse, an oversized header) in the JSON envelope like every other error."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs it; closes the connection
        if status >= 500:
            text = INTERNAL_ERROR
        else:
            detail = (message or "").strip().splitlines()
            text = f"{HTTPStatus(status).phrase.lower()}: {detail[0] if detail else 'malformed'}"
        response = error_response(status, text)
        response.force_close()
        return response


def request_handlers(server: web.Server) -> Callable[[], RequestHandler]:
    """What makes a connection's protocol for `server`: an `EnvelopeRequestHandler`, or
    aiohttp's own if its server is not built the way this was written against."""
    loop, kwargs = getattr(server, "_loop", None), getattr(server, "_kwargs", None)
    if loop is None or not isinstance(kwargs, dict):
        log.warning("aiohttp's own error answers are used: its server changed shape")
        return server
    return lambda: EnvelopeRequestHandler(server, loop=loop, **kwargs)
