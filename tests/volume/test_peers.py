"""Channels between volumes: opened on first use, used while up, tried again only after the
reconnect time when a peer cannot be reached."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pulzar.http.internal import check_signed
from pulzar.jobs.channel import Channel
from pulzar.volume.peers import PATH, PeerLinks

SECRET = "s" * 32


async def _wait_for(links: PeerLinks, url: str) -> Channel:
    for _ in range(200):
        link = links.get(url)
        if link is not None:
            return link
        await asyncio.sleep(0.01)
    raise AssertionError("no channel came up")


@pytest.fixture
async def peer() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def endpoint(request: web.Request) -> web.WebSocketResponse:
        check_signed(request, SECRET)
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)

        async def handle(data: dict[str, Any]) -> Any:
            seen.append(data)
            return {"stored": [True]}

        await Channel(ws, handle).serve()
        return ws

    app = web.Application()
    app.router.add_get(PATH, endpoint)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), seen
    await server.close()


async def test_a_channel_opens_on_first_use_and_carries_requests(peer: Any) -> None:
    url, seen = peer
    async with aiohttp.ClientSession() as session:
        links = PeerLinks(lambda: session, SECRET, retry_after=0.1)
        assert links.get(url) is None  # opening in the background
        link = await _wait_for(links, url)
        answer = await link.request("replicas", {}, 5, payload=b"abc")
        assert answer == {"stored": [True]} and seen[0]["payload"] == b"abc"
        assert links.get(url) is link
        await links.close()
        assert link.closed


async def test_an_unreachable_peer_is_tried_again_only_after_the_reconnect_time(
    unused_tcp_port: int,
) -> None:
    url = f"http://127.0.0.1:{unused_tcp_port}"
    async with aiohttp.ClientSession() as session:
        links = PeerLinks(lambda: session, SECRET, retry_after=0.3)
        assert links.get(url) is None
        for _ in range(100):  # the first attempt fails
            await asyncio.sleep(0.01)
            if url not in links._connecting:
                break
        assert links.get(url) is None and url not in links._connecting  # not yet again
        await asyncio.sleep(0.35)
        assert links.get(url) is None and url in links._connecting  # tried again
        await links.close()
