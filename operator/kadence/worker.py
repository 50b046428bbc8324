"""RQ worker entry point: runs jobs, keeps their PostgreSQL record current, supervises processes.

``kadence worker --concurrency N`` starts a supervisor that runs N worker processes (RQ
SimpleWorkers listening on the priority queues, most urgent first), a promoter that starts
delayed jobs and retries on time, and housekeeping (retention, abandoned jobs). When a
worker process dies mid-job, the supervisor fails that attempt at once, so the job is
retried (or marked failed) instead of waiting in limbo, and starts a new process.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from rq import SimpleWorker, get_current_job
from rq.job import Job as RQJob
from rq.worker import WorkerStatus

from kadence.config import Settings
from kadence.core import SchedulerCore, core_from_settings
from kadence.domain.errors import Unavailable
from kadence.domain.models import PRIORITIES_BY_URGENCY, Priority, UserContext
from kadence.domain.policies import attempt_number
from kadence.domain.validation import parse_priority
from kadence.handlers import Handler, TaskContext, build_handlers
from kadence.queue import CALLBACK_TIMEOUT_SECONDS, SERIALIZER, KadenceQueue, Promoter, TaskQueue
from kadence.store import jobs as job_store
from kadence.store.db import Database

log = logging.getLogger(__name__)

SYSTEM = UserContext.system()
MAINTENANCE_INTERVAL = 10.0


@dataclass
class WorkerRuntime:
    """What job functions and callbacks need in a worker process; installed by its main()."""

    db: Database
    handlers: dict[str, Handler]


_runtime: WorkerRuntime | None = None


def install_runtime(runtime: WorkerRuntime | None) -> None:
    global _runtime
    _runtime = runtime


def _get_runtime() -> WorkerRuntime:
    if _runtime is None:
        raise RuntimeError("kadence worker runtime is not installed in this process")
    return _runtime


# How long a worker keeps trying to record a job's progress while PostgreSQL is away: the
# worker waits instead of failing attempts that never ran, or losing the outcome of ones
# that did. It stays well within the time RQ allows the callbacks that do the recording.
RECORD_PATIENCE_SECONDS = CALLBACK_TIMEOUT_SECONDS - 60.0


def _until_recorded(record: Callable[..., bool], *args: Any) -> bool:
    """Call a bookkeeping function, retrying with backoff while PostgreSQL is unavailable."""
    deadline = time.monotonic() + RECORD_PATIENCE_SECONDS
    delay = 0.2
    while True:
        try:
            return record(*args)
        except Unavailable as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning(
                "postgres unavailable, retrying record=%s job_id=%s in=%.1fs error=%s",
                record.__name__,
                args[1],
                delay,
                exc,
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _attempt(job: RQJob | None, max_attempts: int) -> int:
    return attempt_number(max_attempts, job.retries_left if job is not None else None)


def perform_task(**payload: Any) -> Any:
    """The function every Kadence RQ job runs: record the start, then run the handler."""
    runtime = _get_runtime()
    job = get_current_job()
    attempt = _attempt(job, int(payload["max_attempts"]))
    job_id = payload["job_id"]
    started = _until_recorded(job_store.mark_started, runtime.db, job_id, attempt)
    if not started:
        log.info("job skipped, cancelled before it started job_id=%s", job_id)
        return {"skipped": "cancelled"}
    handler = runtime.handlers.get(payload["handler"])
    if handler is None:
        raise LookupError(f"unknown handler {payload['handler']!r}")
    task = TaskContext(
        job_id=job_id,
        task_id=payload["task_id"],
        user_id=int(payload["user_id"]),
        task_goal=payload.get("task_goal") or "",
        priority=payload["priority"],
        handler=payload["handler"],
        args=payload.get("args") or {},
        attempt=attempt,
        max_attempts=int(payload["max_attempts"]),
        scheduled_for=payload.get("scheduled_for"),
        schedule_id=payload.get("schedule_id"),
    )
    return handler(task)


def on_job_success(job: RQJob, connection: Redis, result: Any) -> None:
    """RQ success callback: the job row becomes completed (unless it was cancelled meanwhile)."""
    if isinstance(result, dict) and result.get("skipped"):
        return
    runtime = _get_runtime()
    attempt = _attempt(job, int(job.kwargs["max_attempts"]))
    _until_recorded(job_store.mark_completed, runtime.db, job.id, attempt, result)
    log.info("job completed job_id=%s attempt=%s", job.id, attempt)


def on_job_failure(job: RQJob, connection: Redis, exc_type: Any, exc_value: Any, tb: Any) -> None:
    """RQ failure callback, also called for jobs whose worker died: record the failed attempt.

    It runs before RQ decides on a retry, so ``retries_left`` still counts this attempt's retry.
    """
    runtime = _get_runtime()
    attempt = _attempt(job, int(job.kwargs["max_attempts"]))
    if exc_value is not None and str(exc_value):
        error = f"{exc_type.__name__ if exc_type else 'Error'}: {exc_value}"
    else:
        error = exc_type.__name__ if exc_type else "worker died"
    retry_at = None
    if job.retries_left:
        interval = job.get_retry_interval()
        retry_at = datetime.now(UTC) + timedelta(seconds=interval)
    _until_recorded(job_store.mark_attempt_failed, runtime.db, job.id, attempt, error[:4000], retry_at)
    log.info("job attempt failed job_id=%s attempt=%s retry_at=%s error=%s", job.id, attempt, retry_at, error[:200])


def _runtime_from_settings(settings: Settings, pool_max: int = 2) -> WorkerRuntime:
    db = Database.for_system(settings.database_url.get_secret_value(), max_size=pool_max, name="kadence-worker")
    db.open(wait=True, timeout=30)
    handlers = build_handlers(
        webhook_secret=settings.webhook_secret.get_secret_value() if settings.webhook_secret else None,
        webhook_timeout=settings.webhook_timeout_seconds,
        webhook_allowed_hosts=settings.webhook_allowed_hosts,
        python_allowed_prefixes=settings.python_allowed_prefixes,
    )
    return WorkerRuntime(db=db, handlers=handlers)


def task_queue_from_settings(settings: Settings) -> TaskQueue:
    redis = Redis.from_url(settings.redis_url.get_secret_value(), health_check_interval=30)
    return TaskQueue(
        redis,
        completed_keep=settings.completed_keep,
        completed_max_age_seconds=settings.completed_max_age_seconds,
        failed_keep=settings.failed_keep,
    )


# -- one worker process ------------------------------------------------------------------

# A worker's heartbeat keeps its registration alive for minutes (``worker_ttl``); renewing it
# more often than this is wasted round trips.
HEARTBEAT_EVERY_SECONDS = 1.0


class KadenceWorker(SimpleWorker):
    """RQ's SimpleWorker, minus the Redis round trips that renew nothing.

    RQ renews the worker's heartbeat three times per job, three commands each, sets its state
    to idle twice and checks for ``rq suspend`` before every job: for short jobs, about half
    of a worker's twenty round trips to Redis per job. Here a heartbeat on its own travels as
    one round trip and is skipped when the same renewal was sent less than a second ago
    (heartbeats inside RQ's own pipelines are always sent, as they cost nothing extra), a
    state already written is not written again, and suspension is checked once a second.
    """

    _beat_ttl: int | None = None  # the expiry the last heartbeat set, and when it was sent
    _beat_at: float = 0.0
    _suspension_checked_at: float = 0.0

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        ttl = timeout or self.worker_ttl + 60
        if pipeline is not None:
            super().heartbeat(timeout, pipeline=pipeline)
        else:
            if ttl == self._beat_ttl and time.monotonic() - self._beat_at < HEARTBEAT_EVERY_SECONDS:
                return
            with self.connection.pipeline(transaction=False) as pipe:
                super().heartbeat(timeout, pipeline=pipe)
                pipe.execute()
        self._beat_ttl, self._beat_at = ttl, time.monotonic()

    def set_state(self, state: str, pipeline: Any = None) -> None:
        if pipeline is None and state == self._state:
            return
        super().set_state(state, pipeline=pipeline)

    def execute_job(self, job: RQJob, queue: Any) -> None:
        execution = self.prepare_execution(job)
        self.perform_job(job, queue, execution)
        with self.connection.pipeline(transaction=False) as pipe:  # idle again, and alive
            self.set_state(WorkerStatus.IDLE, pipeline=pipe)
            self.heartbeat(pipeline=pipe)
            pipe.execute()

    def check_for_suspension(self, burst: bool) -> None:
        # ``rq suspend`` is noticed within a second rather than between every two jobs.
        if time.monotonic() - self._suspension_checked_at >= HEARTBEAT_EVERY_SECONDS:
            super().check_for_suspension(burst)
            self._suspension_checked_at = time.monotonic()



def run_worker_process(settings: Settings, name: str, priorities: list[Priority] | None = None) -> None:
    """One RQ SimpleWorker on the priority queues (all four by default), most urgent first."""
    runtime = _runtime_from_settings(settings)
    install_runtime(runtime)
    queue = task_queue_from_settings(settings)
    wanted = set(priorities or PRIORITIES_BY_URGENCY)
    worker = KadenceWorker(
        [queue.queues[priority] for priority in PRIORITIES_BY_URGENCY if priority in wanted],
        connection=queue.redis,
        name=name,
        serializer=SERIALIZER,
        queue_class=KadenceQueue,
    )
    try:
        worker.work(with_scheduler=False, logging_level=settings.log_level.upper())
    finally:
        install_runtime(None)
        runtime.db.close()


# -- the supervisor ----------------------------------------------------------------------


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    quick_deaths: int = 0


@dataclass
class WorkerPool:
    """Runs ``concurrency`` worker processes, the promoter and housekeeping until stopped."""

    settings: Settings
    concurrency: int
    priorities: list[Priority] | None = None
    children: list[_Child] = field(default_factory=list)
    _suspects: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _spawn(self, index: int) -> _Child:
        name = f"kadence-{socket.gethostname()}-{os.getpid()}-{index}-{int(time.time() * 1000) % 100000}"
        # Run through an import (not ``-m``) so RQ's string references reach this same module.
        command = [sys.executable, "-c", "from kadence.worker import main; main()", "--name", name]
        if self.priorities:
            command += ["--queues", ",".join(priority.value for priority in self.priorities)]
        process = subprocess.Popen(command)
        log.info("worker process started name=%s pid=%s", name, process.pid)
        return _Child(name, process)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        core = core_from_settings(self.settings)
        queue = core.queue
        runtime = _runtime_from_settings(self.settings)
        # Callbacks of jobs abandoned by dead workers run here, so this process needs the runtime too.
        install_runtime(runtime)
        promoter = Promoter(queue, max_sleep=self.settings.dispatcher_max_sleep_seconds)
        threading.Thread(target=promoter.run, args=(self._stop.is_set,), name="promoter", daemon=True).start()
        self.children = [self._spawn(index) for index in range(self.concurrency)]
        last_maintenance = 0.0
        try:
            while not self._stop.wait(0.2):
                for index, child in enumerate(self.children):
                    if child.process.poll() is not None and self._respawn_due(child):
                        self._recover(queue, child)
                        replacement = self._spawn(index)
                        replacement.quick_deaths = child.quick_deaths
                        self.children[index] = replacement
                if time.monotonic() - last_maintenance > MAINTENANCE_INTERVAL:
                    last_maintenance = time.monotonic()
                    self._maintain(core)
        finally:
            self._shutdown()
            install_runtime(None)
            runtime.db.close()
            core.close()
        return 0

    def _respawn_due(self, child: _Child) -> bool:
        """Restart at once after a crash, but back off (up to 30 s) from one that crashes on start."""
        lived = time.monotonic() - child.started
        if lived > 10:
            child.quick_deaths = 0
            return True
        delay = min(30.0, 0.5 * 2**child.quick_deaths)
        if lived < delay:
            return False
        child.quick_deaths += 1
        return True

    def _recover(self, queue: TaskQueue, child: _Child) -> None:
        """A worker process died: fail its current attempt now, so the job is retried or failed."""
        try:
            job_ids = queue.jobs_of_worker(child.name)
            log.warning("worker process died name=%s code=%s job_ids=%s", child.name, child.process.returncode, job_ids)
            if job_ids:
                queue.recover_abandoned(job_ids)
        except Exception:
            log.exception("could not recover the jobs of a dead worker name=%s", child.name)

    def _maintain(self, core: SchedulerCore) -> None:
        """Every few seconds: fail abandoned attempts, bound Redis memory, requeue lost jobs,
        and drop PostgreSQL history older than ``history_days``."""
        try:
            core.queue.recover_abandoned()
            removed = core.queue.apply_retention()
            requeued = core.requeue_lost_jobs()
            # A job taken off its queue by a worker that died before starting it: put back
            # once it is seen stranded in two rounds in a row.
            stranded = core.stranded_jobs()
            requeued += core.queue.restore(stranded & self._suspects)
            self._suspects = stranded - self._suspects
            pruned = core.prune_history(self.settings.history_days)
            if removed or requeued or pruned:
                log.info("housekeeping retention_removed=%s requeued=%s pruned=%s", removed, requeued, pruned)
        except Exception:
            log.exception("housekeeping failed")

    def _shutdown(self) -> None:
        """Warm shutdown: each worker finishes its current job; stragglers are killed after 30 s."""
        for child in self.children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for child in self.children:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()


def parse_queues(text: str | None) -> list[Priority] | None:
    """``critical,high`` → those priorities; None or empty → all of them."""
    if not text:
        return None
    return [parse_priority(name.strip(), "queues") for name in text.split(",") if name.strip()]


def run_worker_pool(settings: Settings, concurrency: int, priorities: list[Priority] | None = None) -> int:
    pool = WorkerPool(settings, concurrency, priorities)

    def _on_signal(signum: int, frame: Any) -> None:
        log.info("worker pool stopping signal=%s", signum)
        pool.stop()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    return pool.run()


def main(argv: list[str] | None = None) -> None:
    """Entry point of one worker process (started by the supervisor)."""
    parser = argparse.ArgumentParser(prog="kadence-worker-process")
    parser.add_argument("--name", required=True)
    parser.add_argument("--queues", default=None)
    options = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        run_worker_process(settings, options.name, parse_queues(options.queues))
    except Exception:
        traceback.print_exc()
        sys.exit(1)
