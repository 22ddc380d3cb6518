"""A volume's pool of warm worker processes.

Workers are started once (from a fork server, so each is a clean process that has already
imported Pulzar) and run one job at a time. The pool queues what it cannot start yet, enforces
each run's timeout, and on cancel or timeout kills just that worker and starts a replacement;
a worker that dies on its own (`os._exit`, a crash) fails its job and is replaced the same way.

Events go to `on_event` as dicts: `{"id", "type": "started", "at"}` and
`{"id", "type": "done", "state": "ready"|"failed"|"cancelled", "result", "error", "log",
"started", "finished"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import orjson

from pulzar.jobs import worker

log = logging.getLogger(__name__)

Event = dict[str, Any]


class _Worker:
    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.spec: dict[str, Any] | None = None
        self.started: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        #: Code digests this worker has compiled: later runs of them go without their source.
        self.digests: set[str] = set()


class WorkerPool:
    def __init__(self, size: int, on_event: Callable[[Event], None]) -> None:
        self.size = size
        self._on_event = on_event
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["pulzar.jobs.worker"])
        self._workers: list[_Worker] = []
        self._queue: deque[dict[str, Any]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # -- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        workers = await asyncio.gather(
            *(asyncio.to_thread(self._spawn) for _ in range(self.size))
        )
        for w in workers:
            self._attach(w)

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(target=worker.main, args=(child,), daemon=True)
        process.start()
        child.close()
        return _Worker(process, parent)

    def _attach(self, w: _Worker) -> None:
        assert self._loop is not None
        self._workers.append(w)
        self._loop.add_reader(w.conn.fileno(), self._readable, w)
        # uvloop makes a watched descriptor non-blocking, but messages are read and written
        # whole: one larger than the pipe's buffer (a long log, a big result or parameters)
        # comes in pieces, and a non-blocking read or write of it fails half way.
        os.set_blocking(w.conn.fileno(), True)
        self._pump()

    def _detach(self, w: _Worker) -> None:
        assert self._loop is not None
        with contextlib.suppress(Exception):
            self._loop.remove_reader(w.conn.fileno())
        if w.timer is not None:
            w.timer.cancel()
        if w in self._workers:
            self._workers.remove(w)
        if w.process.is_alive():
            w.process.kill()
        w.process.join(timeout=1)
        w.conn.close()

    def _replace(self, w: _Worker) -> None:
        self._detach(w)
        if self._closed:
            return

        async def respawn() -> None:
            self._attach(await asyncio.to_thread(self._spawn))

        asyncio.ensure_future(respawn())  # noqa: RUF006 - the pool holds the new worker

    async def close(self) -> None:
        self._closed = True
        for w in list(self._workers):
            with contextlib.suppress(Exception):
                w.conn.send_bytes(orjson.dumps(["stop"]))
            self._detach(w)

    # -- work -----------------------------------------------------------------------------

    @property
    def running(self) -> int:
        return sum(1 for w in self._workers if w.spec is not None)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def job_ids(self) -> list[int]:
        return [w.spec["id"] for w in self._workers if w.spec] + [s["id"] for s in self._queue]

    def submit(self, spec: dict[str, Any]) -> None:
        self._queue.append(spec)
        self._pump()

    def cancel(self, job_id: int) -> bool:
        """Drop a queued run or kill a running one; False when this pool does not have it."""
        for spec in self._queue:
            if spec["id"] == job_id:
                self._queue.remove(spec)
                self._finish(job_id, "cancelled", error="cancelled before it started")
                return True
        for w in self._workers:
            if w.spec is not None and w.spec["id"] == job_id:
                self._end(w, "cancelled", "cancelled while running")
                return True
        return False

    def _pump(self) -> None:
        for w in self._workers:
            if not self._queue:
                return
            if w.spec is None:
                spec = self._queue.popleft()
                w.spec, w.started = spec, None
                digest = str(spec.get("code_hash"))
                message = spec
                if digest in w.digests:
                    message = {k: v for k, v in spec.items() if k != "code"}
                try:
                    w.conn.send_bytes(orjson.dumps(["run", message]))
                    w.digests.add(digest)
                except (OSError, ValueError) as exc:
                    self._queue.appendleft(spec)
                    w.spec = None
                    log.warning("worker %s unusable (%s); replacing it", w.process.pid, exc)
                    self._replace(w)
                    continue
                timeout = spec.get("timeout")
                if timeout and self._loop is not None:
                    w.timer = self._loop.call_later(
                        timeout, self._end, w, "failed", f"timed out after {timeout:g}s"
                    )

    def _readable(self, w: _Worker) -> None:
        try:
            message = orjson.loads(w.conn.recv_bytes())
        except (EOFError, OSError, orjson.JSONDecodeError):
            self._died(w)
            return
        if message[0] == "started":
            w.started = message[2]
            self._on_event({"id": message[1], "type": "started", "at": message[2]})
        elif message[0] == "done" and w.spec is not None:
            outcome = message[2]
            if w.timer is not None:
                w.timer.cancel()
                w.timer = None
            w.spec = None
            self._finish(
                message[1],
                "ready" if outcome["ok"] else "failed",
                result=outcome["result"],
                error=outcome["error"],
                log_text=outcome["log"],
                started=outcome["started"],
                finished=outcome["finished"],
            )
            self._pump()

    def _died(self, w: _Worker) -> None:
        spec = w.spec
        w.process.join(timeout=1)
        code = w.process.exitcode
        w.spec = None
        if spec is not None:
            self._finish(
                spec["id"], "failed", error=f"the worker process died (exit code {code})",
                started=w.started,
            )
        self._replace(w)

    def _end(self, w: _Worker, state: str, reason: str) -> None:
        """Kill `w` (its run is cancelled or out of time) and replace it."""
        spec, w.spec = w.spec, None
        if spec is not None:
            self._finish(spec["id"], state, error=reason, started=w.started)
        self._replace(w)

    def _finish(self, job_id: int, state: str, *, result: Any = None, error: str | None = None,
                log_text: str = "", started: float | None = None,
                finished: float | None = None) -> None:
        self._on_event({
            "id": job_id,
            "type": "done",
            "state": state,
            "result": result,
            "error": error,
            "log": log_text,
            "started": started,
            "finished": finished or time.time(),
        })
