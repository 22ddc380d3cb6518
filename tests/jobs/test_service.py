"""The master's job service over a real store; the volumes are stood in for by a function
that records what would be sent to them."""

import asyncio
import hashlib

import pytest

from pulzar.core.config import load_config
from pulzar.core.errors import BadRequest, NotFound
from pulzar.jobs.catalog import Catalog
from pulzar.jobs.model import JobState
from pulzar.jobs.service import JobService
from pulzar.jobs.store import JobStore
from pulzar.master.nodes import Heartbeat, NodeRegistry
from pulzar.storage.index import Index
from pulzar.storage.records import KeyRecord, ValueMeta

NOW = 1_800_000_000.0


class Volumes:
    def __init__(self):
        self.sent = {}
        self.cancelled = []

    async def send(self, url, specs):
        self.sent.setdefault(url, []).extend(specs)
        return []

    async def cancel(self, url, job_id):
        self.cancelled.append((url, job_id))
        return True


def beat(node_id, workers=2, load=0.0):
    return Heartbeat(node_id=node_id, name=node_id, url=f"http://{node_id}", workers=workers,
                     load=load)


@pytest.fixture
def env(tmp_path):
    (tmp_path / "jobs" / "g").mkdir(parents=True)
    (tmp_path / "jobs" / "g" / "work.py").write_text("def run(params, ctx):\n    return 1\n")
    index = Index(tmp_path / "index", map_size_gb=1)
    nodes = NodeRegistry(3, 6)
    nodes.heartbeat(beat("a"), NOW)
    nodes.heartbeat(beat("b", load=1.0), NOW)
    volumes = Volumes()
    config = load_config(env={"PULZAR_JOBS_DATA_WAIT": "2", "PULZAR_JOBS_RETRY_BACKOFF": "1",
                              "PULZAR_JOBS_PREFETCH": "0"})

    def make():
        return JobService(config, JobStore(index.env, index.writer), Catalog(tmp_path / "jobs"),
                          nodes, index, volumes.send, volumes.cancel)

    yield make, index, nodes, volumes
    index.close()


def event(job_id, state="ready", **kw):
    return {"id": job_id, "type": "done", "state": state, "result": kw.get("result"),
            "error": kw.get("error"), "log": "", "started": NOW, "finished": NOW + 1}


async def test_launch_records_the_job_and_dispatch_pushes_it_to_the_least_loaded_node(env):
    make, _, _, volumes = env
    svc = make()
    job_id = await svc.launch("g/work", {"x": 1}, NOW)
    assert svc.store.get_job(job_id).state is JobState.PENDING
    assert await svc.dispatch(NOW) == 1
    (spec,) = volumes.sent["http://a"]
    assert spec["params"] == {"x": 1} and "code" in spec and spec["attempt"] == 1


async def test_reserved_keys_are_not_parameters_and_bad_bodies_are_refused(env):
    make, _, _, _ = env
    svc = make()
    job_id = await svc.launch("g/work", {"x": 1, "pulzar_retries": 2}, NOW)
    assert svc.active[job_id].params == {"x": 1} and svc.active[job_id].retries == 2
    for body in ([1], {"pulzar_retries": -1}, {"scheduled": {"interval": "eons"}}):
        with pytest.raises(BadRequest):
            await svc.launch("g/work", body, NOW)
    with pytest.raises(NotFound):
        await svc.launch("g/missing", {}, NOW)


async def test_code_is_sent_once_per_node(env):
    make, _, _, volumes = env
    svc = make()
    for _ in range(3):
        await svc.launch("g/work", {}, NOW)
    await svc.dispatch(NOW)
    sent = [s for specs in volumes.sent.values() for s in specs]
    assert sum("code" in s for s in sent) == len(volumes.sent)


async def test_jobs_wait_when_every_slot_is_taken_and_go_when_one_frees(env):
    make, _, _, volumes = env
    svc = make()
    ids = [await svc.launch("g/work", {}, NOW) for _ in range(5)]
    assert await svc.dispatch(NOW) == 4
    await svc.on_events("a", [event(volumes.sent["http://a"][0]["id"])], NOW)
    assert await svc.dispatch(NOW) == 1
    assert ids[-1] in {s["id"] for specs in volumes.sent.values() for s in specs}


async def test_prefetch_queues_short_runs_on_a_volume_but_not_long_ones(env):
    make, _, nodes, volumes = env
    nodes.heartbeat(beat("c", workers=0), NOW)  # a volume without workers takes none
    svc = make()
    svc.config.jobs.prefetch, svc.config.jobs.prefetch_seconds = 3, 0.05
    for _ in range(12):
        await svc.launch("g/work", {}, NOW)
    # No run has ended yet: one run per worker.
    assert await svc.dispatch(NOW) == 4
    # Runs of 1 ms on a: 2 workers + 3 queued (the cap); runs of 1 s on b: no queue.
    done_a, done_b = volumes.sent["http://a"][0]["id"], volumes.sent["http://b"][0]["id"]
    await svc.on_events("a", [{**event(done_a), "started": NOW, "finished": NOW + 0.001}], NOW)
    await svc.on_events("b", [event(done_b)], NOW)
    assert await svc.dispatch(NOW) == 4 + 1
    assert {url: len(specs) for url, specs in volumes.sent.items()} == {
        "http://a": 1 + 5, "http://b": 2 + 1}
    assert all(j.state is JobState.PENDING for j in svc.active.values())


async def test_a_data_job_goes_to_a_node_holding_its_key(env):
    make, index, _, volumes = env
    meta = ValueMeta("/d", 1, 1, hashlib.sha256(b"x").digest(), created=NOW, modified=NOW)
    await index.commit(KeyRecord(meta, ("b",)), "", NOW)
    svc = make()
    await svc.launch("g/work", {"pulzar_data": "/d"}, NOW)
    await svc.dispatch(NOW)
    assert [s["data_key"] for s in volumes.sent["http://b"]] == ["/d"]


