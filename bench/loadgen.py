"""The async Python load generator for the end-to-end rows: a raw HTTP/1.1 client on uvloop.

The same code drives Pulzar and nginx: N workers, each with one request in flight at a time,
following redirects as `curl -L` would, for a fixed duration after a short warm-up. Every
request's latency (redirect included) is recorded; a wrong status or body, a refused or reset
connection, a response that cannot be parsed, or no answer within 60 s counts as an error.

Why a client of its own, written on asyncio's Protocol API rather than aiohttp's: the generator
runs on the same 2-core machine as the servers under test, so every CPU microsecond it spends
is taken from them. Measured with 64 clients against nginx, through its 307 (two HTTP requests
per GET or PUT; user + system time of the generator's process): aiohttp's client took ~110 µs
of CPU per HTTP request (~220 µs per GET or PUT); this one takes ~18 µs per HTTP request on
the GETs and ~25 µs on the PUTs (~36 and ~51 µs per GET and PUT), about 40% of it in the
kernel's send and receive. Responses are parsed by
httptools (llhttp, in C; the bench extra), which measured ~1.5-2.5 µs a response faster than a
parser in Python. The client does only what the benchmark needs:

- keep-alive connections owned by a worker (`Client`): one per host:port it has talked to,
  reused for every later request there; a connection the server closed is reopened on the next
  request, and a request that finds a kept-alive connection closed under it (nothing received)
  is sent again once on a new one; `Connection: close` is honoured;
- requests with a `Host` header and, when there is a body, `Content-Length` (the constant parts
  are built once per connection);
- responses: status line and headers, bodies by Content-Length, `Transfer-Encoding: chunked`,
  or up to the close; 1xx interim responses are skipped;
- redirects (301, 302, 303, 307, 308) followed up to 5 hops, absolute or relative Location;
  307 and 308 keep the method and the body, 303 turns into GET (and 301/302 a POST), as curl
  and aiohttp do;
- plain http only (the benchmark has no TLS); no HEAD.

A load can also run on aiohttp's client (`AiohttpClient`, `client="aiohttp"`), the generator
DESIGN.md's end-to-end targets were set with: the benchmark judges those targets on it and shows
the raw client's figures beside them. `new_session` (aiohttp) also serves the unmeasured paths:
loading the values, the jobs bench.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any, TypeVar, cast
from urllib.parse import quote, urljoin

import aiohttp

try:
    import httptools
except ImportError:  # pragma: no cover - without the bench extra; `available()` says so
    httptools = None  # type: ignore[assignment]

T = TypeVar("T")

#: Seconds without an answer (or to connect) after which a request counts as an error.
TIMEOUT = 60.0
#: Redirects followed per request; one more is an error.
MAX_REDIRECTS = 5
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
#: Bodies up to this size go out in the same write as the request head.
_JOIN_BODY = 64 * 1024


class HTTPError(Exception):
    """A response this client cannot read as HTTP/1.x, a bad Location, too many redirects."""


class _Disconnected(ConnectionError):
    """The connection closed before the response was complete."""

    def __init__(self, untouched: bool) -> None:
        super().__init__("connection closed before the response was complete")
        #: Nothing of the response had arrived (so the request may be sent again).
        self.untouched = untouched


#: What a `Request` may raise that counts as a failed request rather than a bug.
ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError, HTTPError)


def available() -> bool:
    """Whether the client can run: it parses responses with httptools (the bench extra)."""
    return httptools is not None


class Response:
    """A complete response: status, body and headers (raw, in order)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        key = name.lower().encode("latin-1")
        for field, value in self.headers:
            if field.lower() == key:
                return value.decode("latin-1")
        return None

    def __repr__(self) -> str:
        return f"<Response {self.status}, {len(self.body)} bytes>"


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time (`send`). Responses are parsed by
    httptools (llhttp, in C); its callbacks (`on_*`) collect the headers and the body."""

    def __init__(self, loop: asyncio.AbstractEventLoop, authority: bytes, timeout: float) -> None:
        self._loop = loop
        self._timeout = timeout
        # The constant parts of a request: after the path, without and with a body.
        self._tail = b" HTTP/1.1\r\nHost: " + authority + b"\r\n\r\n"
        self._tail_length = b" HTTP/1.1\r\nHost: " + authority + b"\r\nContent-Length: "
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        #: A response has been read on it already (it was kept alive for this request).
        self.reused = False
        self._waiter: asyncio.Future[Response] | None = None
        self._sent_at = 0.0  # loop.time() when the pending request went out
        self._watch: asyncio.TimerHandle | None = None  # the timeout check, if armed
        self._received = False  # some of this response arrived
        self._headers: list[tuple[bytes, bytes]] = []
        self._headers_done = False
        self._body: list[bytes] = []

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Nothing was asked (a 408 before a close, or garbage): not reusable.
            self._close()
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(HTTPError("the server switched protocols"))
        except httptools.HttpParserError as e:
            self._fail(HTTPError(f"bad response: {e}"))

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost finishes or fails the response

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._transport = None
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._waiter is None:
            return
        if self._headers_done and self._ends_at_close():
            self.on_message_complete()  # a body delimited by the close, now complete
        else:
            self._fail(_Disconnected(not self._received))

    # -- httptools callbacks --

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        headers, chunks = self._headers, self._body
        self._headers, self._body, self._headers_done = [], [], False
        if status < 200:
            return  # 1xx: an interim response, the real one follows
        waiter, self._waiter = self._waiter, None
        if waiter is None or not parser.should_keep_alive():
            self._close()  # `Connection: close` (or HTTP/1.0), or a response nobody asked for
        self.reused = True
        if waiter is not None and not waiter.done():
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            waiter.set_result(Response(status, headers, body))

    def _ends_at_close(self) -> bool:
        """Whether the response being read has its body delimited by the connection's close
        (no Content-Length, not chunked): then the close completes it."""
        coding = b""
        length = False
        for name, value in self._headers:
            name = name.lower()
            if name == b"transfer-encoding":
                coding = value.rsplit(b",", 1)[-1].strip().lower()
            elif name == b"content-length":
                length = True
        return coding != b"chunked" if coding else not length

    # -- requests --

    def send(self, method: bytes, path: bytes, body: bytes | None) -> asyncio.Future[Response]:
        """Send one request; the future gets the response (or the error)."""
        transport = self._transport
        if transport is None or self.closed or transport.is_closing():
            raise _Disconnected(True)
        if body is None:
            transport.write(method + path + self._tail)
        else:
            head = method + path + self._tail_length + b"%d\r\n\r\n" % len(body)
            if len(body) <= _JOIN_BODY:
                transport.write(head + body)
            else:
                transport.write(head)
                transport.write(body)
        self._received = False
        loop = self._loop
        waiter = self._waiter = loop.create_future()
        # No timer per request: one check per connection, armed for the deadline of the
        # request pending when it was armed, re-armed then for the one pending at that time.
        self._sent_at = now = loop.time()
        if self._watch is None:
            self._watch = loop.call_at(now + self._timeout, self._check_timeout)
        return waiter

    def _check_timeout(self) -> None:
        self._watch = None
        if self._waiter is None:
            return
        deadline = self._sent_at + self._timeout
        if self._loop.time() < deadline:
            self._watch = self._loop.call_at(deadline, self._check_timeout)
            return
        if self._transport is not None:
            self._transport.abort()
        self._fail(TimeoutError(f"no response in {self._timeout:g} s"))

    def close(self) -> None:
        self._close()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._waiter is not None:
            self._fail(_Disconnected(not self._received))

    def _close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        self._close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


# -- URLs ------------------------------------------------------------------------------------

#: authority ("host:port") -> (host, port, authority as bytes for the Host header)
_addresses: dict[str, tuple[str, int, bytes]] = {}
_methods: dict[str, bytes] = {}


def _address(authority: str) -> tuple[str, int, bytes]:
    found = _addresses.get(authority)
    if found is not None:
        return found
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):  # [IPv6]:port
        host, _, rest = hostport[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = hostport.partition(":")
    if not host or (port_text and not port_text.isdigit()):
        raise HTTPError(f"bad host in URL: {authority!r}")
    found = (host, int(port_text) if port_text else 80, hostport.encode("idna"))
    if len(_addresses) < 10_000:
        _addresses[authority] = found
    return found


def _split(url: str) -> tuple[str, str]:
    """(authority, path with query) of an http:// URL."""
    if not url.startswith("http://"):
        if url[:7].lower() != "http://":
            raise HTTPError(f"not an http:// URL: {url[:100]!r}")
        url = "http://" + url[7:]
    slash = url.find("/", 7)
    if slash < 0:
        authority, path = url[7:], "/"
        q = authority.find("?")
        if q >= 0:
            authority, path = authority[:q], "/" + authority[q:]
    else:
        authority, path = url[7:slash], url[slash:]
    hash_at = path.find("#")
    if hash_at >= 0:
        path = path[:hash_at]
    if not authority:
        raise HTTPError(f"no host in URL: {url[:100]!r}")
    return authority, path


