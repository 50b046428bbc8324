"""SchedulerCore with real workers against real PostgreSQL and Redis."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest

from kadence.core import SchedulerCore, TaskInput
from kadence.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from kadence.domain.models import JobState, Role, UserContext
from tests.support import WebhookReceiver, wait_for

MASTER = UserContext(user_id=1, role=Role.MASTER)
ALICE = UserContext(user_id=10)
BOB = UserContext(user_id=20)


def webhook(receiver: WebhookReceiver, user: UserContext = ALICE, **fields: object) -> TaskInput:
    values: dict[str, object] = {
        "task_id": "t-1",
        "user_id": user.user_id,
        "task_goal": "ping",
        "handler": "webhook",
        "args": {"url": receiver.url, "n": 1},
    }
    values.update(fields)
    return TaskInput(**values)  # type: ignore[arg-type]


def python_task(user: UserContext, function: str, **args: object) -> TaskInput:
    return TaskInput(
        task_id="py",
        user_id=user.user_id,
        handler="python",
        args={"callable": f"kadence.handlers.examples:{function}", **args},
    )


def final_job(core: SchedulerCore, job_id: str, timeout: float = 20.0) -> object:
    return wait_for(lambda: (job := core.get_job(MASTER, job_id)).state.is_final and job, timeout, message=job_id)


def test_task_runs_through_waiting_active_completed(
    core: SchedulerCore, receiver: WebhookReceiver, worker_pool
) -> None:
    scheduled = core.schedule_task(ALICE, webhook(receiver))
    assert core.get_job(ALICE, scheduled.job_id).state is JobState.WAITING
    worker_pool(1)
    job = final_job(core, scheduled.job_id)
    assert job.state is JobState.COMPLETED
    assert job.attempts == 1 and job.result == {"statusCode": 200}
    assert job.started_at and job.finished_at and job.started_at <= job.finished_at
    [delivery] = receiver.for_job(scheduled.job_id)
    assert delivery.body["taskId"] == "t-1" and delivery.body["userId"] == 10 and delivery.body["args"] == {"n": 1}
    kinds = [event["kind"] for event in core.job_events(ALICE, scheduled.job_id)]
    assert kinds == ["scheduled", "started", "completed"]


def test_active_state_is_visible_while_running(core: SchedulerCore, worker_pool) -> None:
    scheduled = core.schedule_task(ALICE, python_task(ALICE, "sleep", seconds=2))
    worker_pool(1)
    wait_for(lambda: core.get_job(ALICE, scheduled.job_id).state is JobState.ACTIVE, message="active")
    assert core.get_queue_stats(MASTER).active == 1
    assert final_job(core, scheduled.job_id).state is JobState.COMPLETED


def test_delayed_task_never_starts_early(core: SchedulerCore, receiver: WebhookReceiver, worker_pool) -> None:
    worker_pool(1)
    before = datetime.now(UTC)
    scheduled = core.schedule_delayed_task(ALICE, webhook(receiver), delay_ms=1500)
    assert scheduled.scheduled_for and scheduled.scheduled_for >= before + timedelta(milliseconds=1500)
    assert core.get_job(ALICE, scheduled.job_id).state is JobState.DELAYED
    assert core.get_queue_stats(MASTER).delayed == 1
    job = final_job(core, scheduled.job_id)
    assert job.state is JobState.COMPLETED
    [delivery] = receiver.for_job(scheduled.job_id)
    lateness = delivery.at - scheduled.scheduled_for.timestamp()
    assert 0 <= lateness < 1.0, f"started {lateness:+.3f}s from its time"


def test_run_at_schedules_at_that_time(core: SchedulerCore, receiver: WebhookReceiver, worker_pool) -> None:
    run_at = datetime.now(UTC) + timedelta(seconds=1)
    scheduled = core.schedule_delayed_task(ALICE, webhook(receiver), run_at=run_at.isoformat())
    assert scheduled.scheduled_for == run_at
    worker_pool(1)
    assert final_job(core, scheduled.job_id).state is JobState.COMPLETED
    assert receiver.for_job(scheduled.job_id)[0].at >= run_at.timestamp()


def test_webhook_failing_twice_then_succeeding_completes_on_third_attempt(
    core: SchedulerCore, receiver: WebhookReceiver, worker_pool
) -> None:
    receiver.statuses = [500, 503]
    worker_pool(1)
    scheduled = core.schedule_task(ALICE, webhook(receiver, max_attempts=3))
    job = final_job(core, scheduled.job_id)
    assert job.state is JobState.COMPLETED and job.attempts == 3
    times = [d.at for d in receiver.for_job(scheduled.job_id)]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert len(gaps) == 2
    assert 1.0 <= gaps[0] < 1.8 and 2.0 <= gaps[1] < 2.8, gaps
    kinds = [(e["kind"], e["attempt"]) for e in core.job_events(ALICE, scheduled.job_id)]
    assert ("error", 1) in kinds and ("error", 2) in kinds and ("completed", 3) in kinds


def test_task_that_always_fails_ends_failed_with_every_attempt_recorded(core: SchedulerCore, worker_pool) -> None:
    worker_pool(1)
    task = TaskInput(
        task_id="f",
        user_id=10,
        handler="python",
        max_attempts=2,
        args={"callable": "kadence.handlers.examples:fail", "message": "boom"},
    )
    scheduled = core.schedule_task(ALICE, task)
    job = final_job(core, scheduled.job_id)
    assert job.state is JobState.FAILED and job.attempts == 2
    assert "boom" in (job.error or "")
    events = core.job_events(ALICE, scheduled.job_id)
    assert [(e["kind"], e["attempt"]) for e in events if e["kind"] in ("error", "failed")] == [
        ("error", 1),
        ("failed", 2),
    ]


def test_cancelled_delayed_job_never_runs(core: SchedulerCore, receiver: WebhookReceiver, worker_pool) -> None:
    worker_pool(1)
    scheduled = core.schedule_delayed_task(ALICE, webhook(receiver), delay_ms=800)
    job = core.cancel_job(ALICE, scheduled.job_id)
    assert job.state is JobState.CANCELLED
    assert core.get_queue_stats(MASTER).delayed == 0
    time.sleep(1.6)
    assert receiver.for_job(scheduled.job_id) == []
    assert core.get_job(ALICE, scheduled.job_id).state is JobState.CANCELLED


def test_cancelled_waiting_job_never_runs_and_finished_job_cannot_be_cancelled(
    core: SchedulerCore, receiver: WebhookReceiver, worker_pool
) -> None:
    cancelled = core.schedule_task(ALICE, webhook(receiver))
    core.cancel_job(ALICE, cancelled.job_id)
    assert core.get_queue_stats(MASTER).waiting == 0
    done = core.schedule_task(ALICE, webhook(receiver))
    worker_pool(1)
    final_job(core, done.job_id)
    assert receiver.for_job(cancelled.job_id) == []
    with pytest.raises(Conflict, match="already completed"):
        core.cancel_job(ALICE, done.job_id)
    with pytest.raises(NotFound):
        core.cancel_job(ALICE, "no-such-job")


def test_cancelling_an_active_job_stops_its_retries(core: SchedulerCore, worker_pool) -> None:
    worker_pool(1)
    task = TaskInput(
        task_id="slow",
        user_id=10,
        handler="python",
        max_attempts=3,
        args={"callable": "kadence.handlers.examples:sleep", "seconds": 1},
    )
    scheduled = core.schedule_task(ALICE, task)
    wait_for(lambda: core.get_job(ALICE, scheduled.job_id).state is JobState.ACTIVE)
    assert core.cancel_job(ALICE, scheduled.job_id).state is JobState.CANCELLED
    time.sleep(1.5)
    job = core.get_job(ALICE, scheduled.job_id)
    assert job.state is JobState.CANCELLED and job.result is None


def test_pause_holds_jobs_and_resume_runs_the_most_urgent_first(
    core: SchedulerCore, receiver: WebhookReceiver, worker_pool
) -> None:
    worker_pool(1)
    time.sleep(1.0)  # the worker is up and blocked waiting for work
    core.pause(MASTER)
    low = core.schedule_task(ALICE, webhook(receiver, priority="low"))
    critical = core.schedule_task(ALICE, webhook(receiver, priority="critical"))
    time.sleep(0.5)
    stats = core.get_queue_stats(MASTER)
    assert stats.is_paused and stats.paused == 2 and stats.waiting == 0
    assert receiver.deliveries == []
    core.resume(MASTER)
    final_job(core, low.job_id)
    order = [d.body["jobId"] for d in receiver.deliveries]
    assert order == [critical.job_id, low.job_id]


def test_only_master_pauses(core: SchedulerCore) -> None:
    with pytest.raises(Forbidden):
        core.pause(ALICE)
    assert core.is_paused() is False


def test_worker_killed_mid_job_does_not_lose_it(core: SchedulerCore, worker_pool) -> None:
    pool = worker_pool(1)
    task = TaskInput(
        task_id="slow",
        user_id=10,
        handler="python",
        max_attempts=2,
        args={"callable": "kadence.handlers.examples:sleep", "seconds": 1.5},
    )
    scheduled = core.schedule_task(ALICE, task)
    wait_for(lambda: core.get_job(ALICE, scheduled.job_id).state is JobState.ACTIVE)
    from tests.support import children_of

    [worker_pid] = wait_for(lambda: children_of(pool.pid) or None)
    os.kill(worker_pid, signal.SIGKILL)
    job = final_job(core, scheduled.job_id, timeout=30)
    assert job.state is JobState.COMPLETED and job.attempts == 2
    kinds = [e["kind"] for e in core.job_events(ALICE, scheduled.job_id)]
    assert kinds.count("started") == 2 and "error" in kinds


def test_same_job_id_schedules_once(core: SchedulerCore, receiver: WebhookReceiver) -> None:
    first = core.schedule_task(ALICE, webhook(receiver), job_id="uid-123")
    second = core.schedule_task(ALICE, webhook(receiver), job_id="uid-123")
    assert first.created and not second.created
    assert core.get_queue_stats(MASTER).waiting == 1


def test_bad_input_names_the_field(core: SchedulerCore, receiver: WebhookReceiver) -> None:
    cases = [
        (dict(priority="urgent"), "priority"),
        (dict(max_attempts=0), "maxAttempts"),
        (dict(task_id=""), "taskId"),
        (dict(handler="shell"), "handler"),
        (dict(args={"url": "ftp://x"}), "args.url"),
    ]
    for fields, field in cases:
        with pytest.raises(InvalidInput) as caught:
            core.schedule_task(ALICE, webhook(receiver, **fields))
        assert caught.value.field == field
    with pytest.raises(InvalidInput, match="delay"):
        core.schedule_delayed_task(ALICE, webhook(receiver), delay_ms=-5)
    with pytest.raises(InvalidInput, match="runAt"):
        core.schedule_delayed_task(ALICE, webhook(receiver), run_at="2001-01-01T00:00:00Z")
    with pytest.raises(Forbidden):
        core.schedule_task(ALICE, webhook(receiver, user=BOB))
    assert core.get_queue_stats(MASTER).waiting == 0


def test_recurring_task_is_stored_with_next_run(core: SchedulerCore, receiver: WebhookReceiver) -> None:
    schedule = core.schedule_recurring_task(
        ALICE, webhook(receiver), name="nightly", cron_expression="30 2 * * *", timezone="Europe/Berlin"
    )
    assert schedule.enabled and schedule.next_run and schedule.next_run > datetime.now(UTC)
    assert schedule.next_run.astimezone(schedule.next_run.tzinfo).minute == 30
    assert [s.id for s in core.list_cron_schedules(ALICE, 10)] == [schedule.id]
    disabled = core.disable_schedule(ALICE, schedule.id)
    assert not disabled.enabled and disabled.next_run is None
    assert core.enable_schedule(ALICE, schedule.id).next_run == schedule.next_run
    with pytest.raises(InvalidInput, match="cronExpression"):
        core.schedule_recurring_task(ALICE, webhook(receiver), name="bad", cron_expression="61 * * * *")
    with pytest.raises(InvalidInput, match="timezone"):
        core.schedule_recurring_task(
            ALICE, webhook(receiver), name="bad", cron_expression="* * * * *", timezone="Mars/Olympus"
        )
    core.delete_schedule(ALICE, schedule.id)
    assert core.list_cron_schedules(ALICE, 10) == []


def test_a_retried_call_for_a_finished_job_does_not_run_it_again(core: SchedulerCore, worker_pool) -> None:
    task = TaskInput(task_id="once", user_id=10, handler="noop")
    core.schedule_task(ALICE, task, job_id="idem-1")
    worker_pool(1)
    assert final_job(core, "idem-1").state is JobState.COMPLETED
    core.queue.redis.flushdb()  # Redis forgot the job (retention, expiry)
    again = core.schedule_task(ALICE, task, job_id="idem-1")
    assert not again.created
    assert core.get_queue_stats(MASTER).waiting == 0


def test_a_job_that_cannot_be_queued_is_withdrawn(settings, core: SchedulerCore) -> None:
    from pydantic import SecretStr

    from kadence.core import core_from_settings
    from kadence.domain.errors import Unavailable
    from kadence.embedded import free_port

    broken = core_from_settings(
        settings.model_copy(update={"redis_url": SecretStr(f"redis://127.0.0.1:{free_port()}/0")})
    )
    try:
        with pytest.raises(Unavailable):
            broken.schedule_task(ALICE, TaskInput(task_id="x", user_id=10, handler="noop"), job_id="withdrawn")
    finally:
        broken.close()
    with pytest.raises(NotFound):
        core.get_job(ALICE, "withdrawn")
    # The caller's retry with the same id starts afresh.
    assert core.schedule_task(ALICE, TaskInput(task_id="x", user_id=10, handler="noop"), job_id="withdrawn").created
