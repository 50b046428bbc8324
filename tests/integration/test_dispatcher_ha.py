"""Several dispatchers at once, and dispatchers that die: every tick fires exactly once.

No workers run here, so every queued tick stays in its Redis list: a tick queued twice
would show up twice there, a lost one not at all.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from kadence.config import Settings
from kadence.core import SchedulerCore, TaskInput
from kadence.dispatcher import CRASH_EXIT_CODE
from kadence.domain.cron import fire_times_between, parse_cron
from kadence.domain.models import Priority, UserContext
from kadence.domain.ticks import tick_job_id
from tests.integration.test_dispatcher import enqueue_lateness, percentile, start_dispatcher
from tests.support import stop_process, wait_for

pytestmark = pytest.mark.slow

SYSTEM = UserContext.system()
USER = UserContext(42)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            stop_process(process, timeout=10)


def _create(core: SchedulerCore, crons: list[str], **fields: Any) -> list[int]:
    return [
        core.schedule_recurring_task(
            USER, TaskInput(task_id="t", user_id=42, handler="noop"), name=f"ha-{n}", cron_expression=cron, **fields
        ).id
        for n, cron in enumerate(crons)
    ]


def _ticks(core: SchedulerCore, schedule_id: int) -> list[tuple[str, datetime]]:
    with core.db.session(SYSTEM) as conn:
        rows = conn.execute(
            "SELECT id, tick_at FROM jobs WHERE schedule_id = %s AND tick_at IS NOT NULL ORDER BY tick_at",
            (schedule_id,),
        ).fetchall()
    return [(row["id"], row["tick_at"]) for row in rows]


def _schedule_row(core: SchedulerCore, schedule_id: int) -> dict[str, Any]:
    with core.db.session(SYSTEM) as conn:
        row = conn.execute("SELECT cron_expression, timezone, missed_ticks, skipped_ticks FROM cron_schedules "
                           "WHERE id = %s", (schedule_id,)).fetchone()
    assert row is not None
    return row


def _queued(core: SchedulerCore) -> Counter[str]:
    return Counter(m.decode() for m in core.queue.redis.lrange(f"rq:queue:{Priority.NORMAL.queue_name}", 0, -1))


def _expected_ticks(core: SchedulerCore, schedule_id: int, first: datetime, last: datetime) -> list[datetime]:
    row = _schedule_row(core, schedule_id)
    cron = parse_cron(row["cron_expression"], row["timezone"])
    return [first, *fire_times_between(cron, first, last)]


def test_three_dispatchers_fire_every_tick_exactly_once(
    core: SchedulerCore, settings: Settings, processes: list[subprocess.Popen[bytes]]
) -> None:
    processes.extend(start_dispatcher(settings) for _ in range(3))
    time.sleep(2.5)
    ids = _create(core, ["* * * * * *"] * 8 + ["*/2 * * * * *"] * 2)
    first_runs = {s.id: s.next_run for s in core.list_cron_schedules(USER)}
    time.sleep(24)
    for schedule_id in ids:
        core.disable_schedule(USER, schedule_id)
    queued = _queued(core)
    total = 0
    for schedule_id in ids:
        ticks = _ticks(core, schedule_id)
        fired = [tick for _, tick in ticks]
        assert fired[0] == first_runs[schedule_id]  # nothing missed at the start either
        assert fired == _expected_ticks(core, schedule_id, fired[0], fired[-1]), f"schedule {schedule_id}"
        assert all(queued[job_id] == 1 for job_id, _ in ticks), f"schedule {schedule_id} queued a tick twice or never"
        row = _schedule_row(core, schedule_id)
        assert row["missed_ticks"] == 0 and row["skipped_ticks"] == 0
        total += len(ticks)
    assert sum(queued.values()) == total >= 200
    lateness = enqueue_lateness(core, ids)
    figures = f"p50 {statistics.median(lateness) * 1000:.1f} ms, p99 {percentile(lateness, 0.99) * 1000:.1f} ms"
    print(f"\n3 dispatchers: {total} ticks, each exactly once; lateness {figures}")  # noqa: T201
    assert min(lateness) >= 0.0 and max(lateness) <= 0.5
    assert all(process.poll() is None for process in processes)


def test_dispatchers_killed_at_random_points_never_fire_twice_or_lose_a_tick(
    core: SchedulerCore, settings: Settings, processes: list[subprocess.Popen[bytes]]
) -> None:
    rng = random.Random(20260504)
    ids = _create(core, ["* * * * * *"] * 3 + ["*/2 * * * * *"], starting_deadline_seconds=30)
    ids += _create(core, ["* * * * * *"], starting_deadline_seconds=1)
    # Half the runs end by SIGKILL at a random moment, the others at a fault-injection point:
    # before the commit, between commit and queueing, or right after queueing.
    faults = [{}, {}, {"KADENCE_DISPATCHER_CRASH_BEFORE_COMMIT": "2"},
              {"KADENCE_DISPATCHER_CRASH_AFTER_COMMIT": "2"}, {"KADENCE_DISPATCHER_CRASH_AFTER_ENQUEUE": "3"}]
    deadline = time.monotonic() + 22
    injected = 0
    while time.monotonic() < deadline:
        env = rng.choice(faults)
        process = start_dispatcher(settings, **env)
        processes.append(process)
        try:
            process.wait(rng.uniform(0.1, 1.5) + (1.5 if env else 0.0))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        injected += process.returncode == CRASH_EXIT_CODE
        time.sleep(rng.choice([0.0, 0.0, rng.uniform(0.5, 2.5)]))  # sometimes stay down long enough to miss ticks
    final = start_dispatcher(settings)
    processes.append(final)
    time.sleep(7.0)  # its start-up sweep and one periodic sweep run in this time
    for schedule_id in ids:
        core.disable_schedule(USER, schedule_id)
    queued = _queued(core)
    fired_total = missed_total = 0
    for schedule_id in ids:
        ticks = _ticks(core, schedule_id)
        fired = [tick for _, tick in ticks]
        first = core.get_schedule(USER, schedule_id).created_at
        expected = _expected_ticks(core, schedule_id, fired[0], fired[-1])
        assert set(fired) <= set(expected) and len(fired) == len(set(fired))
        row = _schedule_row(core, schedule_id)
        # Every tick between the first and the last fired once or was counted as missed.
        missed_in_range = row["missed_ticks"] - len([t for t in fire_times_between(
            parse_cron(row["cron_expression"], row["timezone"]), first, fired[0]) if t < fired[0]])
        assert len(fired) + missed_in_range == len(expected), f"schedule {schedule_id}"
        assert all(queued[job_id] == 1 for job_id, _ in ticks), f"schedule {schedule_id}: a tick queued 0 or 2 times"
        assert all(job_id == tick_job_id(schedule_id, tick) for job_id, tick in ticks)
        fired_total += len(fired)
        missed_total += missed_in_range
    assert sum(queued.values()) == fired_total
    runs = f"{len(processes) - 1} crashed runs ({injected} at fault points)"
    print(f"\nkill loop: {runs}, {fired_total} ticks fired once each, {missed_total} missed and counted")  # noqa: T201
    assert injected >= 1 and fired_total >= 30 and missed_total >= 1


def test_a_crash_between_commit_and_queueing_is_recovered_by_the_next_dispatcher(
    core: SchedulerCore, settings: Settings, processes: list[subprocess.Popen[bytes]]
) -> None:
    crashing = start_dispatcher(settings, KADENCE_DISPATCHER_CRASH_AFTER_COMMIT="1")
    processes.append(crashing)
    time.sleep(2.0)
    [schedule_id] = _create(core, ["* * * * * *"])
    assert crashing.wait(10) == CRASH_EXIT_CODE
    [(job_id, _)] = _ticks(core, schedule_id)
    assert core.queue.state(job_id) is None  # recorded and committed, never queued
    assert core.get_job(USER, job_id).state.value == "waiting"
    processes.append(start_dispatcher(settings))
    wait_for(lambda: _queued(core)[job_id] == 1, timeout=10, message="the orphaned tick to be queued")
    time.sleep(1.5)
    core.disable_schedule(USER, schedule_id)
    queued = _queued(core)
    ticks = _ticks(core, schedule_id)
    assert len(ticks) >= 2 and all(queued[jid] == 1 for jid, _ in ticks)
