"""A pool of worker processes that run extension calls off the master's event loop.

Each worker runs one call at a time. A call that outlives its timeout gets its worker killed
(with the worker's process group, so whatever it started dies too) and a fresh worker takes its
place; a worker that dies during a call is replaced the same way. Workers start on first use.
The blocking parts (starting, waiting on a pipe, killing) run in a small thread pool, never on
the event loop.

A worker is a fresh interpreter (`python -c ...`), not a fork: the master has threads (group
commit) and an open LMDB environment that a forked child must never inherit, and unlike
multiprocessing's `spawn` it does not re-import the master's `__main__`. The two talk over a
socket pair with `multiprocessing.connection` framing; the worker's stdout and stderr are the
master's, so what an extension prints lands in the master's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TypeVar

import pulzar
from pulzar.core.errors import GatewayTimeout, PulzarError, Unavailable
from pulzar.extensions.worker import Reply, Task

log = logging.getLogger(__name__)
T = TypeVar("T")

_BOOT = "import sys; from pulzar.extensions.worker import boot; boot(int(sys.argv[1]))"
# The directory holding this `pulzar` package, so the worker imports the same code.
_ROOT = str(Path(pulzar.__file__).resolve().parent.parent)


class WorkerDied(PulzarError):
    """The worker process ended in the middle of a call (a crash in native code, os._exit)."""


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
    return env


class Worker:
    """One worker process and the master's end of its socket. Blocking methods: call them
    from a thread."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=_worker_env(),
                # Its own process group: a timeout kills the worker and all it started, and
                # Ctrl-C in the master's terminal does not reach it (the master stops it).
                process_group=0,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self._gone = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def call(self, task: Task, timeout: float) -> Reply:
        """Send `task` and wait up to `timeout` seconds for its reply.

        Raises `TimeoutError` (the worker is then still busy: kill it) or `WorkerDied`.
        """
        try:
            self.conn.send(task)
            answered = self.conn.poll(timeout)
            reply = self.conn.recv() if answered else None
        except (EOFError, OSError) as exc:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(1.0)
            raise WorkerDied(
                f"the extension worker died during the call (exit code {self.process.returncode})"
            ) from exc
        if not answered:
            raise TimeoutError
        if not isinstance(reply, Reply):
            raise WorkerDied(f"the extension worker answered {type(reply).__name__}")
        return reply

    def kill(self) -> None:
        """Kill the worker and everything it started, and reap it (once)."""
        if self._gone:
            return
        self._gone = True
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5.0)
        self.conn.close()

    def stop(self, grace: float = 2.0) -> None:
        """Ask the worker to finish (it is idle), kill it if it does not."""
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(grace)
        self.kill()


class WorkerPool:
    """Up to `size` worker processes; `run(task)` waits for a free one, then for the reply."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: list[Worker] = []
        self._busy: set[Worker] = set()
        self._slots: asyncio.Semaphore | None = None
        # Room for every worker's call plus the kills and starts that free them.
        self._threads = ThreadPoolExecutor(
            max_workers=2 * size + 1, thread_name_prefix="pulzar-extensions"
        )
        self._closed = False
        self._housekeeping: set[asyncio.Future[None]] = set()
        #: How many workers were killed and replaced (timeouts, deaths): for tests and metrics.
        self.replaced = 0

    @property
    def workers(self) -> list[Worker]:
        return [*self._idle, *self._busy]

    async def run(self, task: Task, timeout: float) -> Reply:
        """Run `task` in a worker. Raises `GatewayTimeout` after `timeout` seconds of running,
        `Unavailable` when no worker frees up within `timeout`, `WorkerDied` on a crash."""
        if self._closed:
            raise Unavailable("the extension pool is shut down")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise Unavailable(
                f"all {self.size} extension workers stayed busy for {timeout:g} s"
            ) from None
        try:
            worker = self._idle.pop() if self._idle else await self._start()
            self._busy.add(worker)
            try:
                reply = await self._in_thread(worker.call, task, timeout)
            except TimeoutError:
                await self._replace(worker)
                raise GatewayTimeout(
                    f"extension {task.app_id} ran past its timeout of {timeout:g} s"
                ) from None
            except WorkerDied:
                await self._replace(worker)
                raise
            except BaseException:
                # The request was cancelled while the worker is still busy: the worker's
                # state is unknown, so it goes (in the background: the caller is gone).
                self._background(self._replace(worker))
                raise
            self._busy.discard(worker)
            if self._closed:
                self._stop_later(worker)
            else:
                self._idle.append(worker)
            return reply
        finally:
            self._slots.release()

    async def _in_thread(self, fn: Callable[..., T], *args: object) -> T:
        # Once the pool is closed its threads are gone: the loop's default executor finishes.
        executor = None if self._closed else self._threads
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    def _stop_later(self, worker: Worker) -> None:
        self._background(self._in_thread(worker.stop))

    def _background(self, work: Awaitable[None]) -> None:
        """Run `work` without waiting for it (kept referenced until done, failures logged)."""
        task = asyncio.ensure_future(work)
        self._housekeeping.add(task)
        task.add_done_callback(self._housekeeping.discard)
        task.add_done_callback(_log_failure)

    async def _start(self) -> Worker:
        started = asyncio.ensure_future(self._in_thread(Worker))
        try:
            return await asyncio.shield(started)
        except asyncio.CancelledError:
            # The process starts anyway: keep it for the next call.
            started.add_done_callback(self._adopt)
            raise

    def _adopt(self, started: asyncio.Future[Worker]) -> None:
        if started.cancelled() or started.exception() is not None:
            return
        worker = started.result()
        if self._closed:
            self._stop_later(worker)
        else:
            self._idle.append(worker)

    async def _replace(self, worker: Worker) -> None:
        """Kill `worker` and start a fresh one in its place (unless the pool is closing)."""
        self._busy.discard(worker)
        log.warning("replacing extension worker %s", worker.pid)
        await self._in_thread(worker.kill)
        self.replaced += 1
        if self._closed:
            return
        try:
            fresh = await self._in_thread(Worker)
        except Exception:
            # The next call starts one instead.
            log.exception("could not start an extension worker")
            return
        if self._closed:
            self._stop_later(fresh)
        else:
            self._idle.append(fresh)

    async def close(self) -> None:
        """Stop every worker; calls still running get their workers killed."""
        self._closed = True
        idle, self._idle = self._idle, []
        busy, self._busy = list(self._busy), set()
        jobs = [self._in_thread(w.stop) for w in idle] + [self._in_thread(w.kill) for w in busy]
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)
        if self._housekeeping:
            await asyncio.gather(*self._housekeeping, return_exceptions=True)
        self._threads.shutdown(wait=False)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("extension worker housekeeping failed", exc_info=task.exception())
