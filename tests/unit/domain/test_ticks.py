"""Pure tick decisions: due and missed ticks, deadlines, Forbid/Replace, jitter, job ids."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kadence.domain.cron import _next_fire_time_scan, next_fire_time, parse_cron
from kadence.domain.models import ConcurrencyPolicy, Priority, TaskSpec
from kadence.domain.ticks import (
    MAX_COUNTED_MISSED,
    DueSchedule,
    SkipReason,
    due_ticks,
    epoch_ms,
    jitter_offset,
    manual_job_id,
    plan_tick,
    tick_job_id,
    tick_task_spec,
)

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def _schedule(**changes: Any) -> DueSchedule:
    fields: dict[str, Any] = {
        "id": 7,
        "user_id": 42,
        "task_goal": "report",
        "cron_expression": "* * * * *",
        "timezone": "UTC",
        "priority": Priority.HIGH,
        "max_attempts": 4,
        "handler": "noop",
        "args": {"k": 1},
        "concurrency_policy": ConcurrencyPolicy.ALLOW,
        "starting_deadline_seconds": None,
        "jitter_seconds": 0,
        "successful_jobs_history_limit": 3,
        "failed_jobs_history_limit": 1,
        "next_run": T0,
    }
    fields.update(changes)
    return DueSchedule(**fields)


def test_an_on_time_tick_fires_and_moves_next_run_on() -> None:
    plan = plan_tick(_schedule(), T0 + timedelta(milliseconds=3), previous_running=False)
    assert plan.tick == T0 and plan.run_at == T0
    assert plan.next_run == T0 + timedelta(minutes=1)
    assert plan.missed_ticks == 0 and plan.skipped_ticks == 0 and plan.skipped == ()


def test_nothing_fires_before_next_run() -> None:
    plan = plan_tick(_schedule(), T0 - timedelta(milliseconds=1), previous_running=False)
    assert plan.tick is None and plan.next_run == T0


def test_after_downtime_without_deadline_the_latest_tick_fires_and_older_ones_are_missed() -> None:
    now = T0 + timedelta(minutes=10, seconds=5)
    plan = plan_tick(_schedule(), now, previous_running=False)
    assert plan.tick == T0 + timedelta(minutes=10)
    assert plan.missed == 10 and plan.missed_ticks == 10
    assert plan.next_run == T0 + timedelta(minutes=11)


def test_the_latest_tick_fires_when_within_the_starting_deadline() -> None:
    plan = plan_tick(_schedule(starting_deadline_seconds=30), T0 + timedelta(minutes=3, seconds=20),
                     previous_running=False)
    assert plan.tick == T0 + timedelta(minutes=3) and plan.missed_ticks == 3


def test_the_latest_tick_is_skipped_past_the_starting_deadline() -> None:
    plan = plan_tick(_schedule(starting_deadline_seconds=10), T0 + timedelta(minutes=3, seconds=20),
                     previous_running=False)
    assert plan.tick is None and plan.skipped == (SkipReason.DEADLINE,)
    assert plan.missed == 3 and plan.missed_ticks == 4 and plan.skipped_ticks == 0
    assert plan.next_run == T0 + timedelta(minutes=4)


def test_a_zero_deadline_still_fires_a_tick_that_is_only_milliseconds_late() -> None:
    plan = plan_tick(_schedule(starting_deadline_seconds=0), T0 + timedelta(milliseconds=40), previous_running=False)
    assert plan.tick == T0


def test_forbid_skips_while_the_previous_run_is_going_and_counts_it() -> None:
    schedule = _schedule(concurrency_policy=ConcurrencyPolicy.FORBID)
    plan = plan_tick(schedule, T0, previous_running=True)
    assert plan.tick is None and plan.skipped == (SkipReason.FORBID,) and plan.skipped_ticks == 1
    assert plan.next_run == T0 + timedelta(minutes=1)
    assert plan_tick(schedule, T0, previous_running=False).tick == T0


def test_replace_fires_and_asks_to_cancel_the_previous_run() -> None:
    plan = plan_tick(_schedule(concurrency_policy=ConcurrencyPolicy.REPLACE), T0, previous_running=True)
    assert plan.tick == T0 and plan.replace
    assert not plan_tick(_schedule(concurrency_policy=ConcurrencyPolicy.REPLACE), T0, previous_running=False).replace


def test_allow_ignores_a_running_previous_run() -> None:
    plan = plan_tick(_schedule(), T0, previous_running=True)
    assert plan.tick == T0 and not plan.replace


def test_jitter_is_deterministic_bounded_and_spread() -> None:
    offsets = [jitter_offset(7, T0 + timedelta(minutes=i), 30) for i in range(400)]
    assert offsets == [jitter_offset(7, T0 + timedelta(minutes=i), 30) for i in range(400)]
    assert all(timedelta(0) <= o <= timedelta(seconds=30) for o in offsets)
    assert len(set(offsets)) > 300
    assert max(offsets) > timedelta(seconds=25) and min(offsets) < timedelta(seconds=5)
    assert jitter_offset(7, T0, 0) == timedelta(0)
    assert jitter_offset(8, T0, 30) != jitter_offset(7, T0, 30) or jitter_offset(9, T0, 30) != jitter_offset(7, T0, 30)
    plan = plan_tick(_schedule(jitter_seconds=30), T0, previous_running=False)
    assert plan.tick == T0 and plan.run_at == T0 + jitter_offset(7, T0, 30)


def test_job_ids_are_deterministic_per_tick() -> None:
    assert tick_job_id(7, T0) == f"cron-7-{int(T0.timestamp()) * 1000}"
    assert tick_job_id(7, T0 + timedelta(milliseconds=1)) != tick_job_id(7, T0)
    assert epoch_ms(datetime(1970, 1, 1, 0, 0, 1, 999999, tzinfo=UTC)) == 1999
    assert manual_job_id(7, "abc") == "cron-7-manual-abc"


def test_tick_task_spec_comes_from_the_row_and_the_defaults() -> None:
    defaults = TaskSpec(task_id="-", user_id=1, timeout_seconds=99)
    spec = tick_task_spec(_schedule(), defaults)
    assert (spec.task_id, spec.user_id, spec.task_goal, spec.priority, spec.max_attempts, spec.handler, spec.args) == (
        "schedule-7", 42, "report", Priority.HIGH, 4, "noop", {"k": 1}
    )
    assert spec.timeout_seconds == 99 and spec.backoff == defaults.backoff


def test_six_field_schedules_tick_every_second() -> None:
    cron = parse_cron("* * * * * *")
    ticks = due_ticks(cron, T0, T0 + timedelta(seconds=5, milliseconds=1))
    assert ticks.latest == T0 + timedelta(seconds=5) and ticks.older == 5
    assert ticks.following == T0 + timedelta(seconds=6)


def test_a_very_long_outage_saturates_the_count_but_still_finds_the_latest_tick() -> None:
    cron = parse_cron("* * * * * *")
    now = T0 + timedelta(days=2, milliseconds=500)
    ticks = due_ticks(cron, T0, now)
    assert ticks.saturated and ticks.older == MAX_COUNTED_MISSED
    assert ticks.latest == T0 + timedelta(days=2) and ticks.following == T0 + timedelta(days=2, seconds=1)


@pytest.mark.parametrize(
    ("expression", "zone", "start", "expected_local"),
    [
        # Spring forward: 02:00 does not exist; a fixed-hour tick runs at 03:00 local, once.
        ("0 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12, tzinfo=UTC), "2026-03-29T03:00:00+02:00"),
        ("30 2 * * *", "America/New_York", datetime(2026, 3, 7, 20, tzinfo=UTC), "2026-03-08T03:30:00-04:00"),
        # Fall back: 02:30 (Berlin) / 01:30 (New York) happen twice; the tick runs at the first.
        ("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12, tzinfo=UTC), "2026-10-25T02:30:00+02:00"),
        ("30 1 * * *", "America/New_York", datetime(2026, 10, 31, 20, tzinfo=UTC), "2026-11-01T01:30:00-04:00"),
    ],
)
def test_plan_tick_across_dst_changes(expression: str, zone: str, start: datetime, expected_local: str) -> None:
    cron = parse_cron(expression, zone)
    first = next_fire_time(cron, start)
    assert first.astimezone(cron.zone).isoformat() == expected_local
    schedule = _schedule(cron_expression=expression, timezone=zone, next_run=first)
    plan = plan_tick(schedule, first, previous_running=False)
    assert plan.tick == first
    assert plan.next_run - first in (timedelta(hours=23), timedelta(hours=24), timedelta(hours=25))
    assert plan.next_run.astimezone(cron.zone).hour == int(expression.split()[1])


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
@pytest.mark.parametrize(
    "expression", ["*/20 * * * * *", "* * * * *", "*/5 * * * *", "0 2 * * *", "30 2 * * *", "15 1-3 * * *", "0 0 * * 1"]
)
def test_next_fire_time_shortcut_agrees_with_the_dst_safe_scan(expression: str, zone: str) -> None:
    # next_fire_time answers from the wall clock when no offset change is near, and scans
    # otherwise; both must agree everywhere, including right around the changes.
    cron = parse_cron(expression, zone)
    rng = random.Random(f"{expression}{zone}")
    changes = [datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC),
               datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC),
               datetime(2026, 4, 5, 15, tzinfo=UTC), datetime(2026, 10, 4, 15, tzinfo=UTC)]
    for change in changes:
        for _ in range(6):
            moment = change + timedelta(seconds=rng.uniform(-4 * 3600, 4 * 3600))
            if rng.random() < 0.3:
                moment = moment.replace(microsecond=0)
            assert next_fire_time(cron, moment) == _next_fire_time_scan(cron, cron.zone, moment), moment


def test_dense_schedules_are_cheap() -> None:
    cron = parse_cron("* * * * * *", "Europe/Berlin")
    start = datetime(2026, 6, 1, tzinfo=UTC)
    ticks = due_ticks(cron, start, start + timedelta(seconds=2000))
    assert ticks.older == 2000  # 2,000 successive next_fire_time calls; slow before the shortcut
