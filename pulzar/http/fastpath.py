"""The hottest requests answered straight from the socket; everything else by aiohttp.

Reads and small writes of keys are most of a cluster's traffic. Through aiohttp each answer
costs ~80 µs of CPU (request and response objects, routing, middlewares, header multidicts);
written from the protocol, a fraction of that. So a server's connections start on
`FastPathProtocol`. A data chunk that starts with exactly one plain request head for a fast
route (HTTP/1.1, followed by nothing but its own body, no chunked body, `Expect` or `Upgrade`,
nothing the answer must take into account beyond what the route reads) is answered there:

- a `FastRoute` answers at once from the head (`answer`), a small body read past unseen: the
  master's 307s;
- a `BodyRoute` takes a small body that came whole with the head (`accept`, then `respond`):
  the connection's next request waits until its answer is written, as with aiohttp: a
  volume's small write, the master's job launch.

A route may decline (None). Then, and for anything else (another route or method, a partial or
pipelined head, a header such as `Range`, a miss, an error to report), the connection is handed
to aiohttp for good (`transport.set_protocol`) with the very bytes received, at a request
boundary: answers never reorder, and every behaviour beyond the hot answer (errors, envelopes,
redirects back, auth refusals) stays in the one place that implements it. Fast answers are
counted in the same metrics and written to the same access log; answers in progress finish
when the server stops.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, NamedTuple, TypeVar, cast

from aiohttp import web

from pulzar.core.errors import PulzarError
from pulzar.http.metrics import RECORD, Record
from pulzar.http.responses import (
    INTERNAL_ERROR,
    envelope_body,
    error_body,
    new_request_id,
    request_handlers,
    usable_request_id,
)

#: The route answers: given the path (raw, without the query), the raw query and the headers
#: (lower-case names) and the time: `(status, the whole response, request id)`, or None to let
#: aiohttp answer.
FastAnswer = tuple[int, bytes, str] | None
Answer = Callable[[str, str, dict[str, str], float], FastAnswer]
#: A route that needs the body: given the same, a function that answers once given the whole
#: body (it must answer every outcome itself, errors included), or None to let aiohttp answer.
Respond = Callable[[bytes], Awaitable[tuple[int, bytes, str]]]
Accept = Callable[[str, str, dict[str, str], float], Respond | None]

_REFUSED_HEADERS = frozenset(("transfer-encoding", "expect", "upgrade"))
#: The header lines of a plain head, each after a CRLF: a name that is an HTTP token, a colon,
#: a value without control characters (a tab aside). No folding, no bare CR or LF.
_HEADER_LINES = re.compile(r"(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\x00-\x08\x0a-\x1f\x7f]*)+")
#: What a request the fast path may answer starts with (five bytes: "POST " has no room for
#: the slash).
_FAST_METHODS = (b"GET /", b"PUT /", b"POST ")
_SHUTDOWN_WAIT = 5.0
# Heads longer than this go to aiohttp, which applies `[server] max_header_size`.
_MAX_HEAD = 4096
# What a client may send while its request is being worked on (a pipelined request, the
# start of the next one) before reading stops until the answer is out.
_MAX_PENDING = 64 * 1024
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FastRoute:
    #: The path prefix served (`/get_key/`), the route's name in the metrics, the answer.
    prefix: str
    route: str
    answer: Answer
    method: str = "GET"
    #: Bodies up to this size are read past (not given to `answer`); larger ones go to aiohttp.
    skip_body: int = 0


@dataclass(frozen=True, slots=True)
class BodyRoute:
    """A route answered from the socket once its body is in: only when the whole body came
    in the same data chunk as the head and is at most `max_body` bytes."""

    prefix: str
    route: str
    method: str
    max_body: int
    accept: Accept


@dataclass(slots=True)
class FastPath:
    """What a server answers from the socket, stored on its application (`FAST`)."""

    routes: list[FastRoute]
    body_routes: list[BodyRoute] = field(default_factory=list)


FAST = web.AppKey("fast_path", FastPath)


_date: tuple[int, bytes] = (-1, b"")


def _http_date(second: int) -> bytes:
    global _date
    if _date[0] != second:
        _date = (second, formatdate(second, usegmt=True).encode())
    return _date[1]


@functools.cache
def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def json_response(status: int, body: bytes) -> bytes:
    return response(status, "Content-Type: application/json\r\n", body)


def envelope_answer(status: int, data: Any, msg: str, rid: str) -> tuple[int, bytes, str]:
    """A body route's answer in the JSON envelope."""
    return status, json_response(status, envelope_body(data, msg)), rid


