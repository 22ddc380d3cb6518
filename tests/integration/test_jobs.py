"""The job system with real processes: dispatch over volumes, data locality, cancel,
schedules across a master restart, re-runs after a volume dies."""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import pytest

from conftest import Cluster, wait_until

WORK = '''
"""Description: does a little work
Arguments: n
Category: test
Author: tests
"""
import os
import time


def run(params, ctx):
    time.sleep(params.get("sleep", 0.02))
    ctx.log.info("job %s on %s", ctx.job_id, os.getpid())
    data = None
    if ctx.data_path:
        with open(ctx.data_path, "rb") as fh:
            data = fh.read().decode()
    return {"n": params.get("n"), "square": params.get("n", 0) ** 2, "data": data,
            "node_url": os.environ.get("PULZAR_TEST_NODE", ""), "started": time.time()}
'''


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    root = tmp_path / "jobs"
    (root / "t").mkdir(parents=True)
    (root / "t" / "work.py").write_text(WORK)
    return root


def start(cluster_factory: Any, jobs_dir: Path, volumes: int = 2, **settings: str) -> Cluster:
    return cluster_factory(
        volumes=volumes,
        settings={
            "PULZAR_JOBS_DIR": str(jobs_dir),
            "PULZAR_JOBS_WORKERS": "2",
            **settings,
        },
    )


def launch(cluster: Cluster, body: dict[str, Any], name: str = "t/work") -> int:
    answer = cluster.http.post(cluster.url("launch_job", "/" + name), json=body)
    assert answer.status_code == 200, answer.text
    payload = answer.json()
    assert payload["msg"] == f"Job added with id {payload['data']['job_id']}"
    return int(payload["data"]["job_id"])


def job(cluster: Cluster, job_id: int) -> dict[str, Any]:
    return dict(cluster.http.get(cluster.url("admin/jobs", f"/{job_id}")).json()["data"])


def wait_jobs(cluster: Cluster, ids: list[int], timeout: float = 60) -> list[dict[str, Any]]:
    def finished() -> list[dict[str, Any]] | None:
        records = [job(cluster, i) for i in ids]
        done = [r for r in records if r["status"] not in ("pending", "running")]
        return records if len(done) == len(ids) else None

    return wait_until(finished, timeout=timeout, interval=0.2, what=f"{len(ids)} jobs to end")  # type: ignore[no-any-return]


def test_200_jobs_run_on_both_volumes_with_the_right_results(
    cluster_factory: Any, jobs_dir: Path
) -> None:
    cluster = start(cluster_factory, jobs_dir)
    started = time.monotonic()
    ids = [launch(cluster, {"n": n}) for n in range(200)]
    records = wait_jobs(cluster, ids)
    seconds = time.monotonic() - started
    assert [r["status"] for r in records] == ["ready"] * 200
    assert [r["result"]["square"] for r in records] == [n * n for n in range(200)]
    assert len({r["node"] for r in records}) == 2
    latencies = [r["result"]["started"] - _epoch(r["creation_time"]) for r in records]
    print(
        f"\n200 jobs of 20 ms on 2 volumes x 2 workers: {seconds:.2f}s launch to done; "
        f"launch-to-start p50 {statistics.median(latencies) * 1000:.1f} ms"
    )
    board = cluster.http.get(cluster.url("admin/jobs")).json()["data"]
    assert len(board["ready"]) == 100 and board["pendings"] == [] and board["running"] == []


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_a_data_job_runs_on_a_volume_holding_the_key_and_reads_it_locally(
    cluster_factory: Any, jobs_dir: Path
) -> None:
    # A long data wait: on a busy machine the holder's two slots may stay taken a while.
    cluster = start(
        cluster_factory,
        jobs_dir,
        volumes=3,
        PULZAR_GENERAL_REPLICAS="1",
        PULZAR_JOBS_DATA_WAIT="60",
    )
    assert cluster.put("/input.txt", b"local bytes").status_code == 201
    holder = cluster.stat("/input.txt")["replicas"][0]["node"]
    ids = [launch(cluster, {"n": i, "pulzar_data": "/input.txt", "sleep": 0}) for i in range(6)]
    records = wait_jobs(cluster, ids)
    assert {r["node"] for r in records} == {holder}
    assert {r["result"]["data"] for r in records} == {"local bytes"}