async def test_a_data_job_waits_briefly_for_its_holder_then_runs_elsewhere(env):
    make, index, nodes, volumes = env
    nodes.heartbeat(beat("b", workers=0), NOW)
    meta = ValueMeta("/d", 1, 1, hashlib.sha256(b"x").digest(), created=NOW, modified=NOW)
    await index.commit(KeyRecord(meta, ("b",)), "", NOW)
    svc = make()
    await svc.launch("g/work", {"pulzar_data": "/d"}, NOW)
    assert await svc.dispatch(NOW + 1) == 0
    assert await svc.dispatch(NOW + 3) == 1
    assert "http://a" in volumes.sent


async def test_a_failed_run_is_retried_with_backoff_then_fails_for_good(env):
    make, _, _, _ = env
    svc = make()
    job_id = await svc.launch("g/work", {"pulzar_retries": 1}, NOW)
    await svc.dispatch(NOW)
    node = svc.active[job_id].node
    await svc.on_events(node, [event(job_id, "failed", error="boom")], NOW)
    assert svc.active[job_id].state is JobState.PENDING
    assert await svc.dispatch(NOW + 0.5) == 0
    assert await svc.dispatch(NOW + 1.1) == 1
    node = svc.active[job_id].node
    await svc.on_events(node, [event(job_id, "failed", error="boom")], NOW + 2)
    job = svc.store.get_job(job_id)
    assert (job.state, job.attempts, job.error) == (JobState.FAILED, 2, "boom")


async def test_runs_of_a_dead_node_are_requeued_with_their_attempt_count(env):
    make, _, nodes, _ = env
    svc = make()
    job_id = await svc.launch("g/work", {}, NOW)
    await svc.dispatch(NOW)
    node = svc.active[job_id].node
    nodes.disconnected(node)
    svc.check_nodes()
    job = svc.active[job_id]
    assert (job.state, job.node, job.attempts) == (JobState.PENDING, None, 1)
    await svc.dispatch(NOW)
    assert svc.active[job_id].node != node and svc.active[job_id].attempts == 2


async def test_cancel_stops_a_running_run_on_its_node_and_late_events_change_nothing(env):
    make, _, _, volumes = env
    svc_volumes = volumes
    svc = make()
    job_id = await svc.launch("g/work", {}, NOW)
    await svc.dispatch(NOW)
    node = svc.active[job_id].node
    assert await svc.cancel(job_id, NOW) == "job cancelled"
    await svc.on_events(node, [event(job_id, "ready")], NOW)
    assert svc.store.get_job(job_id).state is JobState.CANCELLED
    for _ in range(10):
        await asyncio.sleep(0)
    assert svc_volumes.cancelled == [(f"http://{node}", job_id)]
    with pytest.raises(NotFound):
        await svc.cancel(12345, NOW)


async def test_schedules_fire_once_per_due_time_across_a_restart_and_cancel_stops_them(env):
    make, _, _, _ = env
    svc = make()
    sid = await svc.launch("g/work", {"scheduled": {"interval": "seconds", "time_unit": 1}}, NOW)
    fired = []
    for tenth in range(1, 26):
        fired += await svc.fire_due(NOW + tenth / 10)
    restarted = make()
    restarted.load(NOW + 2.5)
    for tenth in range(25, 41):
        fired += await restarted.fire_due(NOW + tenth / 10)
    dues = [j.due - NOW for j in fired]
    assert dues == [1, 2, 3, 4]
    assert len({j.id for j in fired}) == 4 and sid not in {j.id for j in fired}
    await restarted.cancel(sid, NOW + 4)
    assert await restarted.fire_due(NOW + 100) == []
    again = make()
    again.load(NOW + 100)
    assert await again.fire_due(NOW + 200) == []


async def test_many_schedules_due_together_fire_once_each_and_survive_a_restart(env):
    make, _, _, _ = env
    svc = make()
    body = {"scheduled": {"interval": "seconds", "time_unit": 1}}
    sids = {await svc.launch("g/work", body, NOW) for _ in range(50)}
    fired = await svc.fire_due(NOW + 1)
    assert {j.schedule_id for j in fired} == sids and len(fired) == 50
    assert all(svc.store.get_job(j.id).due == NOW + 1 for j in fired)
    restarted = make()
    restarted.load(NOW + 1.5)
    assert await restarted.fire_due(NOW + 1.5) == []
    assert len(await restarted.fire_due(NOW + 2)) == 50


async def test_old_finished_records_are_purged_by_the_retention_policy(env):
    make, _, _, _ = env
    svc = make()
    old = await svc.launch("g/work", {}, NOW - 100 * 86400)
    await svc.dispatch(NOW)
    node = svc.active[old].node
    await svc.on_events(node, [{**event(old), "finished": NOW - 95 * 86400}], NOW)
    fresh = await svc.launch("g/work", {}, NOW)
    assert await svc.purge(NOW) == 1
    assert svc.store.get_job(old) is None and svc.store.get_job(fresh) is not None


async def test_the_board_has_the_originals_fields(env):
    make, _, _, _ = env
    svc = make()
    job_id = await svc.launch("g/work", {"a": 1}, NOW)
    board = svc.board()
    assert set(board) == {"pendings", "running", "ready", "failed", "cancelled", "scheduled"}
    (item,) = board["pendings"]
    assert item["job_id"] == job_id and item["parameters"] == '{"a":1}'
    assert item["params"] == {"a": 1} and item["creation_time"].endswith("Z")
