"""SchedulerCore: the one application service that every front door (API, operator, CLI) calls.

Each call acts for a :class:`UserContext`; PostgreSQL's row-level security applies it, so a
user can only ever read or change their own jobs and schedules. PostgreSQL holds the
durable record and is written first; Redis holds the queues and is derived from it.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis

from kadence.config import Settings
from kadence.domain.cron import next_fire_time, parse_cron
from kadence.domain.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from kadence.domain.models import (
    Backoff,
    CronSchedule,
    Job,
    JobState,
    Priority,
    QueueStats,
    Role,
    TaskSpec,
    UserContext,
)
from kadence.domain.ticks import manual_job_id, tick_task_spec
from kadence.domain.validation import (
    build_task_spec,
    parse_args,
    parse_concurrency_policy,
    parse_int,
    parse_text,
    parse_user_id,
    resolve_run_at,
)
from kadence.queue import BulkJob, TaskQueue
from kadence.store import jobs as job_store
from kadence.store import schedules as schedule_store
from kadence.store import tokens as token_store
from kadence.store.db import Database

log = logging.getLogger(__name__)

# Redis channel on which schedule changes are announced, so dispatchers wake at once.
SCHEDULES_CHANGED = "kadence:schedules-changed"

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """The answer to a scheduling call."""

    job_id: str
    scheduled_for: datetime | None = None
    created: bool = True


@dataclass(frozen=True, slots=True)
class TaskInput:
    """Raw, unvalidated task fields as a front door received them."""

    task_id: object
    user_id: object
    task_goal: object = None
    priority: object = None
    max_attempts: object = None
    handler: object = None
    args: object = None
    backoff_base_seconds: object = None
    backoff_max_seconds: object = None
    timeout_seconds: object = None

    @classmethod
    def from_fields(cls, source: Any, *, task_id: object = None) -> TaskInput:
        """The task fields of a request body or resource spec (attributes named as here,
        with an optional ``backoff`` carrying ``base_seconds`` and ``max_seconds``)."""
        backoff = source.backoff
        return cls(
            task_id=source.task_id if task_id is None else task_id,
            user_id=source.user_id,
            task_goal=source.task_goal,
            priority=source.priority,
            max_attempts=source.max_attempts,
            handler=source.handler,
            args=source.args,
            backoff_base_seconds=backoff.base_seconds if backoff else None,
            backoff_max_seconds=backoff.max_seconds if backoff else None,
            timeout_seconds=source.timeout_seconds,
        )


class SchedulerCore:
    """Schedule, inspect and cancel tasks; manage recurring schedules; pause and resume."""

    def __init__(self, db: Database, queue: TaskQueue, defaults: TaskSpec, clock: Clock = utcnow) -> None:
        self.db = db
        self.queue = queue
        self.defaults = defaults
        self.clock = clock

    # -- one-off tasks -----------------------------------------------------------------

    def _spec(self, ctx: UserContext, task: TaskInput) -> TaskSpec:
        spec = build_task_spec(
            task_id=task.task_id,
            user_id=task.user_id,
            task_goal=task.task_goal,
            priority=task.priority,
            max_attempts=task.max_attempts,
            handler=task.handler,
            args=task.args,
            backoff_base_seconds=task.backoff_base_seconds,
            backoff_max_seconds=task.backoff_max_seconds,
            timeout_seconds=task.timeout_seconds,
            defaults=self.defaults,
        )
        _check_acts_for(ctx, spec.user_id)
        return spec

    def schedule_task(
        self, ctx: UserContext, task: TaskInput, *, job_id: str | None = None, owner: str | None = None
    ) -> ScheduledJob:
        """Run a task as soon as a worker is free. ``job_id`` makes the call idempotent."""
        return self._schedule(ctx, self._spec(ctx, task), None, job_id=job_id, owner=owner)

    def schedule_delayed_task(
        self,
        ctx: UserContext,
        task: TaskInput,
        *,
        delay_ms: object = None,
        run_at: object = None,
        job_id: str | None = None,
        owner: str | None = None,
    ) -> ScheduledJob:
        """Run a task after ``delay_ms`` milliseconds or at ``run_at`` (never before)."""
        spec = self._spec(ctx, task)
        when = resolve_run_at(delay_ms=delay_ms, run_at=run_at, now=self.clock())
        return self._schedule(ctx, spec, when, job_id=job_id, owner=owner)

    def _schedule(
        self,
        ctx: UserContext,
        spec: TaskSpec,
        run_at: datetime | None,
        *,
        job_id: str | None,
        owner: str | None,
        schedule_id: int | None = None,
        tick_at: datetime | None = None,
    ) -> ScheduledJob:
        if job_id is not None:
            parse_text(job_id, "jobId", required=True, max_length=200)
        new_id = job_id or str(uuid.uuid4())
        state = JobState.DELAYED if run_at is not None and run_at > self.clock() else JobState.WAITING
        record = job_store.NewJob(new_id, spec, state, run_at, schedule_id=schedule_id, tick_at=tick_at, owner=owner)
        created = job_store.record_job(self.db, ctx, record)
        existing = None
        if not created:
            with self.db.session(ctx) as conn:
                existing = job_store.get_job(conn, new_id)
            if existing is None:  # the id belongs to a job this caller cannot see
                raise Conflict(f"job id {new_id!r} is already in use")
        if existing is not None and existing.state not in (JobState.WAITING, JobState.DELAYED):
            # A retried call for a job that already ran: nothing to queue again.
            return ScheduledJob(new_id, existing.scheduled_for, created=False)
        # The row is committed before the job is queued, so a worker never meets a job
        # without its record. If queueing fails, the record is withdrawn again, so that
        # the caller's retry (with the same id, if it chose one) starts afresh.
        try:
            self.queue.enqueue(new_id, spec, run_at=run_at, schedule_id=schedule_id)
        except Unavailable:
            if created:
                self._withdraw(ctx, [new_id])
            raise
        log.info("job scheduled job_id=%s task_id=%s user_id=%s priority=%s run_at=%s",
                 new_id, spec.task_id, spec.user_id, spec.priority.value, run_at)
        return ScheduledJob(new_id, run_at, created)

    def _withdraw(self, ctx: UserContext, job_ids: list[str]) -> None:
        """Remove the records of jobs that could not be queued (the caller was told so)."""
        try:
            with self.db.session(ctx) as conn:
                job_store.delete_jobs(conn, job_ids)
        except Unavailable:
            log.warning("could not withdraw jobs that failed to queue job_ids=%s", job_ids[:10])

    def schedule_tasks(self, ctx: UserContext, tasks: Sequence[tuple[TaskInput, object, object]]) -> list[ScheduledJob]:
        """Schedule many tasks at once: (task, delay_ms, run_at) each; all or nothing is validated."""
        now = self.clock()
        prepared: list[tuple[str, TaskSpec, datetime | None]] = []
        for index, (task, delay_ms, run_at) in enumerate(tasks):
            try:
                spec = self._spec(ctx, task)
                when = None if delay_ms is None and run_at is None else resolve_run_at(
                    delay_ms=delay_ms, run_at=run_at, now=now
                )
            except InvalidInput as exc:
                raise InvalidInput(f"tasks[{index}].{exc.field}", exc.reason) from None
            prepared.append((str(uuid.uuid4()), spec, when))
        records = [
            job_store.NewJob(job_id, spec, JobState.DELAYED if when and when > now else JobState.WAITING, when)
            for job_id, spec, when in prepared
        ]
        with self.db.session(ctx) as conn:
            job_store.insert_jobs(conn, records)
        try:
            self.queue.enqueue_many([(job_id, spec, when, None) for job_id, spec, when in prepared])
        except Unavailable:
            self._withdraw(ctx, [job_id for job_id, _, _ in prepared])
            raise
        return [ScheduledJob(job_id, when) for job_id, _, when in prepared]

    def get_job(self, ctx: UserContext, job_id: str) -> Job:
        with self.db.session(ctx) as conn:
            job = job_store.get_job(conn, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        if job.state is JobState.DELAYED and job.scheduled_for and job.scheduled_for <= self.clock():
            job = job.model_copy(update={"state": JobState.WAITING})
        return job

    def job_events(self, ctx: UserContext, job_id: str) -> list[dict[str, Any]]:
        with self.db.session(ctx) as conn:
            if job_store.get_job(conn, job_id) is None:
                raise NotFound(f"job {job_id} not found")
            return job_store.job_events(conn, job_id)

    def cancel_job(self, ctx: UserContext, job_id: str) -> Job:
        """Cancel a waiting, delayed or active job; a finished one is a Conflict."""
        with self.db.session(ctx) as conn:
            job = job_store.get_job(conn, job_id)
            if job is None:
                raise NotFound(f"job {job_id} not found")
            previous = job_store.cancel_job(conn, job_id)
            if previous is None:
                raise Conflict(f"job {job_id} is already {job.state.value}")
        self.queue.cancel(job_id, job.priority)
        log.info("job cancelled job_id=%s previous_state=%s", job_id, previous.value)
        return self.get_job(ctx, job_id)

    # -- recurring tasks ---------------------------------------------------------------

    def schedule_recurring_task(
        self,
        ctx: UserContext,
        task: TaskInput,
        *,
        name: object,
        cron_expression: object,
        timezone: object = None,
        metadata: object = None,
        concurrency_policy: object = None,
        starting_deadline_seconds: object = None,
        jitter_seconds: object = None,
        successful_jobs_history_limit: object = None,
        failed_jobs_history_limit: object = None,
        enabled: bool = True,
        owner: str | None = None,
        owner_uid: str | None = None,
    ) -> CronSchedule:
        """Store a cron schedule and compute its first run; the dispatcher fires it."""
        new = self._new_schedule(
            ctx, task, name=name, cron_expression=cron_expression, timezone=timezone, metadata=metadata,
            concurrency_policy=concurrency_policy, starting_deadline_seconds=starting_deadline_seconds,
            jitter_seconds=jitter_seconds, successful_jobs_history_limit=successful_jobs_history_limit,
            failed_jobs_history_limit=failed_jobs_history_limit, enabled=enabled, owner=owner,
            owner_uid=owner_uid,
        )
        with self.db.session(ctx) as conn:
            if owner_uid is not None:
                schedule = schedule_store.upsert_owned_schedule(conn, new)
            else:
                schedule = schedule_store.insert_schedule(conn, new)
        self.queue.redis.publish(SCHEDULES_CHANGED, str(schedule.id))
        log.info("schedule saved schedule_id=%s cron=%r timezone=%s next_run=%s",
                 schedule.id, schedule.cron_expression, schedule.timezone, schedule.next_run)
        return schedule

    def _new_schedule(self, ctx: UserContext, task: TaskInput, **fields: Any) -> schedule_store.NewSchedule:
        timezone = "UTC" if fields["timezone"] is None else fields["timezone"]
        if not isinstance(timezone, str):
            raise InvalidInput("timezone", "must be an IANA time zone name such as Europe/Berlin")
        cron = parse_cron(fields["cron_expression"] if isinstance(fields["cron_expression"], str) else "", timezone)
        spec = self._spec(ctx, task)
        deadline = fields["starting_deadline_seconds"]
        enabled = bool(fields["enabled"])
        return schedule_store.NewSchedule(
            name=parse_text(fields["name"], "name", required=True, max_length=255),
            spec=spec,
            cron_expression=cron.expression,
            timezone=cron.timezone,
            next_run=next_fire_time(cron, self.clock()) if enabled else None,
            enabled=enabled,
            metadata=parse_args(fields["metadata"], "metadata"),
            concurrency_policy=parse_concurrency_policy(fields["concurrency_policy"]),
            starting_deadline_seconds=None
            if deadline is None
            else parse_int(deadline, "startingDeadlineSeconds", minimum=0, maximum=366 * 86400),
            jitter_seconds=_optional_int(fields["jitter_seconds"], "jitterSeconds", 0, 3600, 0),
            successful_jobs_history_limit=_optional_int(
                fields["successful_jobs_history_limit"], "successfulJobsHistoryLimit", 0, 1000, 3
            ),
            failed_jobs_history_limit=_optional_int(
                fields["failed_jobs_history_limit"], "failedJobsHistoryLimit", 0, 1000, 1
            ),
            owner=fields["owner"],
            owner_uid=fields["owner_uid"],
        )

    def list_cron_schedules(self, ctx: UserContext, user_id: int | None = None) -> list[CronSchedule]:
        """Schedules of ``user_id`` (every visible one when None); another user's list is Forbidden."""
        if user_id is not None:
            parse_user_id(user_id)
            _check_acts_for(ctx, user_id)
        with self.db.session(ctx) as conn:
            return schedule_store.list_schedules(conn, user_id)

    def get_schedule(self, ctx: UserContext, schedule_id: int) -> CronSchedule:
        with self.db.session(ctx) as conn:
            schedule = schedule_store.get_schedule(conn, schedule_id)
        if schedule is None:
            raise NotFound(f"schedule {schedule_id} not found")
        return schedule

    def get_owned_schedule(self, ctx: UserContext, owner_uid: str) -> CronSchedule | None:
        with self.db.session(ctx) as conn:
            return schedule_store.get_owned_schedule(conn, owner_uid)

    def _set_enabled(self, ctx: UserContext, schedule_id: int, enabled: bool, allow_owned: bool) -> CronSchedule:
        with self.db.session(ctx) as conn:
            current = schedule_store.get_schedule(conn, schedule_id, for_update=True)
            if current is None:
                raise NotFound(f"schedule {schedule_id} not found")
            _check_not_owned(current, allow_owned)
            if current.enabled == enabled:
                return current
            cron = parse_cron(current.cron_expression, current.timezone)
            next_run = next_fire_time(cron, self.clock()) if enabled else None
            updated = schedule_store.set_enabled(conn, schedule_id, enabled, next_run)
            assert updated is not None
        self.queue.redis.publish(SCHEDULES_CHANGED, str(schedule_id))
        return updated

    def enable_schedule(self, ctx: UserContext, schedule_id: int, *, allow_owned: bool = False) -> CronSchedule:
        return self._set_enabled(ctx, schedule_id, True, allow_owned)

    def disable_schedule(self, ctx: UserContext, schedule_id: int, *, allow_owned: bool = False) -> CronSchedule:
        return self._set_enabled(ctx, schedule_id, False, allow_owned)

    def delete_schedule(self, ctx: UserContext, schedule_id: int, *, allow_owned: bool = False) -> None:
        with self.db.session(ctx) as conn:
            current = schedule_store.get_schedule(conn, schedule_id, for_update=True)
            if current is None:
                raise NotFound(f"schedule {schedule_id} not found")
            _check_not_owned(current, allow_owned)
            schedule_store.delete_schedule(conn, schedule_id)
        self.queue.redis.publish(SCHEDULES_CHANGED, str(schedule_id))

    def trigger_schedule(self, ctx: UserContext, schedule_id: int) -> ScheduledJob:
        """Run a schedule once now ("run now"); its cadence, next_run and policies are untouched.

        Another user's schedule is invisible under row-level security, so it is NotFound.
        """
        schedule = self.get_schedule(ctx, schedule_id)
        spec = tick_task_spec(schedule, self.defaults)
        job_id = manual_job_id(schedule.id, uuid.uuid4().hex)
        scheduled = self._schedule(ctx, spec, None, job_id=job_id, owner=None, schedule_id=schedule.id)
        log.info("schedule triggered schedule_id=%s job_id=%s user_id=%s", schedule.id, job_id, ctx.user_id)
        return scheduled

    def delete_owned_schedule(self, ctx: UserContext, owner_uid: str) -> bool:
        with self.db.session(ctx) as conn:
            deleted = schedule_store.delete_owned_schedule(conn, owner_uid)
        if deleted:
            self.queue.redis.publish(SCHEDULES_CHANGED, owner_uid)
        return deleted

    # -- the queue as a whole ------------------------------------------------------------

    def get_queue_stats(self, ctx: UserContext) -> QueueStats:
        return self.queue.stats()

    def pause(self, ctx: UserContext) -> bool:
        """Stop workers from taking jobs (master only); enqueueing and cron firing go on."""
        _check_master(ctx, "pause the scheduler")
        self.queue.pause()
        log.info("scheduler paused by user_id=%s", ctx.user_id)
        return True

    def resume(self, ctx: UserContext) -> bool:
        _check_master(ctx, "resume the scheduler")
        self.queue.resume()
        log.info("scheduler resumed by user_id=%s", ctx.user_id)
        return False

    def is_paused(self) -> bool:
        return self.queue.is_paused()

    def requeue_lost_jobs(self, grace_seconds: float = 30.0, limit: int = 500) -> int:
        """Queue again the waiting or delayed jobs whose Redis entry is gone; returns how many.

        PostgreSQL is the record of what was accepted. A job can be missing from Redis after
        a Redis restart without persistence, or a crash between the commit and the enqueue
        (``grace_seconds`` leaves time for an enqueue in progress). Job ids are kept, so a
        job is never queued twice.
        """
        system = UserContext.system()
        with self.db.session(system) as conn:
            pending = job_store.pending_jobs_older_than(conn, grace_seconds, limit)
        now = self.clock()
        missing = set(self.queue.missing([job.job_id for job, _ in pending]))
        lost: list[BulkJob] = [
            (job.job_id, spec, job.scheduled_for if job.scheduled_for and job.scheduled_for > now else None,
             job.schedule_id)
            for job, spec in pending
            if job.job_id in missing
        ]  # fmt: skip
        requeued = self.queue.enqueue_many(lost)
        if requeued:
            log.warning("lost jobs queued again count=%s job_ids=%s", requeued, [job[0] for job in lost][:20])
        return requeued

    def stranded_jobs(self, grace_seconds: float = 30.0, limit: int = 500) -> set[str]:
        """Waiting jobs that Redis holds as queued but on no queue (taken by a worker that died).

        Confirm with a second call some seconds later before :meth:`TaskQueue.restore`: a job
        that a live worker is taking right now looks the same for a moment.
        """
        with self.db.session(UserContext.system()) as conn:
            pending = job_store.pending_jobs_older_than(conn, grace_seconds, limit)
        return set(self.queue.stranded([job.job_id for job, _ in pending]))

    def prune_history(self, keep_days: int) -> int:
        """Delete jobs (and their audit trail) that finished more than ``keep_days`` ago."""
        cutoff = self.clock() - timedelta(days=keep_days)
        with self.db.session(UserContext.system()) as conn:
            deleted = job_store.delete_history_before(conn, cutoff)
        if deleted:
            log.info("history pruned deleted=%s before=%s", deleted, cutoff.isoformat())
        return deleted

    # -- tokens ------------------------------------------------------------------------

    def create_token(self, ctx: UserContext, user_id: object, role: object = "user", description: str = "") -> str:
        """Mint a bearer token (master only). Only its hash is stored; the token is returned once."""
        _check_master(ctx, "create tokens")
        uid = parse_user_id(user_id)
        if role not in ("user", "master"):
            raise InvalidInput("role", f"{role!r} is not a role; use user or master")
        token = "kdn_" + secrets.token_urlsafe(32)
        with self.db.session(ctx) as conn:
            token_store.insert_token(conn, token, uid, Role(str(role)), description)
        log.info("token created user_id=%s role=%s", uid, role)
        return token

    def authenticate(self, token: str) -> UserContext | None:
        with self.db.anonymous() as conn:
            return token_store.authenticate(conn, token)

    # -- plumbing ----------------------------------------------------------------------

    def ready(self) -> dict[str, bool]:
        return {"postgres": self.db.ping(), "redis": self.queue.ping()}

    def close(self) -> None:
        self.db.close()
        self.queue.redis.close()


