"""What the master's /metrics reports beside its requests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pulzar.jobs.model import JobState
from pulzar.jobs.service import JobService
from pulzar.master.nodes import NodeState
from pulzar.master.repair import Repairer
from pulzar.master.service import MasterService


def master_gauges(
    service: MasterService, repairer: Repairer, jobs: JobService, now: float
) -> Iterable[tuple[str, str, list[tuple[dict[str, str], float]]]]:
    progress = repairer.progress
    yield "pulzar_keys", "Keys in the index", [({}, service.index.stat()["entries"])]
    yield (
        "pulzar_under_replicated_keys",
        "Keys with fewer live copies than R (last pass)",
        [({}, progress.under_replicated)],
    )
    yield (
        "pulzar_unavailable_keys",
        "Keys with no live copy (last pass)",
        [({}, progress.unavailable)],
    )
    yield (
        "pulzar_repair_copies_made",
        "Copies made by repair since start",
        [({}, progress.copies_made)],
    )
    yield (
        "pulzar_repair_bytes_copied",
        "Bytes copied by repair since start",
        [({}, progress.bytes_copied)],
    )
    yield (
        "pulzar_keys_moved",
        "Keys moved to balance volumes since start",
        [({}, progress.keys_moved)],
    )
    nodes = service.nodes.all()
    yield (
        "pulzar_nodes",
        "Volumes by state",
        [
            ({"state": state.value}, sum(1 for n in nodes if n.state is state))
            for state in NodeState
        ],
    )
    yield (
        "pulzar_node_up",
        "1 when the volume is alive",
        [({"node": n.name}, 1.0 if n.alive else 0.0) for n in nodes],
    )
    yield (
        "pulzar_node_heartbeat_age_seconds",
        "Seconds since the volume's last heartbeat",
        [({"node": n.name}, max(0.0, now - n.last_seen)) for n in nodes],
    )
    yield (
        "pulzar_node_disk_percent",
        "Data-disk use of each volume",
        [({"node": n.name}, n.beat.percent) for n in nodes],
    )
    counts: dict[str, Any] = dict.fromkeys((s.value for s in JobState), 0)
    for job in jobs.active.values():
        counts[job.state.value] += 1
    for state, total in jobs.finished_counts.items():
        counts[state] = total
    yield (
        "pulzar_jobs",
        "Runs pending and running now; finished since start, by state",
        [({"state": state}, value) for state, value in counts.items()],
    )
    yield (
        "pulzar_schedules_active",
        "Active schedules",
        [({}, sum(1 for s in jobs.schedules.values() if s.active))],
    )
