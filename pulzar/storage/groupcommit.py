"""Group commit: many writers, one LMDB transaction and one fsync per batch.

Write operations are callables `op(txn) -> result` queued to a single writer thread. The thread
takes whatever is queued, runs it all in one write transaction, commits (LMDB fsyncs on commit),
and only then resolves each caller's future. Under load, hundreds of concurrent PUTs share one
fsync; alone, a write costs one fsync as before.

An op must raise before it writes: a raising op has its exception delivered to its caller while
the rest of the batch commits. If the commit itself fails, every op of the batch gets the error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import lmdb

from pulzar.storage.lmdbenv import storage_error

T = TypeVar("T")
log = logging.getLogger(__name__)

_MAX_BATCH = 2048
# How long ops queued with `write_later` wait for a write that needs a commit, when they are
# alone: they ride along with it rather than cost an fsync of their own.
_LAZY_WAIT = 0.05
_STOP = object()

_Item = tuple[Callable[[lmdb.Transaction], Any], asyncio.AbstractEventLoop | None, Any]


class GroupCommitter:
    def __init__(
        self,
        env: lmdb.Environment,
        name: str,
        after_batch: Callable[[bool], None] | None = None,
        before_commit: Callable[[lmdb.Transaction], None] | None = None,
    ) -> None:
        """`before_commit` runs in each batch's transaction after its ops (what they changed
        in common is written once a batch; if it raises, the batch fails); `after_batch` runs
        in the writer thread after each batch (committed or failed), before any caller of that
        batch resumes, told whether the batch committed."""
        self._env = env
        self._after_batch = after_batch
        self._before_commit = before_commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"{name}-writer", daemon=True)
        self._closed = False
        self._thread.start()

    async def write(self, op: Callable[[lmdb.Transaction], T]) -> T:
        """Run `op` in the next batch; return once its batch is durable."""
        return await self.submit(op)

    def submit(self, op: Callable[[lmdb.Transaction], T]) -> asyncio.Future[T]:
        """`write` as a future, resolved once the batch is durable: a caller can do other
        work meanwhile without a task of its own."""
        if self._closed:
            raise RuntimeError("store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((op, loop, future))
        return future

    def write_later(self, op: Callable[[lmdb.Transaction], Any]) -> None:
        """Queue `op` without waiting for it (it rides along with the next batch)."""
        if not self._closed:
            self._queue.put((op, None, None))

    def write_sync(self, op: Callable[[lmdb.Transaction], T]) -> T:
        """Run `op` from a thread that has no event loop (start-up, tools); blocks until durable."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((op, None, future))
        return future.result()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[_Item] = [first]
            stop = self._drain(batch)
            if not stop and all(future is None for _, _, future in batch):
                # Only `write_later` ops: nobody waits for them, so they wait a little for a
                # write that somebody does wait for, and share its commit.
                try:
                    item = self._queue.get(timeout=_LAZY_WAIT)
                except queue.Empty:
                    pass
                else:
                    stop = item is _STOP
                    if not stop:
                        batch.append(item)
                        stop = self._drain(batch)
            self._commit(batch)
            if stop:
                return

    def _drain(self, batch: list[_Item]) -> bool:
        """Add what is queued to `batch` (up to `_MAX_BATCH`); True when `_STOP` came."""
        while len(batch) < _MAX_BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            batch.append(item)
        return False

    def _commit(self, batch: list[_Item]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        committed = False
        try:
            with self._env.begin(write=True) as txn:
                for op, _, _ in batch:
                    try:
                        outcomes.append((True, op(txn)))
                    except Exception as exc:
                        outcomes.append((False, exc))
                if self._before_commit is not None:
                    self._before_commit(txn)
            committed = True
        except BaseException as exc:
            log.error("write batch of %d failed: %s", len(batch), exc)
            error = storage_error(exc)
            outcomes = [(False, error)] * len(batch)
        if self._after_batch is not None:
            try:
                self._after_batch(committed)
            except Exception:
                log.exception("after-batch hook failed")
        self._deliver(batch, outcomes)

    @staticmethod
    def _deliver(batch: list[_Item], outcomes: list[tuple[bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, bool, Any]]] = {}
        for (_, loop, future), (ok, value) in zip(batch, outcomes, strict=True):
            if loop is None:
                if future is None:
                    if not ok:
                        log.warning("background write failed: %s", value)
                elif ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
                continue
            by_loop.setdefault(loop, []).append((future, ok, value))
        for loop, results in by_loop.items():
            # A closed loop raises RuntimeError: nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve_all, results)


def _resolve_all(results: list[tuple[Any, bool, Any]]) -> None:
    for future, ok, value in results:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
