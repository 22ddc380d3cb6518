"""The async Python load generator (aiohttp on uvloop), for the end-to-end rows.

The same code drives Pulzar and nginx: N workers, each with one request in flight at a time,
following redirects as `curl -L` would, for a fixed duration after a short warm-up. Every
request's latency (redirect included) is recorded; a wrong status or body counts as an error.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import aiohttp

T = TypeVar("T")

#: One request: (session, worker number, request number of that worker) -> ok?
Request = Callable[[aiohttp.ClientSession, int, int], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on uvloop (as the servers do), else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


def new_session(connections: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=connections, force_close=False)
    # No cookie jar and no decompression: a load generator should spend its time on requests.
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=60),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


async def load(
    request: Request,
    *,
    concurrency: int,
    seconds: float,
    warmup: float = 1.0,
) -> LoadResult:
    """Run `request` from `concurrency` workers for `warmup` + `seconds`; measure the last
    `seconds` only."""
    latencies: list[float] = []
    errors = 0
    async with new_session(concurrency) as session:
        start = time.perf_counter()
        measure_from = start + warmup
        stop = measure_from + seconds

        async def worker(w: int) -> None:
            nonlocal errors
            i = 0
            while True:
                t0 = time.perf_counter()
                if t0 >= stop:
                    return
                try:
                    ok = await request(session, w, i)
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors += 1
                i += 1

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - measure_from
    latencies.sort()
    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        rps=len(latencies) / elapsed if elapsed > 0 else 0.0,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        errors=errors,
    )


async def sequential(request: Request, count: int, warmup: int = 50) -> LoadResult:
    """One client, one request at a time: `count` requests after `warmup` unmeasured ones."""
    latencies: list[float] = []
    errors = 0
    async with new_session(1) as session:
        for i in range(warmup):
            await request(session, 0, -1 - i)
        start = time.perf_counter()
        for i in range(count):
            t0 = time.perf_counter()
            ok = await request(session, 0, i)
            if ok:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1
        elapsed = time.perf_counter() - start
    latencies.sort()
    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        rps=len(latencies) / elapsed if elapsed > 0 else 0.0,
        p50_ms=statistics.median(latencies) * 1000 if latencies else float("nan"),
        p99_ms=_percentile(latencies, 0.99) * 1000,
        errors=errors,
    )


def get_checked(url_of: Callable[[int, int], str], size: int) -> Request:
    """GET `url_of(worker, n)`, following redirects; ok when 200 with `size` bytes."""

    async def request(session: aiohttp.ClientSession, w: int, i: int) -> bool:
        async with session.get(url_of(w, i)) as resp:
            body = await resp.read()
            return resp.status == 200 and len(body) == size

    return request


def put_checked(url_of: Callable[[int, int], str], body: bytes, expect: int) -> Request:
    """PUT `body` to `url_of(worker, n)`, following a 307 (the body is sent again there);
    ok when the final status is `expect`."""

    async def request(session: aiohttp.ClientSession, w: int, i: int) -> bool:
        async with session.put(url_of(w, i), data=body) as resp:
            await resp.read()
            return resp.status == expect

    return request
