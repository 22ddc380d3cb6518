"""The worker pool with real worker processes."""

import asyncio
import time

import pytest

from pulzar.jobs.pool import WorkerPool

CODE = '''
import os, time
def run(params, ctx):
    print("out", params.get("x"))
    ctx.log.info("log line")
    if params.get("sleep"):
        time.sleep(params["sleep"])
    if params.get("raise"):
        raise ValueError("bad input")
    if params.get("exit"):
        os._exit(7)
    if params.get("none"):
        return None
    if params.get("unjsonable"):
        return {1, 2}
    return {"x": params.get("x"), "pid": os.getpid()}
'''


class Harness:
    def __init__(self, size):
        self.events = []
        self.pool = WorkerPool(size, self.events.append)

    def submit(self, job_id, timeout=30, **params):
        self.pool.submit({"id": job_id, "name": "g/t", "code": CODE, "code_hash": "c1",
                          "params": params, "timeout": timeout})

    async def done(self, *ids, deadline=20.0):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            found = {e["id"]: e for e in self.events if e["type"] == "done"}
            if all(i in found for i in ids):
                return [found[i] for i in ids]
            await asyncio.sleep(0.01)
        raise AssertionError(f"runs {ids} did not end in {deadline}s: {self.events[-3:]}")


@pytest.fixture
async def pool():
    harness = Harness(2)
    await harness.pool.start()
    yield harness
    await harness.pool.close()


async def test_runs_return_results_and_capture_output_and_logs(pool):
    pool.submit(1, x=41)
    (event,) = await pool.done(1)
    assert event["state"] == "ready" and event["result"]["x"] == 41
    assert "out 41" in event["log"] and "log line" in event["log"]
    assert event["started"] <= event["finished"]


async def test_workers_are_warm_and_reused(pool):
    for i in range(20):
        pool.submit(i, x=i)
    events = await pool.done(*range(20))
    assert len({e["result"]["pid"] for e in events}) <= 2


async def test_a_raising_job_fails_with_its_traceback_in_the_log(pool):
    pool.submit(1, **{"raise": True})
    (event,) = await pool.done(1)
    assert event["state"] == "failed" and event["error"] == "ValueError: bad input"
    assert "Traceback" in event["log"]


async def test_a_job_returning_none_is_ready_with_a_null_result(pool):
    pool.submit(1, none=True)
    (event,) = await pool.done(1)
    assert (event["state"], event["result"]) == ("ready", None)


async def test_a_result_that_is_not_json_fails_the_run(pool):
    pool.submit(1, unjsonable=True)
    (event,) = await pool.done(1)
    assert event["state"] == "failed" and "JSON" in event["error"]


async def test_a_job_that_kills_its_process_fails_and_the_worker_is_replaced(pool):
    pool.submit(1, exit=True)
    (event,) = await pool.done(1)
    assert event["state"] == "failed" and "exit code 7" in event["error"]
    pool.submit(2, x=2)
    pool.submit(3, x=3)
    assert [e["state"] for e in await pool.done(2, 3)] == ["ready", "ready"]


async def test_a_hanging_job_is_killed_at_its_timeout(pool):
    pool.submit(1, timeout=0.3, sleep=30)
    pool.submit(2, x=2)
    hung, other = await pool.done(1, 2)
    assert hung["state"] == "failed" and "timed out" in hung["error"]
    assert other["state"] == "ready"


async def test_cancel_kills_only_that_run_and_the_pool_keeps_working(pool):
    pool.submit(1, sleep=60)
    pool.submit(2, sleep=0.5, x=2)
    while pool.pool.running < 2:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    assert pool.pool.cancel(1)
    (cancelled,) = await pool.done(1)
    assert cancelled["state"] == "cancelled" and time.monotonic() - started < 1
    (other,) = await pool.done(2)
    assert other["state"] == "ready"
    pool.submit(3, x=3)
    assert (await pool.done(3))[0]["state"] == "ready"
    assert not pool.pool.cancel(99)


def test_messages_larger_than_the_pipe_buffer_pass_both_ways_under_uvloop():
    # The servers run on uvloop, which makes the pipes it watches non-blocking: a spec, log or
    # result larger than a pipe's buffer comes in pieces.
    uvloop = pytest.importorskip("uvloop")

    async def scenario():
        harness = Harness(2)
        await harness.pool.start()
        try:
            big = "p" * 300_000
            for job_id in range(4):
                harness.submit(job_id, x=big)
            events = await harness.done(0, 1, 2, 3)
        finally:
            await harness.pool.close()
        return events

    for event in uvloop.run(scenario()):
        assert event["state"] == "ready", event["error"]
        assert event["result"]["x"] == "p" * 300_000 and len(event["log"]) > 60_000
