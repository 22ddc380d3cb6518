"""Coalescing many small calls to one destination into few requests.

Under load a volume would make one HTTP request to the master per commit and one to each
replica per finalize: hundreds a second, each with its own header parsing, signature and
response on both sides. A `Coalescer` sends at most one request at a time per destination;
whatever arrives while it is on its way goes out together in the next one. Alone, a call is
sent at once (no waiting for company); under load, a request carries dozens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Sends a batch; returns one result (or exception) per item, in order. Raising fails every
#: item of the batch with that exception.
Send = Callable[[list[Item]], Awaitable[list["Result | BaseException"]]]


class Coalescer(Generic[Item, Result]):
    def __init__(self, send: Send[Item, Result], *, max_batch: int = 256) -> None:
        self._send = send
        self._max_batch = max_batch
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._pump: asyncio.Task[None] | None = None

    async def call(self, item: Item) -> Result:
        """Send `item` with the next batch and return its own result (or raise its error)."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._run())
        return await future

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
                        future.cancel()
                    raise
                except Exception as exc:
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._pump = None
            # Cancelled (the process is stopping): nobody will send what is left.
            for _, future in self._queue:
                future.cancel()
            self._queue.clear()
