"""What a volume's /metrics reports beside its requests."""

from __future__ import annotations

from collections.abc import Iterable

from pulzar.jobs.runner import JobRunner
from pulzar.volume.service import VolumeService


def volume_gauges(
    service: VolumeService, runner: JobRunner
) -> Iterable[tuple[str, str, list[tuple[dict[str, str], float]]]]:
    used, capacity = service.store.disk_usage()
    yield "pulzar_values", "Stored values (every version)", [({}, service.store.count())]
    yield "pulzar_value_bytes", "Bytes of stored values", [({}, service.store.used_bytes)]
    yield (
        "pulzar_disk_percent",
        "Data-disk use",
        [({}, 100.0 * used / capacity if capacity else 100.0)],
    )
    yield (
        "pulzar_registered",
        "1 while registered with the master",
        [({}, 1.0 if service.registered else 0.0)],
    )
    yield "pulzar_job_workers", "Job worker processes", [({}, runner.size)]
    yield (
        "pulzar_jobs_running",
        "Runs in progress or queued here",
        [({}, runner.pool.running + runner.pool.queued)],
    )