def test_cancel_of_a_running_job_takes_under_a_second_and_spares_the_others(
    cluster_factory: Any, jobs_dir: Path
) -> None:
    cluster = start(cluster_factory, jobs_dir, volumes=1)
    long = launch(cluster, {"sleep": 60})
    wait_until(lambda: job(cluster, long)["status"] == "running", timeout=20, what="running")
    neighbour = launch(cluster, {"sleep": 1.5, "n": 7})
    wait_until(
        lambda: job(cluster, neighbour)["status"] == "running",
        timeout=20,
        what="the neighbour to run",
    )
    started = time.monotonic()
    answer = cluster.http.post(cluster.url("cancel_job", f"/{long}"))
    assert answer.status_code == 200 and answer.json()["msg"] == "job cancelled"
    wait_until(
        lambda: job(cluster, long)["status"] == "cancelled",
        timeout=1,
        interval=0.02,
        what="the cancel",
    )
    assert time.monotonic() - started < 1
    (other,) = wait_jobs(cluster, [neighbour])
    assert other["status"] == "ready" and other["result"]["square"] == 49
    # The pool replaced the killed worker: two more runs still go in parallel.
    ids = [launch(cluster, {"sleep": 0.5}) for _ in range(2)]
    assert [r["status"] for r in wait_jobs(cluster, ids)] == ["ready", "ready"]


def test_a_schedule_every_second_fires_once_per_second_across_a_master_restart(
    cluster_factory: Any, jobs_dir: Path
) -> None:
    cluster = start(cluster_factory, jobs_dir, volumes=1)
    began = time.time()
    schedule_id = launch(cluster, {"n": 3, "scheduled": {"interval": "seconds", "time_unit": 1}})
    time.sleep(3.2)
    cluster.master.stop()
    cluster.restart_master()
    cluster.wait_live(1)
    time.sleep(max(0.0, began + 6.5 - time.time()))
    cancelled = cluster.http.post(cluster.url("cancel_job", f"/{schedule_id}")).json()["msg"]
    assert cancelled == "schedule cancelled"
    seconds = time.time() - began

    runs = cluster.http.get(cluster.url("admin/scheduled_jobs", f"/{schedule_id}")).json()
    dues = sorted(r["due"] for r in runs["data"]["runs"])
    assert len(dues) == len(set(dues)), "a due time fired twice"
    assert int(seconds) - 2 <= len(dues) <= int(seconds) + 1, (seconds, dues)
    count = len(dues)
    time.sleep(2.5)
    runs = cluster.http.get(cluster.url("admin/scheduled_jobs", f"/{schedule_id}")).json()
    assert len(runs["data"]["runs"]) == count, "a cancelled schedule fired again"
    assert runs["data"]["status"] == "cancelled"


def test_jobs_of_a_killed_volume_run_again_elsewhere_and_end_ready(
    cluster_factory: Any, jobs_dir: Path
) -> None:
    cluster = start(cluster_factory, jobs_dir, volumes=2)
    ids = [launch(cluster, {"sleep": 3, "n": n}) for n in range(4)]
    wait_until(
        lambda: sum(job(cluster, i)["status"] == "running" for i in ids) == 4,
        timeout=20,
        what="4 running jobs",
    )
    victim = cluster.volumes[0]
    on_victim = [i for i in ids if job(cluster, i)["node"] == victim.name]
    assert on_victim
    cluster.kill_volume(0)
    records = wait_jobs(cluster, ids, timeout=60)
    assert [r["status"] for r in records] == ["ready"] * 4
    for record in records:
        if record["job_id"] in on_victim:
            assert record["attempts"] == 2 and record["node"] != victim.name


def test_results_and_logs_larger_than_a_request_body_come_back_whole(
    cluster_factory: Any, jobs_dir: Path
) -> None:
    (jobs_dir / "t" / "big.py").write_text(
        "def run(params, ctx):\n    print('y' * params['size'])\n    return 'x' * params['size']\n"
    )
    cluster = start(cluster_factory, jobs_dir, volumes=1)
    size = 1536 * 1024  # over the 1 MiB limit of a request body
    ids = [launch(cluster, {"size": size}, name="t/big") for _ in range(3)]
    for record in wait_jobs(cluster, ids):
        assert record["status"] == "ready" and len(record["result"]) == size