def _check_acts_for(ctx: UserContext, user_id: int) -> None:
    if not ctx.is_master and ctx.user_id != user_id:
        raise Forbidden(f"user {ctx.user_id} may not act for user {user_id}")


def _check_master(ctx: UserContext, action: str) -> None:
    if not ctx.is_master:
        raise Forbidden(f"only master may {action}")


def _check_not_owned(schedule: CronSchedule, allow_owned: bool) -> None:
    if schedule.owner and not allow_owned:
        raise Conflict(
            f"schedule {schedule.id} is owned by the CronSchedule resource {schedule.owner}; change it there"
        )


def _optional_int(value: object, field: str, minimum: int, maximum: int, default: int) -> int:
    return default if value is None else parse_int(value, field, minimum=minimum, maximum=maximum)


def build_core(
    database_url: str,
    redis_url: str,
    defaults: TaskSpec,
    *,
    pool_min: int = 1,
    pool_max: int = 10,
    pool_timeout: float = 10.0,
    completed_keep: int = 100,
    completed_max_age_seconds: int = 86400,
    failed_keep: int = 1000,
    open_timeout: float = 10.0,
) -> SchedulerCore:
    """Connect to PostgreSQL and Redis and return a ready core (the caller closes it)."""
    db = Database(database_url, min_size=pool_min, max_size=pool_max, timeout=pool_timeout)
    db.open(wait=True, timeout=open_timeout)
    redis = Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30)
    queue = TaskQueue(
        redis, completed_keep=completed_keep, completed_max_age_seconds=completed_max_age_seconds,
        failed_keep=failed_keep,
    )
    return SchedulerCore(db, queue, defaults)