def error_answer(method: str, path: str, exc: PulzarError, rid: str) -> tuple[int, bytes, str]:
    """A body route's error, answered as `error_middleware` answers it through aiohttp."""
    return exc.status, json_response(exc.status, error_body(method, path, exc)), rid


def plain_query(query: str) -> dict[str, str] | None:
    """The parameters of a query that needs no decoding (no `%` or `+`) and names each once,
    else None: a fast route leaves the others to aiohttp."""
    if "%" in query or "+" in query:
        return None
    params = dict(part.partition("=")[::2] for part in query.split("&")) if query else {}
    if query and len(params) != query.count("&") + 1:
        return None  # a name given twice: aiohttp's routes read the first, leave it to them
    return params


def request_id_of(headers: dict[str, str]) -> str:
    """The id a fast answer is logged under: the client's `X-Request-Id` if usable, or new
    (as `responses.request_id`)."""
    given = headers.get("x-request-id", "")
    return given if usable_request_id(given) else new_request_id()


def response(status: int, headers: str, body: bytes = b"") -> bytes:
    """A whole HTTP/1.1 response: `headers` are `Name: value\\r\\n` lines (ASCII)."""
    date = _http_date(int(time.time()))
    return b"".join(
        (
            f"HTTP/1.1 {status} {_reason(status)}\r\n".encode(),
            b"Date: ",
            date,
            f"\r\nServer: pulzar\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode(),
            body,
        )
    )


class Head(NamedTuple):
    method: str
    path: str
    query: str
    headers: dict[str, str]
    #: The body's length (Content-Length) and how much of it came with the head.
    length: int
    received: int


def parse_head(data: bytes) -> Head | None:
    """One complete, plain request head at the start of `data`, followed by at most its own
    body; None for anything this module leaves to aiohttp (a partial head, a second request,
    chunked bodies, `Expect`, `Upgrade`, `Connection: close`, a fragment, no `Host`, bytes
    beyond ASCII, anything unusual or malformed: aiohttp's parser judges those)."""
    end = data.find(b"\r\n\r\n", 0, _MAX_HEAD)
    if end < 0:
        return None  # partial, or longer than any plain request: aiohttp applies its limits
    head = data[:end]
    if not head.isascii():
        return None  # aiohttp reads header values as UTF-8
    text = head.decode("ascii")
    first = text.find("\r\n")
    if first < 0 or not _HEADER_LINES.fullmatch(text, first):
        return None
    parts = text[:first].split(" ")
    if len(parts) != 3 or parts[2] != "HTTP/1.1":
        return None
    method, target = parts[0], parts[1]
    if not (target.startswith("/") and target.isprintable()):
        return None
    if "#" in target:
        return None  # aiohttp reads a fragment off the path
    headers: dict[str, str] = {}
    for line in text[first + 2 :].split("\r\n"):
        name, _, value = line.partition(":")
        lower = name.lower()
        if lower in headers or lower in _REFUSED_HEADERS:
            return None
        headers[lower] = value.strip(" \t")
    if "host" not in headers:
        return None
    raw_length = headers.get("content-length", "0")
    if not (raw_length.isascii() and raw_length.isdigit()):
        return None
    length, received = int(raw_length), len(data) - end - 4
    if received > length:
        return None  # the next request is already here: pipelining is aiohttp's
    connection = headers.get("connection")
    if connection is not None and connection.lower() != "keep-alive":
        return None
    path, _, query = target.partition("?")
    return Head(method, path, query, headers, length, received)


