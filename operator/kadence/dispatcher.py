"""The cron dispatcher: fires every due tick of every enabled schedule exactly once, on time.

Any number of dispatchers may run against the same PostgreSQL and Redis; there is no
leader. Each pass locks due ``cron_schedules`` rows with ``FOR UPDATE SKIP LOCKED`` (so a
row is handled by one dispatcher at a time) and, per batch of rows:

1. decides each row's tick (``kadence.domain.ticks.plan_tick``: latest due tick, missed
   ticks, deadline, Forbid / Replace, jitter);
2. in ONE transaction records the tick jobs (deterministic id ``cron-<id>-<tick ms>``,
   ``ON CONFLICT DO NOTHING``), cancels replaced runs, advances ``next_run`` and the
   counters, prunes history, and commits;
3. then queues the newly recorded jobs in Redis (idempotently: an id already there is left
   alone).

The job row is committed before its job is queued, so a worker never meets a job without
its record. A crash before the commit rolls everything back and the tick is redone (same
job id). A crash between commit and queueing leaves a recorded job that is not in Redis:
the recovery sweep (:meth:`Dispatcher.recover_unqueued`, run at start and every few
seconds by every dispatcher) finds such jobs, locks their rows and queues them. So a tick
is never fired twice and never lost.

Between passes the dispatcher sleeps until the earliest ``next_run``, woken early by the
``kadence:schedules-changed`` channel that the core publishes on. It also runs the queue's
promoter, so delayed tasks, retries and jittered ticks start on time even where no worker
pool runs one.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from kadence.config import Settings
from kadence.core import SCHEDULES_CHANGED, core_from_settings
from kadence.domain.errors import Unavailable
from kadence.domain.models import JobState, TaskSpec, UserContext
from kadence.domain.ticks import SkipReason, TickPlan, plan_tick, tick_job_id, tick_task_spec
from kadence.queue import WAKE_CHANNEL, BulkJob, Promoter, TaskQueue
from kadence.store import dispatch as dispatch_store
from kadence.store import jobs as job_store
from kadence.store.db import Database

log = logging.getLogger(__name__)

SYSTEM = UserContext.system()
BATCH_SIZE = 1000
RECOVERY_INTERVAL = 5.0  # seconds between recovery sweeps
RECOVERY_MIN_AGE = timedelta(seconds=1)  # younger jobs are still being queued by their dispatcher
RECOVERY_PAGE = 2000
RETRY_BROKEN_SCHEDULE = timedelta(seconds=60)
# When other dispatchers hold every due row, wait this long (doubling) before looking again.
CONTENDED_WAIT = (0.002, 0.05)
CRASH_ENV_PREFIX = "KADENCE_DISPATCHER_CRASH_"
CRASH_EXIT_CODE = 86

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class DispatcherMetrics:
    """The dispatcher's Prometheus collectors, in a registry of their own (none at import time)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.fired = Counter(
            "kadence_dispatcher_ticks_fired", "Cron ticks fired (job recorded and queued).", registry=self.registry
        )
        self.skipped = Counter(
            "kadence_dispatcher_ticks_skipped", "Cron ticks not fired, by reason.", ["reason"], registry=self.registry
        )
        self.lateness = Histogram(
            "kadence_dispatcher_tick_lateness_seconds",
            "Seconds between a tick's time and its job being queued.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0),
            registry=self.registry,
        )
        self.requeued = Counter(
            "kadence_dispatcher_jobs_requeued",
            "Recorded schedule jobs found missing from Redis and queued by the recovery sweep.",
            registry=self.registry,
        )
        self.replaced = Counter(
            "kadence_dispatcher_runs_replaced",
            "Unfinished runs cancelled by concurrencyPolicy Replace.",
            registry=self.registry,
        )
        for reason in SkipReason:
            self.skipped.labels(reason.value)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's current value (for tests and logs), 0 when absent."""
        return self.registry.get_sample_value(name, labels) or 0.0


