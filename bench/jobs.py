"""The jobs half of the benchmarks (DESIGN.md section 10): Pulzar's job system against Celery 5
and RQ, on the same machine in the same run, with the same no-op job and the same number of
worker processes (two).

- Pulzar: a master and one volume with `[jobs] workers = 2` (started here as separate
  processes, so that the scheduled workload can kill -9 and restart the master alone).
- Celery: one `celery worker --pool prefork --concurrency 2`, Redis broker and result backend.
- RQ: two `rq worker` processes (RQ's default worker, which forks a child per job).
- Redis: a private `redis-server` (Debian's) on a free 127.0.0.1 port, no persistence, its own
  temporary directory; started and stopped by the benchmark.

The no-op job returns `time.time()` taken when it starts (that is all it does).

Workloads:
1. throughput, launch to done: N jobs launched as fast as the client can (Pulzar over HTTP from
   an aiohttp generator with 64 requests in flight; Celery `apply_async` and RQ `enqueue` in a
   loop, as their users do), timed from just before the first launch to the last job's own
   finish time as the system records it (Pulzar's run record `finished`, Celery's `date_done`,
   RQ's `ended_at`). "All done" is observed by polling; the observed wall time is kept too.
2. launch-to-start latency: one job at a time, from just before the launch call to the job's
   own start timestamp (its return value); p50 and p99.
3. scheduled jobs (Pulzar only): a schedule every second for ~8 s, with the master killed
   (kill -9) and restarted half way; lateness = the run's `started` minus its `due`
   (`/admin/scheduled_jobs/{id}`), duplicates = runs minus distinct due times.

Every process started here is stopped by PID at the end (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import httpx
import psutil
from rich.console import Console
from rich.table import Table

from bench import loadgen
from bench.cluster import free_port_block
from bench.report import Row

WORKERS = 2
CONCURRENCY = 64
X = "\u00d7"  # the multiplication sign

PULZAR_JOB = '''"""Description: does nothing; returns the time it started
Category: bench
"""
import time


def run(params, ctx):
    return time.time()
'''

CELERY_APP = '''import os
import time

from celery import Celery

app = Celery("bench_celery", broker=os.environ["BENCH_REDIS"], backend=os.environ["BENCH_REDIS"])
app.conf.broker_connection_retry_on_startup = True


@app.task(name="noop")
def noop():
    return time.time()
'''

RQ_TASKS = '''import time


def noop():
    return time.time()
'''


class Settings:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.jobs = 1000 if quick else 5000
        #: RQ forks a process per job (~100/s): fewer jobs keep the run bounded.
        self.rq_jobs = 300 if quick else 1000
        self.warmup = 100 if quick else 200
        self.latency = 100 if quick else 300
        self.rq_latency = 50 if quick else 100
        #: Seconds a throughput run may take before it is called failed.
        self.deadline = 40.0 if quick else 120.0
        #: Seconds the scheduled workload runs (the master restart is half way).
        self.schedule_seconds = 7.0 if quick else 9.0


def available() -> bool:
    """Celery, RQ and redis-server are what the comparison needs."""
    return (
        shutil.which("redis-server") is not None
        and importlib.util.find_spec("celery") is not None
        and importlib.util.find_spec("rq") is not None
    )


def missing() -> str:
    parts = []
    if shutil.which("redis-server") is None:
        parts.append("redis-server (apt-get install redis-server)")
    for mod in ("celery", "rq"):
        if importlib.util.find_spec(mod) is None:
            parts.append(f"{mod} (pip install -e '.[bench]')")
    return ", ".join(parts)


# -- processes ----------------------------------------------------------------------------


@dataclass
class Proc:
    """A child process of the benchmark, stopped by PID (its own children too)."""

    name: str
    args: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with open(self.log, "ab") as log:
            self.popen = subprocess.Popen(
                self.args, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check(self) -> None:
        if not self.alive():
            tail = self.log.read_text(errors="replace").splitlines()[-20:]
            raise RuntimeError(f"{self.name} exited:\n" + "\n".join(tail))

    def _children(self) -> list[psutil.Process]:
        try:
            return list(psutil.Process(self.pid).children(recursive=True))
        except psutil.Error:
            return []

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
        if self.popen is None:
            return
        children = self._children()
        if self.alive():
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        for child in children:  # whatever it left behind, by PID
            with contextlib.suppress(psutil.Error):
                child.kill()
        self.popen = None

    def kill9(self) -> None:
        self.stop(timeout=10, sig=signal.SIGKILL)


def _wait(check: Callable[[], Any], timeout: float, what: str, procs: list[Proc]) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        for p in procs:
            p.check()
        with contextlib.suppress(Exception):
            result = check()
            if result:
                return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[tuple[str, int]]:
    port = free_port_block(1)
    (tmp / "redis").mkdir()
    proc = Proc(
        "redis-server",
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(tmp / "redis"), "--daemonize", "no"],
        dict(os.environ), tmp / "redis", tmp / "redis.log",
    ).start()
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        _wait(client.ping, 10, "redis-server", [proc])
        client.close()
        yield f"redis://127.0.0.1:{port}/0", proc.pid
    finally:
        proc.stop()


# -- measuring ----------------------------------------------------------------------------


@dataclass
class Throughput:
    jobs: int
    #: From just before the first launch to the last job's recorded finish.
    seconds: float
    #: From just before the first launch to when polling saw all done.
    observed_seconds: float
    #: Launch calls alone (the client's side).
    launch_seconds: float
    failed: int = 0
    error: str = ""
    #: CPU seconds used meanwhile by the system's processes (servers, workers, Redis) and by
    #: the client (this process): a figure that other load on the machine does not change much.
    server_cpu: float = float("nan")
    client_cpu: float = float("nan")

    @property
    def rate(self) -> float:
        if self.error or self.seconds <= 0:
            return float("nan")
        return self.jobs / self.seconds

    def detail(self) -> str:
        if self.error:
            return self.error
        return (f"{self.jobs} jobs in {self.seconds:.2f} s (all seen done at "
                f"{self.observed_seconds:.2f} s; launches took {self.launch_seconds:.2f} s); "
                f"CPU a job: {self.server_cpu / self.jobs * 1e6:.0f} us servers+workers, "
                f"{self.client_cpu / self.jobs * 1e6:.0f} us client")

    def to_json(self) -> dict[str, Any]:
        return {"jobs": self.jobs, "seconds": self.seconds, "rate": self.rate,
                "observed_seconds": self.observed_seconds,
                "launch_seconds": self.launch_seconds, "failed": self.failed,
                "error": self.error, "server_cpu_s": self.server_cpu,
                "client_cpu_s": self.client_cpu}


@dataclass
class Latency:
    samples: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def p50(self) -> float:
        return statistics.median(self.samples) * 1000 if self.samples else float("nan")

    @property
    def p99(self) -> float:
        if not self.samples:
            return float("nan")
        s = sorted(self.samples)
        return s[min(len(s) - 1, int(len(s) * 0.99))] * 1000

    def detail(self) -> str:
        if self.error:
            return self.error
        return f"p99 {self.p99:.2f} ms, n={len(self.samples)}"

    def to_json(self) -> dict[str, Any]:
        return {"p50_ms": self.p50, "p99_ms": self.p99, "n": len(self.samples),
                "error": self.error}


def _cpu(pids: list[int]) -> float:
    """CPU seconds of these processes and their descendants, the exited ones included."""
    total = 0.0
    seen: set[int] = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


def _measured(pids: list[int], run: Callable[[], Throughput]) -> Throughput:
    """`run()`, with the CPU its system (`pids`) and this process used meanwhile."""
    me = psutil.Process()
    server0, client0 = _cpu(pids), sum(me.cpu_times()[:2])
    result = run()
    result.server_cpu = _cpu(pids) - server0
    result.client_cpu = sum(me.cpu_times()[:2]) - client0
    return result


def _ts(text: str | None) -> float:
    """ISO-8601 (with Z or an offset; naive = UTC) -> epoch seconds."""
    if not text:
        return float("nan")
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


# -- Pulzar -------------------------------------------------------------------------------


@dataclass
class PulzarCluster:
    tmp: Path
    master: Proc
    volume: Proc
    url: str

    def procs(self) -> list[Proc]:
        return [self.master, self.volume]

    def wait_live(self, timeout: float = 30.0) -> None:
        def live() -> bool:
            data = httpx.get(f"{self.url}/health", timeout=1).json()["data"]
            return int(data["live_volumes"]) >= 1

        _wait(live, timeout, "the Pulzar volume to be live", self.procs())


@contextlib.contextmanager
def pulzar_cluster(tmp: Path) -> Iterator[PulzarCluster]:
    jobs_dir = tmp / "jobs"
    (jobs_dir / "bench").mkdir(parents=True)
    (jobs_dir / "bench" / "noop.py").write_text(PULZAR_JOB)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULZAR_")}
    env.update({
        "PULZAR_SERVER_ACCESS_LOG": "false",
        "PULZAR_CLUSTER_SECRET": secrets.token_hex(16),
        "PULZAR_JOBS_DIR": str(jobs_dir),
        "PULZAR_JOBS_WORKERS": str(WORKERS),
        # A volume finds a restarted master within 0.2 s (the default is 1 s).
        "PULZAR_TIMERS_RECONNECT": "0.2",
    })
    # PULZAR_BENCH_ENV="PULZAR_JOBS_PREFETCH=0 ..." tries other settings.
    extra = os.environ.get("PULZAR_BENCH_ENV", "").split()
    env.update(kv.partition("=")[::2] for kv in extra if "=" in kv)
    py = [sys.executable, "-m", "pulzar"]
    for attempt in range(3):  # a port taken meanwhile by someone else: try others
        port = free_port_block(2)
        url = f"http://127.0.0.1:{port}"
        master = Proc("pulzar master", [*py, "master", "--port", str(port), "--data",
                                        str(tmp / "master")], env, tmp, tmp / "master.log")
        volume = Proc("pulzar volume", [*py, "volume", "--master", url, "--port",
                                        str(port + 1), "--data", str(tmp / "volume"), "--name",
                                        "vol1"], env, tmp, tmp / "volume.log")
        cluster = PulzarCluster(tmp, master, volume, url)
        try:
            master.start()
            volume.start()
            cluster.wait_live()
            break
        except RuntimeError:
            volume.stop()
            master.stop()
            if attempt == 2:
                raise
            for data in ("master", "volume"):
                shutil.rmtree(tmp / data, ignore_errors=True)
    try:
        yield cluster
    finally:
        volume.stop()
        master.stop()


async def _pulzar_launch_many(url: str, n: int, session: aiohttp.ClientSession) -> list[int]:
    ids: list[int] = []
    counter = iter(range(n))

    async def worker() -> None:
        for _ in counter:
            async with session.post(f"{url}/launch_job/bench/noop", data=b"{}") as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"launch: {resp.status} {body[:200]!r}")
                ids.append(int(json.loads(body)["data"]["job_id"]))

    await asyncio.gather(*(worker() for _ in range(min(CONCURRENCY, n))))
    return ids


async def _pulzar_records(url: str, ids: set[int],
                          session: aiohttp.ClientSession) -> dict[int, dict[str, Any]]:
    """The run records of `ids` from /admin/all_jobs (newest first, a page at a time)."""
    found: dict[int, dict[str, Any]] = {}
    after: int | None = None
    low = min(ids)
    while len(found) < len(ids):
        query = f"?limit=10000{'' if after is None else f'&after={after}'}"
        async with session.get(f"{url}/admin/all_jobs{query}") as resp:
            page = (await resp.json())["data"]
        for record in page["jobs"]:
            if record["job_id"] in ids:
                found[record["job_id"]] = record
        after = page["next"]
        if after is None or after < low:
            break
    return found


async def _pulzar_throughput(url: str, n: int, deadline: float) -> Throughput:
    async with loadgen.new_session(CONCURRENCY) as session:
        t0 = time.time()
        ids = await _pulzar_launch_many(url, n, session)
        launched = time.time()
        limit = t0 + deadline
        while True:
            async with session.get(f"{url}/admin/jobs?limit=1") as resp:
                board = (await resp.json())["data"]
            if not board["pendings"] and not board["running"]:
                break
            if time.time() > limit:
                return Throughput(n, 0, 0, launched - t0, error=f"not done in {deadline:g} s")
            await asyncio.sleep(0.05)
        seen = time.time()
        # The board is the master's memory; a record's last write may still be committing.
        for _ in range(50):
            records = await _pulzar_records(url, set(ids), session)
            if len(records) == n and all(r["finished"] for r in records.values()):
                break
            await asyncio.sleep(0.1)
    finished = [_ts(r["finished"]) for r in records.values()]
    failed = sum(1 for r in records.values() if r["status"] != "ready")
    if len(records) < n or failed or any(f != f for f in finished):
        bad = [r for r in records.values() if r["status"] != "ready" or not r["finished"]][:3]
        return Throughput(n, 0, seen - t0, launched - t0, failed=failed,
                          error=f"{len(records)} records of {n}, {failed} not ready: {bad}")
    return Throughput(n, max(finished) - t0, seen - t0, launched - t0, failed=failed)


async def _pulzar_latency(url: str, count: int) -> Latency:
    out = Latency()
    async with loadgen.new_session(2) as session:
        for _ in range(count):
            t0 = time.time()
            async with session.post(f"{url}/launch_job/bench/noop", data=b"{}") as resp:
                job_id = int((await resp.json())["data"]["job_id"])
            await asyncio.sleep(0.003)
            for _ in range(5000):
                async with session.get(f"{url}/admin/jobs/{job_id}") as resp:
                    record = (await resp.json())["data"]
                if record["status"] == "ready":
                    out.samples.append(float(record["result"]) - t0)
                    break
                if record["status"] not in ("pending", "running"):
                    out.error = f"job {job_id} ended {record['status']}: {record['error']}"
                    return out
                await asyncio.sleep(0.002)
            else:
                out.error = f"job {job_id} did not end"
                return out
    return out


def pulzar_workloads(cluster: PulzarCluster, s: Settings,
                     log: Callable[[str], None]) -> dict[str, Any]:
    log(f"pulzar: warm-up ({s.warmup} jobs)")
    loadgen.run(_pulzar_throughput(cluster.url, s.warmup, s.deadline))
    log(f"pulzar: throughput, {s.jobs} no-op jobs, {CONCURRENCY} launches in flight")
    tp = _measured([cluster.master.pid, cluster.volume.pid],
                   lambda: loadgen.run(_pulzar_throughput(cluster.url, s.jobs, s.deadline)))
    log(f"pulzar: {tp.rate:,.0f} jobs/s; launch-to-start latency, {s.latency} jobs one by one")
    lat = loadgen.run(_pulzar_latency(cluster.url, s.latency))
    log(f"pulzar: p50 {lat.p50:.2f} ms")
    return {"throughput": tp, "latency": lat}


def _iso_to_epoch_map(runs: list[dict[str, Any]]) -> list[tuple[float, float]]:
    return [(_ts(r["due"]), _ts(r["started"])) for r in runs]


def pulzar_schedule(cluster: PulzarCluster, s: Settings,
                    log: Callable[[str], None]) -> dict[str, Any]:
    """Every second for `schedule_seconds`, kill -9 and restart the master half way."""
    http = httpx.Client(timeout=10)
    body = {"scheduled": {"interval": "seconds", "time_unit": 1}}
    began = time.time()
    answer = http.post(f"{cluster.url}/launch_job/bench/noop", json=body).json()
    schedule_id = int(answer["data"]["job_id"])
    log(f"pulzar: schedule {schedule_id} every second; master kill -9 and restart at "
        f"{s.schedule_seconds / 2:.1f} s")
    # Kill between two firings (half a second after one is due).
    first_due = _ts(http.get(f"{cluster.url}/admin/scheduled_jobs/{schedule_id}")
                    .json()["data"]["next_execution"])
    kill_at = first_due + int(s.schedule_seconds / 2) - 1 + 0.5
    time.sleep(max(0.0, kill_at - time.time()))
    down = time.time()
    cluster.master.kill9()
    cluster.master.start()
    cluster.wait_live()
    up = time.time()
    log(f"pulzar: master back with the volume live after {up - down:.2f} s")
    time.sleep(max(0.0, began + s.schedule_seconds - time.time()))
    http.post(f"{cluster.url}/cancel_job/{schedule_id}")
    time.sleep(1.2)  # the last run ends
    data = http.get(f"{cluster.url}/admin/scheduled_jobs/{schedule_id}").json()["data"]
    http.close()
    runs = data["runs"]
    pairs = _iso_to_epoch_map(runs)
    dues = [d for d, _ in pairs]
    # Runs due while the master was away (or the volume not yet back) start late by design.
    normal = [st - d for d, st in pairs if not (down - 0.001 <= d <= up + 0.2) and st == st]
    around = [st - d for d, st in pairs if down - 0.001 <= d <= up + 0.2 and st == st]
    expected = sorted({round(d) for d in dues})
    return {
        "schedule_id": schedule_id,
        "runs": len(runs),
        "distinct_due": len(set(dues)),
        "duplicates": len(dues) - len(set(dues)),
        "not_started": sum(1 for _, st in pairs if st != st),
        "late_ms": sorted(round(x * 1000, 1) for x in normal),
        "late_max_ms": max(normal) * 1000 if normal else float("nan"),
        "late_p50_ms": statistics.median(normal) * 1000 if normal else float("nan"),
        "around_restart_late_ms": [round(x * 1000, 1) for x in around],
        "downtime_s": round(up - down, 3),
        "seconds": round(time.time() - began, 1),
        "due_seconds": expected,
    }


# -- Celery -------------------------------------------------------------------------------


def _module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _redis_client(redis_url: str) -> Any:
    import redis

    return redis.Redis.from_url(redis_url)


def _celery_throughput(app: Any, task: Any, redis_url: str, n: int,
                       deadline: float) -> Throughput:
    client = _redis_client(redis_url)
    t0 = time.time()
    ids = [task.apply_async().id for _ in range(n)]
    launched = time.time()
    keys = [f"celery-task-meta-{i}".encode() for i in ids]
    done: dict[bytes, dict[str, Any]] = {}
    remaining = keys
    limit = t0 + deadline
    while remaining:
        values = client.mget(remaining)
        left = []
        for key, raw in zip(remaining, values, strict=True):
            if raw is None:
                left.append(key)
            else:
                done[key] = json.loads(raw)
        remaining = left
        if remaining:
            if time.time() > limit:
                return Throughput(n, 0, 0, launched - t0, error=f"not done in {deadline:g} s")
            time.sleep(0.05)
    seen = time.time()
    client.close()
    finished = [_ts(m["date_done"]) for m in done.values()]
    failed = sum(1 for m in done.values() if m["status"] != "SUCCESS")
    return Throughput(n, max(finished) - t0, seen - t0, launched - t0, failed=failed)


def _celery_latency(task: Any, count: int) -> Latency:
    out = Latency()
    for _ in range(count):
        t0 = time.time()
        result = task.apply_async()
        started = float(result.get(timeout=10))
        out.samples.append(started - t0)
        result.forget()
    return out


def celery_workloads(tmp: Path, redis_url: str, redis_pid: int, s: Settings,
                     log: Callable[[str], None]) -> dict[str, Any]:
    root = tmp / "celery"
    root.mkdir()
    (root / "bench_celery.py").write_text(CELERY_APP)
    env = dict(os.environ, BENCH_REDIS=redis_url, PYTHONPATH=str(root))
    worker = Proc(
        "celery worker",
        [sys.executable, "-m", "celery", "-A", "bench_celery", "worker", "--pool", "prefork",
         "--concurrency", str(WORKERS), "--loglevel", "WARNING", "--without-gossip",
         "--without-mingle", "--without-heartbeat"],
        env, root, tmp / "celery.log",
    ).start()
    os.environ["BENCH_REDIS"] = redis_url
    try:
        module = _module(root / "bench_celery.py", "bench_celery")
        app, task = module.app, module.noop
        _wait(lambda: task.apply_async().get(timeout=1) > 0, 60, "the Celery worker", [worker])
        log(f"celery: warm-up ({s.warmup} jobs)")
        _celery_throughput(app, task, redis_url, s.warmup, s.deadline)
        log(f"celery: throughput, {s.jobs} no-op jobs")
        tp = _measured([worker.pid, redis_pid],
                       lambda: _celery_throughput(app, task, redis_url, s.jobs, s.deadline))
        log(f"celery: {tp.rate:,.0f} jobs/s; launch-to-start latency, {s.latency} jobs")
        lat = _celery_latency(task, s.latency)
        log(f"celery: p50 {lat.p50:.2f} ms")
        app.close()
        return {"throughput": tp, "latency": lat}
    finally:
        worker.stop(timeout=20)
        os.environ.pop("BENCH_REDIS", None)


# -- RQ -----------------------------------------------------------------------------------


def _rq_throughput(queue: Any, redis_url: str, n: int, deadline: float) -> Throughput:
    from rq.job import Job

    client = _redis_client(redis_url)
    t0 = time.time()
    ids = [queue.enqueue("bench_rq.noop").id for _ in range(n)]
    launched = time.time()
    remaining = ids
    ended: dict[str, Any] = {}
    limit = t0 + deadline
    while remaining:
        left = []
        for job in Job.fetch_many(remaining, connection=client):
            if job is None:
                continue
            status = job.get_status(refresh=False)
            if status in ("finished", "failed"):
                ended[job.id] = job
            else:
                left.append(job.id)
        remaining = left
        if remaining:
            if time.time() > limit:
                return Throughput(n, 0, 0, launched - t0, error=f"not done in {deadline:g} s")
            time.sleep(0.1)
    seen = time.time()
    finished = []
    for job in ended.values():
        at = job.ended_at
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        finished.append(at.timestamp())
    failed = sum(1 for j in ended.values() if j.get_status(refresh=False) != "finished")
    client.close()
    return Throughput(n, max(finished) - t0, seen - t0, launched - t0, failed=failed)


def _rq_latency(queue: Any, count: int) -> Latency:
    out = Latency()
    for _ in range(count):
        t0 = time.time()
        job = queue.enqueue("bench_rq.noop")
        for _ in range(5000):
            status = job.get_status()
            if status == "finished":
                out.samples.append(float(job.return_value()) - t0)
                break
            if status == "failed":
                out.error = "an RQ job failed"
                return out
            time.sleep(0.002)
        else:
            out.error = "an RQ job did not end"
            return out
    return out


def rq_workloads(tmp: Path, redis_url: str, redis_pid: int, s: Settings,
                 log: Callable[[str], None]) -> dict[str, Any]:
    from rq import Queue

    root = tmp / "rq"
    root.mkdir()
    (root / "bench_rq.py").write_text(RQ_TASKS)
    env = dict(os.environ, PYTHONPATH=str(root))
    workers = [
        Proc(f"rq worker {i}",
             [sys.executable, "-m", "rq.cli", "worker", "--url", redis_url, "--quiet",
              "--name", f"bench-{i}-{secrets.token_hex(3)}", "bench"],
             env, root, tmp / f"rq{i}.log").start()
        for i in range(WORKERS)
    ]
    client = _redis_client(redis_url)
    queue = Queue("bench", connection=client)
    try:
        def ready() -> bool:
            job = queue.enqueue("bench_rq.noop")
            deadline = time.time() + 2
            while time.time() < deadline:
                if job.get_status() == "finished":
                    return True
                time.sleep(0.01)
            return False

        _wait(ready, 60, "the RQ workers", workers)
        log(f"rq: warm-up ({s.warmup} jobs)")
        _rq_throughput(queue, redis_url, s.warmup, s.deadline)
        log(f"rq: throughput, {s.rq_jobs} no-op jobs")
        tp = _measured([*(w.pid for w in workers), redis_pid],
                       lambda: _rq_throughput(queue, redis_url, s.rq_jobs, s.deadline))
        log(f"rq: {tp.rate:,.0f} jobs/s; launch-to-start latency, {s.rq_latency} jobs")
        lat = _rq_latency(queue, s.rq_latency)
        log(f"rq: p50 {lat.p50:.2f} ms")
        return {"throughput": tp, "latency": lat}
    finally:
        client.close()
        for w in workers:
            w.stop(timeout=20)


# -- the run ------------------------------------------------------------------------------


def _error(exc: Exception) -> str:
    """One line for the table: the exception and the last line of what it carries."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if len(lines) < 2 else f"{lines[0]} ... {lines[-1]}"
    return f"{type(exc).__name__}: {text}"[:200]


