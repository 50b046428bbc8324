"""The cron dispatcher against real PostgreSQL and Redis.

Most tests drive ``Dispatcher.dispatch_due`` with a fixed clock, so DST changes, outages and
policies are exercised at exact instants; the last ones run ``kadence dispatcher`` as a
process and measure when ticks really reach Redis.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kadence.config import Settings
from kadence.core import SchedulerCore, TaskInput
from kadence.dispatcher import Dispatcher
from kadence.domain.errors import NotFound
from kadence.domain.models import CronSchedule, JobState, Priority, Role, UserContext
from kadence.domain.ticks import jitter_offset, tick_job_id
from kadence.store import dispatch as dispatch_store
from tests.support import settings_env, stop_process, wait_for

SYSTEM = UserContext.system()
USER = UserContext(42)


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _dispatcher(core: SchedulerCore, clock: FixedClock | None = None, **options: Any) -> Dispatcher:
    return Dispatcher(core.db, core.queue, core.defaults, clock=clock or FixedClock(datetime.now(UTC)),
                      environ={}, **options)


def _schedule(core: SchedulerCore, clock: FixedClock, cron: str, zone: str = "UTC", **fields: Any) -> CronSchedule:
    at_clock = SchedulerCore(core.db, core.queue, core.defaults, clock=clock)
    task = TaskInput(task_id="ignored", user_id=42, task_goal="tick", priority=fields.pop("priority", "normal"),
                     handler="noop", args=fields.pop("args", {"n": 1}))
    return at_clock.schedule_recurring_task(SYSTEM, task, name="test", cron_expression=cron, timezone=zone, **fields)


def _jobs(core: SchedulerCore, schedule_id: int) -> list[dict[str, Any]]:
    with core.db.session(SYSTEM) as conn:
        return conn.execute(
            "SELECT id, state, tick_at, scheduled_for, priority, task_id, user_id, task_goal, handler, args, "
            "max_attempts FROM jobs WHERE schedule_id = %s ORDER BY tick_at NULLS LAST, id", (schedule_id,)
        ).fetchall()


def _counters(core: SchedulerCore, schedule_id: int) -> dict[str, Any]:
    with core.db.session(SYSTEM) as conn:
        row = dispatch_store.schedule_counters(conn, schedule_id)
    assert row is not None
    return row


def _queued(core: SchedulerCore, priority: Priority = Priority.NORMAL) -> list[str]:
    return [m.decode() for m in core.queue.redis.lrange(f"rq:queue:{priority.queue_name}", 0, -1)]


def _run_ticks(core: SchedulerCore, dispatcher: Dispatcher, clock: FixedClock, schedule_id: int, until: datetime,
               late: timedelta = timedelta(milliseconds=2)) -> None:
    """Step the clock to each next_run (plus ``late``) and dispatch, until ``until``."""
    while True:
        next_run = _counters(core, schedule_id)["next_run"]
        if next_run is None or next_run > until:
            return
        clock.now = next_run + late
        dispatcher.dispatch_due()


# -- firing -----------------------------------------------------------------------------


def test_a_due_tick_fires_once_with_the_schedule_fields(core: SchedulerCore) -> None:
    clock = FixedClock(datetime(2026, 5, 4, 11, 59, 30, tzinfo=UTC))
    schedule = _schedule(core, clock, "* * * * *", priority="high", args={"url": "x"})
    tick = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    assert schedule.next_run == tick
    dispatcher = _dispatcher(core, clock)
    clock.now = tick - timedelta(milliseconds=1)
    assert dispatcher.dispatch_due().fired == 0  # never before its time
    clock.now = tick + timedelta(milliseconds=3)
    result = dispatcher.dispatch_due()
    assert result.fired == 1 and result.queued == 1
    [job] = _jobs(core, schedule.id)
    assert job["id"] == tick_job_id(schedule.id, tick) == f"cron-{schedule.id}-{int(tick.timestamp() * 1000)}"
    assert (job["task_id"], job["user_id"], job["task_goal"], job["priority"], job["handler"], job["args"]) == (
        f"schedule-{schedule.id}", 42, "tick", "high", "noop", {"url": "x"}
    )
    assert job["state"] == "waiting" and job["tick_at"] == tick and job["scheduled_for"] == tick
    assert _queued(core, Priority.HIGH) == [job["id"]]
    assert core.queue.state(job["id"]) is JobState.WAITING
    counters = _counters(core, schedule.id)
    assert counters["last_run"] == tick and counters["next_run"] == tick + timedelta(minutes=1)
    assert counters["last_job_id"] == job["id"] and counters["missed_ticks"] == 0
    assert dispatcher.dispatch_due().fired == 0
    assert dispatcher.metrics.value("kadence_dispatcher_ticks_fired_total") == 1


def test_a_redone_tick_is_the_same_job_and_is_not_queued_again(core: SchedulerCore) -> None:
    # What a dispatcher that died after another one's commit would see if next_run went back.
    clock = FixedClock(datetime(2026, 5, 4, 11, 59, 30, tzinfo=UTC))
    schedule = _schedule(core, clock, "* * * * *")
    tick = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    dispatcher = _dispatcher(core, clock)
    clock.now = tick
    dispatcher.dispatch_due()
    with core.db.session(SYSTEM) as conn:
        conn.execute("UPDATE cron_schedules SET next_run = %s WHERE id = %s", (tick, schedule.id))
    result = dispatcher.dispatch_due()
    assert result.locked == 1 and result.fired == 0 and result.queued == 0
    assert len(_jobs(core, schedule.id)) == 1 and len(_queued(core)) == 1


def test_a_disabled_schedule_does_not_fire(core: SchedulerCore) -> None:
    clock = FixedClock(datetime(2026, 5, 4, 11, 59, 30, tzinfo=UTC))
    schedule = _schedule(core, clock, "* * * * *", enabled=False)
    clock.now = datetime(2026, 5, 4, 12, 5, tzinfo=UTC)
    assert _dispatcher(core, clock).dispatch_due().locked == 0
    assert _jobs(core, schedule.id) == []


# -- DST and time zones ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "zone", "start", "expected"),
    [
        # Spring forward: 02:00 and 02:30 do not exist that night; each runs once, shifted to 03:xx.
        ("0 2 * * *", "Europe/Berlin", datetime(2026, 3, 27, 12, tzinfo=UTC),
         ["2026-03-28T02:00+01:00", "2026-03-29T03:00+02:00", "2026-03-30T02:00+02:00"]),
        ("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 27, 12, tzinfo=UTC),
         ["2026-03-28T02:30+01:00", "2026-03-29T03:30+02:00", "2026-03-30T02:30+02:00"]),
        ("0 2 * * *", "America/New_York", datetime(2026, 3, 6, 18, tzinfo=UTC),
         ["2026-03-07T02:00-05:00", "2026-03-08T03:00-04:00", "2026-03-09T02:00-04:00"]),
        ("30 2 * * *", "America/New_York", datetime(2026, 3, 6, 18, tzinfo=UTC),
         ["2026-03-07T02:30-05:00", "2026-03-08T03:30-04:00", "2026-03-09T02:30-04:00"]),
        # Fall back: 02:xx (Berlin) and 01:xx (New York) happen twice; each runs once, at the first.
        ("0 2 * * *", "Europe/Berlin", datetime(2026, 10, 23, 12, tzinfo=UTC),
         ["2026-10-24T02:00+02:00", "2026-10-25T02:00+02:00", "2026-10-26T02:00+01:00"]),
        ("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 23, 12, tzinfo=UTC),
         ["2026-10-24T02:30+02:00", "2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00"]),
        ("0 2 * * *", "America/New_York", datetime(2026, 10, 30, 18, tzinfo=UTC),
         ["2026-10-31T02:00-04:00", "2026-11-01T02:00-05:00", "2026-11-02T02:00-05:00"]),
        ("30 1 * * *", "America/New_York", datetime(2026, 10, 30, 18, tzinfo=UTC),
         ["2026-10-31T01:30-04:00", "2026-11-01T01:30-04:00", "2026-11-02T01:30-05:00"]),
    ],
)
def test_daily_ticks_across_dst_changes(
    core: SchedulerCore, expression: str, zone: str, start: datetime, expected: list[str]
) -> None:
    clock = FixedClock(start)
    schedule = _schedule(core, clock, expression, zone)
    _run_ticks(core, _dispatcher(core, clock), clock, schedule.id, start + timedelta(days=3))
    local = ZoneInfo(zone)
    ticks = [job["tick_at"].astimezone(local).isoformat(timespec="minutes") for job in _jobs(core, schedule.id)]
    assert ticks == expected
    assert _counters(core, schedule.id)["missed_ticks"] == 0


def test_wildcard_hours_keep_real_time_cadence_through_fall_back(core: SchedulerCore) -> None:
    start = datetime(2026, 10, 24, 23, 50, tzinfo=UTC)  # 01:50 CEST; clocks go back at 01:00 UTC
    clock = FixedClock(start)
    schedule = _schedule(core, clock, "*/30 * * * *", "Europe/Berlin")
    _run_ticks(core, _dispatcher(core, clock), clock, schedule.id, start + timedelta(hours=3))
    ticks = [job["tick_at"] for job in _jobs(core, schedule.id)]
    assert len(ticks) == 6 and len(set(ticks)) == 6
    assert {b - a for a, b in zip(ticks, ticks[1:], strict=False)} == {timedelta(minutes=30)}


def test_six_field_schedules_fire_every_second(core: SchedulerCore) -> None:
    start = datetime(2026, 5, 4, 12, 0, 0, 500000, tzinfo=UTC)
    clock = FixedClock(start)
    schedule = _schedule(core, clock, "*/2 * * * * *", "Asia/Kolkata")
    _run_ticks(core, _dispatcher(core, clock), clock, schedule.id, start + timedelta(seconds=20))
    ticks = [job["tick_at"] for job in _jobs(core, schedule.id)]
    assert ticks == [datetime(2026, 5, 4, 12, 0, s, tzinfo=UTC) for s in range(2, 21, 2)]


# -- missed ticks and startingDeadlineSeconds -------------------------------------------


@pytest.mark.parametrize(
    ("deadline", "fires", "missed"),
    [(None, True, 10), (60, True, 10), (5, False, 11)],
)
def test_missed_ticks_after_downtime(core: SchedulerCore, deadline: int | None, fires: bool, missed: int) -> None:
    clock = FixedClock(datetime(2026, 5, 4, 11, 59, 30, tzinfo=UTC))
    schedule = _schedule(core, clock, "* * * * *", starting_deadline_seconds=deadline)
    dispatcher = _dispatcher(core, clock)
    clock.now = datetime(2026, 5, 4, 12, 10, 20, tzinfo=UTC)  # 12:00 … 12:10 were due while nobody ran
    dispatcher.dispatch_due()
    jobs = _jobs(core, schedule.id)
    assert [job["tick_at"] for job in jobs] == ([datetime(2026, 5, 4, 12, 10, tzinfo=UTC)] if fires else [])
    counters = _counters(core, schedule.id)
    assert counters["missed_ticks"] == missed and counters["skipped_ticks"] == 0
    assert counters["next_run"] == datetime(2026, 5, 4, 12, 11, tzinfo=UTC)
    metrics = dispatcher.metrics
    assert metrics.value("kadence_dispatcher_ticks_skipped_total", {"reason": "missed"}) == 10
    assert metrics.value("kadence_dispatcher_ticks_skipped_total", {"reason": "deadline"}) == (0 if fires else 1)


# -- concurrencyPolicy ----------------------------------------------------------------------


def _finish(core: SchedulerCore, job_id: str, state: str = "completed", at: datetime | None = None) -> None:
    with core.db.session(SYSTEM) as conn:
        conn.execute("UPDATE jobs SET state = %s, finished_at = %s WHERE id = %s",
                     (state, at or datetime.now(UTC), job_id))


def test_forbid_skips_a_tick_while_the_previous_run_is_unfinished(core: SchedulerCore) -> None:
    clock = FixedClock(datetime(2026, 5, 4, 11, 59, 30, tzinfo=UTC))
    schedule = _schedule(core, clock, "* * * * *", concurrency_policy="Forbid")
    dispatcher = _dispatcher(core, clock)
    base = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    _run_ticks(core, dispatcher, clock, schedule.id, base + timedelta(minutes=1))  # 12:00 fires, 12:01 skipped
    jobs = _jobs(core, schedule.id)
    assert [job["tick_at"] for job in jobs] == [base]
    assert _counters(core, schedule.id)["skipped_ticks"] == 1
    _finish(core, jobs[0]["id"])
    _run_ticks(core, dispatcher, clock, schedule.id, base + timedelta(minutes=2))  # 12:02 fires
    assert [job["tick_at"] for job in _jobs(core, schedule.id)] == [base, base + timedelta(minutes=2)]
    assert _counters(core, schedule.id)["skipped_ticks"] == 1
    assert dispatcher.metrics.value("kadence_dispatcher_ticks_skipped_total", {"reason": "forbid"}) == 1


def test_replace_cancels_the_unfinished_run_and_fires(core: SchedulerCore) -> None:
    clock = FixedClock(datetime(2026, 5, 4, 11, 59, 30, tzinfo=UTC))
    schedule = _schedule(core, clock, "* * * * *", concurrency_policy="Replace")
    dispatcher = _dispatcher(core, clock)
    base = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    _run_ticks(core, dispatcher, clock, schedule.id, base + timedelta(minutes=1))
    first, second = _jobs(core, schedule.id)
    assert (first["tick_at"], first["state"]) == (base, "cancelled")
    assert (second["tick_at"], second["state"]) == (base + timedelta(minutes=1), "waiting")
    assert core.queue.state(first["id"]) is JobState.CANCELLED
    assert _queued(core) == [second["id"]]
    assert dispatcher.metrics.value("kadence_dispatcher_runs_replaced_total") == 1


def test_allow_runs_ticks_side_by_side(core: SchedulerCore) -> None:
    clock = FixedClock(datetime(2026, 5, 4, 11, 59, 30, tzinfo=UTC))
    schedule = _schedule(core, clock, "* * * * *")
    _run_ticks(core, _dispatcher(core, clock), clock, schedule.id, datetime(2026, 5, 4, 12, 2, tzinfo=UTC))
    assert [job["state"] for job in _jobs(core, schedule.id)] == ["waiting"] * 3


# -- jitter, history, manual runs ----------------------------------------------------------


def test_jitter_delays_each_tick_by_its_deterministic_offset(core: SchedulerCore) -> None:
    clock = FixedClock(datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5))
    schedule = _schedule(core, clock, "* * * * *", jitter_seconds=30)
    dispatcher = _dispatcher(core, clock)
    _run_ticks(core, dispatcher, clock, schedule.id, clock.now + timedelta(minutes=3))
    jobs = _jobs(core, schedule.id)
    assert len(jobs) == 3
    offsets = set()
    for job in jobs:
        offset = jitter_offset(schedule.id, job["tick_at"], 30)
        offsets.add(offset)
        assert job["scheduled_for"] == job["tick_at"] + offset and timedelta(0) <= offset <= timedelta(seconds=30)
        if offset > timedelta(milliseconds=2):
            assert job["state"] == "delayed" and core.queue.state(job["id"]) is JobState.DELAYED
    assert len(offsets) == 3


def test_history_limits_prune_old_finished_runs(core: SchedulerCore) -> None:
    clock = FixedClock(datetime(2026, 5, 4, 11, 59, 30, tzinfo=UTC))
    schedule = _schedule(core, clock, "* * * * *", successful_jobs_history_limit=2, failed_jobs_history_limit=1)
    dispatcher = _dispatcher(core, clock)
    base = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    _run_ticks(core, dispatcher, clock, schedule.id, base + timedelta(minutes=5))
    jobs = _jobs(core, schedule.id)
    for index, job in enumerate(jobs[:5]):
        state = "completed" if index % 2 == 0 else "failed"
        _finish(core, job["id"], state, base + timedelta(minutes=index, seconds=1))
    _run_ticks(core, dispatcher, clock, schedule.id, base + timedelta(minutes=6))
    states = {job["tick_at"]: job["state"] for job in _jobs(core, schedule.id)}
    assert states == {
        base + timedelta(minutes=2): "completed",
        base + timedelta(minutes=3): "failed",
        base + timedelta(minutes=4): "completed",
        base + timedelta(minutes=5): "waiting",
        base + timedelta(minutes=6): "waiting",
    }


def test_trigger_runs_a_schedule_now_without_changing_its_cadence(core: SchedulerCore) -> None:
    clock = FixedClock(datetime.now(UTC))
    schedule = _schedule(core, clock, "0 3 * * *", "Europe/Berlin", priority="critical")
    scheduled = core.trigger_schedule(USER, schedule.id)
    assert scheduled.job_id.startswith(f"cron-{schedule.id}-manual-")
    job = core.get_job(USER, scheduled.job_id)
    assert job.schedule_id == schedule.id and job.task_id == f"schedule-{schedule.id}"
    assert job.priority is Priority.CRITICAL and job.handler == "noop"
    assert core.queue.state(scheduled.job_id) is JobState.WAITING
    again = core.trigger_schedule(UserContext(1, Role.MASTER), schedule.id)
    assert again.job_id != scheduled.job_id
    after = core.get_schedule(USER, schedule.id)
    assert after.next_run == schedule.next_run and after.last_run is None
    with pytest.raises(NotFound):
        core.trigger_schedule(UserContext(43), schedule.id)
    with pytest.raises(NotFound):
        core.trigger_schedule(USER, schedule.id + 1000)


# -- crash recovery, in process ------------------------------------------------------------


def test_the_recovery_sweep_queues_a_recorded_tick_that_never_reached_redis(core: SchedulerCore) -> None:
    clock = FixedClock(datetime(2026, 5, 4, 11, 59, 30, tzinfo=UTC))
    schedule = _schedule(core, clock, "* * * * *")
    dispatcher = _dispatcher(core, clock)
    clock.now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    dispatcher.dispatch_due()
    [job] = _jobs(core, schedule.id)
    core.queue.redis.delete(f"rq:job:{job['id']}", f"rq:queue:{Priority.NORMAL.queue_name}")  # as if never queued
    clock.now = datetime.now(UTC)
    assert dispatcher.recover_unqueued(timedelta(0)) == 1
    assert dispatcher.recover_unqueued(timedelta(0)) == 0
    assert _queued(core) == [job["id"]]
    _finish(core, job["id"])
    core.queue.redis.delete(f"rq:job:{job['id']}")
    assert dispatcher.recover_unqueued(timedelta(0)) == 0  # finished jobs are never queued again


# -- bulk -----------------------------------------------------------------------------------


def test_ten_thousand_schedules_due_on_the_same_second_are_all_fired(core: SchedulerCore) -> None:
    count = 10_000
    tick = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    with core.db.session(SYSTEM) as conn:
        conn.execute(
            """
            INSERT INTO cron_schedules (name, cron_expression, user_id, next_run, handler, args)
            SELECT 'burst-' || n, '0 0 * * *', 1 + n %% 50, %s, 'noop', '{}'::jsonb FROM generate_series(1, %s) n
            """,
            (tick, count),
        )
    dispatcher = Dispatcher(core.db, core.queue, core.defaults, environ={})
    while datetime.now(UTC) < tick:
        time.sleep(0.001)
    started = time.perf_counter()
    result = dispatcher.dispatch_due()
    elapsed = time.perf_counter() - started
    print(f"\nburst: {count} ticks due at one second recorded and queued in {elapsed:.2f} s")  # noqa: T201
    assert result.fired == count and result.queued == count
    assert core.queue.redis.llen(f"rq:queue:{Priority.NORMAL.queue_name}") == count
    with core.db.session(SYSTEM) as conn:
        row = conn.execute("SELECT count(*) AS n, count(DISTINCT schedule_id) AS s FROM jobs WHERE tick_at = %s",
                           (tick,)).fetchone()
    assert row is not None and row["n"] == row["s"] == count
    assert elapsed < 10.0


# -- the real process: timing, wake-ups, the promoter --------------------------------------


def start_dispatcher(settings: Settings, **env: str) -> subprocess.Popen[bytes]:
    """``kadence dispatcher`` as a child process with extra environment (fault hooks, sleep cap)."""
    environment = settings_env(settings)
    environment.update(env)
    return subprocess.Popen([sys.executable, "-c", "from kadence.cli import main; main()", "dispatcher"],
                            env=environment, start_new_session=True)


@pytest.fixture
def dispatchers(settings: Settings) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        stop_process(process, timeout=10)


def enqueue_lateness(core: SchedulerCore, schedule_ids: list[int]) -> list[float]:
    """Seconds between each tick and the moment its job was queued in Redis."""
    with core.db.session(SYSTEM) as conn:
        rows = conn.execute("SELECT id, tick_at FROM jobs WHERE schedule_id = ANY(%s) AND tick_at IS NOT NULL",
                            (schedule_ids,)).fetchall()
    lateness = []
    for row in rows:
        raw = core.queue.redis.hget(f"rq:job:{row['id']}", "enqueued_at")
        assert raw, f"job {row['id']} is recorded but not queued"
        queued = datetime.fromisoformat(raw.decode().replace("Z", "+00:00"))
        lateness.append((queued - row["tick_at"]).total_seconds())
    return lateness


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@pytest.mark.slow
def test_ticks_reach_redis_within_milliseconds_and_never_early(
    core: SchedulerCore, settings: Settings, dispatchers: list[subprocess.Popen[bytes]]
) -> None:
    # The sleep cap is 30 s: ticks of schedules created while it sleeps are only on time if the
    # schedules-changed message wakes it.
    dispatchers.append(start_dispatcher(settings, KADENCE_DISPATCHER_MAX_SLEEP_SECONDS="30"))
    time.sleep(2.0)
    ids = [core.schedule_recurring_task(
        USER, TaskInput(task_id="t", user_id=42, handler="noop"), name=f"timing-{n}", cron_expression=cron
    ).id for n, cron in enumerate(["* * * * * *", "* * * * * *", "*/2 * * * * *"])]
    delayed = core.schedule_delayed_task(USER, TaskInput(task_id="later", user_id=42, handler="noop"), delay_ms=1500)
    time.sleep(6.5)
    for schedule_id in ids:
        core.disable_schedule(USER, schedule_id)
    lateness = enqueue_lateness(core, ids)
    p50, p99 = statistics.median(lateness), percentile(lateness, 0.99)
    figures = f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {max(lateness) * 1000:.1f} ms"
    print(f"\ntick lateness over {len(lateness)} ticks: {figures}")  # noqa: T201
    assert len(lateness) >= 14
    assert min(lateness) >= 0.0 and max(lateness) <= 0.5
    # The dispatcher's promoter started the delayed one-off task on time (no worker runs here).
    assert core.queue.state(delayed.job_id) is JobState.WAITING
    for schedule_id in ids:
        assert _counters(core, schedule_id)["missed_ticks"] == 0


@pytest.mark.slow
def test_sigterm_stops_a_sleeping_dispatcher_promptly(settings: Settings) -> None:
    process = start_dispatcher(settings, KADENCE_DISPATCHER_MAX_SLEEP_SECONDS="60")
    time.sleep(2.5)
    started = time.monotonic()
    assert stop_process(process, timeout=10) == 0
    assert time.monotonic() - started < 3.0


def test_metrics_port_serves_the_dispatcher_metrics(settings: Settings) -> None:
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = start_dispatcher(settings, KADENCE_DISPATCHER_METRICS_PORT=str(port))
    try:
        body = wait_for(lambda: _fetch(urllib.request, f"http://127.0.0.1:{port}/metrics"), timeout=15)
        assert "kadence_dispatcher_ticks_fired_total" in body
        assert 'kadence_dispatcher_ticks_skipped_total{reason="forbid"}' in body
        assert "kadence_dispatcher_tick_lateness_seconds_bucket" in body
    finally:
        stop_process(process, timeout=10)


def _fetch(request: Any, url: str) -> str | None:
    try:
        with request.urlopen(url, timeout=1) as response:
            return str(response.read().decode())
    except OSError:
        return None
