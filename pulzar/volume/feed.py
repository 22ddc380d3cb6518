"""An upload's bytes handed to its replicas while it arrives, from memory.

A large value is copied to its replicas while it arrives, not after it has arrived: as the
primary hands each batch of the body to its temp file, it puts the same chunks in the feed, and
each replica's request body follows the feed (`UploadFeed.reader`). A 1 GiB upload then takes
about the time of one copy instead of two in a row, and the bytes go to a replica without being
read back from the file.

Memory stays bounded: the feed keeps a chunk until every reader has taken it, and the upload
waits (`room`) while more than `window` bytes are kept, so it goes at the pace of the slowest
replica (its write is not done before that replica's copy is anyway). A replica that takes
nothing for `patience` seconds (stopped, or its disk hung) is given up: its reader's `on_stuck`
runs (the copy's request is cancelled, and the copy counts as failed), and the upload goes on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable

#: The bytes the readers may lag behind the upload before it waits for them.
WINDOW = 8 * 1024 * 1024


class UploadFeed:
    def __init__(self, patience: float, window: int = WINDOW) -> None:
        self._patience = patience
        self._window = window
        #: Chunks not yet taken by every reader; `_first` is the index of the leftmost one
        #: among all the chunks of the upload.
        self._chunks: deque[bytes] = deque()
        self._first = 0
        self._kept = 0
        self._readers: list[FeedReader] = []
        self._done = False
        self._failed = False
        self._waiters: list[asyncio.Future[None]] = []

    # -- the upload's side -----------------------------------------------------------------

    def put(self, chunks: Iterable[bytes]) -> None:
        """The next bytes of the body (the ones being written to the temp file)."""
        for chunk in chunks:
            self._chunks.append(chunk)
            self._kept += len(chunk)
        self._trim()
        self._wake()

    async def room(self) -> None:
        """Wait while the readers lag more than the window behind (or until the feed fails).
        Readers at the rear that take nothing for `patience` (their request stuck, or not even
        sending yet: waiting for a connection) are given up."""
        while self._kept > self._window and not self._failed:
            rear = self._first
            try:
                async with asyncio.timeout(self._patience):
                    while self._kept > self._window and not self._failed and self._first == rear:
                        await self._wait()
            except TimeoutError:
                for reader in self._readers:
                    if reader.position == rear:
                        reader.stuck()

    def finish(self) -> None:
        """All the bytes are in."""
        self._done = True
        self._wake()

    def fail(self) -> None:
        """The upload failed: the readers stop with an error (their copies are not stored)."""
        self._failed = True
        self._chunks.clear()
        self._kept = 0
        self._wake()

    # -- the readers' side (a replica's request body each) ----------------------------------

    def reader(self) -> FeedReader:
        """A reader from the first byte; register them all before the first `put`."""
        reader = FeedReader(self, self._first)
        self._readers.append(reader)
        return reader

    async def _chunks_of(self, reader: FeedReader) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if self._failed:
                    raise OSError("the upload being copied failed")
                index = reader.position
                if index is None:
                    return
                if index < self._first + len(self._chunks):
                    chunk = self._chunks[index - self._first]
                    reader.position = index + 1
                    self._trim()
                    # The request comes back for the next chunk once this one is sent: if it
                    # does not within `patience`, the replica is taking nothing.
                    stuck = loop.call_later(self._patience, reader.stuck)
                    try:
                        yield chunk
                    finally:
                        stuck.cancel()
                elif self._done:
                    return
                else:
                    await self._wait()
        finally:
            self._leave(reader)

    def _leave(self, reader: FeedReader) -> None:
        if reader.position is not None:
            reader.position = None
            self._trim()

    def _trim(self) -> None:
        """Drop the chunks every reader has taken; wake the upload when it has room again."""
        live = [r.position for r in self._readers if r.position is not None]
        low = min(live, default=self._first + len(self._chunks))
        before = self._kept
        while self._first < low and self._chunks:
            self._kept -= len(self._chunks.popleft())
            self._first += 1
        if before > self._window >= self._kept:
            self._wake()

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class FeedReader:
    """One replica's way through the feed: `chunks` for its request body, `close` when its
    request is over, whatever its outcome (the feed then keeps nothing for it); `on_stuck`
    runs if the request stops taking chunks for the feed's `patience`."""

    def __init__(self, feed: UploadFeed, position: int) -> None:
        self._feed = feed
        #: The index of the next chunk to take; None once the reader has stopped.
        self.position: int | None = position
        self.on_stuck: Callable[[], object] | None = None

    def chunks(self) -> AsyncIterator[bytes]:
        return self._feed._chunks_of(self)

    def stuck(self) -> None:
        self.close()
        if self.on_stuck is not None:
            self.on_stuck()

    def close(self) -> None:
        self._feed._leave(self)