class _CrashHook:
    """Fault-injection hook for the crash tests only.

    ``KADENCE_DISPATCHER_CRASH_<POINT>=n`` makes the process exit abruptly (``os._exit``) the
    n-th time it reaches ``<POINT>`` (BEFORE_COMMIT, AFTER_COMMIT, AFTER_ENQUEUE). Unset in
    production: then it does nothing.
    """

    def __init__(self, environ: dict[str, str] | os._Environ[str]) -> None:
        self.limits = {
            key.removeprefix(CRASH_ENV_PREFIX): int(value)
            for key, value in environ.items()
            if key.startswith(CRASH_ENV_PREFIX) and value.strip().isdigit()
        }
        self.counts: dict[str, int] = {}

    def reached(self, point: str) -> None:
        if point not in self.limits:
            return
        self.counts[point] = self.counts.get(point, 0) + 1
        if self.counts[point] >= self.limits[point]:
            log.warning("fault injection: exiting point=%s count=%s", point, self.counts[point])
            logging.shutdown()
            os._exit(CRASH_EXIT_CODE)


@dataclass
class PassResult:
    """What one dispatch pass did."""

    locked: int = 0
    fired: int = 0
    queued: int = 0
    missed: int = 0
    skipped: int = 0
    queue_failed: bool = False
    job_ids: list[str] = field(default_factory=list)


