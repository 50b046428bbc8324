"""Scheduling throughput, processing throughput, punctuality and memory, each beside raw RQ."""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from rq import Queue, Worker

from bench.harness import (
    BenchEnv,
    FastReceiver,
    job_counts,
    job_timings,
    kadence_command,
    percentiles,
    rate,
    ratio,
    reset,
    start,
    stop,
    wait_until,
)
from kadence.core import TaskInput
from kadence.domain.models import UserContext

USER = UserContext(user_id=1)
RAW_DB = 1  # raw RQ runs on its own Redis database of the same server


def _task(i: int, handler: str = "noop", url: str | None = None) -> TaskInput:
    args = {"url": url} if url else {}
    return TaskInput(task_id=f"bench-{i}", user_id=1, handler=handler, args=args)


def schedule_single(env: BenchEnv, count: int) -> dict[str, Any]:
    """SchedulerCore.schedule_task one call per job (with its PostgreSQL record) vs RQ enqueue."""
    reset(env)
    started = time.perf_counter()
    for i in range(count):
        env.core.schedule_task(USER, _task(i))
    kadence = rate(count, time.perf_counter() - started)
    queue = Queue("raw", connection=env.redis(RAW_DB))
    started = time.perf_counter()
    for _ in range(count):
        queue.enqueue("bench.tasks.noop")
    raw = rate(count, time.perf_counter() - started)
    return {"jobs": count, "kadence_per_s": kadence, "raw_rq_per_s": raw, "ratio": ratio(kadence, raw)}


def schedule_bulk(env: BenchEnv, count: int, batch: int = 500) -> dict[str, Any]:
    """SchedulerCore.schedule_tasks in batches vs RQ enqueue_many."""
    reset(env)
    started = time.perf_counter()
    for offset in range(0, count, batch):
        env.core.schedule_tasks(USER, [(_task(i), None, None) for i in range(offset, min(count, offset + batch))])
    kadence = rate(count, time.perf_counter() - started)
    queue = Queue("raw", connection=env.redis(RAW_DB))
    started = time.perf_counter()
    for offset in range(0, count, batch):
        queue.enqueue_many([Queue.prepare_data("bench.tasks.noop") for _ in range(min(batch, count - offset))])
    raw = rate(count, time.perf_counter() - started)
    return {"jobs": count, "batch": batch, "kadence_per_s": kadence, "raw_rq_per_s": raw, "ratio": ratio(kadence, raw)}


def _raw_workers(env: BenchEnv, concurrency: int, *extra: str) -> list[Any]:
    url = env.servers.redis.url(RAW_DB)
    return [
        start(
            [
                sys.executable,
                "-c",
                "from rq.cli import main; main()",
                "worker",
                "-q",
                "-w",
                "rq.worker.SimpleWorker",
                "-u",
                url,
                *extra,
                "raw",
            ],
            env.env(),
        )
        for _ in range(concurrency)
    ]


def _raw_processing_rate(env: BenchEnv, count: int, concurrency: int, func: str, *args: Any) -> float:
    redis = env.redis(RAW_DB)
    queue = Queue("raw", connection=redis)
    jobs = queue.enqueue_many([Queue.prepare_data(func, args=args, result_ttl=600) for _ in range(count)])
    workers = _raw_workers(env, concurrency, "--burst")
    for worker in workers:
        worker.wait()
    fetched = [job for job in (queue.fetch_job(job.id) for job in jobs) if job is not None]
    began = min(job.started_at for job in fetched if job.started_at)
    ended = max(job.ended_at for job in fetched if job.ended_at)
    done = sum(1 for job in fetched if job.get_status() == "finished")
    return rate(done, (ended - began).total_seconds())


def _kadence_processing_rate(env: BenchEnv, count: int, concurrency: int, handler: str, url: str | None) -> float:
    reset(env)
    for offset in range(0, count, 500):
        env.core.schedule_tasks(
            USER, [(_task(i, handler, url), None, None) for i in range(offset, min(count, offset + 500))]
        )
    pool = start(kadence_command("worker", "--concurrency", str(concurrency)), env.env())
    try:
        wait_until(lambda: job_counts(env).get("completed", 0) >= count, timeout=600, interval=0.2)
    finally:
        stop(pool)
    timings = job_timings(env)
    began = min(row["started_at"] for row in timings if row["started_at"])
    ended = max(row["finished_at"] for row in timings if row["finished_at"])
    done = sum(1 for row in timings if row["state"] == "completed")
    return rate(done, (ended - began).total_seconds())


