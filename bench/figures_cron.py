"""Cron figures: a burst of schedules due on the same second, and tick lateness beside `rq cron`.

Both run real ``kadence dispatcher`` child processes (one, then three replicas) and no
workers, so every queued tick stays in its Redis list: a tick queued twice shows up twice
there, a missing one not at all. Lateness is measured as the HA tests do: the job's
``enqueued_at`` in Redis minus its ``tick_at`` in PostgreSQL.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis

from bench.harness import BenchEnv, kadence_command, percentiles, reset, start, stop, wait_until
from kadence.core import SCHEDULES_CHANGED, TaskInput
from kadence.domain.models import Priority, TaskSpec, UserContext
from kadence.store import schedules as schedule_store

USER = UserContext(user_id=1)
SYSTEM = UserContext.system()
RAW_DB = 1  # `rq cron` runs on its own Redis database of the same server
BURST_TARGET_S = 1.0
LATENESS_TARGET_P99_MS = 20.0
# A cron expression that never falls due during a run: burst schedules are made due by hand.
YEARLY = "0 0 1 1 *"


# -- helpers --------------------------------------------------------------------------------


def start_dispatchers(env: BenchEnv, replicas: int, **extra: str) -> list[subprocess.Popen[bytes]]:
    """``replicas`` ``kadence dispatcher`` processes, returned once each listens for schedule changes."""
    processes = [start(kadence_command("dispatcher"), env.env() | extra) for _ in range(replicas)]
    redis = env.redis(0)
    if not wait_until(lambda: subscribers(redis) >= replicas, timeout=60, interval=0.05):
        for process in processes:
            stop(process)
        raise RuntimeError(f"{replicas} dispatchers did not start within 60 s")
    return processes


def subscribers(redis: Redis) -> int:
    """How many dispatchers are subscribed to the schedules-changed channel (i.e. running)."""
    return sum(int(count) for _, count in redis.pubsub_numsub(SCHEDULES_CHANGED))


def queued_ids(redis: Redis) -> Counter[str]:
    """Every job id in every priority list of Kadence's Redis database, with how often it is there."""
    found: Counter[str] = Counter()
    for priority in Priority:
        found.update(raw.decode() for raw in redis.lrange(f"rq:queue:{priority.queue_name}", 0, -1))
    return found


def queued_count(redis: Redis) -> int:
    with redis.pipeline(transaction=False) as pipe:
        for priority in Priority:
            pipe.llen(f"rq:queue:{priority.queue_name}")
        return sum(pipe.execute())


def enqueued_at(redis: Redis, job_ids: Sequence[str]) -> dict[str, datetime]:
    """When each job reached Redis (RQ's ``enqueued_at``), for the jobs that are there."""
    with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(f"rq:job:{job_id}", "enqueued_at")
        raw = pipe.execute()
    return {
        job_id: datetime.fromisoformat(value.decode().replace("Z", "+00:00"))
        for job_id, value in zip(job_ids, raw, strict=True)
        if value
    }


