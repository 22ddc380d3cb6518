"""Extensions run in worker processes, off the master's event loop, with a timeout."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from extension_cluster import Master, MasterFactory, extensions_dir

from pulzar.extensions.base import ExtensionContext
from pulzar.extensions.runner import WorkerPool
from pulzar.extensions.worker import Task


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_call_past_its_timeout_is_504_its_worker_replaced_and_the_next_call_works(
    make_master: MasterFactory,
) -> None:
    master = await make_master(extensions={"timeout": 1.0, "workers": 1})
    status, _ = await master.call("/extension/example")  # start the only worker
    assert status == 200
    (old,) = master.extensions.pool.workers
    started = time.monotonic()
    status, body = await master.call("/extension/sleepy?seconds=60")
    elapsed = time.monotonic() - started
    assert status == 504, body
    assert body["status"] == "ko" and "timeout" in body["msg"]
    assert 1.0 <= elapsed < 10
    assert not alive(old.pid)
    assert master.extensions.pool.replaced == 1
    (fresh,) = master.extensions.pool.workers
    assert fresh.pid != old.pid and alive(fresh.pid)
    status, body = await master.call("/extension/sleepy?seconds=0.1")
    assert (status, body["data"]) == (200, {"slept": 0.1})


async def test_a_sleeping_extension_does_not_slow_down_get_key(master_volume: Master) -> None:
    master = master_volume
    await master.put_key("/hot/key", b"value")
    url = f"{master.url}/get_key/hot/key"
    slow = asyncio.ensure_future(master.call("/extension/sleepy?seconds=3"))
    await asyncio.sleep(0.3)  # the call is now running in its worker
    assert not slow.done()
    started = time.monotonic()
    for _ in range(50):
        async with master.http.get(url, allow_redirects=False) as resp:
            assert resp.status == 307
    elapsed = time.monotonic() - started
    assert not slow.done(), "the extension call finished early: the test proves nothing"
    # 50 answers of the master's redirect take milliseconds; blocked, they would take 3 s.
    assert elapsed < 1.0, f"50 GET /get_key took {elapsed:.2f} s beside a sleeping extension"
    status, body = await slow
    assert (status, body["data"]) == (200, {"slept": 3.0})


async def test_calls_run_in_parallel_up_to_the_number_of_workers(
    make_master: MasterFactory,
) -> None:
    master = await make_master(extensions={"workers": 2})
    started = time.monotonic()
    results = await asyncio.gather(
        master.call("/extension/sleepy?seconds=1"), master.call("/extension/sleepy?seconds=1")
    )
    assert [status for status, _ in results] == [200, 200]
    assert time.monotonic() - started < 1.9
    assert len(master.extensions.pool.workers) == 2


async def test_workers_stop_with_the_master(make_master: MasterFactory) -> None:
    master = await make_master()
    await master.call("/extension/example")
    pids = [w.pid for w in master.extensions.pool.workers]
    assert pids and all(alive(pid) for pid in pids)
    await master.close()
    assert not any(alive(pid) for pid in pids)


def task(path: Path, app_id: str, **params: str) -> Task:
    context = ExtensionContext(
        master_url="http://127.0.0.1:1",
        index_path="/nonexistent",
        map_size_gb=1,
        cluster_urls=(),
        allowed_hosts=(),
        token="",
        max_bytes=1024,
        timeout=30.0,
    )
    return Task(app_id, str(path), [], {k: [v] for k, v in params.items()}, None, context)


async def test_a_cancelled_call_gets_its_busy_worker_replaced(tmp_path: Path) -> None:
    sleepy = extensions_dir(tmp_path) / "sleepy.py"
    pool = WorkerPool(1)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pool.run(task(sleepy, "sleepy", seconds="30"), 30.0), 1.0)
        deadline = time.monotonic() + 10
        while pool.replaced == 0:
            assert time.monotonic() < deadline, "the busy worker was not replaced"
            await asyncio.sleep(0.05)
        reply = await pool.run(task(sleepy, "sleepy", seconds="0"), 30.0)
        assert reply.status == 200 and reply.body == b'{"slept":0.0}'
    finally:
        await pool.close()
    assert pool.workers == []
