"""Channels from a volume to the other volumes, for the small replicas of the write path.

A batch of small replicas (`pack_replicas`) goes over a WebSocket to the replica
(`GET /internal/peer`, signed like every internal call; `pulzar.jobs.channel` frames) instead of
an HTTP request each: a frame each way instead of a request with its headers, routing and
middlewares, which was a third of a sequential write's time on the replica's side. A channel is
opened the first time a peer is written to, and again after it drops, at most once per
`[timers] reconnect`; meanwhile (and whenever it is down) the batch goes over HTTP
(`POST /internal/replicas`), so a channel is only ever a shortcut.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from pulzar.core.errors import BadRequest
from pulzar.http.internal import signed_headers
from pulzar.jobs.channel import Channel, close_all

log = logging.getLogger(__name__)

PATH = "/internal/peer"


async def _no_requests(data: dict[str, Any]) -> Any:
    raise BadRequest("a volume takes no requests over the channel it opened")


class PeerLinks:
    def __init__(
        self,
        session: Callable[[], aiohttp.ClientSession],
        secret: str,
        retry_after: float,
    ) -> None:
        self._session = session
        self._secret = secret
        self._retry_after = retry_after
        self._links: dict[str, Channel] = {}
        #: Peers being connected to, and when the last attempt to each failed or ended.
        self._connecting: dict[str, asyncio.Task[None]] = {}
        self._last_try: dict[str, float] = {}

    def get(self, url: str) -> Channel | None:
        """The open channel to `url`, or None (and then one is opened in the background)."""
        link = self._links.get(url)
        if link is not None and not link.closed:
            return link
        if (
            url not in self._connecting
            and time.monotonic() - self._last_try.get(url, -self._retry_after) >= self._retry_after
        ):
            self._connecting[url] = asyncio.ensure_future(self._keep(url))
        return None

    async def _keep(self, url: str) -> None:
        try:
            headers = signed_headers(self._secret, "GET", PATH)
            async with self._session().ws_connect(
                url + PATH, headers=headers, max_msg_size=0, heartbeat=None
            ) as ws:
                link = self._links[url] = Channel(ws, _no_requests)
                del self._connecting[url]
                await link.serve()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.debug("channel to %s not up: %s", url, exc)
        except Exception:
            log.exception("channel to %s failed", url)
        finally:
            self._connecting.pop(url, None)
            self._links.pop(url, None)
            self._last_try[url] = time.monotonic()

    async def close(self) -> None:
        tasks = list(self._connecting.values())
        await close_all(self._links.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
