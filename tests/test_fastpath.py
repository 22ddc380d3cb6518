"""The fast path: hot GETs answered from the socket, everything else handed to aiohttp with the
very bytes received, on a real socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from pulzar.http import metrics
from pulzar.http.fastpath import (
    BodyRoute,
    FastAnswer,
    FastPath,
    FastRoute,
    FastSite,
    Respond,
    parse_head,
    plain_query,
    response,
)
from pulzar.http.responses import error_middleware

HOST = "127.0.0.1"


def _answer(path: str, query: str, headers: dict[str, str], now: float) -> FastAnswer:
    """Answers /hot/<name> from the socket, except /hot/cold (left to aiohttp); /hot/boom
    fails."""
    if path == "/hot/cold":
        return None
    if path == "/hot/boom":
        raise RuntimeError("boom")
    return 200, response(200, "X-Via: fast\r\n", path.encode()), "rid1"


def _accept(path: str, query: str, headers: dict[str, str], now: float) -> Respond | None:
    """Answers PUT /body/<name> once its body is in, after a short wait (/body/slow: longer
    than the keep-alive); /body/cold is left to aiohttp, /body/boom fails."""
    if path == "/body/cold":
        return None

    async def respond(body: bytes) -> tuple[int, bytes, str]:
        await asyncio.sleep(0.6 if path == "/body/slow" else 0.05)
        if path == "/body/boom":
            raise RuntimeError("boom")
        return 201, response(201, "X-Via: fast\r\n", b"%s %d" % (path.encode(), len(body))), ""

    return respond


async def _slow(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(text=f"slow {request.method} {request.path} {len(body)}")


class Server:
    def __init__(self, port: int, site: FastSite, app: web.Application) -> None:
        self.port, self.site, self.app = port, site, app

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(HOST, self.port)


@pytest.fixture
async def server(unused_tcp_port: int) -> AsyncIterator[Server]:
    app = web.Application(middlewares=[error_middleware])
    app.router.add_route("*", "/{tail:.*}", _slow)
    metrics.setup(app, "test", lambda: [])
    runner = web.AppRunner(app, keepalive_timeout=0.3)
    await runner.setup()
    routes = [
        FastRoute("/hot/", "/hot/{name}", _answer),
        FastRoute("/put/", "/put/{name}", _answer, "PUT", skip_body=100),
    ]
    bodies = [BodyRoute("/body/", "/body/{name}", "PUT", 100, _accept)]
    fast = FastPath(routes, bodies)
    site = FastSite(runner, HOST, unused_tcp_port, fast, keepalive=0.3, access_log=None)
    await site.start()
    yield Server(unused_tcp_port, site, app)
    await runner.cleanup()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode("latin-1")
    lines = head.split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {
        name.lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:] if line)
    }
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    return status, headers, body


def _get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


async def test_a_hot_get_is_answered_from_the_socket_and_counted(server: Server) -> None:
    reader, writer = await server.connect()
    for _ in range(3):
        writer.write(_get("/hot/a"))
        status, headers, body = await _read_response(reader)
        assert (status, headers["x-via"], body) == (200, "fast", b"/hot/a")
        assert headers["server"] == "pulzar" and headers["date"].endswith("GMT")
    writer.close()
    registry = server.app[metrics.REGISTRY]
    count = registry.get_sample_value(
        "pulzar_requests_total",
        {"process": "test", "method": "GET", "route": "/hot/{name}", "status": "200"},
    )
    assert count == 3


async def test_a_fast_put_counts_the_bytes_it_received(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(_put("/body/a", b"x" * 40))
    await _read_response(reader)
    writer.close()
    registry = server.app[metrics.REGISTRY]
    received = registry.get_sample_value("pulzar_bytes_received_total", {"process": "test"})
    assert received == 40


async def test_a_declined_request_goes_to_aiohttp_and_the_connection_stays_with_it(
    server: Server,
) -> None:
    reader, writer = await server.connect()
    writer.write(_get("/hot/a"))
    assert (await _read_response(reader))[2] == b"/hot/a"
    writer.write(_get("/hot/cold"))
    assert (await _read_response(reader))[2] == b"slow GET /hot/cold 0"
    writer.write(_get("/hot/b"))  # aiohttp's connection now: no more fast answers on it
    status, headers, body = await _read_response(reader)
    assert (status, body, "x-via" in headers) == (200, b"slow GET /hot/b 0", False)
    writer.close()


@pytest.mark.parametrize(
    "request_bytes, expected",
    [
        (b"PUT /hot/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", b"slow PUT /hot/a 3"),
        (b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n", b"slow GET /other 0"),
        (b"GET /hot/a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", b"slow GET /hot/a 2"),
        (
            b"GET /hot/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nhi\r\n0\r\n\r\n",
            b"slow GET /hot/a 2",
        ),
        (b"GET /hot/a HTTP/1.0\r\nHost: x\r\n\r\n", b"slow GET /hot/a 0"),
    ],
)
async def test_requests_the_fast_path_does_not_take_are_answered_by_aiohttp(
    server: Server, request_bytes: bytes, expected: bytes
) -> None:
    reader, writer = await server.connect()
    writer.write(request_bytes)
    assert (await _read_response(reader))[2] == expected
    writer.close()


async def test_a_fast_answer_to_a_put_reads_past_its_body(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(b"PUT /put/a HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n" + b"x" * 20)
    status, headers, body = await _read_response(reader)
    assert (status, headers["x-via"], body) == (200, "fast", b"/put/a")
    writer.write(b"y" * 30)  # the rest of the body, then the next request
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(_get("/hot/after"))
    status, headers, body = await _read_response(reader)
    assert (status, headers["x-via"], body) == (200, "fast", b"/hot/after")
    writer.close()


async def test_a_put_with_a_larger_body_goes_to_aiohttp(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(b"PUT /put/a HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n" + b"x" * 101)
    assert (await _read_response(reader))[2] == b"slow PUT /put/a 101"
    writer.close()


def _put(path: str, body: bytes) -> bytes:
    return f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


async def test_a_body_route_answers_once_its_work_is_done(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(_put("/body/a", b"12345"))
    status, headers, body = await _read_response(reader)
    assert (status, headers["x-via"], body) == (201, "fast", b"/body/a 5")
    writer.write(_get("/hot/next"))  # the connection goes on on the fast path
    assert (await _read_response(reader))[1]["x-via"] == "fast"
    writer.close()


async def _put_being_worked_on(
    server: Server,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection whose PUT /body/a (body "x") is being worked on."""
    reader, writer = await server.connect()
    writer.write(_put("/body/a", b"x"))
    await writer.drain()
    await asyncio.sleep(0.01)
    return reader, writer


