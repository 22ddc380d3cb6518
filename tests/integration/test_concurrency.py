"""Many clients at once: 64 concurrent writers, with and without a master crash.

Clients do what `curl -X PUT -L -T` does: PUT to the master, then PUT the same body to the
volume named by the 307.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp
from yarl import URL

CLIENTS = 64


def value_for(key: str) -> bytes:
    """A distinct value per key (100..1100 bytes), so a mix-up between keys shows."""
    digest = hashlib.sha256(key.encode()).digest()
    return digest * (3 + digest[0] % 32) + key.encode()


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=CLIENTS),
        timeout=aiohttp.ClientTimeout(total=20),
    )


async def put(
    http: aiohttp.ClientSession, master: str, key: str, data: bytes
) -> tuple[int, int | None]:
    """PUT through the master's 307; the final status, and the version a 201 gives."""
    async with http.put(f"{master}/add_key{key}", data=data, allow_redirects=False) as first:
        await first.read()
        if first.status != 307:
            return first.status, None
        location = URL(first.headers["Location"], encoded=True)
    async with http.put(location, data=data) as second:
        body = await second.read()
        if second.status != 201:
            return second.status, None
        return 201, int(json.loads(body)["data"]["version"])


async def get(http: aiohttp.ClientSession, master: str, key: str) -> tuple[int, bytes]:
    async with http.get(f"{master}/get_key{key}") as response:
        return response.status, await response.read()


async def run_all(jobs: Iterable[Any], work: Callable[[Any], Awaitable[None]]) -> None:
    """Run `work(job)` for every job with CLIENTS workers."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty():
            await work(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(CLIENTS)))


async def read_back(master: str, expected: dict[str, bytes]) -> list[tuple[str, int]]:
    """Every key whose GET through the master is not exactly the expected bytes."""
    wrong: list[tuple[str, int]] = []

    async with session() as http:

        async def check(key: str) -> None:
            status, body = await get(http, master, key)
            if status != 200 or body != expected[key]:
                wrong.append((key, status))

        await run_all(list(expected), check)
    return wrong


async def test_64_clients_writing_10000_keys_and_one_shared_key_lose_nothing(cluster_factory):
    cluster = await asyncio.to_thread(cluster_factory, 2, loaded=True)
    master = cluster.master_url
    keys = (f"/many/{i // 100:03d}/{i:05d}" for i in range(10_000))
    distinct = {key: value_for(key) for key in keys}
    shared = [b"shared value %03d " % i + bytes([i % 256]) * (i * 7) for i in range(200)]
    jobs = [*distinct.items(), *(("/shared", v) for v in shared)]
    random.Random(2).shuffle(jobs)
    failures: list[tuple[str, int]] = []
    shared_versions: dict[int, bytes] = {}

    started = time.monotonic()
    async with session() as http:

        async def write(job: tuple[str, bytes]) -> None:
            key, data = job
            status, version = await put(http, master, key, data)
            if status != 201:
                failures.append((key, status))
            elif key == "/shared":
                assert version is not None and version not in shared_versions
                shared_versions[version] = data

        await run_all(jobs, write)
    took = time.monotonic() - started

    assert failures == [], f"{len(failures)} writes failed, e.g. {failures[:5]}"
    assert await read_back(master, distinct) == []
    # The shared key holds one of the written values: the one with the highest version.
    response = await asyncio.to_thread(cluster.get, "/shared")
    assert response.status_code == 200
    assert response.content in shared
    assert response.content == shared_versions[max(shared_versions)]
    assert (await asyncio.to_thread(cluster.stat, "/shared"))["version"] == max(shared_versions)
    listed = await asyncio.to_thread(
        cluster.http.get, cluster.url("list_keys", "/many/"), params={"limit": 10000}
    )
    assert len(listed.json()["data"]["keys"]) == 10_000
    print(f"{len(jobs)} writes by {CLIENTS} clients in {took:.1f} s ({len(jobs) / took:.0f}/s)")


async def test_every_write_acknowledged_before_a_master_kill_9_reads_back_after_restart(
    cluster_factory,
):
    cluster = await asyncio.to_thread(cluster_factory, 2, loaded=True)
    master = cluster.master_url
    acked: dict[str, bytes] = {}
    unacked: dict[str, bytes] = {}
    stop = asyncio.Event()
    phase = {"name": "before"}
    acked_in: dict[str, int] = {"before": 0, "outage": 0, "after": 0}

    async def writer(http: aiohttp.ClientSession, client: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            key = f"/crash/{client:02d}/{n:05d}"
            data = value_for(key)
            try:
                status, _ = await put(http, master, key, data)
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            if status == 201:
                acked[key] = data
                acked_in[phase["name"]] += 1
            else:
                unacked[key] = data
                await asyncio.sleep(0.02)

    async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.01)

    async with session() as http:
        writers = [asyncio.ensure_future(writer(http, c)) for c in range(CLIENTS)]
        try:
            await until(lambda: len(acked) >= 1500, 60, "1500 acknowledged writes")
            cluster.kill_master()  # kill -9, in the middle of the load
            phase["name"] = "outage"
            await asyncio.to_thread(cluster.restart_master)
            await asyncio.to_thread(cluster.wait_live, 2)
            phase["name"] = "after"
            await until(lambda: acked_in["after"] >= 500, 60, "500 writes after the restart")
        finally:
            stop.set()
            await asyncio.gather(*writers)

    assert acked_in["before"] >= 1500
    assert unacked, "no write failed: the master was not down while clients wrote"
    assert await read_back(master, acked) == []
    # A write that was not acknowledged either took place entirely or left no visible key.
    async with session() as http:
        for key, data in unacked.items():
            status, body = await get(http, master, key)
            if status == 404:
                assert b'"status":"ko"' in body
            else:
                assert (status, body) == (200, data), (key, status, body[:200])
    print(f"acknowledged {acked_in}, not acknowledged {len(unacked)}")