def _safe(name: str, fn: Callable[[], dict[str, Any]],
          log: Callable[[str], None]) -> dict[str, Any]:
    """Run one system's workloads; a failure becomes an error in the results, not a crash."""
    try:
        return fn()
    except Exception as exc:
        log(f"{name}: failed: {exc}")
        message = _error(exc)
        return {"throughput": Throughput(0, 0, 0, 0, error=message),
                "latency": Latency(error=message)}


def _ratio(ours: float, theirs: float) -> float | None:
    if ours != ours or theirs != theirs or not theirs:  # NaN: a side failed
        return None
    return ours / theirs


def _rows(pz: dict[str, Any], ce: dict[str, Any], rq: dict[str, Any],
          sched: dict[str, Any] | None) -> list[Row]:
    rows = []
    tp_p, tp_c, tp_r = pz["throughput"], ce["throughput"], rq["throughput"]
    ratio = _ratio(tp_p.rate, tp_c.rate)
    rows.append(Row(
        workload="no-op jobs, launch to done (throughput)",
        pulzar=tp_p.rate, unit="jobs/s",
        reference=tp_c.rate, ratio=ratio,
        target=f"≥ 2{X} Celery",
        met=ratio is not None and ratio == ratio and ratio >= 2.0 and tp_p.failed == 0,
        pulzar_detail=tp_p.detail(),
        reference_detail=f"Celery: {tp_c.detail()}; RQ: {tp_r.rate:,.0f} jobs/s, {tp_r.detail()}",
        note=f"{tp_p.jobs} jobs (RQ: {tp_r.jobs}), 2 worker processes each "
             "(Pulzar: 1 volume, jobs.workers=2; "
             f"Celery prefork {X}2; RQ 2 workers), Redis on 127.0.0.1",
        data={"pulzar": tp_p.to_json(), "celery": tp_c.to_json(), "rq": tp_r.to_json()},
    ))
    cpu = [t.server_cpu / t.jobs * 1e6 if t.jobs and not t.error else float("nan")
           for t in (tp_p, tp_c, tp_r)]
    rows.append(Row(
        workload="CPU a no-op job: servers + workers (+ Redis)",
        pulzar=cpu[0], unit="us", reference=cpu[1],
        ratio=_ratio(cpu[0], cpu[1]),
        target="- (for the record)", met=None,
        reference_detail=f"Celery; RQ: {cpu[2]:,.0f} us",
        note="CPU time of every process of the system during the throughput run / jobs; "
             "the client's is apart",
        data={"pulzar": {"cpu_us": cpu[0]}, "celery": {"cpu_us": cpu[1]},
              "rq": {"cpu_us": cpu[2]}},
    ))
    lp, lc, lr = pz["latency"], ce["latency"], rq["latency"]
    lat_ratio = _ratio(lp.p50, lc.p50)
    rows.append(Row(
        workload="job launch-to-start latency, p50 (one at a time)",
        pulzar=lp.p50, unit="ms",
        reference=lc.p50, ratio=lat_ratio,
        target="≤ 1 ms",
        met=lp.p50 == lp.p50 and lp.p50 <= 1.0 and not lp.error,
        pulzar_detail=lp.detail(),
        reference_detail=f"Celery: {lc.detail()}; RQ: p50 {lr.p50:.2f} ms, {lr.detail()}",
        note="from just before the launch call to the job's own time.time() at its start",
        data={"pulzar": lp.to_json(), "celery": lc.to_json(), "rq": lr.to_json()},
    ))
    if sched is not None:
        if "error" in sched:
            rows.append(Row(workload="scheduled jobs", pulzar=float("nan"), unit="ms",
                            target="≤ 100 ms late; 0 duplicates", met=False,
                            pulzar_detail=sched["error"], data=sched))
        else:
            late = sched["late_max_ms"]
            rows.append(Row(
                workload="scheduled jobs: every second, master kill -9 + restart half way",
                pulzar=late, unit="ms",
                target="fire ≤ 100 ms after due; 0 duplicates across the restart",
                met=late == late and late <= 100 and sched["duplicates"] == 0
                and sched["not_started"] == 0,
                pulzar_detail=(
                    f"max lateness (p50 {sched['late_p50_ms']:.1f} ms) over "
                    f"{len(sched['late_ms'])} runs; {sched['runs']} runs, "
                    f"{sched['distinct_due']} distinct due times, "
                    f"{sched['duplicates']} duplicates; master down "
                    f"{sched['downtime_s']:.2f} s, runs due then: "
                    f"{sched['around_restart_late_ms']} ms late"
                ),
                note="lateness = run's started minus its due (/admin/scheduled_jobs/{id})",
                data=sched,
            ))
    return rows