class Dispatcher:
    """Fires due cron ticks; see the module docstring for the protocol and its guarantees."""

    def __init__(
        self,
        db: Database,
        queue: TaskQueue,
        defaults: TaskSpec,
        *,
        clock: Clock = utcnow,
        metrics: DispatcherMetrics | None = None,
        batch_size: int = BATCH_SIZE,
        max_sleep: float = 5.0,
        environ: dict[str, str] | os._Environ[str] | None = None,
    ) -> None:
        self.db = db
        self.queue = queue
        self.defaults = defaults
        self.clock = clock
        self.metrics = metrics if metrics is not None else DispatcherMetrics()
        self.batch_size = batch_size
        self.max_sleep = max_sleep
        self.sleeping = False
        self._crash = _CrashHook(os.environ if environ is None else environ)

    # -- firing ------------------------------------------------------------------------

    def dispatch_due(self, now: datetime | None = None) -> PassResult:
        """Handle every schedule due at ``now`` (default: the clock at the start), batch after batch.

        ``now`` stays fixed for the pass, so a pass ends even when ticks fall due faster than
        they are handled; the loop starts the next pass at once.
        """
        total = PassResult()
        moment = self.clock() if now is None else now
        while True:
            batch = self.dispatch_batch(moment)
            total.locked += batch.locked
            total.fired += batch.fired
            total.queued += batch.queued
            total.missed += batch.missed
            total.skipped += batch.skipped
            total.queue_failed |= batch.queue_failed
            total.job_ids += batch.job_ids
            if batch.locked < self.batch_size:
                return total

    def dispatch_batch(self, now: datetime) -> PassResult:
        """Lock up to ``batch_size`` due schedules, record and commit their ticks, then queue them."""
        result = PassResult()
        new_jobs: list[job_store.NewJob] = []
        replaced: list[dispatch_store.UnfinishedJob] = []
        plans: list[TickPlan] = []
        with self.db.session(SYSTEM) as conn:
            due = dispatch_store.lock_due_schedules(conn, now, self.batch_size)
            result.locked = len(due)
            if not due:
                return result
            running = dispatch_store.unfinished_jobs(conn, [s.id for s in due if s.concurrency_policy.value != "Allow"])
            advances: list[dispatch_store.ScheduleAdvance] = []
            for schedule in due:
                previous = running.get(schedule.id, [])
                try:
                    plan = plan_tick(schedule, now, previous_running=bool(previous))
                except Exception:
                    log.exception(
                        "schedule cannot be planned, retrying later schedule_id=%s cron=%r timezone=%s",
                        schedule.id,
                        schedule.cron_expression,
                        schedule.timezone,
                    )
                    advances.append(dispatch_store.ScheduleAdvance(schedule.id, now + RETRY_BROKEN_SCHEDULE))
                    continue
                plans.append(plan)
                if plan.replace:
                    for job in previous:
                        if job_store.cancel_job(conn, job.job_id, f"replaced by the tick at {plan.tick}") is not None:
                            replaced.append(job)
                job_id = None
                if plan.tick is not None and plan.run_at is not None:
                    job_id = tick_job_id(schedule.id, plan.tick)
                    state = JobState.DELAYED if plan.run_at > now else JobState.WAITING
                    new_jobs.append(
                        job_store.NewJob(
                            job_id,
                            tick_task_spec(schedule, self.defaults),
                            state,
                            plan.run_at,
                            schedule_id=schedule.id,
                            tick_at=plan.tick,
                        )
                    )
                advances.append(
                    dispatch_store.ScheduleAdvance(
                        schedule.id, plan.next_run, plan.tick, job_id, plan.missed_ticks, plan.skipped_ticks
                    )
                )
            inserted = job_store.insert_jobs(conn, new_jobs)
            dispatch_store.advance_schedules(conn, advances)
            dispatch_store.prune_history(conn, [s.id for s in due])
            self._crash.reached("BEFORE_COMMIT")
        # Committed: the ticks are recorded. From here a crash leaves them for the recovery sweep.
        fresh = [job for job in new_jobs if job.job_id in inserted]
        if fresh:
            self._crash.reached("AFTER_COMMIT")
        self._cancel_replaced(replaced)
        bulk: list[BulkJob] = [(job.job_id, job.spec, job.scheduled_for, job.schedule_id) for job in fresh]
        try:
            result.queued = self.queue.enqueue_many(bulk)
        except Unavailable as exc:
            result.queue_failed = True
            log.warning(
                "ticks recorded but not queued, the recovery sweep will queue them count=%s error=%s", len(bulk), exc
            )
        if fresh:
            self._crash.reached("AFTER_ENQUEUE")
        self._account(result, plans, fresh, now)
        return result

    def _cancel_replaced(self, replaced: list[dispatch_store.UnfinishedJob]) -> None:
        """Take replaced runs off Redis (their rows are already cancelled, so a worker skips them anyway)."""
        for job in replaced:
            try:
                self.queue.cancel(job.job_id, job.priority)
            except Unavailable as exc:
                log.warning("replaced job not taken off its queue job_id=%s error=%s", job.job_id, exc)
            self.metrics.replaced.inc()
            log.info("job replaced job_id=%s schedule_id=%s", job.job_id, job.schedule_id)

    def _account(self, result: PassResult, plans: list[TickPlan], fresh: list[job_store.NewJob], now: datetime) -> None:
        queued_at = self.clock()
        for plan in plans:
            result.missed += plan.missed_ticks
            result.skipped += plan.skipped_ticks
            if plan.missed:
                self.metrics.skipped.labels(SkipReason.MISSED.value).inc(plan.missed)
            for reason in plan.skipped:
                self.metrics.skipped.labels(reason.value).inc()
        for job in fresh:
            result.fired += 1
            result.job_ids.append(job.job_id)
            self.metrics.fired.inc()
            if job.tick_at is not None and job.scheduled_for == job.tick_at and not result.queue_failed:
                self.metrics.lateness.observe(max((queued_at - job.tick_at).total_seconds(), 0.0))
            log.debug(
                "tick fired job_id=%s schedule_id=%s tick=%s run_at=%s",
                job.job_id,
                job.schedule_id,
                job.tick_at,
                job.scheduled_for,
            )
        if result.locked:
            log.info(
                "dispatch pass locked=%s fired=%s queued=%s missed=%s skipped=%s",
                result.locked,
                result.fired,
                result.queued,
                result.missed,
                result.skipped,
            )

    # -- recovery ------------------------------------------------------------------------

    def recover_unqueued(self, min_age: timedelta = RECOVERY_MIN_AGE) -> int:
        """Queue recorded, unstarted schedule jobs that are missing from Redis; returns how many.

        Such a job exists when a dispatcher (or an API call) died between committing the job
        row and queueing it, or when Redis lost its data. The rows are locked while queueing,
        so no worker can start (or finish) the job meanwhile, and queueing is idempotent.
        """
        cutoff = self.clock() - min_age
        after: tuple[datetime, str] | None = None
        requeued = 0
        while True:
            with self.db.session(SYSTEM) as conn:
                page = dispatch_store.pending_schedule_jobs(conn, cutoff, after, RECOVERY_PAGE)
            if not page:
                break
            after = page[-1]
            missing = self.queue.missing([job_id for _, job_id in page])
            if missing:
                with self.db.session(SYSTEM) as conn:
                    locked = job_store.lock_pending_jobs(conn, missing)
                    still_missing = set(self.queue.missing([job.job_id for job, _ in locked]))
                    bulk: list[BulkJob] = [
                        (job.job_id, spec, job.scheduled_for, job.schedule_id)
                        for job, spec in locked
                        if job.job_id in still_missing
                    ]
                    count = self.queue.enqueue_many(bulk)
                requeued += count
                if count:
                    self.metrics.requeued.inc(count)
                    log.warning(
                        "recovered recorded jobs missing from Redis count=%s job_ids=%s",
                        count,
                        [job[0] for job in bulk][:20],
                    )
            if len(page) < RECOVERY_PAGE:
                break
        return requeued

    # -- the loop ------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        with self.db.session(SYSTEM) as conn:
            return dispatch_store.next_due_time(conn)

    def run(self, should_stop: Callable[[], bool]) -> None:
        """Fire ticks until ``should_stop()``; sleep until the next one, woken by schedule changes."""
        pubsub: Any = None
        last_recovery = float("-inf")
        contended = 0
        while not should_stop():
            try:
                if pubsub is None:
                    pubsub = self.queue.redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                    pubsub.subscribe(SCHEDULES_CHANGED)
                result = self.dispatch_due()
                if result.queue_failed or time.monotonic() - last_recovery >= RECOVERY_INTERVAL:
                    self.recover_unqueued()
                    last_recovery = time.monotonic()
                due = self.next_due()
                wait = self.max_sleep if due is None else (due - self.clock()).total_seconds()
                if wait <= 0:
                    if result.locked:
                        contended = 0
                        continue  # more became due while this pass ran
                    # Other dispatchers hold the due rows: look again shortly (they may die).
                    contended += 1
                    wait = min(CONTENDED_WAIT[0] * 2 ** min(contended, 10), CONTENDED_WAIT[1])
                else:
                    contended = 0
                wait = min(wait, self.max_sleep, max(RECOVERY_INTERVAL - (time.monotonic() - last_recovery), 0.001))
                self._sleep(pubsub, wait)
            except (Unavailable, RedisConnectionError, RedisTimeoutError) as exc:
                log.warning("dispatcher lost PostgreSQL or Redis, retrying error=%s", exc)
                if pubsub is not None:
                    _close_quietly(pubsub)
                    pubsub = None
                time.sleep(1.0)
        if pubsub is not None:
            _close_quietly(pubsub)

    def _sleep(self, pubsub: Any, seconds: float) -> None:
        """Wait up to ``seconds`` or until a schedule changes (a message on the channel)."""
        self.sleeping = True
        try:
            if pubsub.get_message(timeout=seconds) is not None:
                while pubsub.get_message(timeout=0) is not None:
                    pass
        finally:
            self.sleeping = False