def default_task_spec(
    *, handler: str, priority: Priority, max_attempts: int, backoff_base: float, backoff_max: float, timeout: int
) -> TaskSpec:
    """The defaults a deployment's settings give to fields a caller leaves out."""
    return TaskSpec(
        task_id="-",
        user_id=1,
        handler=handler,
        priority=priority,
        max_attempts=max_attempts,
        backoff=Backoff(base_seconds=backoff_base, max_seconds=max(backoff_max, backoff_base)),
        timeout_seconds=timeout,
    )


def core_from_settings(settings: Settings) -> SchedulerCore:
    """Build a connected core from one process's settings."""
    defaults = default_task_spec(
        handler=settings.default_handler,
        priority=settings.default_priority,
        max_attempts=settings.default_max_attempts,
        backoff_base=settings.backoff_base_seconds,
        backoff_max=settings.backoff_max_seconds,
        timeout=settings.job_timeout_seconds,
    )
    return build_core(
        settings.database_url.get_secret_value(),
        settings.redis_url.get_secret_value(),
        defaults,
        pool_min=settings.db_pool_min,
        pool_max=settings.db_pool_max,
        pool_timeout=settings.db_timeout_seconds,
        completed_keep=settings.completed_keep,
        completed_max_age_seconds=settings.completed_max_age_seconds,
        failed_keep=settings.failed_keep,
    )