def _target(path: str) -> bytes:
    """The request target as sent: ASCII, no spaces (else percent-encoded)."""
    if path.isascii() and " " not in path:
        return path.encode("ascii")
    return quote(path, safe="/%?=&:@!$'()*+,;~-._").encode("ascii")


def _location(url: str, authority: str, location: str) -> str:
    if location.startswith("http://"):
        return location
    if location.startswith("/") and not location.startswith("//"):
        return f"http://{authority}{location}"
    return urljoin(url, location)


# -- the client ------------------------------------------------------------------------------


class Client:
    """One worker's HTTP/1.1 client: a keep-alive connection per host:port it talks to, one
    request at a time. Use `async with Client() as c` or call `close()`."""

    __slots__ = ("_connections", "_loop", "_timeout")

    def __init__(self, timeout: float = TIMEOUT) -> None:
        if httptools is None:
            raise RuntimeError("the load generator needs httptools: pip install -e '.[bench]'")
        self._connections: dict[str, _Connection] = {}
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()

    async def request(self, method: str, url: str, body: bytes | None = None) -> Response:
        """Send `method url` (with `body`, if not None), following redirects. Raises OSError
        (refused, reset, closed), TimeoutError or HTTPError. Not for HEAD (the parser would
        wait for the body that Content-Length announces)."""
        prefix = _methods.get(method)
        if prefix is None:
            if method.upper() == "HEAD":
                raise ValueError("HEAD is not supported")
            prefix = _methods[method] = method.encode("ascii") + b" "
        for _ in range(MAX_REDIRECTS + 1):
            authority, path = _split(url)
            target = _target(path)
            conn = self._connections.get(authority)
            if conn is None or conn.closed:
                conn = await self._connect(authority)
            try:
                response = await conn.send(prefix, target, body)
            except _Disconnected as e:
                # A kept-alive connection closed by the server just as the request went out:
                # send it once more, on a new connection.
                if not (e.untouched and conn.reused):
                    raise
                conn = await self._connect(authority)
                response = await conn.send(prefix, target, body)
            status = response.status
            if status not in _REDIRECTS:
                return response
            location = response.header("Location")
            if location is None:
                return response  # a 3xx without Location is an answer in itself
            url = _location(url, authority, location)
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, prefix, body = "GET", b"GET ", None
        raise HTTPError(f"more than {MAX_REDIRECTS} redirects")

    async def _connect(self, authority: str) -> _Connection:
        host, port, host_header = _address(authority)
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        old = self._connections.pop(authority, None)
        if old is not None:
            old.close()
        timeout = self._timeout
        _, conn = await asyncio.wait_for(
            loop.create_connection(lambda: _Connection(loop, host_header, timeout), host, port),
            timeout,
        )
        self._connections[authority] = conn
        return conn


