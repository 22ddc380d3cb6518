"""Coalescing many small calls to one destination into few requests.

Under load a volume would make one HTTP request to the master per commit and one to each
replica per finalize: hundreds a second, each with its own header parsing, signature and
response on both sides. A `Coalescer` sends at most one request at a time per destination;
whatever arrives while it is on its way goes out together in the next one. Alone, a call is
sent at once (no waiting for company); under load, a request carries dozens.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from typing import Any, Generic, NamedTuple, TypeVar

import orjson

from pulzar.core.errors import BadRequest

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Sends a batch; returns one result (or exception) per item, in order. Raising fails every
#: item of the batch with that exception.
Send = Callable[[list[Item]], Awaitable[list["Result | BaseException"]]]


class Coalescer(Generic[Item, Result]):
    def __init__(
        self,
        send: Send[Item, Result],
        *,
        max_batch: int = 256,
        on_error: Callable[[Item, BaseException], None] | None = None,
    ) -> None:
        self._send = send
        self._max_batch = max_batch
        self._on_error = on_error
        self._queue: list[tuple[Item, asyncio.Future[Result] | None]] = []
        self._pump: asyncio.Task[None] | None = None

    async def call(self, item: Item) -> Result:
        """Send `item` with the next batch and return its own result (or raise its error)."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._add(item, future)
        return await future

    def post(self, item: Item) -> None:
        """Send `item` with the next batch, waiting for nothing: its result is dropped and
        its error goes to `on_error`."""
        self._add(item, None)

    def _add(self, item: Item, future: asyncio.Future[Result] | None) -> None:
        self._queue.append((item, future))
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                results: list[Result | BaseException]
                try:
                    results = await self._send([item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"{len(results)} results for {len(batch)} items")
                except asyncio.CancelledError:
                    for _, future in batch:
                        if future is not None:
                            future.cancel()
                    raise
                except Exception as exc:
                    results = [exc] * len(batch)
                for (item, future), result in zip(batch, results, strict=True):
                    if future is None:
                        if isinstance(result, BaseException) and self._on_error is not None:
                            self._on_error(item, result)
                    elif future.done():
                        continue
                    elif isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._pump = None
            # Cancelled (the process is stopping): nobody will send what is left.
            for _, future in self._queue:
                if future is not None:
                    future.cancel()
            self._queue.clear()


#: The largest batch of small replicas a volume takes (an HTTP body or a channel frame).
REPLICA_BATCH_MAX = 8 * 1024 * 1024
#: The most an entry adds to its value in a batch: its key, ticket, times and content type.
_ENTRY_OVERHEAD = 32 * 1024


def replicas_per_batch(inline_max: int) -> int:
    """How many small replicas (values of at most `inline_max` bytes) go in one batch: up to
    64, fewer when that many could not fit in `REPLICA_BATCH_MAX`."""
    return max(1, min(64, (REPLICA_BATCH_MAX - _ENTRY_OVERHEAD) // (inline_max + _ENTRY_OVERHEAD)))


class ReplicaEntry(NamedTuple):
    """A small value for a replica: its key, the signed write ticket, its times, its bytes."""

    key: str
    ticket: str
    modified: float
    expires: float | None
    content_type: str
    data: bytes


_HEAD = struct.Struct(">I")


def pack_replicas(entries: list[ReplicaEntry]) -> bytes:
    """The body of `POST /internal/replicas`: the length of a JSON list of the entries'
    metadata, that list, then their bytes one after the other."""
    head = orjson.dumps(
        [[e.key, e.ticket, e.modified, e.expires, e.content_type, len(e.data)] for e in entries]
    )
    return b"".join([_HEAD.pack(len(head)), head, *(e.data for e in entries)])


def unpack_replicas(body: bytes) -> list[ReplicaEntry]:
    """`pack_replicas` read back; a body that does not add up is a 400."""
    try:
        (length,) = _HEAD.unpack_from(body)
        head: Any = orjson.loads(body[_HEAD.size : _HEAD.size + length])
        if not isinstance(head, list):
            raise ValueError("the entries must be a list")
        offset = _HEAD.size + length
        entries = []
        for key, ticket, modified, expires, content_type, size in head:
            data = body[offset : offset + size]
            if len(data) != size or size < 0:
                raise ValueError("body shorter than its entries")
            offset += size
            entries.append(
                ReplicaEntry(
                    str(key),
                    str(ticket),
                    float(modified),
                    None if expires is None else float(expires),
                    str(content_type),
                    data,
                )
            )
    except (struct.error, orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise BadRequest(f"malformed replica batch: {exc}") from None
    if offset != len(body):
        raise BadRequest("malformed replica batch: bytes left over")
    return entries