class _Interrupted(Exception):
    """Raised by the signal handler to cut a sleep short on shutdown."""


def _close_quietly(pubsub: Any) -> None:
    try:
        pubsub.close()
    except Exception:  # noqa: BLE001 - closing a broken connection
        pass


def run_dispatcher(settings: Settings) -> int:
    """``kadence dispatcher``: fire cron ticks and promote delayed jobs until SIGTERM/SIGINT."""
    core = core_from_settings(settings)
    metrics = DispatcherMetrics()
    if settings.dispatcher_metrics_port:
        start_http_server(settings.dispatcher_metrics_port, registry=metrics.registry)
        log.info("dispatcher metrics listening port=%s", settings.dispatcher_metrics_port)
    dispatcher = Dispatcher(
        core.db, core.queue, core.defaults, metrics=metrics, max_sleep=settings.dispatcher_max_sleep_seconds
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        log.info("dispatcher stopping signal=%s", signum)
        stop.set()
        if dispatcher.sleeping:
            raise _Interrupted

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    promoter = Promoter(core.queue, max_sleep=settings.dispatcher_max_sleep_seconds)
    promoter_thread = threading.Thread(target=promoter.run, args=(stop.is_set,), name="promoter", daemon=True)
    promoter_thread.start()
    log.info(
        "dispatcher started pid=%s batch_size=%s max_sleep=%s", os.getpid(), dispatcher.batch_size, dispatcher.max_sleep
    )
    try:
        dispatcher.run(stop.is_set)
    except _Interrupted:
        pass
    finally:
        stop.set()
        try:
            core.queue.redis.publish(WAKE_CHANNEL, "stop")  # cut the promoter's sleep short
        except (RedisConnectionError, RedisTimeoutError):
            pass
        promoter_thread.join(timeout=2.0)
        core.close()
    log.info("dispatcher stopped")
    return 0