class AiohttpClient:
    """The same requests through aiohttp's client (one session shared by the workers, as the
    benchmark did before `Client`): what a Python program pays per request with aiohttp,
    ~110 µs of CPU. The end-to-end targets of DESIGN.md were set with a generator of that
    cost; `Client` shows what the servers do when the generator costs little."""

    __slots__ = ("_session",)

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def __aenter__(self) -> AiohttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def request(self, method: str, url: str, body: bytes | None = None) -> Response:
        try:
            async with self._session.request(method, url, data=body) as resp:
                return Response(resp.status, [], await resp.read())
        except aiohttp.ClientError as exc:
            raise HTTPError(str(exc)) from exc


#: The two clients a load runs with: "raw" (`Client`) or "aiohttp" (`AiohttpClient`).
CLIENTS = ("raw", "aiohttp")

#: One request: (client, worker number, request number of that worker) -> ok?
Request = Callable[[Client | AiohttpClient, int, int], Awaitable[bool]]


@contextlib.asynccontextmanager
async def _clients(
    kind: str, concurrency: int
) -> AsyncIterator[Callable[[], Client | AiohttpClient]]:
    """A maker of one worker's client, for the duration of a load."""
    if kind == "raw":
        yield Client
    elif kind == "aiohttp":
        async with new_session(concurrency) as session:
            yield lambda: AiohttpClient(session)
    else:
        raise ValueError(f"client must be one of {CLIENTS}")


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on uvloop (as the servers do), else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