async def test_requests_sent_during_a_body_routes_work_are_answered_after_it(
    server: Server,
) -> None:
    reader, writer = await _put_being_worked_on(server)
    writer.write(_get("/hot/b") + _get("/hot/c"))
    bodies = [(await _read_response(reader))[2] for _ in range(3)]
    assert bodies == [b"/body/a 1", b"slow GET /hot/b 0", b"slow GET /hot/c 0"]
    writer.close()


async def test_a_client_that_stops_sending_after_its_put_still_gets_the_answer(
    server: Server,
) -> None:
    reader, writer = await server.connect()
    writer.write(_put("/body/a", b"xyz"))
    writer.write_eof()
    assert (await _read_response(reader))[2] == b"/body/a 3"
    assert await asyncio.wait_for(reader.read(), 5) == b""  # then the server closes
    writer.close()


async def test_much_sent_during_a_body_routes_work_is_all_answered_in_order(
    server: Server,
) -> None:
    reader, writer = await _put_being_worked_on(server)
    paths = [f"/hot/{i:05d}{'p' * 200}" for i in range(400)]  # ~90 KiB behind the PUT
    writer.write(b"".join(_get(p) for p in paths))
    assert (await _read_response(reader))[2] == b"/body/a 1"
    answers = [(await _read_response(reader))[2] for _ in paths]
    assert answers == [f"slow GET {p} 0".encode() for p in paths]
    writer.close()


