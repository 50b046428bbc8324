"""The RQ adapter on its own: statistics per priority, retention, the migrate command."""

from __future__ import annotations

import psycopg
import pytest
from pydantic import SecretStr
from redis import Redis

from kadence.config import Settings
from kadence.core import SchedulerCore, TaskInput
from kadence.domain.models import Priority, Role, UserContext
from kadence.queue import TaskQueue
from tests.support import start_kadence, wait_for

ALICE = UserContext(10)
MASTER = UserContext(1, Role.MASTER)


def _noop(priority: str = "normal") -> TaskInput:
    return TaskInput(task_id="n", user_id=10, handler="noop", priority=priority)


def test_statistics_count_per_priority(core: SchedulerCore) -> None:
    for priority in ("critical", "low", "low"):
        core.schedule_task(ALICE, _noop(priority))
    core.schedule_delayed_task(ALICE, _noop("high"), delay_ms=60_000)
    stats = core.get_queue_stats(MASTER)
    assert (stats.waiting, stats.delayed, stats.active, stats.paused) == (3, 1, 0, 0)
    assert stats.by_priority[Priority.LOW]["waiting"] == 2
    assert stats.by_priority[Priority.CRITICAL]["waiting"] == 1
    assert stats.by_priority[Priority.HIGH]["delayed"] == 1


def test_retention_keeps_the_newest_completed_jobs(core: SchedulerCore, settings: Settings, worker_pool) -> None:
    ids = [core.schedule_task(ALICE, _noop()).job_id for _ in range(8)]
    worker_pool(1)
    wait_for(lambda: all(core.get_job(ALICE, job_id).state.is_final for job_id in ids), 20)
    queue = TaskQueue(Redis.from_url(settings.redis_url.get_secret_value()), completed_keep=5)
    wait_for(lambda: queue.stats().completed == 8, 5)
    assert queue.apply_retention() == 3
    assert queue.stats().completed == 5
    kept = [job_id for job_id in ids if queue.fetch(job_id) is not None]
    assert kept == ids[-5:]
    # PostgreSQL keeps the history of all of them.
    assert all(core.get_job(ALICE, job_id).state.value == "completed" for job_id in ids)


def test_migrate_command_applies_once(settings: Settings, postgres_admin_url: str) -> None:
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS kadence_migrate_test WITH (FORCE)")
        conn.execute("CREATE DATABASE kadence_migrate_test")
    owner = postgres_admin_url.rsplit("/", 1)[0] + "/kadence_migrate_test"
    fresh = settings.model_copy(update={"migration_database_url": SecretStr(owner)})
    first = start_kadence(["migrate"], fresh, stdout=-1)
    assert first.wait(60) == 0 and b"0001_initial" in first.stdout.read()
    second = start_kadence(["migrate"], fresh, stdout=-1)
    assert second.wait(60) == 0 and b"up to date" in second.stdout.read()
    with psycopg.connect(owner) as conn:
        applied = conn.execute("SELECT count(*) FROM kadence_migrations").fetchone()
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"jobs", "job_events", "cron_schedules", "api_tokens"} <= tables
    assert applied is not None and applied[0] >= 1


def test_a_job_lost_from_redis_is_queued_again(core: SchedulerCore, settings: Settings, worker_pool) -> None:
    first = core.schedule_task(ALICE, _noop()).job_id
    later = core.schedule_delayed_task(ALICE, _noop(), delay_ms=60_000).job_id
    Redis.from_url(settings.redis_url.get_secret_value()).flushdb()  # Redis lost everything
    assert core.requeue_lost_jobs(grace_seconds=0) == 2
    assert core.requeue_lost_jobs(grace_seconds=0) == 0  # already back: never queued twice
    stats = core.get_queue_stats(MASTER)
    assert (stats.waiting, stats.delayed) == (1, 1)
    worker_pool(1)
    wait_for(lambda: core.get_job(ALICE, first).state.value == "completed", 20)
    assert core.get_job(ALICE, later).state.value == "delayed"


def test_a_worker_pool_can_serve_only_some_priorities(core: SchedulerCore, settings: Settings) -> None:
    from tests.support import stop_process

    low = core.schedule_task(ALICE, _noop("low")).job_id
    critical = core.schedule_task(ALICE, _noop("critical")).job_id
    pool = start_kadence(["worker", "--concurrency", "1", "--queues", "critical,high"], settings)
    try:
        wait_for(lambda: core.get_job(ALICE, critical).state.value == "completed", 20)
        assert core.get_job(ALICE, low).state.value == "waiting"
    finally:
        stop_process(pool)
    bad = start_kadence(["worker", "--queues", "urgent"], settings, stderr=-1)
    assert bad.wait(30) == 2 and b"urgent" in bad.stderr.read()


def test_a_schedule_records_the_outcome_of_its_last_run(core: SchedulerCore, worker_pool) -> None:
    ok = core.schedule_recurring_task(ALICE, _noop(), name="ok", cron_expression="0 0 1 1 *")
    failing = core.schedule_recurring_task(
        ALICE,
        TaskInput(task_id="f", user_id=10, handler="python", max_attempts=1,
                  args={"callable": "kadence.handlers.examples:fail"}),
        name="failing",
        cron_expression="0 0 1 1 *",
    )  # fmt: skip
    core.trigger_schedule(ALICE, ok.id)
    core.trigger_schedule(ALICE, failing.id)
    worker_pool(1)
    wait_for(lambda: core.get_schedule(ALICE, ok.id).last_result == "completed", 20)
    wait_for(lambda: core.get_schedule(ALICE, failing.id).last_result == "failed", 20)


def test_history_older_than_the_retention_days_is_pruned(core: SchedulerCore) -> None:
    from datetime import UTC, datetime, timedelta

    from kadence.domain.errors import NotFound

    finished = core.schedule_task(ALICE, _noop()).job_id
    core.cancel_job(ALICE, finished)  # finished now
    pending = core.schedule_task(ALICE, _noop()).job_id
    assert core.prune_history(30) == 0
    in_a_month = datetime.now(UTC) + timedelta(days=31)
    month_later = SchedulerCore(core.db, core.queue, core.defaults, clock=lambda: in_a_month)
    assert month_later.prune_history(30) == 1
    with pytest.raises(NotFound):
        core.get_job(ALICE, finished)
    assert core.get_job(ALICE, pending).state.value == "waiting"


def test_a_job_taken_by_a_worker_that_died_before_starting_it_is_put_back(
    core: SchedulerCore, settings: Settings, worker_pool
) -> None:
    taken = core.schedule_task(ALICE, _noop()).job_id
    waiting = core.schedule_task(ALICE, _noop()).job_id
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    # What a worker does first (BLPOP), and then it is killed before it starts the job.
    assert redis.lpop(f"rq:queue:{Priority.NORMAL.queue_name}") == taken.encode()
    assert core.stranded_jobs(grace_seconds=0) == {taken}
    assert core.queue.restore({taken}) == 1
    assert core.queue.restore({taken, waiting}) == 0  # back on its queue: nothing to do
    assert core.stranded_jobs(grace_seconds=0) == set()
    worker_pool(1)
    wait_for(lambda: core.get_job(ALICE, taken).state.value == "completed", 20)
    wait_for(lambda: core.get_job(ALICE, waiting).state.value == "completed", 20)