def new_session(connections: int) -> aiohttp.ClientSession:
    """An aiohttp session, for the paths that are not measured (loading values, jobs)."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=connections, force_close=False)
    # No cookie jar and no decompression: a load generator should spend its time on requests.
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=60),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


async def load(
    request: Request,
    *,
    concurrency: int,
    seconds: float,
    warmup: float = 1.0,
    client: str = "raw",
) -> LoadResult:
    """Run `request` from `concurrency` workers (a client each, of the `client` kind) for
    `warmup` + `seconds`; measure the last `seconds` only."""
    async with _clients(client, concurrency) as make:
        return await _load(request, make, concurrency, seconds, warmup)


async def _load(
    request: Request,
    make: Callable[[], Client | AiohttpClient],
    concurrency: int,
    seconds: float,
    warmup: float,
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop = measure_from + seconds

    async def worker(w: int) -> None:
        nonlocal errors
        clock = time.perf_counter
        i = 0
        async with make() as client:
            while True:
                t0 = clock()
                if t0 >= stop:
                    return
                try:
                    ok = await request(client, w, i)
                except ERRORS:
                    ok = False
                t1 = clock()
                if t0 >= measure_from:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors += 1
                i += 1

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - measure_from
    latencies.sort()
    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        rps=len(latencies) / elapsed if elapsed > 0 else 0.0,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        errors=errors,
    )


async def sequential(
    request: Request, count: int, warmup: int = 50, client: str = "raw"
) -> LoadResult:
    """One client, one request at a time: `count` requests after `warmup` unmeasured ones."""
    async with _clients(client, 1) as make:
        return await _sequential(request, make(), count, warmup)


async def _sequential(
    request: Request, client: Client | AiohttpClient, count: int, warmup: int
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    async with client:
        for i in range(warmup):
            with contextlib.suppress(*ERRORS):
                await request(client, 0, -1 - i)
        start = time.perf_counter()
        for i in range(count):
            t0 = time.perf_counter()
            try:
                ok = await request(client, 0, i)
            except ERRORS:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1
        elapsed = time.perf_counter() - start
    latencies.sort()
    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        rps=len(latencies) / elapsed if elapsed > 0 else 0.0,
        p50_ms=statistics.median(latencies) * 1000 if latencies else float("nan"),
        p99_ms=_percentile(latencies, 0.99) * 1000,
        errors=errors,
    )


def get_checked(url_of: Callable[[int, int], str], size: int) -> Request:
    """GET `url_of(worker, n)`, following redirects; ok when 200 with `size` bytes."""

    async def request(client: Client | AiohttpClient, w: int, i: int) -> bool:
        response = await client.request("GET", url_of(w, i))
        return response.status == 200 and len(response.body) == size

    return request


def put_checked(url_of: Callable[[int, int], str], body: bytes, expect: int) -> Request:
    """PUT `body` to `url_of(worker, n)`, following a 307 (the body is sent again there);
    ok when the final status is `expect`."""

    async def request(client: Client | AiohttpClient, w: int, i: int) -> bool:
        response = await client.request("PUT", url_of(w, i), body)
        return response.status == expect

    return request