def processing(env: BenchEnv, count: int, concurrency: int = 5) -> dict[str, Any]:
    """No-op and webhook jobs per second with 5 workers, vs raw RQ SimpleWorker ×5."""
    result: dict[str, Any] = {"jobs": count, "concurrency": concurrency}
    kadence_noop = _kadence_processing_rate(env, count, concurrency, "noop", None)
    raw_noop = _raw_processing_rate(env, count, concurrency, "bench.tasks.noop")
    result["noop"] = {"kadence_per_s": kadence_noop, "raw_rq_per_s": raw_noop, "ratio": ratio(kadence_noop, raw_noop)}
    with FastReceiver() as receiver:
        kadence_hook = _kadence_processing_rate(env, count, concurrency, "webhook", receiver.url)
        raw_hook = _raw_processing_rate(env, count, concurrency, "bench.tasks.post", receiver.url)
    result["webhook"] = {
        "kadence_per_s": kadence_hook,
        "raw_rq_per_s": raw_hook,
        "ratio": ratio(kadence_hook, raw_hook),
    }
    return result


def delayed_punctuality(env: BenchEnv, count: int, min_delay: float, max_delay: float) -> dict[str, Any]:
    """Start lateness of delayed tasks at random delays, vs RQ enqueue_in with its scheduler."""
    reset(env)
    rng = random.Random(7)
    pool = start(kadence_command("worker", "--concurrency", "5"), env.env())
    wait_until(lambda: Worker.count(connection=env.redis(0)) >= 5, timeout=30)
    try:
        for i in range(count):
            env.core.schedule_delayed_task(USER, _task(i), delay_ms=int(rng.uniform(min_delay, max_delay) * 1000))
        wait_until(lambda: job_counts(env).get("completed", 0) >= count, timeout=max_delay + 60, interval=0.2)
    finally:
        stop(pool)
    lateness = [
        (row["started_at"] - row["scheduled_for"]).total_seconds() * 1000
        for row in job_timings(env)
        if row["started_at"] and row["scheduled_for"]
    ]
    kadence = percentiles(lateness) | {"early": sum(1 for value in lateness if value < 0), "jobs": len(lateness)}

    redis = env.redis(RAW_DB)
    queue = Queue("raw", connection=redis)
    workers = _raw_workers(env, 5, "--with-scheduler")
    wait_until(lambda: Worker.count(connection=redis) >= 5, timeout=30)
    due: dict[str, datetime] = {}
    try:
        for _ in range(count):
            when = datetime.now(UTC) + timedelta(seconds=rng.uniform(min_delay, max_delay))
            due[queue.enqueue_at(when, "bench.tasks.noop", result_ttl=600).id] = when
        wait_until(lambda: queue.finished_job_registry.count >= count, timeout=max_delay + 60, interval=0.2)
    finally:
        for worker in workers:
            stop(worker)
    raw_lateness = []
    for job_id, when in due.items():
        job = queue.fetch_job(job_id)
        if job is not None and job.started_at:
            raw_lateness.append((job.started_at.replace(tzinfo=UTC) - when).total_seconds() * 1000)
    raw = percentiles(raw_lateness) | {
        "early": sum(1 for value in raw_lateness if value < 0),
        "jobs": len(raw_lateness),
    }
    return {"delays_s": [min_delay, max_delay], "kadence_ms": kadence, "raw_rq_ms": raw}


def redis_memory(env: BenchEnv, count: int, concurrency: int = 5) -> dict[str, Any]:
    """Redis used memory after ``count`` completed jobs, and after twice as many: flat means bounded."""
    reset(env)
    redis = env.redis(0)
    baseline = int(redis.info("memory")["used_memory"])
    figures = {"empty_bytes": baseline}
    keep = env.core.queue.completed_keep
    pool = start(kadence_command("worker", "--concurrency", str(concurrency)), env.env())
    try:
        done = 0
        for label, target in (("after_n_bytes", count), ("after_2n_bytes", 2 * count)):
            for offset in range(done, target, 1000):
                env.core.schedule_tasks(
                    USER, [(_task(i), None, None) for i in range(offset, min(target, offset + 1000))]
                )
            done = target
            wait_until(lambda t=target: job_counts(env).get("completed", 0) >= t, timeout=900, interval=0.5)
            # The worker pool's housekeeping (every 10 s) applies retention: measure once it has.
            wait_until(lambda: env.core.queue.stats().completed <= keep, timeout=60, interval=0.5)
            figures[label] = int(redis.info("memory")["used_memory"])
            figures[label.replace("bytes", "keys")] = int(redis.dbsize())
    finally:
        stop(pool)
    growth = figures["after_2n_bytes"] - figures["after_n_bytes"]
    return {"completed_jobs": 2 * count, **figures, "growth_second_half_bytes": growth}
