"""Key-value workloads against a local cluster: sequential latency and 64-client throughput.

Each request goes through the master's 307 to a volume, as `curl -L` would.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

import aiohttp

VALUE = os.urandom(1024)


async def _put(session: aiohttp.ClientSession, url: str, key: str) -> None:
    async with session.put(f"{url}/add_key/{key}", data=VALUE) as resp:
        if resp.status != 201:
            raise RuntimeError(f"PUT {key}: {resp.status} {await resp.text()}")
        await resp.read()


async def _get(session: aiohttp.ClientSession, url: str, key: str) -> None:
    async with session.get(f"{url}/get_key/{key}") as resp:
        body = await resp.read()
        if resp.status != 200 or len(body) != len(VALUE):
            raise RuntimeError(f"GET {key}: {resp.status}")


async def sequential(url: str, n: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        put_times, get_times = [], []
        for i in range(n):
            t = time.perf_counter()
            await _put(session, url, f"seq/{i}")
            put_times.append(time.perf_counter() - t)
        for i in range(n):
            t = time.perf_counter()
            await _get(session, url, f"seq/{i}")
            get_times.append(time.perf_counter() - t)
    return {
        "PUT p50 ms": statistics.median(put_times) * 1000,
        "GET p50 ms": statistics.median(get_times) * 1000,
    }


async def concurrent(url: str, clients: int, seconds: float, op: str) -> float:
    connector = aiohttp.TCPConnector(limit=clients * 2)
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < stop:
            key = f"load/{w}/{i % 200}" if op == "GET" else f"load/{w}/{i}"
            await (_get if op == "GET" else _put)(session, url, key)
            done += 1
            i += 1

    async with aiohttp.ClientSession(connector=connector) as session:
        if op == "GET":  # make sure the keys read exist
            await asyncio.gather(*(
                _put(session, url, f"load/{w}/{i}") for w in range(clients) for i in range(200)
            ))
        start = time.perf_counter()
        stop = start + seconds
        done = 0
        await asyncio.gather(*(worker(w) for w in range(clients)))
        return done / (time.perf_counter() - start)


def run(url: str, quick: bool) -> list[dict[str, Any]]:
    seconds = 3.0 if quick else 10.0
    seq = asyncio.run(sequential(url, 300 if quick else 2000))
    put_rate = asyncio.run(concurrent(url, 64, seconds, "PUT"))
    get_rate = asyncio.run(concurrent(url, 64, seconds, "GET"))
    return [
        {"workload": "sequential PUT 1 KiB through the 307, p50", "value": seq["PUT p50 ms"],
         "unit": "ms"},
        {"workload": "sequential GET 1 KiB through the 307, p50", "value": seq["GET p50 ms"],
         "unit": "ms"},
        {"workload": "PUT 1 KiB durable, 64 clients", "value": put_rate, "unit": "req/s"},
        {"workload": "GET 1 KiB through the 307, 64 clients", "value": get_rate, "unit": "req/s"},
    ]