def test_bad_launches_are_refused_with_clear_errors(cluster_factory: Any, jobs_dir: Path) -> None:
    cluster = start(cluster_factory, jobs_dir, volumes=1)
    cases = [
        ("t/missing", b"{}", 404),
        ("t/%2e%2e", b"{}", 400),
        ("t/work.py", b"{}", 400),
        ("t/work", b"[1, 2]", 400),
        ("t/work", b"{not json", 400),
        ("t/work", b'{"scheduled": {"interval": "fortnights", "time_unit": 1}}', 400),
        ("t/work", b'{"scheduled": {"cron": "61 * * * *"}}', 400),
    ]
    for name, body, status in cases:
        answer = httpx.post(f"{cluster.master_url}/launch_job/{name}", content=body)
        assert answer.status_code == status, (name, body, answer.text)
        assert answer.json()["status"] == "ko" and answer.json()["msg"]


def test_job_cli_launches_waits_shows_and_deploys(
    cluster_factory: Any, jobs_dir: Path, tmp_path: Path
) -> None:
    cluster = start(cluster_factory, jobs_dir, volumes=1)
    extra = tmp_path / "more"
    (extra / "ops").mkdir(parents=True)
    (extra / "ops" / "echo.py").write_text(
        "def run(params, ctx):\n    print('hi')\n    return params\n"
    )

    def pulzar(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pulzar", *args, "--master", cluster.master_url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    deployed = pulzar("job", "deploy", str(extra))
    assert deployed.returncode == 0 and "ops/echo" in deployed.stdout, deployed.stderr
    done = pulzar("job", "launch", "ops/echo", "-p", "a=1", "-p", "b=text", "--wait")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("job ") and '{"a":1,"b":"text"}' in done.stdout
    job_id = done.stdout.split()[1]
    assert pulzar("job", "logs", job_id).stdout == "hi\n"
    shown = pulzar("job", "show", job_id)
    assert "ready" in shown.stdout
    listed = pulzar("job", "ls", "--json")
    assert listed.returncode == 0 and '"ready"' in listed.stdout
    missing = pulzar("job", "show", "999999")
    assert missing.returncode != 0 and "no job" in missing.stderr


AIOHTTP_SERVER = f"Python/{sys.version_info[0]}.{sys.version_info[1]} aiohttp/{aiohttp.__version__}"


def _raw_post(url: str, path: str, body: bytes) -> tuple[int, dict[str, str], Any]:
    """POST `body` with its head in one send, as most clients send a small request."""
    host, port = url.removeprefix("http://").split(":")
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        reader = sock.makefile("rb")
        status = int(reader.readline().split()[1])
        headers = {}
        while line := reader.readline().strip():
            name, _, value = line.decode().partition(":")
            headers[name.lower()] = value.strip()
        payload = orjson.loads(reader.read(int(headers["content-length"])))
    return status, headers, payload


def test_a_launch_sent_whole_is_answered_from_the_socket_as_aiohttp_answers_it(
    cluster_factory: Any, jobs_dir: Path
) -> None:
    cluster = start(cluster_factory, jobs_dir, volumes=1)
    cases = [
        ("t/work", b'{"n": 3}', 200),
        ("t/work", b"", 200),
        ("t/missing", b"{}", 404),
        ("t/work", b"{not json", 400),
        ("t/work", b"[1, 2]", 400),
    ]
    launched = []
    for name, body, status in cases:
        fast = _raw_post(cluster.master_url, f"/launch_job/{name}", body)
        # A percent-encoded name is left to aiohttp, which decodes it to the same name.
        encoded = name.replace("/", "%2F")
        slow = httpx.post(f"{cluster.master_url}/launch_job/{encoded}", content=body)
        assert fast[0] == slow.status_code == status, (name, body, fast, slow.text)
        # The first is the fast path's answer, the second aiohttp's.
        assert (fast[1]["server"], slow.headers["server"]) == ("pulzar", AIOHTTP_SERVER)
        assert fast[1]["content-type"] == slow.headers["content-type"] == "application/json"
        if status == 200:
            job_id = fast[2]["data"]["job_id"]
            assert fast[2] == {
                "data": {"job_id": job_id},
                "status": "ok",
                "msg": f"Job added with id {job_id}",
            }
            launched.append(job_id)
        else:
            assert fast[2] == slow.json() and fast[2]["status"] == "ko"
    results = wait_jobs(cluster, launched)
    assert [r["status"] for r in results] == ["ready", "ready"]
    assert results[0]["result"]["square"] == 9
