"""Volumes that die, hang or hold the wrong secret, as the master sees them over heartbeats.

Timers: heartbeat 0.1 s, suspect after 0.3 s of silence, dead after 0.6 s.
"""

from __future__ import annotations

import signal
import time


def replica_ids(cluster, key: str) -> set[str]:
    return {r["id"] for r in cluster.stat(key)["replicas"]}


def test_a_volume_with_a_wrong_cluster_secret_is_never_admitted(cluster_factory, wait_until):
    cluster = cluster_factory(volumes=0)
    good = cluster.add_volume()
    bad = cluster.add_volume(secret="not-the-cluster-secret", wait=False)

    # The bad volume is up (it answers) but not registered ...
    health = wait_until(
        lambda: (r := cluster.volume_health(bad)).status_code == 503 and r,
        what="the wrongly keyed volume to serve /health",
    )
    bad_id = health.json()["data"]["node"]
    # ... and stays out for many heartbeat intervals, while the right one stays in.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        nodes = cluster.network()
        assert [n["id"] for n in nodes] == [good.node_id], nodes
        assert nodes[0]["synch"] is True
        assert cluster.node(bad_id) is None
        assert cluster.node(bad.name) is None
        assert cluster.volume_health(bad).status_code == 503
        time.sleep(0.1)
    bad.proc.check_alive()

    # Writes land on the admitted volume only.
    for i in range(5):
        response = cluster.put(f"/secret/{i}", b"value %d" % i)
        assert response.status_code == 201, response.text
        assert replica_ids(cluster, f"/secret/{i}") == {good.node_id}


def test_a_killed_volume_is_marked_dead_within_seconds_and_writes_go_elsewhere(
    cluster_factory, wait_until
):
    cluster = cluster_factory(volumes=3)
    victim = cluster.volumes[0]
    survivors = {v.node_id for v in cluster.volumes[1:]}

    killed_at = time.monotonic()
    cluster.kill_volume(0)
    node = wait_until(
        lambda: (n := cluster.node(victim.node_id)) and n["state"] == "dead" and n,
        timeout=5,
        what="the killed volume to be marked dead",
    )
    assert node["synch"] is False
    assert time.monotonic() - killed_at < 3
    assert cluster.live_count() == 2

    for i in range(30):
        key = f"/after-kill/{i}"
        data = b"written while vol1 is dead %d" % i
        response = cluster.put(key, data)
        assert response.status_code == 201, response.text
        assert replica_ids(cluster, key) <= survivors
        assert cluster.get(key).content == data


def test_keys_with_another_copy_still_read_back_after_a_volume_is_killed(cluster_factory):
    cluster = cluster_factory(volumes=2)
    written = {}
    for i in range(20):
        key, data = f"/before-kill/{i}", b"x%d" % i * 100
        assert cluster.put(key, data).status_code == 201
        written[key] = data
    victim = cluster.volumes[0]
    cluster.kill_volume(0)
    cluster.wait_live(1)

    for key, data in written.items():
        holders = replica_ids(cluster, key)
        if holders - {victim.node_id}:  # a live copy exists (R >= 2, or it was never there)
            response = cluster.get(key)
            assert response.status_code == 200, (key, response.text)
            assert response.content == data


def test_a_paused_volume_becomes_suspect_then_dead_and_alive_again_when_resumed(
    cluster_factory, wait_until
):
    cluster = cluster_factory(volumes=3)
    paused = cluster.volumes[1]
    others = {cluster.volumes[0].node_id, cluster.volumes[2].node_id}

    paused.proc.send(signal.SIGSTOP)
    seen: list[str] = []

    def dead() -> bool:
        state = cluster.node(paused.node_id)["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        return state == "dead"

    wait_until(dead, timeout=5, interval=0.01, what="the paused volume to be marked dead")
    # Silence, not a dropped connection: it went through suspect on its way to dead.
    assert "suspect" in seen, seen
    assert seen.index("suspect") < seen.index("dead"), seen
    assert cluster.node(paused.node_id)["synch"] is False

    for i in range(20):
        key = f"/while-paused/{i}"
        response = cluster.put(key, b"v%d" % i)
        assert response.status_code == 201, response.text
        assert replica_ids(cluster, key) <= others

    paused.proc.send(signal.SIGCONT)
    wait_until(
        lambda: cluster.node(paused.node_id)["synch"] is True,
        timeout=5,
        what="the resumed volume to be alive again",
    )
    assert cluster.live_count() == 3
