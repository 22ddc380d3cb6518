"""An upload's temp file as it is being written, read by the replicas while the upload goes on.

A large value is copied to its replicas while it arrives, not after it has arrived: the
primary writes the body to its temp file in batches, and each replica's request body follows
the file (`UploadFeed.chunks`). A 1 GiB upload then takes about the time of one copy instead of
two in a row. The file is opened once, when the upload starts writing it, so its rename into
place does not disturb the readers; `close` is called once every reader is done.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

_CHUNK = 1024 * 1024


class UploadFeed:
    def __init__(self) -> None:
        self._fd: int | None = None
        self._size = 0
        self._done = False
        self._failed = False
        self._waiters: list[asyncio.Future[None]] = []

    # -- the writer's side (the upload) ----------------------------------------------------

    def start(self, path: Path) -> None:
        """The upload's temp file exists (nothing of it is readable yet)."""
        self._fd = os.open(path, os.O_RDONLY)

    def advance(self, size: int) -> None:
        """The first `size` bytes are in the file."""
        self._size = size
        self._wake()

    def finish(self) -> None:
        """All the bytes are in the file."""
        self._done = True
        self._wake()

    def fail(self) -> None:
        """The upload failed: the readers stop with an error (their copies are not stored)."""
        self._failed = True
        self._wake()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- a reader's side (a replica's request body) -----------------------------------------

    async def chunks(self) -> AsyncIterator[bytes]:
        offset = 0
        while True:
            if self._failed:
                raise OSError("the upload being copied failed")
            if offset < self._size:
                assert self._fd is not None
                count = min(self._size - offset, _CHUNK)
                chunk = await asyncio.to_thread(os.pread, self._fd, count, offset)
                if not chunk:
                    raise OSError("the upload's file is shorter than what was written")
                offset += len(chunk)
                yield chunk
            elif self._done:
                return
            else:
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
