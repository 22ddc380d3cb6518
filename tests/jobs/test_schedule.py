from datetime import UTC, datetime

import pytest

from pulzar.core.errors import BadRequest
from pulzar.jobs.model import Schedule
from pulzar.jobs.schedule import after_firing, due_now, first_due, parse_schedule

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC).timestamp()


def schedule_from(body, now=T0, **kw):
    spec = parse_schedule(body)
    return Schedule(
        id=1, name="g/n", params={}, kind=spec.kind, every=spec.every, cron=spec.cron,
        interval=spec.interval, time_unit=spec.time_unit, repeat=spec.repeat,
        max_runs=spec.max_runs, start_at=spec.start_at, next_due=first_due(spec, now), **kw,
    )


def fire(schedule, now):
    """What the scheduler does at `now`: the due time fired, and the schedule advanced."""
    due = due_now(schedule, now)
    if due is not None:
        schedule.next_due = after_firing(schedule, due)
        schedule.runs += 1
    return due


def test_the_originals_interval_body_fires_every_interval_on_a_fixed_grid():
    s = schedule_from({"interval": "minutes", "time_unit": 5, "repeat": 1})
    assert s.next_due == T0 + 300
    assert fire(s, T0 + 299) is None
    assert fire(s, T0 + 300.05) == T0 + 300
    assert fire(s, T0 + 300.05) is None
    assert fire(s, T0 + 601) == T0 + 600
    assert s.next_due == T0 + 900


def test_seconds_are_an_interval_too_and_each_due_time_fires_once():
    s = schedule_from({"interval": "seconds", "time_unit": 1})
    fired = [fire(s, T0 + t / 10) for t in range(0, 51)]
    assert [d - T0 for d in fired if d is not None] == [1, 2, 3, 4, 5]


def test_missed_runs_fire_once_for_the_latest_due_time_then_follow_the_grid():
    s = schedule_from({"interval": "minutes", "time_unit": 1})
    assert fire(s, T0 + 3600 + 10) == T0 + 3600
    assert s.next_due == T0 + 3660


def test_cron_fires_at_its_times_in_utc():
    s = schedule_from({"cron": "*/15 * * * *"})
    assert s.next_due == T0 + 900
    assert fire(s, T0 + 900) == T0 + 900
    assert s.next_due == T0 + 1800
    assert fire(s, T0 + 3 * 3600 + 5) == T0 + 3 * 3600


def test_repeat_zero_runs_once_and_max_runs_stops_a_schedule():
    once = schedule_from({"interval": "hours", "time_unit": 1, "repeat": 0})
    assert fire(once, T0 + 3600) == T0 + 3600
    assert once.next_due is None and not once.active
    capped = schedule_from({"interval": "seconds", "time_unit": 1, "max_runs": 2})
    assert fire(capped, T0 + 1) is not None
    assert fire(capped, T0 + 2) is not None
    assert capped.next_due is None and fire(capped, T0 + 10) is None


def test_start_at_sets_the_first_due_time():
    s = schedule_from({"interval": "days", "time_unit": 1, "start_at": "2026-12-01T08:00:00Z"})
    assert s.next_due == datetime(2026, 12, 1, 8, 0, tzinfo=UTC).timestamp()


def test_a_cancelled_schedule_never_fires():
    s = schedule_from({"interval": "seconds", "time_unit": 1}, cancelled=True)
    assert fire(s, T0 + 100) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "must be an object"),
        ({"interval": "fortnights", "time_unit": 1}, "interval must be one of"),
        ({"interval": "minutes", "time_unit": 0}, "time_unit must be a positive integer"),
        ({"interval": "minutes", "time_unit": "x"}, "time_unit"),
        ({"cron": "not cron"}, "not a valid cron"),
        ({"cron": "* * * * *", "interval": "minutes"}, "not both"),
        ({"interval": "minutes", "max_runs": 0}, "max_runs"),
        ({"interval": "minutes", "repeat": "sometimes"}, "repeat"),
        ({"interval": "minutes", "start_at": "yesterday"}, "start_at"),
        ({"interval": "minutes", "every": 3}, "unknown schedule field"),
    ],
)
def test_an_invalid_schedule_says_what_is_wrong(body, message):
    with pytest.raises(BadRequest, match=message):
        parse_schedule(body)
