"""The master's job service: launch, dispatch, follow, cancel, schedule, purge.

Jobs are pushed: a launched job is recorded (durably, before the launch is answered) and handed
at once to the least-loaded live volume with a free worker slot; a `pulzar_data` job goes to a
volume holding its key when one has a slot within `[jobs] data_wait` seconds. Volumes report
`started` and `done` events in batches; each `done` frees a slot, which dispatches the next job.

A job whose volume dies goes back to the queue (its attempt count kept): runs are
at-least-once, so jobs should be idempotent. A schedule fires once per due time: the firing and
the schedule's next due time are written in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pulzar.core.config import Config
from pulzar.core.errors import BadRequest, NotFound
from pulzar.jobs.catalog import Catalog, check_name
from pulzar.jobs.model import Job, JobState, Schedule
from pulzar.jobs.schedule import after_firing, due_now, first_due, parse_schedule
from pulzar.jobs.store import JobStore
from pulzar.master.nodes import Node, NodeRegistry
from pulzar.storage.index import Index

log = logging.getLogger(__name__)

RESERVED = ("scheduled", "pulzar_data", "pulzar_retries", "pulzar_timeout")
RECENT = 1000

#: Sends `specs` to the volume at `url`; returns the code digests it asked for (not accepted).
Send = Callable[[str, list[dict[str, Any]]], Awaitable[list[str]]]
#: Asks the volume at `url` to cancel the run `job_id`.
CancelRemote = Callable[[str, int], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Launch:
    """A parsed launch body: the job's own parameters and Pulzar's options."""

    params: dict[str, Any]
    schedule: dict[str, Any] | None
    data_key: str | None
    retries: int
    timeout: float | None


def parse_launch(body: Any) -> Launch:
    if not isinstance(body, dict):
        raise BadRequest("the body of a launch must be a JSON object of parameters")
    data_key = body.get("pulzar_data")
    if data_key is not None and not isinstance(data_key, str):
        raise BadRequest("pulzar_data must be a key (a string)")
    retries = body.get("pulzar_retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 100:
        raise BadRequest("pulzar_retries must be an integer between 0 and 100")
    timeout = body.get("pulzar_timeout")
    if timeout is not None and (
        not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0
    ):
        raise BadRequest("pulzar_timeout must be a positive number of seconds")
    schedule = body.get("scheduled")
    if schedule is not None:
        parse_schedule(schedule)  # validate now, with a clear message
    params = {k: v for k, v in body.items() if k not in RESERVED}
    return Launch(params, schedule, data_key, retries, None if timeout is None else float(timeout))


class JobService:
    def __init__(self, config: Config, store: JobStore, catalog: Catalog, nodes: NodeRegistry,
                 index: Index, send: Send, cancel_remote: CancelRemote) -> None:
        self.config = config
        self.store = store
        self.catalog = catalog
        self.nodes = nodes
        self.index = index
        self._send = send
        self._cancel_remote = cancel_remote
        self.active: dict[int, Job] = {}
        self.queue: deque[int] = deque()
        self.assigned: dict[str, set[int]] = {}
        self.code_sent: dict[str, set[str]] = {}
        self.recent: deque[Job] = deque(maxlen=RECENT)
        self.schedules: dict[int, Schedule] = {}
        #: Runs that ended and whose records are being written (the store still has the old).
        self.saving: dict[int, Job] = {}
        #: Node id -> moving average of how long its runs take, in seconds (for prefetch).
        self.run_time: dict[str, float] = {}
        #: Runs finished since start, by state (for /metrics).
        self.finished_counts: dict[str, int] = {}
        self.wake = asyncio.Event()
        self.schedules_changed = asyncio.Event()
        self._tasks: set[asyncio.Future[Any]] = set()

    # -- start-up -------------------------------------------------------------------------

    def load(self, now: float) -> None:
        """Pick up what the store holds: unfinished jobs are queued again (after a pause that
        lets the volumes reconnect and claim the runs they still have), schedules resume."""
        grace = now + self.config.timers.dead_after * 2
        for job in self.store.jobs(newest_first=False):
            if job.state.finished:
                self.recent.append(job)
            else:
                job.state, job.node, job.not_before = JobState.PENDING, None, grace
                self.active[job.id] = job
                self.queue.append(job.id)
        for schedule in self.store.schedules():
            self.schedules[schedule.id] = schedule

    # -- launching and cancelling ---------------------------------------------------------

    async def launch(self, name: str, body: Any, now: float) -> int:
        """Record a run (or a schedule) of job `name`; return its id."""
        name = check_name(name)
        launch = parse_launch(body)
        self.catalog.code(name)  # 404 for an unknown job, before anything is recorded
        job_id = await self.store.next_id()
        if launch.schedule is not None:
            spec = parse_schedule(launch.schedule)
            schedule = Schedule(
                id=job_id, name=name, params=launch.params, kind=spec.kind, every=spec.every,
                cron=spec.cron, interval=spec.interval, time_unit=spec.time_unit,
                repeat=spec.repeat, max_runs=spec.max_runs, created=now,
                start_at=spec.start_at, next_due=first_due(spec, now),
                data_key=launch.data_key, retries=launch.retries, timeout=launch.timeout,
            )
            await self.store.save_schedule(schedule)
            self.schedules[job_id] = schedule
            self.schedules_changed.set()
            return job_id
        job = Job(
            id=job_id, name=name, params=launch.params, created=now, data_key=launch.data_key,
            retries=launch.retries, timeout=launch.timeout,
        )
        self._enqueue(job)
        await self.store.save_jobs([job])
        return job_id

    async def import_records(self, jobs: list[Job], schedules: list[Schedule], now: float) -> None:
        """Load job and schedule records from a backup: written as they were (ids kept, and
        new ids start above them); unfinished runs are queued, active schedules resume."""
        await self.store.save_jobs(jobs)
        for schedule in schedules:
            await self.store.save_schedule(schedule)
            self.schedules[schedule.id] = schedule
        highest = max([j.id for j in jobs] + [s.id for s in schedules], default=0)
        await self.store.skip_ids_past(highest)
        for job in jobs:
            if job.state.finished:
                self.recent.append(job)
            else:
                job.state, job.node, job.not_before = JobState.PENDING, None, now
                self._enqueue(job)
        self.schedules_changed.set()

    def _enqueue(self, job: Job) -> None:
        self.active[job.id] = job
        self.queue.append(job.id)
        self.wake.set()

    async def cancel(self, job_id: int, now: float) -> str:
        """Cancel a schedule for good, or stop a pending or running run."""
        schedule = self.schedules.get(job_id)
        if schedule is not None:
            if schedule.cancelled:
                return "schedule already cancelled"
            schedule.cancelled, schedule.next_due = True, None
            await self.store.save_schedule(schedule)
            return "schedule cancelled"
        job = self.active.get(job_id)
        if job is None:
            stored = self.store.get_job(job_id)
            if stored is None:
                raise NotFound(f"no job or schedule with id {job_id}")
            return f"job already {stored.state.value}"
        node = job.node
        self._finish(job, JobState.CANCELLED, now, error="cancelled")
        await self.store.save_jobs([job])
        if node is not None:
            target = self.nodes.get(node)
            if target is not None:
                self._spawn(self._cancel_remote(target.url, job_id))
        return "job cancelled"

    # -- following runs -------------------------------------------------------------------

    async def on_events(self, node_id: str, events: list[dict[str, Any]], now: float) -> None:
        """Apply a volume's batch of `started` / `done` events."""
        changed: list[Job] = []
        for event in events:
            job = self.active.get(int(event["id"]))
            if job is None or job.node != node_id:
                continue  # cancelled meanwhile, or re-queued elsewhere
            if event["type"] == "started":
                job.state, job.started = JobState.RUNNING, float(event["at"])
                continue
            job.log = str(event.get("log") or "")
            job.started = event.get("started") or job.started
            self._ran(node_id, event)
            if event["state"] == "ready":
                job.result = event.get("result")
                self._finish(job, JobState.READY, float(event["finished"]))
            elif event["state"] == "cancelled":
                self._finish(job, JobState.CANCELLED, float(event["finished"]),
                             error=event.get("error"))
            elif job.attempts <= job.retries:
                self._retry(job, str(event.get("error")), now)
            else:
                self._finish(job, JobState.FAILED, float(event["finished"]),
                             error=event.get("error"))
            changed.append(job)
        if changed:
            for job in changed:  # readers see the outcome while its record is being written
                self.saving[job.id] = job
            try:
                await self.store.save_jobs(changed)
            finally:
                for job in changed:
                    if self.saving.get(job.id) is job:
                        del self.saving[job.id]

    def _release(self, job: Job) -> None:
        if job.node is not None:
            self.assigned.get(job.node, set()).discard(job.id)
            self.wake.set()

    def _finish(self, job: Job, state: JobState, when: float, error: str | None = None) -> None:
        self._release(job)
        job.state, job.finished, job.error = state, when, error
        self.finished_counts[state.value] = self.finished_counts.get(state.value, 0) + 1
        self.active.pop(job.id, None)
        self.recent.append(job)

    def _retry(self, job: Job, error: str, now: float) -> None:
        self._release(job)
        backoff = self.config.jobs.retry_backoff * 2 ** max(0, job.attempts - 1)
        log.info("job %d failed (%s); retry %d in %.1fs", job.id, error, job.attempts, backoff)
        job.state, job.node, job.error = JobState.PENDING, None, error
        job.not_before = now + backoff
        self.queue.append(job.id)

    def node_lost(self, node_id: str) -> list[int]:
        """Put the runs of a dead volume back in the queue (their attempt counts kept)."""
        lost = sorted(self.assigned.pop(node_id, set()))
        self.code_sent.pop(node_id, None)
        for job_id in lost:
            job = self.active.get(job_id)
            if job is not None:
                job.state, job.node, job.started = JobState.PENDING, None, None
                self.queue.appendleft(job_id)
        if lost:
            log.warning("requeued %d jobs of dead node %s", len(lost), node_id)
            self.wake.set()
        return lost

    def node_joined(self, node_id: str, running: list[int]) -> None:
        """A volume (re)connected: it has none of our code cached; runs it still has (after a
        master restart) are its own again."""
        self.code_sent[node_id] = set()
        for job_id in running:
            job = self.active.get(job_id)
            if job is not None and job.node is None:
                job.node, job.state = node_id, JobState.RUNNING
                self.assigned.setdefault(node_id, set()).add(job_id)
                if job_id in self.queue:
                    self.queue.remove(job_id)
        self.wake.set()

    def check_nodes(self) -> None:
        for node_id in list(self.assigned):
            node = self.nodes.get(node_id)
            if node is None or not node.alive:
                self.node_lost(node_id)

    # -- dispatch -------------------------------------------------------------------------

    def _free_slots(self, node: Node) -> int:
        """Runs `node` can take now: its free workers, plus what it may queue (prefetch)."""
        workers = node.beat.workers
        if workers <= 0:
            return 0
        return workers + self._prefetch(node.id, workers) - len(self.assigned.get(node.id, ()))

    def _prefetch(self, node_id: str, workers: int) -> int:
        """Runs a volume may hold queued: `[jobs] prefetch` at most, and no more than its workers
        get through in `[jobs] prefetch_seconds` at the duration of its recent runs (none
        before a run has ended there, none for long jobs)."""
        average = self.run_time.get(node_id)
        cap = self.config.jobs.prefetch
        if average is None or cap <= 0:
            return 0
        return min(cap, int(workers * self.config.jobs.prefetch_seconds / max(average, 1e-6)))

    def _ran(self, node_id: str, event: dict[str, Any]) -> None:
        """Follow how long runs take on a volume (a moving average), for prefetch."""
        started, finished = event.get("started"), event.get("finished")
        if started is None or finished is None:
            return
        took = max(0.0, float(finished) - float(started))
        average = self.run_time.get(node_id)
        self.run_time[node_id] = took if average is None else average + 0.2 * (took - average)

    def _place(self, job: Job, now: float) -> Node | None:
        """The node to run `job` now, or None to keep it waiting."""
        nodes = [n for n in self.nodes.live() if self._free_slots(n) > 0]
        if job.data_key:
            record = self.index.get(job.data_key, now)
            holders = [n for n in nodes if record is not None and n.id in record.nodes]
            if holders:
                return max(holders, key=self._free_slots)
            waited = now - job.created
            if record is not None and waited < self.config.jobs.data_wait:
                return None
        if not nodes:
            return None
        return min(nodes, key=lambda n: (-self._free_slots(n), n.beat.running_jobs, n.beat.load))

    async def dispatch(self, now: float) -> int:
        """Hand every queued job that can start now to a volume; return how many went."""
        batches: dict[str, list[Job]] = {}
        waiting: deque[int] = deque()
        free = sum(max(0, self._free_slots(n)) for n in self.nodes.live())
        while self.queue and free > 0:  # with every slot taken, the rest of the queue waits
            job_id = self.queue.popleft()
            job = self.active.get(job_id)
            if job is None or job.state is not JobState.PENDING or job.node is not None:
                continue
            node = self._place(job, now) if job.not_before <= now else None
            if node is None:
                waiting.append(job_id)
                continue
            job.node, job.attempts = node.id, job.attempts + 1
            self.assigned.setdefault(node.id, set()).add(job_id)
            batches.setdefault(node.id, []).append(job)
            free -= 1
        waiting.extend(self.queue)
        self.queue = waiting
        await asyncio.gather(*(self._send_batch(n, jobs) for n, jobs in batches.items()))
        return sum(len(j) for j in batches.values())

    def _spec(self, job: Job, node_id: str, with_code: bool) -> dict[str, Any]:
        code = self.catalog.code(job.name)
        spec = {
            "id": job.id,
            "name": job.name,
            "params": job.params,
            "code_hash": code.digest,
            "timeout": job.timeout or self.config.jobs.timeout,
            "attempt": job.attempts,
            "data_key": job.data_key,
            "master_url": self.config.master_url,
            "max_log": self.config.jobs.max_log,
        }
        sent = self.code_sent.setdefault(node_id, set())
        if with_code or code.digest not in sent:
            spec["code"] = code.source
            sent.add(code.digest)
        return spec

    async def _send_batch(self, node_id: str, jobs: list[Job]) -> None:
        node = self.nodes.get(node_id)
        specs = []
        for job in jobs:
            try:
                specs.append(self._spec(job, node_id, with_code=False))
            except NotFound as exc:  # the job file went away since the launch
                self._finish(job, JobState.FAILED, time.time(), error=exc.message)
                await self.store.save_jobs([job])
        if node is None or not specs:
            return
        try:
            missing = await self._send(node.url, specs)
            if missing:
                again = [self._spec(j, node_id, with_code=True) for j in jobs
                         if self._spec(j, node_id, with_code=False)["code_hash"] in missing]
                await self._send(node.url, again)
        except Exception as exc:
            log.warning("dispatch to %s failed (%s); requeueing %d jobs", node.url, exc, len(jobs))
            for job in jobs:
                if job.id in self.active and job.node == node_id:
                    self._release(job)
                    job.node, job.attempts = None, job.attempts - 1
                    self.queue.append(job.id)

    # -- schedules and housekeeping -------------------------------------------------------

    async def fire_due(self, now: float) -> list[Job]:
        """Fire every schedule that is due (once, for its latest due time). The firings are
        written together (one group commit, not one fsync after the other: many schedules due
        at the same time all start on time); each firing and its schedule's next due time go
        in one transaction, and a firing runs only once it is written."""
        firings = []
        for schedule in list(self.schedules.values()):
            due = due_now(schedule, now)
            if due is None:
                continue
            job = Job(
                id=await self.store.next_id(), name=schedule.name, params=dict(schedule.params),
                created=now, data_key=schedule.data_key, retries=schedule.retries,
                timeout=schedule.timeout, schedule_id=schedule.id, due=due,
            )
            before = (schedule.runs, schedule.last_job, schedule.next_due)
            schedule.runs += 1
            schedule.last_job = job.id
            schedule.next_due = after_firing(schedule, due)
            firings.append((schedule, job, before))
        outcomes = await asyncio.gather(
            *(self.store.save_schedule(schedule, fired=job) for schedule, job, _ in firings),
            return_exceptions=True,
        )
        fired = []
        for (schedule, job, before), outcome in zip(firings, outcomes, strict=True):
            if isinstance(outcome, BaseException):  # not written: it fires on a later look
                if not schedule.cancelled:
                    schedule.runs, schedule.last_job, schedule.next_due = before
                log.error("firing schedule %d failed: %s", schedule.id, outcome)
                continue
            self._enqueue(job)
            fired.append(job)
        return fired

    def next_due(self) -> float | None:
        dues = [s.next_due for s in self.schedules.values() if s.active and s.next_due]
        return min(dues, default=None)

    async def purge(self, now: float) -> int:
        """Delete finished job records older than `[general] retention_policy` days."""
        cutoff = now - self.config.general.retention_policy * 86400.0
        old = [
            j.id for j in self.store.jobs(newest_first=False)
            if j.state.finished and (j.finished or j.created) < cutoff
        ]
        if old:
            await self.store.delete_jobs(old)
            doomed = set(old)
            self.recent = deque((j for j in self.recent if j.id not in doomed), maxlen=RECENT)
        return len(old)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- views ----------------------------------------------------------------------------

    def job(self, job_id: int) -> Job:
        job = self.active.get(job_id) or self.saving.get(job_id) or self.store.get_job(job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id}")
        return job

    def node_names(self) -> dict[str, str]:
        return {n.id: n.name for n in self.nodes.all()}

    def board(self, limit: int = 100) -> dict[str, list[dict[str, Any]]]:
        """The /admin/jobs lists, newest first."""
        names = self.node_names()
        active = sorted(self.active.values(), key=lambda j: -j.id)
        finished: dict[JobState, list[Job]] = {s: [] for s in JobState if s.finished}
        for job in reversed(self.recent):
            bucket = finished[job.state]
            if len(bucket) < limit:
                bucket.append(job)
        pending = [j for j in active if j.state is JobState.PENDING][:limit]
        running = [j for j in active if j.state is JobState.RUNNING][:limit]
        return {
            "pendings": [j.summary(names) for j in pending],
            "running": [j.summary(names) for j in running],
            "ready": [j.summary(names) for j in finished[JobState.READY]],
            "failed": [j.summary(names) for j in finished[JobState.FAILED]],
            "cancelled": [j.summary(names) for j in finished[JobState.CANCELLED]],
            "scheduled": [s.summary() for s in self.schedules.values() if s.active],
        }