R = TypeVar("R", FastRoute, BodyRoute)


def _route(routes: list[R], head: Head) -> R | None:
    """The route that serves `head`'s method and path."""
    for route in routes:
        if head.method == route.method and head.path.startswith(route.prefix):
            return route
    return None


class FastPathProtocol(asyncio.Protocol):
    """One connection: fast answers while they apply, then aiohttp's protocol for good."""

    def __init__(
        self,
        fast: FastPath,
        record: Record | None,
        fallback: Callable[[], asyncio.Protocol],
        keepalive: float,
        access_log: logging.Logger | None,
        connections: set[FastPathProtocol],
        in_flight: set[asyncio.Task[tuple[int, bytes, str]]],
    ) -> None:
        self._fast = fast
        self._record = record
        self._in_flight = in_flight
        #: The answer being worked on, and what came after it (it waits; reading pauses only
        #: when more than `_MAX_PENDING` bytes wait).
        self._busy: asyncio.Task[tuple[int, bytes, str]] | None = None
        self._pending = b""
        self._fallback = fallback
        self._keepalive = keepalive
        self._log = access_log
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._eof = False
        self._skip = 0

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._connections.add(self)
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        self._timer = loop.call_later(self._keepalive, self._check_idle)

    def data_received(self, data: bytes) -> None:
        if self._busy is not None:
            self._pending += data
            if len(self._pending) > _MAX_PENDING and self._transport is not None:
                self._transport.pause_reading()
            return
        if self._skip:
            # The rest of a body that a fast answer did not need.
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = data[skipped:]
            if not data:
                return
        head = parse_head(data) if data[:5] in _FAST_METHODS else None
        if head is not None:
            if self._answer(head):
                self._skip = head.length - head.received
                return
            if head.received == head.length and self._accept(head, data):
                return
        self._hand_over(data)

    def eof_received(self) -> bool:
        # A client that stops sending after its request still gets the answer being worked
        # on; the connection closes once it is out (`_answered`).
        if self._busy is not None:
            self._eof = True
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        self._transport = None

    def pause_writing(self) -> None:
        self._paused = True
        if self._transport is not None:
            self._transport.pause_reading()  # no new answers until the client reads

    def resume_writing(self) -> None:
        self._paused = False
        if self._transport is not None and self._busy is None:
            self._transport.resume_reading()

    # -- the two ways -------------------------------------------------------------------

    def _answer(self, head: Head) -> bool:
        route = _route(self._fast.routes, head)
        if route is None or head.length > route.skip_body:
            return False
        started = time.perf_counter()
        try:
            answered = route.answer(head.path, head.query, head.headers, time.time())
        except Exception:
            log.exception("fast %s %s failed; left to aiohttp", head.method, head.path)
            return False
        if answered is None:
            return False
        assert self._transport is not None
        self._send(self._transport, head, route.route, answered, started)
        return True

    def _send(
        self,
        transport: asyncio.Transport,
        head: Head,
        route: str,
        answered: tuple[int, bytes, str],
        started: float,
    ) -> None:
        """Write an answer; count it and log it."""
        transport.write(answered[1])
        self._last = asyncio.get_running_loop().time()
        self._count(head, route, answered, started)

    def _count(
        self, head: Head, route: str, answered: tuple[int, bytes, str], started: float
    ) -> None:
        """An answer in the metrics and the access log."""
        status, data, rid = answered
        seconds = time.perf_counter() - started
        body = len(data) - data.find(b"\r\n\r\n") - 4
        if self._record is not None:
            self._record(head.method, route, status, seconds, body, head.length)
        if self._log is not None:
            self._log_access(head.method, head.path, head.query, status, body, seconds, rid)

    def _accept(self, head: Head, data: bytes) -> bool:
        """Start answering a body route's request (its whole body is in `data`)."""
        route = _route(self._fast.body_routes, head)
        if route is None or head.length > route.max_body:
            return False
        try:
            respond = route.accept(head.path, head.query, head.headers, time.time())
        except Exception:
            log.exception("fast %s %s failed; left to aiohttp", head.method, head.path)
            return False
        if respond is None:
            return False
        # One request at a time, as aiohttp does: what comes meanwhile waits in `_pending`.
        body = data[len(data) - head.length :] if head.length else b""
        task = self._busy = asyncio.ensure_future(respond(body))
        self._in_flight.add(task)
        task.add_done_callback(functools.partial(self._answered, route, head, time.perf_counter()))
        return True

    def _answered(
        self,
        route: BodyRoute,
        head: Head,
        started: float,
        task: asyncio.Task[tuple[int, bytes, str]],
    ) -> None:
        self._in_flight.discard(task)
        self._busy = None
        transport = self._transport
        if task.cancelled():
            if transport is not None:
                transport.close()
            return
        exc = task.exception()
        if exc is None:
            answered = task.result()
        else:
            log.error("%s %s failed", head.method, head.path, exc_info=exc)
            error = json_response(500, envelope_body(None, INTERNAL_ERROR, ok=False))
            answered = (500, error, "")
        if transport is None or transport.is_closing():
            # The client went away; the work was done all the same, and counts.
            self._count(head, route.route, answered, started)
            return
        self._send(transport, head, route.route, answered, started)
        if not self._paused:
            transport.resume_reading()
        if self._pending:
            pending, self._pending = self._pending, b""
            self.data_received(pending)
        if self._eof and self._busy is None and transport.get_protocol() is self:
            transport.close()  # the client had stopped sending: all it asked is answered

    def _hand_over(self, data: bytes) -> None:
        """From here on the connection is aiohttp's, starting with `data`."""
        transport = self._transport
        self._stop()
        if transport is None or transport.is_closing():
            return
        protocol = self._fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._paused:
            transport.resume_reading()
            protocol.pause_writing()
        protocol.data_received(data)

    def _stop(self) -> None:
        self._connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_idle(self) -> None:
        if self._transport is None:
            return
        loop = asyncio.get_running_loop()
        idle = loop.time() - self._last
        if idle >= self._keepalive and self._busy is None:
            self._transport.close()
            self._stop()
        else:
            # A request being worked on is not idleness: look again a full period after it.
            wait = self._keepalive - idle if self._busy is None else self._keepalive
            self._timer = loop.call_later(wait, self._check_idle)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._stop()

    def _log_access(
        self,
        method: str,
        path: str,
        query: str,
        status: int,
        body: int,
        seconds: float,
        rid: str,
    ) -> None:
        assert self._log is not None
        peer = None if self._transport is None else self._transport.get_extra_info("peername")
        target = f"{path}?{query}" if query else path
        self._log.info(
            '%s "%s %s HTTP/1.1" %d %d %.6fs rid=%s',
            peer[0] if peer else "-",
            method,
            target,
            status,
            body,
            seconds,
            rid or "-",
        )


class FastSite(web.TCPSite):
    """A TCP site whose connections start on the fast path of `fast` (if any), then go to
    aiohttp with its own errors answered in the envelope (`EnvelopeRequestHandler`)."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        fast: FastPath | None,
        *,
        keepalive: float,
        access_log: logging.Logger | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._fast = fast
        self._keepalive = keepalive
        self._log = access_log
        self._connections: set[FastPathProtocol] = set()
        self._in_flight: set[asyncio.Task[tuple[int, bytes, str]]] = set()

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        handlers = request_handlers(server)
        fast = self._fast
        # Fast answers are counted in the application's metrics (`pulzar.http.metrics`).
        record = self._runner.app.get(RECORD) if isinstance(self._runner, web.AppRunner) else None

        def fast_first() -> asyncio.Protocol:
            assert fast is not None
            return FastPathProtocol(
                fast,
                record,
                handlers,
                self._keepalive,
                self._log,
                self._connections,
                self._in_flight,
            )

        factory = handlers if fast is None else fast_first
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            factory,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )

    async def stop(self) -> None:
        """Let the answers in progress finish (as aiohttp's shutdown does), then close."""
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=_SHUTDOWN_WAIT)
        for connection in list(self._connections):
            connection.close()
        await super().stop()
