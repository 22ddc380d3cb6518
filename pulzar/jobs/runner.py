"""A volume's side of the job system: takes runs from the master, runs them in the worker
pool next to the data, and reports events back in batches.

`ctx.data_path` is the local file of the job's `pulzar_data` key when this volume holds it: the
value's own file for a large value, a temporary copy (removed after the run) for a small one
kept inline.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pulzar.jobs.pool import Event, WorkerPool
from pulzar.storage.values import ValueStore

log = logging.getLogger(__name__)

SendEvents = Callable[[list[Event]], Awaitable[None]]


class JobRunner:
    def __init__(self, size: int, store: ValueStore, send_events: SendEvents,
                 retry_after: float) -> None:
        self.size = size
        self.store = store
        self._send_events = send_events
        self._retry_after = retry_after
        self.pool = WorkerPool(size, self._on_event)
        self._code: dict[str, str] = {}
        self._events: list[Event] = []
        self._pending_events = asyncio.Event()
        self._scratch = store.root / "job-data"
        self._temp_files: dict[int, Path] = {}
        self._reporter: asyncio.Future[None] | None = None

    async def start(self) -> None:
        self._scratch.mkdir(exist_ok=True)
        for leftover in self._scratch.iterdir():
            leftover.unlink(missing_ok=True)
        await self.pool.start()
        self._reporter = asyncio.ensure_future(self._report())

    async def close(self) -> None:
        if self._reporter is not None:
            self._reporter.cancel()
        await self.pool.close()

    def stats(self) -> dict[str, Any]:
        return {
            "workers": self.size,
            "running_jobs": self.pool.running + self.pool.queued,
            "jobs": self.pool.job_ids(),
        }

    def accept(self, specs: list[dict[str, Any]]) -> list[str]:
        """Queue runs; return the code digests this volume lacks (those runs are not taken:
        the master sends them again with their code)."""
        missing: list[str] = []
        for spec in specs:
            digest = spec["code_hash"]
            if "code" in spec:
                self._code[digest] = spec["code"]
            elif digest not in self._code:
                missing.append(digest)
                continue
            spec["code"] = self._code[digest]
            spec["data_path"] = self._data_path(spec)
            self.pool.submit(spec)
        return sorted(set(missing))

    def cancel(self, job_id: int) -> bool:
        return self.pool.cancel(job_id)

    def _data_path(self, spec: dict[str, Any]) -> str | None:
        key = spec.get("data_key")
        if not key:
            return None
        stored = self.store.get(key)
        if stored is None:
            return None
        if stored.path is not None:
            return str(stored.path)
        assert stored.data is not None
        copy = self._scratch / f"{spec['id']}-{os.getpid()}"
        copy.write_bytes(stored.data)
        self._temp_files[spec["id"]] = copy
        return str(copy)

    def _on_event(self, event: Event) -> None:
        if event["type"] == "done":
            temp = self._temp_files.pop(event["id"], None)
            if temp is not None:
                temp.unlink(missing_ok=True)
        self._events.append(event)
        self._pending_events.set()

    async def _report(self) -> None:
        """Send events as they come; whatever arrives while a batch is in flight goes in the
        next one. Events wait (in order) while the master cannot be reached."""
        while True:
            await self._pending_events.wait()
            self._pending_events.clear()
            batch, self._events = self._events, []
            ended = {e["id"] for e in batch if e["type"] == "done"}
            if ended:  # a run that started and ended since the last batch: its "done" says all
                batch = [e for e in batch if e["type"] == "done" or e["id"] not in ended]
            try:
                await self._send_events(batch)
            except Exception as exc:
                log.info("job events not delivered yet (%s); retrying", exc)
                self._events = batch + self._events
                self._pending_events.set()
                await asyncio.sleep(self._retry_after)
