"""A persistent counter that only grows: versions of keys, ids of jobs and schedules.

Numbers are handed out from memory. The store records a ceiling `block` ahead of the last
number handed out, so a restart (or a kill -9) starts above every number ever handed out,
without a write per number; it may skip up to `block` numbers, never reuse one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import lmdb

from pulzar.storage.groupcommit import GroupCommitter


class Sequence:
    def __init__(
        self,
        env: lmdb.Environment,
        writer: GroupCommitter,
        db: lmdb._Database,
        name: bytes,
        block: int,
    ) -> None:
        self._writer = writer
        self._db = db
        self._name = name
        self._block = block
        with env.begin(db=db) as txn:
            raw = txn.get(name)
        self._next = int(raw) if raw else 1
        self._ceiling = self._next
        self._lock = asyncio.Lock()

    def _record(self, ceiling: int) -> Callable[[lmdb.Transaction], None]:
        def op(txn: lmdb.Transaction) -> None:
            txn.put(self._name, str(ceiling).encode(), db=self._db)

        return op

    def reserve_sync(self) -> None:
        """Record the first ceiling (at start-up, from a thread without an event loop)."""
        ceiling = self._next + self._block
        self._writer.write_sync(self._record(ceiling))
        self._ceiling = ceiling

    def next_now(self) -> int | None:
        """The next number if it needs no write first (None: call `next`)."""
        if self._next >= self._ceiling:
            return None
        number = self._next
        self._next += 1
        return number

    async def next(self) -> int:
        """A number larger than any handed out before, across restarts."""
        while (number := self.next_now()) is None:
            async with self._lock:
                if self._next >= self._ceiling:
                    ceiling = self._next + self._block
                    await self._writer.write(self._record(ceiling))
                    self._ceiling = ceiling
        return number

    async def skip_past(self, number: int) -> None:
        """Make every number handed out from now on larger than `number`."""
        if number >= self._next:
            self._next = number + 1
            await self.next()
