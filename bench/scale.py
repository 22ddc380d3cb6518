"""The master index at scale: the 307's latency at 10 k keys and at 10 M, size on disk, RSS.

Filling 10 M keys over HTTP would take hours, so the index is filled through the storage layer
(`Index.restore`, 100 k records a transaction) in a temp directory, keys in a scattered order
(as real keys arrive, so pages split as they would). Then a real `pulzar up` (master + two
volumes whose node ids the records name) is started on that directory and its master is asked
for `GET /get_key` by wrk: one connection for the latency p50, 64 for the throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console

from bench import wrk
from bench.cluster import Cluster, local_cluster
from bench.report import Row
from pulzar.storage.index import Index
from pulzar.storage.records import KeyRecord, ValueMeta

SMALL = 10_000
BATCH = 100_000
NODES = ("5ca1eb0000000001", "5ca1eb0000000002")
SAMPLE = 10_000
BYTES_PER_KEY = 250
LATENCY_RATIO = 1.2
#: Turns each index takes at being measured (see `measure`).
ROUNDS = 3


def key_of(i: int) -> str:
    """Keys in a random order (as real keys arrive): neighbours in time are far apart in the
    index, so pages split as they would. Keys start with `/`, as the key rules make them."""
    scatter = hashlib.blake2b(i.to_bytes(8, "little"), digest_size=4).hexdigest()
    return f"/files/{scatter}/{i}"


async def _fill(index: Index, start: int, stop: int) -> None:
    now = time.time()
    checksum = hashlib.sha256(b"pulzar").digest()
    for first in range(start, stop, BATCH):
        records = [
            KeyRecord(
                ValueMeta(key_of(i), i + 1, 1024, checksum, created=now, modified=now), NODES, 2
            )
            for i in range(first, min(stop, first + BATCH))
        ]
        await index.restore(records, {}, stop)


def fill(index_dir: Path, start: int, stop: int) -> tuple[float, int]:
    """Add keys `start` to `stop` to the index, then compact it; return the seconds it took
    and the file's size before compaction.

    Transactions of 100 k random keys copy most pages of the tree each, so the bulk-filled
    file holds about as many free pages as live ones; a master filled by its own (small)
    group commits does not. The compacted copy (LMDB's `mdb_copy -c`: the same pages, the
    free ones left out) stands for that index.
    """
    t0 = time.perf_counter()
    index = Index(index_dir, map_size_gb=64)
    try:
        asyncio.run(_fill(index, start, stop))
        bulk = (index_dir / "data.mdb").stat().st_size
        compact = index_dir.parent / "index.compact"
        compact.mkdir()
        index.env.copy(str(compact), compact=True)
    finally:
        index.close()
    os.replace(compact / "data.mdb", index_dir / "data.mdb")
    shutil.rmtree(compact)
    return time.perf_counter() - t0, bulk


def _master(cluster: Cluster) -> psutil.Process | None:
    for proc in cluster.processes():
        try:
            if "master" in proc.cmdline():
                return proc
        except psutil.Error:
            continue
    return None


def measure(
    sides: list[tuple[Path, int]],
    seconds: float,
    console: Console,
    env: dict[str, str] | None = None,
    rounds: int = 1,
) -> list[dict[str, Any]]:
    """Start a cluster on each directory of `sides` (with the number of keys it holds), then
    measure each master's 307 over a sample of its keys: one connection for the latency, 64
    for the throughput, the sides taking turns `rounds` times (the medians are kept), so that
    a busy minute of the machine does not fall on one side only."""
    with contextlib.ExitStack() as stack:
        clusters = [
            stack.enter_context(local_cluster(volumes=2, data_dir=root, env=env))
            for root, _ in sides
        ]
        masters = [_master(cluster) for cluster in clusters]
        samples = []
        for (_, keys), cluster in zip(sides, clusters, strict=True):
            rng = random.Random(keys)
            samples.append([f"/get_key{key_of(rng.randrange(keys))}" for _ in range(SAMPLE)])
            # Warm up (page cache, connections).
            wrk.run_wrk(cluster.url, samples[-1], seconds=2, connections=8)
        runs: list[list[tuple[wrk.WrkResult, wrk.WrkResult]]] = [[] for _ in sides]
        cpu = [0.0] * len(sides)
        took = [0.0] * len(sides)
        for _ in range(rounds):
            for i, cluster in enumerate(clusters):
                master = masters[i]
                assert master is not None
                cpu0, t0 = sum(master.cpu_times()[:2]), time.perf_counter()
                one = wrk.run_wrk(
                    cluster.url, samples[i], seconds=seconds / rounds, connections=1, threads=1
                )
                many = wrk.run_wrk(cluster.url, samples[i], seconds=seconds / rounds)
                cpu[i] += sum(master.cpu_times()[:2]) - cpu0
                took[i] += time.perf_counter() - t0
                runs[i].append((one, many))
        results = []
        for i, ((root, keys), cluster) in enumerate(zip(sides, clusters, strict=True)):
            master = masters[i]
            assert master is not None
            mem = master.memory_info()
            # (Generous timeouts: a master busy with a pass over the whole index answers late.)
            status = httpx.get(f"{cluster.url}/admin/status", timeout=60).json()["data"]
            health = httpx.get(f"{cluster.url}/health", timeout=60).json()["data"]
            ones, manys = [one for one, _ in runs[i]], [many for _, many in runs[i]]
            result = {
                "keys": keys,
                "p50_ms": statistics.median(r.p50_ms for r in ones),
                "p99_ms": statistics.median(r.p99_ms for r in ones),
                "p50_ms_rounds": [r.p50_ms for r in ones],
                "single_rps": statistics.median(r.rps for r in ones),
                "rps_64": statistics.median(r.rps for r in manys),
                "p50_64_ms": statistics.median(r.p50_ms for r in manys),
                "errors": sum(r.errors for r in ones + manys),
                "master_rss_mb": mem.rss / 1024**2,
                "master_anon_mb": (mem.rss - getattr(mem, "shared", 0)) / 1024**2,
                "master_cpu_busy": cpu[i] / took[i],
                "file_bytes": (root / "master" / "index" / "data.mdb").stat().st_size,
                "entries": status["entries"],
                "depth": status["depth"],
                "leaf_bytes": (status["leaf_pages"] + status["branch_pages"]) * status["psize"],
                "live_volumes_after": health["live_volumes"],
            }
            console.log(
                f"{keys:,} keys{' ' + str(env) if env else ''}: p50 {result['p50_ms']:.3f} ms "
                f"(1 conn, median of {rounds}), {result['rps_64']:,.0f} req/s (64 conn), "
                f"master RSS {result['master_rss_mb']:.0f} MB, "
                f"index {result['file_bytes'] / 1e6:,.0f} MB"
            )
            results.append(result)
    return results


def _directory(root: Path) -> Path:
    """A data directory for `pulzar up` whose two volumes have the node ids the records name."""
    for i, node in enumerate(NODES, 1):
        (root / f"volume-{i}").mkdir(parents=True)
        (root / f"volume-{i}" / "node_id").write_text(node + "\n")
    return root


def run(quick: bool, console: Console | None = None) -> tuple[list[Row], dict[str, Any]]:
    console = console or Console()
    big = 1_000_000 if quick else 10_000_000
    seconds = 2.0 if quick else 5.0
    root = Path(tempfile.mkdtemp(prefix="pulzar-bench-scale-"))
    try:
        need = big * 400
        free = shutil.disk_usage(root).free
        if free < need * 2:
            raise SystemExit(f"scale: needs ~{need * 2 / 1e9:.1f} GB free in {root.parent}")
        small_root = _directory(root / "small")
        large_root = _directory(root / "large")
        console.log(f"scale: filling {SMALL:,} keys through Index.restore (not HTTP)")
        fill(small_root / "master" / "index", 0, SMALL)
        shutil.copytree(small_root / "master", large_root / "master")
        console.log(
            f"scale: filling up to {big:,} keys through Index.restore (not HTTP: too slow), "
            f"{BATCH:,} a transaction"
        )
        fill_s, bulk_bytes = fill(large_root / "master" / "index", SMALL, big)
        console.log(f"scale: filled in {fill_s:.0f} s ({big / fill_s:,.0f} keys/s)")
        # Both indexes are served at once and asked in turns (see `measure`).
        small, large = measure(
            [(small_root, SMALL), (large_root, big)], seconds, console, rounds=ROUNDS
        )
        # The same, with the repair loop idle: its pass over every key (every 5 s by default)
        # is most of what a large index costs the master.
        (quiet,) = measure(
            [(large_root, big)], seconds, console, env={"PULZAR_TIMERS_REPAIR": "3600"}
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ratio = large["p50_ms"] / small["p50_ms"] if small["p50_ms"] else None
    per_key = large["file_bytes"] / big
    note = "index filled through Index.restore, not HTTP (too slow to fill in the time)"
    rows = [
        Row(
            workload=f"master's 307 p50 at {big / 1e6:.0f} M keys vs {SMALL // 1000} k "
            "(wrk, 1 connection)",
            pulzar=large["p50_ms"],
            reference=small["p50_ms"],
            ratio=ratio,
            unit="ms",
            target=f"≤ {LATENCY_RATIO}x the 10 k figure",
            met=ratio is not None and ratio <= LATENCY_RATIO and large["errors"] == 0,
            pulzar_detail=f"p99 {large['p99_ms']:.2f} ms; 64 conn {large['rps_64']:,.0f} req/s"
            + (f", {large['errors']} errors" if large["errors"] else "")
            + f"; repair loop idle: p50 {quiet['p50_ms']:.2f} ms "
            f"({quiet['p50_ms'] / small['p50_ms']:.2f}x), {quiet['rps_64']:,.0f} req/s",
            reference_detail=f"p99 {small['p99_ms']:.2f} ms; 64 conn {small['rps_64']:,.0f} req/s",
            note=note + "; reference column: the same master at 10 k keys",
            data={"small": small, "large": large, "fill_seconds": fill_s},
        ),
        Row(
            workload=f"index on disk per key at {big / 1e6:.0f} M keys",
            pulzar=per_key,
            unit="B/key",
            target=f"≤ {BYTES_PER_KEY} B/key",
            met=per_key <= BYTES_PER_KEY,
            pulzar_detail=f"file {large['file_bytes'] / 1e6:,.0f} MB, depth {large['depth']}; "
            f"as bulk-filled, before compaction: {bulk_bytes / big:.0f} B/key",
            note="data.mdb / keys; keys of ~24 bytes inserted in random order, 2 node ids "
            "each; compacted after the bulk fill (see bench/scale.py)",
        ),
        Row(
            workload=f"master RSS at {big / 1e6:.0f} M keys (after the load)",
            pulzar=large["master_rss_mb"],
            reference=small["master_rss_mb"],
            unit="MB",
            target="reported",
            met=None,
            pulzar_detail=f"{large['master_anon_mb']:.0f} MB not file-backed; "
            f"master CPU {large['master_cpu_busy']:.0%} of a core",
            reference_detail=f"at 10 k keys; {small['master_anon_mb']:.0f} MB not file-backed",
            note="RSS counts the index pages the master has read (LMDB is mapped)",
        ),
    ]
    extra = {
        "small": small,
        "large": large,
        "large_repair_idle": quiet,
        "fill_seconds": fill_s,
        "bulk_bytes": bulk_bytes,
    }
    return rows, {**extra, "keys": big}
