"""The job channel: requests and answers both ways over one WebSocket, errors, and what waits
when the connection drops."""

import asyncio

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pulzar.jobs.channel import Channel, ChannelClosed, ChannelError


class Ends:
    """A server end and a client end of one channel."""

    def __init__(self):
        self.server_link = None
        self.server_seen = []
        self.client_seen = []
        self.connected = asyncio.Event()

    async def server_handle(self, data):
        self.server_seen.append(data)
        if data["kind"] == "boom":
            raise ValueError("no such thing")
        if data["kind"] == "slow":
            await asyncio.sleep(30)
        return {"echo": data.get("n")}

    async def client_handle(self, data):
        self.client_seen.append(data)
        return {"need_code": [], "count": len(data["jobs"])}

    async def endpoint(self, request):
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.server_link = Channel(ws, self.server_handle)
        self.connected.set()
        await self.server_link.serve()
        return ws


@pytest.fixture
async def ends():
    e = Ends()
    app = web.Application()
    app.router.add_get("/ch", e.endpoint)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(server.make_url("/ch"), max_msg_size=0)
    client = Channel(ws, e.client_handle)
    reader = asyncio.ensure_future(client.serve())
    await e.connected.wait()
    yield e, client, ws
    await ws.close()
    await reader
    await session.close()
    await server.close()


async def test_requests_get_their_answers_both_ways_even_concurrently(ends):
    e, client, _ = ends
    answers = await asyncio.gather(*(client.request("events", {"n": i}, 5) for i in range(20)))
    assert answers == [{"echo": i} for i in range(20)]
    assert await e.server_link.request("jobs", {"jobs": [1, 2, 3]}, 5) == {
        "need_code": [], "count": 3}
    assert e.client_seen == [{"kind": "jobs", "jobs": [1, 2, 3]}]


async def test_a_failing_handler_answers_with_an_error_and_the_channel_stays_up(ends):
    _, client, _ = ends
    with pytest.raises(ChannelError, match="no such thing"):
        await client.request("boom", {}, 5)
    assert await client.request("events", {"n": 7}, 5) == {"echo": 7}


async def test_large_messages_pass(ends):
    _, client, _ = ends
    big = "x" * (6 * 1024 * 1024)
    assert await client.request("events", {"n": big}, 10) == {"echo": big}


async def test_what_waits_fails_when_the_connection_drops_and_later_requests_fail_at_once(ends):
    _, client, ws = ends
    waiting = asyncio.ensure_future(client.request("slow", {}, 30))
    await asyncio.sleep(0.05)
    await ws.close()
    with pytest.raises(ChannelClosed):
        await waiting
    with pytest.raises(ChannelClosed):
        await client.request("events", {}, 5)


async def test_a_request_times_out_when_no_answer_comes(ends):
    _, client, _ = ends
    with pytest.raises(TimeoutError):
        await client.request("slow", {}, 0.1)


async def test_a_request_can_carry_bytes_beside_its_json(ends):
    e, client, _ = ends
    payload = bytes(range(256)) * 100 + b"\x00{"
    assert await client.request("echo", {"n": 7}, 5, payload=payload) == {"echo": 7}
    assert e.server_seen[-1]["payload"] == payload and e.server_seen[-1]["n"] == 7
    assert await client.request("echo", {"n": 8}, 5) == {"echo": 8}
    assert "payload" not in e.server_seen[-1]


async def test_a_message_that_is_not_an_object_is_ignored(ends):
    e, client, ws = ends
    await ws.send_bytes(b"[1, 2]")
    await ws.send_bytes(b"\x00\x00\x00\x00\x03[1]")
    assert await client.request("echo", {"n": 9}, 5) == {"echo": 9}
    assert [seen["n"] for seen in e.server_seen] == [9]