async def test_work_outlasting_the_keepalive_is_answered_not_cut(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(_put("/body/slow", b"abc"))
    assert (await _read_response(reader))[2] == b"/body/slow 3"
    writer.close()


async def test_a_failing_body_route_answers_500_with_the_envelope(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(_put("/body/boom", b"x"))
    status, headers, body = await _read_response(reader)
    assert status == 500 and headers["content-type"] == "application/json"
    assert b'"status":"ko"' in body
    writer.write(_get("/hot/after"))  # and the connection goes on
    assert (await _read_response(reader))[2] == b"/hot/after"
    writer.close()


@pytest.mark.parametrize(
    "request_bytes, expected",
    [
        (_put("/body/cold", b"abc"), b"slow PUT /body/cold 3"),
        (_put("/body/big", b"x" * 101), b"slow PUT /body/big 101"),
        (_put("/body/part", b"abcdef")[:-2], None),
    ],
)
async def test_body_routes_leave_declined_large_and_partial_bodies_to_aiohttp(
    server: Server, request_bytes: bytes, expected: bytes | None
) -> None:
    reader, writer = await server.connect()
    writer.write(request_bytes)
    if expected is None:  # the rest of the body comes later
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"ef")
        expected = b"slow PUT /body/part 6"
    assert (await _read_response(reader))[2] == expected
    writer.close()


async def test_a_client_leaving_during_a_body_routes_work_harms_nothing(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(_put("/body/a", b"x"))
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.1)  # the work ends with no one to answer
    reader, writer = await server.connect()
    writer.write(_get("/hot/z"))
    assert (await _read_response(reader))[2] == b"/hot/z"
    writer.close()


async def test_work_whose_client_reset_the_connection_is_counted_all_the_same(
    server: Server,
) -> None:
    _, writer = await server.connect()
    linger_zero = struct.pack("ii", 1, 0)  # closing sends a reset
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_zero)
    writer.write(_put("/body/a", b"x"))
    await writer.drain()
    writer.transport.abort()
    registry = server.app[metrics.REGISTRY]
    labels = {"process": "test", "method": "PUT", "route": "/body/{name}", "status": "201"}
    deadline = time.monotonic() + 5
    while registry.get_sample_value("pulzar_requests_total", labels) != 1:
        assert time.monotonic() < deadline, "the work done for the client was not counted"
        await asyncio.sleep(0.02)