def tick_rows(env: BenchEnv, schedule_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The tick jobs recorded for ``schedule_ids``: id, schedule_id, tick_at."""
    with env.core.db.session(SYSTEM) as conn:
        return conn.execute(
            "SELECT id, schedule_id, tick_at FROM jobs WHERE schedule_id = ANY(%s) AND tick_at IS NOT NULL",
            (list(schedule_ids),),
        ).fetchall()


def delete_schedules(env: BenchEnv, schedule_ids: Sequence[int]) -> None:
    """Drop the benchmark's schedules (one statement; the core's delete is one call per schedule)."""
    with env.core.db.session(SYSTEM) as conn:
        conn.execute("DELETE FROM cron_schedules WHERE id = ANY(%s)", (list(schedule_ids),))


def _set_next_run(env: BenchEnv, schedule_ids: Sequence[int], when: datetime) -> None:
    """Make every schedule due at ``when`` (one statement for the whole burst)."""
    with env.core.db.session(SYSTEM) as conn:
        conn.execute("UPDATE cron_schedules SET next_run = %s WHERE id = ANY(%s)", (when, list(schedule_ids)))


def _insert_schedules(env: BenchEnv, count: int) -> list[int]:
    """``count`` enabled no-op schedules that are not due for a long time."""
    later = datetime.now(UTC) + timedelta(days=1)
    ids = []
    with env.core.db.session(SYSTEM) as conn:
        for i in range(count):
            spec = TaskSpec(task_id=f"burst-{i}", user_id=1 + i % 50, handler="noop")
            new = schedule_store.NewSchedule(
                name=f"burst-{i}", spec=spec, cron_expression=YEARLY, timezone="UTC", next_run=later
            )
            ids.append(schedule_store.insert_schedule(conn, new).id)
    return ids


def _sleep_until(moment: datetime) -> None:
    while (left := (moment - datetime.now(UTC)).total_seconds()) > 0:
        time.sleep(min(left, 0.5) if left > 0.01 else 0.0005)


# -- cron burst -----------------------------------------------------------------------------


def cron_burst(env: BenchEnv, count: int) -> dict[str, Any]:
    """``count`` schedules due on the same second: time until every tick job is queued, by 1, 2 (the
    chart's default) and 3 dispatchers."""
    reset(env)
    began = time.perf_counter()
    ids = _insert_schedules(env, count)
    result: dict[str, Any] = {
        "schedules": count,
        "insert_s": round(time.perf_counter() - began, 2),
        "target_s": BURST_TARGET_S,
    }
    try:
        for replicas in (1, 2, 3):
            reset(env)
            result[f"dispatchers_{replicas}"] = _burst_once(env, ids, replicas)
    finally:
        delete_schedules(env, ids)
        reset(env)
    return result


def _burst_once(env: BenchEnv, ids: list[int], replicas: int) -> dict[str, Any]:
    redis = env.redis(0)
    count = len(ids)
    processes = start_dispatchers(env, replicas)
    try:
        tick = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
        _set_next_run(env, ids, tick)
        redis.publish(SCHEDULES_CHANGED, "bench")  # the dispatchers sleep until the new next_run
        _sleep_until(tick)
        complete = wait_until(lambda: queued_count(redis) >= count, timeout=120, interval=0.005)
        polled = (datetime.now(UTC) - tick).total_seconds()
        time.sleep(0.5)  # let a duplicate, if any, arrive before counting
    finally:
        for process in processes:
            stop(process)
    rows = [row for row in tick_rows(env, ids) if row["tick_at"] == tick]
    queued = queued_ids(redis)
    times = enqueued_at(redis, [row["id"] for row in rows])
    recorded = len({row["schedule_id"] for row in rows})
    last = max(times.values(), default=tick)
    return {
        "all_queued": complete,
        "seconds_to_all_queued": round(polled, 3),
        "seconds_to_last_enqueued_at": round((last - tick).total_seconds(), 3),
        "vs_target": round(polled / BURST_TARGET_S, 2),
        "recorded": recorded,
        "queued": len(times),
        "duplicates": (len(rows) - recorded) + sum(n - 1 for n in queued.values() if n > 1),
        "missing": count - recorded,
    }


# -- tick lateness ------------------------------------------------------------------------------


def cron_lateness(env: BenchEnv, ticks: int, schedules: int = 10) -> dict[str, Any]:
    """Six-field schedules fired every second for ~``ticks`` ticks: lateness with 3 and 1 dispatchers, and `rq cron`."""
    seconds = max(3, math.ceil(ticks / schedules))
    return {
        "schedules": schedules,
        "seconds_per_run": seconds,
        "target_p99_ms": LATENESS_TARGET_P99_MS,
        "kadence_3_dispatchers_ms": _kadence_lateness(env, 3, schedules, seconds),
        "kadence_1_dispatcher_ms": _kadence_lateness(env, 1, schedules, seconds),
        "rq_cron_ms": _rq_cron_lateness(env, schedules, seconds),
    }


def _kadence_lateness(env: BenchEnv, replicas: int, schedules: int, seconds: int) -> dict[str, Any]:
    reset(env)
    redis = env.redis(0)
    processes = start_dispatchers(env, replicas)
    ids: list[int] = []
    try:
        for i in range(schedules):
            task = TaskInput(task_id=f"lateness-{i}", user_id=1, handler="noop")
            ids.append(
                env.core.schedule_recurring_task(USER, task, name=f"lateness-{i}", cron_expression="* * * * * *").id
            )
        time.sleep(seconds + 0.3)
        for schedule_id in ids:
            env.core.disable_schedule(USER, schedule_id)
        time.sleep(0.3)
    finally:
        for process in processes:
            stop(process)
    rows = tick_rows(env, ids)
    times = enqueued_at(redis, [row["id"] for row in rows])
    lateness = [(times[row["id"]] - row["tick_at"]).total_seconds() * 1000 for row in rows if row["id"] in times]
    queued = queued_ids(redis)
    delete_schedules(env, ids)
    reset(env)
    return percentiles(lateness) | {
        "ticks": len(lateness),
        "early": sum(1 for value in lateness if value < 0),
        "not_queued": len(rows) - len(times),
        "duplicates": sum(n - 1 for n in queued.values() if n > 1),
    }


# `rq cron` (RQ 3's CronScheduler) in a child process: the same number of every-second jobs.
_RQ_CRON = """
import sys
from redis import Redis
from rq.cron import CronScheduler
import bench.tasks
scheduler = CronScheduler(connection=Redis.from_url(sys.argv[1]), logging_level="WARNING")
for i in range(int(sys.argv[2])):
    scheduler.register(bench.tasks.noop, "raw-cron", cron="* * * * * *", name=f"tick-{i}")
scheduler.start()
"""


def _rq_cron_lateness(env: BenchEnv, schedules: int, seconds: int) -> dict[str, Any]:
    """`rq cron`'s lateness: each job's ``enqueued_at`` minus the whole second it was due.

    RQ records no due time on the job; ``CronScheduler`` enqueues only once ``now >=
    next_enqueue_time`` (a whole second for a cron of seconds), so the due second is the
    ``enqueued_at`` rounded down, and its jobs cannot start early by construction.
    """
    redis = env.redis(RAW_DB)
    redis.flushdb()
    process = start([sys.executable, "-c", _RQ_CRON, env.servers.redis.url(RAW_DB), str(schedules)], env.env())
    try:
        time.sleep(seconds + 1.5)  # about a second of start-up before the first tick
    finally:
        stop(process)
    job_ids = [raw.decode() for raw in redis.lrange("rq:queue:raw-cron", 0, -1)]
    times = list(enqueued_at(redis, job_ids).values())
    lateness = [(moment - moment.replace(microsecond=0)).total_seconds() * 1000 for moment in times]
    redis.flushdb()
    return percentiles(lateness) | {"ticks": len(lateness), "process": "one, no failover"}
