"""The job channel: one WebSocket between the master and a volume for frequent messages: runs
to the volume, their events back to the master, and the volume's commits of written values
(`commits`, the same batches as `POST /internal/commits`).

Each side can send a request (`{"req": n, "kind": ..., ...}`) and await its answer
(`{"re": n, "data": ...}` or `{"re": n, "error": "..."}`): the same exchanges as the signed HTTP
calls `POST /internal/jobs` (volume) and `POST /internal/jobs/events` (master), which stay as
the fallback while no channel is up, without an HTTP request's cost (a frame each way instead of
a request with its headers, routing and middlewares): about half of a launch-to-start latency
was that one request.

A message is a JSON object, or, when a request carries bytes (`payload`), a zero byte, the
length of the JSON object (4 bytes, big-endian), the object and the bytes; the handler finds
them under `"payload"`. Volumes use the same channels between themselves for small replicas.

The volume opens the channel (signed, like its heartbeat) and says who it is in its first
message. When the connection drops, every request waiting on it fails, and the caller does what
it does when an HTTP call fails (the master requeues the runs, the volume sends the events
again): delivery stays at-least-once, and a repeated event is ignored by the master.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

log = logging.getLogger(__name__)

PATH = "/internal/jobs/channel"

#: Answers one request (`kind` and its fields); what it returns is the answer's `data`.
Handler = Callable[[dict[str, Any]], Awaitable[Any]]
WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


_LENGTH = struct.Struct(">I")


def _decode(raw: bytes) -> dict[str, Any]:
    if raw[:1] != b"\x00":
        data = orjson.loads(raw)
    else:
        (length,) = _LENGTH.unpack_from(raw, 1)
        start = 1 + _LENGTH.size
        data = orjson.loads(raw[start : start + length])
        if isinstance(data, dict):
            data["payload"] = raw[start + length :]
    if not isinstance(data, dict):
        raise TypeError("a message must be a JSON object")
    return data


class ChannelClosed(ConnectionError):
    """The channel went down before the answer came."""


class ChannelError(RuntimeError):
    """The other side answered with an error."""


class Channel:
    def __init__(self, ws: WebSocket, handle: Handler) -> None:
        self.ws = ws
        self._handle = handle
        self._next = 0
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    async def request(
        self, kind: str, body: dict[str, Any], timeout: float, payload: bytes | None = None
    ) -> Any:
        """Send a request (with `payload` bytes beside its JSON, if given) and return the
        answer's data (raises ChannelClosed, ChannelError, TimeoutError)."""
        if self.closed:
            raise ChannelClosed("the job channel is closed")
        self._next += 1
        number = self._next
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[number] = future
        message = orjson.dumps({**body, "req": number, "kind": kind})
        if payload is not None:
            message = b"".join((b"\x00", _LENGTH.pack(len(message)), message, payload))
        try:
            await self.ws.send_bytes(message)
            return await asyncio.wait_for(future, timeout)
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            if isinstance(exc, ChannelError):
                raise
            raise ChannelClosed(f"job channel: {exc}") from exc
        finally:
            self._waiting.pop(number, None)

    async def serve(self) -> None:
        """Read messages until the connection closes; then fail whatever still waits."""
        try:
            async for msg in self.ws:
                if msg.type is not aiohttp.WSMsgType.BINARY:
                    continue
                try:
                    data = _decode(msg.data)
                except (orjson.JSONDecodeError, struct.error, TypeError):
                    log.warning("job channel: a message that is not JSON; ignored")
                    continue
                if "re" in data:
                    future = self._waiting.get(data["re"])
                    if future is not None and not future.done():
                        if "error" in data:
                            future.set_exception(ChannelError(str(data["error"])))
                        else:
                            future.set_result(data.get("data"))
                    continue
                task = asyncio.ensure_future(self._answer(data))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            self.closed = True
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ChannelClosed("the job channel closed"))

    async def _answer(self, data: dict[str, Any]) -> None:
        number = data.pop("req", None)
        try:
            reply: dict[str, Any] = {"re": number, "data": await self._handle(data)}
        except Exception as exc:
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            reply = {"re": number, "error": message}
        if number is not None and not self.ws.closed:
            # If this fails, the other side sees its request fail with the connection.
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_bytes(orjson.dumps(reply))

    async def close(self) -> None:
        self.closed = True
        await self.ws.close()


async def close_all(links: Iterable[Channel]) -> None:
    """Close each channel, whatever the others do (at shutdown: an open channel would hold
    the server for its whole shutdown timeout)."""
    for link in list(links):
        with contextlib.suppress(Exception):
            await link.close()
