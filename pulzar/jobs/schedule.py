"""Schedules as pure functions of time: parsing, the next due time, what is due now.

The original's body `{"interval": "minutes|hours|days|weeks", "time_unit": N, "repeat": 1}` is
accepted, with `"seconds"` as an interval too; or `{"cron": "*/5 * * * *"}` (UTC, croniter).
Both take `max_runs` (stop after N runs), `start_at` (ISO-8601 or epoch seconds: the first due
time for an interval, the earliest for cron) and `repeat` (1/true, the default: recurring;
0/false: a single run at the next due time).

An interval schedule without `start_at` first fires one interval after it is created (as the
original's `schedule` library did). Due times sit on a fixed grid (start + k * interval), so
they do not drift with how late a firing was.

Runs missed while the master was down: when a schedule is found with several due times in the
past, it fires **once**, for the latest of them, and then continues on its grid. (Like cron
with catch-up of one: a 5-minute job does not fire 12 times after an hour of downtime.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from pulzar.core.errors import BadRequest
from pulzar.jobs.model import Schedule

UNITS = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0, "days": 86400.0, "weeks": 604800.0}


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    kind: str
    every: float = 0.0
    cron: str = ""
    interval: str = ""
    time_unit: int = 0
    repeat: bool = True
    max_runs: int | None = None
    start_at: float | None = None


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1", "true", "false", "True", "False"):
        return str(value).lower() in ("1", "true")
    raise BadRequest(f"scheduled.{name} must be 1/0 or true/false, got {value!r}")


def _time(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.timestamp()
    raise BadRequest(f"scheduled.start_at must be ISO-8601 or epoch seconds, got {value!r}")


def parse_schedule(body: Any) -> ScheduleSpec:
    """Validate a `scheduled` body; raise `BadRequest` saying what is wrong."""
    if not isinstance(body, dict):
        raise BadRequest("'scheduled' must be an object, e.g. {\"interval\": \"minutes\", "
                         "\"time_unit\": 5}")
    known = {"interval", "time_unit", "repeat", "cron", "max_runs", "start_at"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise BadRequest(f"unknown schedule field(s): {', '.join(unknown)}")
    repeat = _flag(body.get("repeat", 1), "repeat")
    max_runs = body.get("max_runs")
    if max_runs is not None and (
        not isinstance(max_runs, int) or isinstance(max_runs, bool) or max_runs < 1
    ):
        raise BadRequest(f"scheduled.max_runs must be a positive integer, got {max_runs!r}")
    start_at = None if body.get("start_at") is None else _time(body["start_at"])
    if "cron" in body:
        expr = body["cron"]
        if "interval" in body or "time_unit" in body:
            raise BadRequest("give either 'cron' or 'interval' and 'time_unit', not both")
        if not isinstance(expr, str) or not croniter.is_valid(expr):
            raise BadRequest(f"scheduled.cron is not a valid cron expression: {expr!r}")
        return ScheduleSpec("cron", cron=expr, repeat=repeat, max_runs=max_runs,
                            start_at=start_at)
    interval = body.get("interval")
    if interval not in UNITS:
        raise BadRequest(
            f"scheduled.interval must be one of {', '.join(UNITS)} (or give 'cron'), "
            f"got {interval!r}"
        )
    unit = body.get("time_unit", 1)
    try:
        time_unit = int(unit)
    except (TypeError, ValueError):
        raise BadRequest(f"scheduled.time_unit must be a positive integer, got {unit!r}") from None
    if time_unit < 1 or isinstance(unit, bool):
        raise BadRequest(f"scheduled.time_unit must be a positive integer, got {unit!r}")
    return ScheduleSpec(
        "interval",
        every=UNITS[interval] * time_unit,
        interval=interval,
        time_unit=time_unit,
        repeat=repeat,
        max_runs=max_runs,
        start_at=start_at,
    )


def _cron_after(expr: str, after: float) -> float:
    return float(croniter(expr, after).get_next(float))


def first_due(spec: ScheduleSpec, now: float) -> float:
    if spec.kind == "cron":
        return _cron_after(spec.cron, max(now, spec.start_at or now))
    return spec.start_at if spec.start_at is not None else now + spec.every


def due_now(schedule: Schedule, now: float) -> float | None:
    """The due time to fire for now (the latest one passed), or None when nothing is due."""
    if not schedule.active or schedule.next_due is None or schedule.next_due > now:
        return None
    if schedule.kind == "cron":
        latest = float(croniter(schedule.cron, now + 1e-6).get_prev(float))
        return max(latest, schedule.next_due)
    missed = math.floor((now - schedule.next_due) / schedule.every)
    return schedule.next_due + missed * schedule.every


def after_firing(schedule: Schedule, due: float) -> float | None:
    """The next due time once `schedule` has fired for `due` (None: it is done)."""
    runs = schedule.runs + 1
    if not schedule.repeat or (schedule.max_runs is not None and runs >= schedule.max_runs):
        return None
    if schedule.kind == "cron":
        return _cron_after(schedule.cron, due)
    return due + schedule.every