def _fmt(value: float, unit: str) -> str:
    if value != value:
        return "n/a"
    return f"{value:,.0f} {unit}" if unit in ("jobs/s", "us") else f"{value:.2f} {unit}"


def print_table(rows: list[Row], console: Console) -> None:
    """The jobs table with Celery and RQ in their own columns."""
    table = Table(title="Pulzar jobs vs Celery and RQ (same machine, same run)", show_lines=True)
    for name in ("workload", "Pulzar", "Celery", "RQ", "ratio (vs Celery)", "target", "met"):
        table.add_column(name, justify="left" if name in ("workload", "target") else "right")
    for row in rows:
        celery = rq = "-"
        if "celery" in row.data:
            key = {"jobs/s": "rate", "ms": "p50_ms", "us": "cpu_us"}[row.unit]
            celery = _fmt(row.data["celery"].get(key, float("nan")), row.unit)
            rq = _fmt(row.data["rq"].get(key, float("nan")), row.unit)
        ratio = "-" if row.ratio is None or row.ratio != row.ratio else f"{row.ratio:.2f}{X}"
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "-"}[row.met]
        table.add_row(row.workload, _fmt(row.pulzar, row.unit), celery, rq, ratio, row.target,
                      met)
    console.print(table)


def run(quick: bool, console: Console | None = None) -> tuple[list[Row], dict[str, Any]]:
    console = console or Console()
    s = Settings(quick)
    t_start = time.monotonic()

    def log(text: str) -> None:
        console.print(f"[dim]{time.monotonic() - t_start:6.1f}s[/dim] jobs: {text}")

    if not available():
        log(f"skipped: missing {missing()}")
        return [], {"jobs": f"skipped: missing {missing()}"}
    extra: dict[str, Any] = {"settings": vars(s), "workers": WORKERS,
                             "concurrency": CONCURRENCY}
    with tempfile.TemporaryDirectory(prefix="pulzar-bench-jobs-") as name:
        tmp = Path(name)
        with redis_server(tmp) as (redis_url, redis_pid):
            ce = _safe("celery", lambda: celery_workloads(tmp, redis_url, redis_pid, s, log),
                       log)
            rq = _safe("rq", lambda: rq_workloads(tmp, redis_url, redis_pid, s, log), log)
        sched: dict[str, Any] | None = None
        try:
            with pulzar_cluster(tmp) as cluster:
                extra["pids"] = {"master": cluster.master.pid, "volume": cluster.volume.pid}
                pz = _safe("pulzar", lambda: pulzar_workloads(cluster, s, log), log)
                try:
                    sched = pulzar_schedule(cluster, s, log)
                except Exception as exc:
                    sched = {"error": _error(exc)}
        except Exception as exc:
            log(f"pulzar: failed: {exc}")
            message = _error(exc)
            pz = {"throughput": Throughput(0, 0, 0, 0, error=message),
                  "latency": Latency(error=message)}
    rows = _rows(pz, ce, rq, sched)
    print_table(rows, console)
    extra["elapsed_s"] = round(time.monotonic() - t_start, 1)
    return rows, extra


def main() -> None:  # `python -m bench.jobs [--quick]`: this half alone, with its own table
    from bench import report

    quick = "--quick" in sys.argv
    rows, extra = run(quick, Console(width=max(Console().width, 180)))
    out = report.save("jobs", quick, rows, {"jobs": extra})
    print(f"saved {out}")


if __name__ == "__main__":
    main()