async def test_stopping_the_site_lets_a_body_routes_work_finish(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(_put("/body/a", b"xy"))
    await writer.drain()
    await asyncio.sleep(0.01)
    await asyncio.wait_for(server.site.stop(), 5)
    assert (await _read_response(reader))[2] == b"/body/a 2"
    writer.close()


async def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(_get("/hot/a") + _get("/hot/cold") + _get("/hot/c"))
    bodies = [(await _read_response(reader))[2] for _ in range(3)]
    assert bodies == [b"slow GET /hot/a 0", b"slow GET /hot/cold 0", b"slow GET /hot/c 0"]
    writer.close()


async def test_a_head_split_over_two_packets_is_still_answered(server: Server) -> None:
    reader, writer = await server.connect()
    data = _get("/hot/split")
    writer.write(data[:10])
    await writer.drain()
    await asyncio.sleep(0.05)  # let the first half arrive on its own
    writer.write(data[10:])
    assert (await _read_response(reader))[2] == b"slow GET /hot/split 0"
    writer.close()


async def test_an_idle_fast_connection_is_closed_after_the_keepalive(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(_get("/hot/a"))
    await _read_response(reader)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    writer.close()


async def test_stopping_the_site_closes_open_fast_connections(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(_get("/hot/a"))
    await _read_response(reader)
    await asyncio.wait_for(server.site.stop(), 5)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_a_malformed_request_is_judged_by_aiohttps_parser_and_answered_in_the_envelope(
    server: Server,
) -> None:
    reader, writer = await server.connect()
    writer.write(b"GARBAGE\r\n\r\n")
    status, headers, body = await _read_response(reader)
    assert status == 400 and headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["status"] == "ko" and answer["msg"].startswith("bad request: ")
    writer.close()


async def test_a_site_without_fast_routes_answers_malformed_requests_in_the_envelope(
    unused_tcp_port: int,
) -> None:
    app = web.Application(middlewares=[error_middleware])
    app.router.add_route("*", "/{tail:.*}", _slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = FastSite(runner, HOST, unused_tcp_port, None, keepalive=5, access_log=None)
    await site.start()
    try:
        reader, writer = await asyncio.open_connection(HOST, unused_tcp_port)
        writer.write(_get("/x"))
        assert (await _read_response(reader))[2] == b"slow GET /x 0"
        writer.write(b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n")
        status, _, body = await _read_response(reader)
        assert status == 400 and json.loads(body)["status"] == "ko"
        writer.close()
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "head",
    [
        b"GET /a HTTP/1.0\r\nHost: h\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: h\r\nX: 1\r\nX: 2\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: h\r\nX: 1\r\n folded\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: h\r\nBad Name: 1\r\n\r\n",
        b"GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: h\r\n",
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET a HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: h\r\nX: " + b"x" * 5000 + b"\r\n\r\n",
        # What aiohttp's parser refuses or reads otherwise than a plain split would:
        b"GET /a HTTP/1.1\r\n\r\n",  # no Host
        b"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n",  # a fragment, dropped from the path
        b"GET /a HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",  # a control character
        b"GET /a HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: h\nX-A: b\r\n\r\n",  # a bare LF
        b"GET /a HTTP/1.1\r\nHost: h\rX-A: b\r\n\r\n",  # a bare CR
        b"GET /a HTTP/1.1\r\nHost: h\r\nX(A): b\r\n\r\n",  # a name that is no token
        b"GET /a HTTP/1.1\r\nHost: h\r\n: b\r\n\r\n",  # no name
        b"GET /a HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n",  # read as UTF-8 by aiohttp
    ],
)
def test_parse_head_leaves_anything_unusual_to_aiohttp(head: bytes) -> None:
    assert parse_head(head) is None


def test_parse_head_reads_a_plain_get() -> None:
    head = b"GET /get_key/a?v=1&rid=x HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive\r\n"
    head += b"X-Tab:\ta\tb \r\nX-Empty:\r\n\r\n"
    assert parse_head(head) == (
        "GET",
        "/get_key/a",
        "v=1&rid=x",
        {
            "host": "h",
            "connection": "Keep-Alive",
            "x-tab": "a\tb",
            "x-empty": "",
        },
        0,
        0,
    )


def test_parse_head_counts_the_body_that_came_with_the_head() -> None:
    head = b"PUT /k HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc"
    parsed = parse_head(head)
    assert parsed is not None and (parsed.length, parsed.received) == (10, 3)
    assert parse_head(b"PUT /k HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nabc") is None
    assert parse_head(b"PUT /k HTTP/1.1\r\nHost: h\r\nContent-Length: -2\r\n\r\n") is None


async def test_a_fast_route_that_fails_leaves_the_request_to_aiohttp(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(_get("/hot/boom"))
    status, headers, body = await _read_response(reader)
    assert (status, body) == (200, b"slow GET /hot/boom 0") and "x-via" not in headers
    writer.close()


def test_a_query_naming_a_parameter_twice_or_needing_decoding_is_not_plain() -> None:
    assert plain_query("v=1&rid=a") == {"v": "1", "rid": "a"}
    assert plain_query("") == {}
    assert plain_query("v=1&&x") == {"v": "1", "": "", "x": ""}
    for query in ("v=1&v=2", "t=&t=x", "a&a", "k=%41", "k=a+b"):
        assert plain_query(query) is None
