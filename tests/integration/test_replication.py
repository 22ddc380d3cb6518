"""Replication, failure, repair, reconciliation and restore with real processes.

Figures (writes acknowledged and lost, read failures, repair time) are printed; run with -s
to see them.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from pulzar.client import Client
from pulzar.core.errors import PulzarError

from conftest import LOADED_TIMERS, Cluster, wait_until

REPAIR = {
    "PULZAR_TIMERS_REPAIR": "0.2",
    "PULZAR_TIMERS_REPAIR_AFTER": "0.5",
    "PULZAR_REPAIR_BANDWIDTH": "0",
}


def live_copies(cluster: Cluster, key: str) -> int:
    return sum(1 for r in cluster.stat(key)["replicas"] if r["state"] == "alive")


def all_at_copies(cluster: Cluster, keys: list[str], copies: int) -> bool:
    return all(live_copies(cluster, k) >= copies for k in keys)


def test_kill_of_a_volume_under_a_64_client_write_load_loses_no_acknowledged_write(
    cluster_factory: Any,
) -> None:
    cluster = cluster_factory(volumes=3, settings={**LOADED_TIMERS, **REPAIR})
    old = {f"/old/{i}": os.urandom(512) for i in range(200)}
    for key, value in old.items():
        assert cluster.put(key, value).status_code == 201
    acked: dict[str, bytes] = {}
    write_errors = read_failures = reads = 0
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w: int) -> None:
        nonlocal write_errors
        with httpx.Client(timeout=30, follow_redirects=True) as http:
            i = 0
            while not stop.is_set():
                key, value = f"/load/{w}/{i}", os.urandom(256)
                i += 1
                try:
                    answer = http.put(f"{cluster.master_url}/add_key{key}", content=value)
                except httpx.HTTPError:
                    answer = None
                with lock:
                    if answer is not None and answer.status_code == 201:
                        acked[key] = value
                    else:
                        write_errors += 1

    def reader() -> None:
        nonlocal read_failures, reads
        with Client(cluster.master_url, timeout=30) as client:
            while not stop.is_set():
                key = random.choice(list(old))
                try:
                    ok = client.get(key) == old[key]
                except PulzarError:
                    ok = False
                with lock:
                    reads += 1
                    read_failures += 0 if ok else 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(64)]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) > 300, timeout=30, what="writes to flow")
    killed = cluster.kill_volume(0)
    killed_at = time.monotonic()
    wait_until(lambda: len(acked) > 600 + 300, timeout=60, what="writes after the kill")
    stop.set()
    for t in threads:
        t.join()

    with Client(cluster.master_url) as client:
        lost = [k for k, v in acked.items() if client.get(k) != v]
    keys = list(acked) + list(old)
    wait_until(
        lambda: all_at_copies(cluster, keys, 2),
        timeout=90,
        interval=0.5,
        what="every key back at 2 live copies",
    )
    repair_seconds = time.monotonic() - killed_at
    print(
        f"\nkill -9 of {killed.name} under 64 writers: {len(acked)} writes acknowledged, "
        f"{len(lost)} lost, {write_errors} refused or failed; {reads} reads, "
        f"{read_failures} failed; every key at 2 live copies {repair_seconds:.1f}s after "
        "the kill"
    )
    assert lost == []
    assert read_failures == 0
    assert repair_seconds < 90


def _flip_byte(path: Path, needle: bytes) -> None:
    data = path.read_bytes()
    offset = data.index(needle) + len(needle) // 2
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(bytes([data[offset] ^ 0xFF]))


def _blob_file(volume_dir: Path, value: bytes) -> Path:
    for path in (volume_dir / "blobs").rglob("*"):
        if path.is_file() and path.stat().st_size == len(value) and path.read_bytes() == value:
            return path
    raise AssertionError("blob not found")


def test_flipped_bytes_are_never_served_and_the_copy_is_repaired(cluster_factory: Any) -> None:
    cluster = cluster_factory(
        volumes=2,
        settings={
            **REPAIR,
            "PULZAR_TIMERS_SCRUB": "0.2",
            "PULZAR_REPAIR_SCRUB_BANDWIDTH": "0",
        },
    )
    small = b"SMALL-" + os.urandom(16).hex().encode() * 8
    large = os.urandom(300_000)
    scrubbed = os.urandom(200_000)
    for key, value in (("/small", small), ("/large", large), ("/scrubbed", scrubbed)):
        assert cluster.put(key, value).status_code == 201
    volume = cluster.volumes[0]
    _flip_byte(volume.data / "index" / "data.mdb", small[20:60])
    large_file = _blob_file(volume.data, large)
    _flip_byte(large_file, large[1000:1040])
    scrubbed_file = _blob_file(volume.data, scrubbed)
    _flip_byte(scrubbed_file, scrubbed[5000:5040])

    with Client(cluster.master_url) as client:
        for _ in range(20):
            assert client.get("/small") == small
            assert client.get("/large") == large
    # The scrub finds the third one without any read; repair copies a good one back.
    wait_until(
        lambda: scrubbed_file.exists() and scrubbed_file.read_bytes() == scrubbed,
        timeout=30,
        what="the scrub to repair the flipped copy",
    )
    wait_until(
        lambda: large_file.exists() and large_file.read_bytes() == large,
        timeout=30,
        what="repair of the copy found corrupt on read",
    )
    wait_until(
        lambda: all_at_copies(cluster, ["/small", "/large", "/scrubbed"], 2),
        timeout=30,
        what="2 live copies of each",
    )
    direct = httpx.get(f"{volume.url}/get_key/small")
    assert direct.status_code == 200 and direct.content == small


def _restore_cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulzar", "restore", "--master", cluster.master_url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_wiped_index_is_rebuilt_from_volumes_with_versions_times_and_ttl(
    cluster_factory: Any,
) -> None:
    cluster = cluster_factory(volumes=2, settings=REPAIR)
    values = {f"/keep/{i}": os.urandom(100 + i) for i in range(30)}
    for key, value in values.items():
        query = "?temporal=3" if key.endswith("7") else ""
        assert cluster.put(key, value, query).status_code == 201
    assert cluster.put("/keep/big", os.urandom(200_000)).status_code == 201
    values["/keep/big"] = cluster.get("/keep/big").content
    before = {k: cluster.stat(k) for k in values}
    # A key deleted while volume 2 is down: volume 2 keeps a stale copy of it.
    assert cluster.put("/gone", b"deleted").status_code == 201
    cluster.volumes[1].proc.stop()
    assert cluster.http.delete(cluster.url("delete_key", "/gone")).status_code == 200
    cluster.master.stop()
    shutil.rmtree(cluster.root / "master" / "index")
    cluster.restart_master()
    cluster.restart_volume(1)
    cluster.wait_live(2)
    assert cluster.http.get(cluster.url("list_keys", "/")).json()["data"]["keys"] == []

    done = _restore_cli(cluster)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "rebuilding the index" in done.stdout or "index rebuilt" in done.stdout
    for key, value in values.items():
        after = cluster.stat(key)
        for field in ("version", "created", "modified", "expires", "etag", "size"):
            assert after[field] == before[key][field], (key, field)
        assert cluster.get(key).content == value
    assert cluster.get("/gone").status_code == 404
    # New writes get versions above every restored one.
    assert cluster.put("/new", b"x").json()["data"]["version"] > max(
        s["version"] for s in before.values()
    )


def test_backup_then_restore_into_a_new_cluster_gives_identical_values(
    cluster_factory: Any, tmp_path: Path
) -> None:
    jobs_dir = tmp_path / "jobs"
    (jobs_dir / "t").mkdir(parents=True)
    (jobs_dir / "t" / "noop.py").write_text("def run(params, ctx):\n    return params\n")
    settings = {"PULZAR_JOBS_DIR": str(jobs_dir)}
    source = cluster_factory(volumes=2, settings=settings)
    launched = source.http.post(source.url("launch_job", "/t/noop"), json={"a": 1}).json()
    schedule = source.http.post(
        source.url("launch_job", "/t/noop"),
        json={"scheduled": {"interval": "hours", "time_unit": 6}},
    ).json()
    values = {f"/b/{i}": os.urandom(random.randint(0, 150_000)) for i in range(25)}
    for key, value in values.items():
        assert source.put(key, value, "?temporal=5" if key.endswith("3") else "").status_code == 201
    dest = tmp_path / "backup"
    done = subprocess.run(
        [sys.executable, "-m", "pulzar", "backup", str(dest), "--master", source.master_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    target = cluster_factory(volumes=2, settings=settings)
    done = _restore_cli(target, "--from", str(dest))
    assert done.returncode == 0, done.stderr
    run_id, schedule_id = launched["data"]["job_id"], schedule["data"]["job_id"]
    restored_run = target.http.get(target.url("admin/jobs", f"/{run_id}")).json()["data"]
    assert restored_run["job_name"] == "t/noop" and restored_run["params"] == {"a": 1}
    schedules = target.http.get(target.url("admin/scheduled_jobs")).json()["data"]
    assert [s["job_id"] for s in schedules] == [schedule_id]
    for key, value in values.items():
        got = target.get(key).content
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(value).hexdigest()
        a, b = source.stat(key), target.stat(key)
        assert (a["version"], a["created"], a["expires"]) == (
            b["version"],
            b["created"],
            b["expires"],
        )
    # A damaged backup is refused and changes nothing.
    victim = next((dest / "values").rglob("*-*"))
    victim.write_bytes(b"garbage")
    empty = cluster_factory(volumes=1)
    done = _restore_cli(empty, "--from", str(dest))
    assert done.returncode != 0 and "damaged" in done.stderr
    assert empty.http.get(empty.url("list_keys", "/")).json()["data"]["keys"] == []


def test_a_volume_back_from_the_dead_drops_what_was_deleted_or_overwritten(
    cluster_factory: Any,
) -> None:
    cluster = cluster_factory(volumes=2, settings={"PULZAR_TIMERS_REPAIR_AFTER": "600"})
    for key in ("/stays", "/deleted", "/overwritten"):
        assert cluster.put(key, b"first").status_code == 201
    cluster.kill_volume(1)
    cluster.wait_live(1)
    assert cluster.http.delete(cluster.url("delete_key", "/deleted")).status_code == 200
    assert cluster.put("/overwritten", b"second", "?replicas=1").status_code == 201
    volume = cluster.restart_volume(1)

    def versions_on_volume() -> set[str]:
        return {
            key
            for key in ("/stays", "/deleted", "/overwritten")
            if httpx.get(f"{volume.url}/get_key{key}").status_code == 200
        }

    wait_until(
        lambda: versions_on_volume() == {"/stays"},
        timeout=20,
        what="the returning volume to drop the deleted and overwritten keys",
    )
    assert cluster.get("/deleted").status_code == 404
    assert cluster.get("/overwritten").content == b"second"


def test_a_new_empty_volume_gets_a_fair_share_while_reads_go_on(cluster_factory: Any) -> None:
    cluster = cluster_factory(volumes=2, settings={**REPAIR, "PULZAR_GENERAL_REPLICAS": "1"})
    values = {f"/spread/{i}": os.urandom(64) for i in range(240)}
    for key, value in values.items():
        assert cluster.put(key, value).status_code == 201
    failures = []
    stop = threading.Event()

    def reader() -> None:
        with Client(cluster.master_url) as client:
            while not stop.is_set():
                key = random.choice(list(values))
                try:
                    if client.get(key) != values[key]:
                        failures.append(key)
                except PulzarError as exc:
                    failures.append(f"{key}: {exc}")

    thread = threading.Thread(target=reader)
    thread.start()
    new = cluster.add_volume()

    def share() -> int:
        return sum(1 for key in values if cluster.stat(key)["replicas"][0]["id"] == new.node_id)

    try:
        wait_until(
            lambda: share() >= 240 // 3 * 0.7,
            timeout=60,
            interval=0.5,
            what="the new volume to get its share",
        )
    finally:
        stop.set()
        thread.join()
    assert failures == []


def test_a_drained_volume_ends_with_no_copies_and_every_key_readable(
    cluster_factory: Any,
) -> None:
    cluster = cluster_factory(volumes=3, settings=REPAIR)
    values = {f"/d/{i}": os.urandom(200) for i in range(60)}
    for key, value in values.items():
        assert cluster.put(key, value).status_code == 201
    drained = cluster.volumes[0]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pulzar",
            "volume",
            "drain",
            drained.name,
            "--master",
            cluster.master_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    def holds() -> int:
        return sum(
            1
            for key in values
            if drained.node_id in [r["id"] for r in cluster.stat(key)["replicas"]]
        )

    wait_until(lambda: holds() == 0, timeout=60, interval=0.5, what="the drain to finish")
    assert all_at_copies(cluster, list(values), 2)
    for key, value in values.items():
        assert cluster.get(key).content == value
