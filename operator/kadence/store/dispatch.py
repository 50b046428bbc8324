"""The dispatcher's SQL: lock due schedules, record their tick jobs, advance them, prune history.

Every function runs inside the caller's transaction (a master session). Due rows are taken
with ``FOR UPDATE SKIP LOCKED``, so any number of dispatchers share the work without a
leader: a row is handled by exactly one of them per transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kadence.domain.models import ConcurrencyPolicy, Priority
from kadence.domain.ticks import DueSchedule
from kadence.store.db import Connection, Row, count_affected
from kadence.store.jobs import NewJob

_DUE_COLUMNS = (
    "id, user_id, task_goal, cron_expression, timezone, priority, max_attempts, handler, args, "
    "concurrency_policy, starting_deadline_seconds, jitter_seconds, successful_jobs_history_limit, "
    "failed_jobs_history_limit, next_run"
)

_PENDING_COLUMNS = "id, user_id, task_id, task_goal, priority, handler, args, max_attempts, scheduled_for, schedule_id"


@dataclass(frozen=True, slots=True)
class ScheduleAdvance:
    """How one schedule row changes after its due tick was handled."""

    schedule_id: int
    next_run: datetime
    last_run: datetime | None = None  # the tick that fired (None: keep the previous one)
    last_job_id: str | None = None
    missed: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class UnfinishedJob:
    """A waiting, delayed or active job of a schedule."""

    job_id: str
    schedule_id: int
    priority: Priority


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A recorded, not yet started job of a schedule (what re-queueing it needs)."""

    job_id: str
    user_id: int
    task_id: str
    task_goal: str
    priority: Priority
    handler: str
    args: dict[str, object]
    max_attempts: int
    scheduled_for: datetime | None
    schedule_id: int | None


def _to_due(row: Row) -> DueSchedule:
    return DueSchedule(
        id=row["id"],
        user_id=row["user_id"],
        task_goal=row["task_goal"],
        cron_expression=row["cron_expression"],
        timezone=row["timezone"],
        priority=Priority(row["priority"]),
        max_attempts=row["max_attempts"],
        handler=row["handler"],
        args=row["args"],
        concurrency_policy=ConcurrencyPolicy(row["concurrency_policy"]),
        starting_deadline_seconds=row["starting_deadline_seconds"],
        jitter_seconds=row["jitter_seconds"],
        successful_jobs_history_limit=row["successful_jobs_history_limit"],
        failed_jobs_history_limit=row["failed_jobs_history_limit"],
        next_run=row["next_run"],
    )


def _to_pending(row: Row) -> PendingJob:
    return PendingJob(
        job_id=row["id"],
        user_id=row["user_id"],
        task_id=row["task_id"],
        task_goal=row["task_goal"],
        priority=Priority(row["priority"]),
        handler=row["handler"],
        args=row["args"],
        max_attempts=row["max_attempts"],
        scheduled_for=row["scheduled_for"],
        schedule_id=row["schedule_id"],
    )


def lock_due_schedules(conn: Connection, now: datetime, limit: int) -> list[DueSchedule]:
    """Lock up to ``limit`` enabled schedules due at ``now``, earliest first; rows others hold are skipped."""
    rows = conn.execute(
        f"""
        SELECT {_DUE_COLUMNS} FROM cron_schedules
        WHERE enabled AND next_run <= %s
        ORDER BY next_run, id
        LIMIT %s
        FOR UPDATE SKIP LOCKED
        """,
        (now, limit),
    ).fetchall()
    return [_to_due(row) for row in rows]


def next_due_time(conn: Connection) -> datetime | None:
    """When the earliest enabled schedule is due, or None when none is."""
    row = conn.execute("SELECT min(next_run) AS due FROM cron_schedules WHERE enabled").fetchone()
    return row["due"] if row else None


def unfinished_jobs(conn: Connection, schedule_ids: Sequence[int]) -> dict[int, list[UnfinishedJob]]:
    """The waiting, delayed or active jobs of each of ``schedule_ids`` (the "previous run")."""
    found: dict[int, list[UnfinishedJob]] = {}
    if not schedule_ids:
        return found
    rows = conn.execute(
        """
        SELECT id, schedule_id, priority FROM jobs
        WHERE schedule_id = ANY(%s) AND state IN ('waiting', 'delayed', 'active')
        """,
        (list(schedule_ids),),
    ).fetchall()
    for row in rows:
        found.setdefault(row["schedule_id"], []).append(
            UnfinishedJob(row["id"], row["schedule_id"], Priority(row["priority"]))
        )
    return found


def insert_tick_jobs(conn: Connection, jobs: Sequence[NewJob]) -> set[str]:
    """Record the jobs of many ticks in one statement; returns the ids that are new.

    An id that already exists (the tick was recorded before) is left alone and not returned,
    so the caller never queues a tick twice.
    """
    if not jobs:
        return set()
    columns: list[list[object]] = [[] for _ in range(12)]
    for new in jobs:
        spec = new.spec
        values = (
            new.job_id, spec.user_id, spec.task_id, spec.task_goal, spec.priority.value, spec.handler,
            json.dumps(spec.args), new.state.value, spec.max_attempts, new.scheduled_for, new.schedule_id,
            new.tick_at,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    rows = conn.execute(
        """
        INSERT INTO jobs (id, user_id, task_id, task_goal, priority, handler, args, state,
                          max_attempts, scheduled_for, schedule_id, tick_at)
        SELECT r.id, r.user_id, r.task_id, r.task_goal, r.priority, r.handler, r.args::jsonb, r.state,
               r.max_attempts, r.scheduled_for, r.schedule_id, r.tick_at
        FROM unnest(%b::text[], %b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
                    %b::text[], %b::int[], %b::timestamptz[], %b::bigint[], %b::timestamptz[])
             AS r(id, user_id, task_id, task_goal, priority, handler, args, state, max_attempts,
                  scheduled_for, schedule_id, tick_at)
        ON CONFLICT (id) DO NOTHING
        RETURNING id
        """,
        columns,
    ).fetchall()
    return {row["id"] for row in rows}


def advance_schedules(conn: Connection, advances: Sequence[ScheduleAdvance]) -> None:
    """Move ``next_run`` on, record the fired tick and grow the missed/skipped counters."""
    if not advances:
        return
    conn.execute(
        """
        UPDATE cron_schedules AS s SET
            next_run = v.next_run,
            last_run = COALESCE(v.last_run, s.last_run),
            last_job_id = COALESCE(v.last_job_id, s.last_job_id),
            missed_ticks = s.missed_ticks + v.missed,
            skipped_ticks = s.skipped_ticks + v.skipped
        FROM unnest(%b::bigint[], %b::timestamptz[], %b::timestamptz[], %b::text[], %b::bigint[], %b::bigint[])
             AS v(id, next_run, last_run, last_job_id, missed, skipped)
        WHERE s.id = v.id
        """,
        (
            [a.schedule_id for a in advances],
            [a.next_run for a in advances],
            [a.last_run for a in advances],
            [a.last_job_id for a in advances],
            [a.missed for a in advances],
            [a.skipped for a in advances],
        ),
    )


def prune_history(conn: Connection, schedule_ids: Sequence[int]) -> int:
    """Delete finished jobs of these schedules beyond their history limits; returns how many.

    Completed jobs count against ``successful_jobs_history_limit``; failed and cancelled
    ones against ``failed_jobs_history_limit``. The newest (by finish time) are kept.
    """
    if not schedule_ids:
        return 0
    return count_affected(
        conn,
        """
        WITH ranked AS (
            SELECT j.id,
                   row_number() OVER (PARTITION BY j.schedule_id, j.state = 'completed'
                                      ORDER BY j.finished_at DESC NULLS LAST, j.id DESC) AS position,
                   CASE WHEN j.state = 'completed' THEN s.successful_jobs_history_limit
                        ELSE s.failed_jobs_history_limit END AS keep
            FROM jobs j JOIN cron_schedules s ON s.id = j.schedule_id
            WHERE j.schedule_id = ANY(%s) AND j.state IN ('completed', 'failed', 'cancelled')
        )
        DELETE FROM jobs WHERE id IN (SELECT id FROM ranked WHERE position > keep)
        """,
        (list(schedule_ids),),
    )


def pending_schedule_jobs(
    conn: Connection, created_before: datetime, after: tuple[datetime, str] | None, limit: int
) -> list[tuple[datetime, str]]:
    """(created_at, id) of waiting or delayed schedule jobs recorded before ``created_before``, in pages."""
    if after is None:
        rows = conn.execute(
            """
            SELECT created_at, id FROM jobs
            WHERE schedule_id IS NOT NULL AND state IN ('waiting', 'delayed') AND created_at < %s
            ORDER BY created_at, id LIMIT %s
            """,
            (created_before, limit),
        ).fetchall()
    else:
        rows = conn.execute(
            """
            SELECT created_at, id FROM jobs
            WHERE schedule_id IS NOT NULL AND state IN ('waiting', 'delayed') AND created_at < %s
              AND (created_at, id) > (%s, %s)
            ORDER BY created_at, id LIMIT %s
            """,
            (created_before, after[0], after[1], limit),
        ).fetchall()
    return [(row["created_at"], row["id"]) for row in rows]


def lock_pending_jobs(conn: Connection, job_ids: Sequence[str]) -> list[PendingJob]:
    """Lock those of ``job_ids`` that are still waiting or delayed (rows others hold are skipped).

    While the lock is held no worker can mark the job started, so its state cannot change
    under the caller.
    """
    if not job_ids:
        return []
    rows = conn.execute(
        f"""
        SELECT {_PENDING_COLUMNS} FROM jobs
        WHERE id = ANY(%s) AND state IN ('waiting', 'delayed')
        FOR UPDATE SKIP LOCKED
        """,
        (list(job_ids),),
    ).fetchall()
    return [_to_pending(row) for row in rows]


def schedule_counters(conn: Connection, schedule_id: int) -> Row | None:
    """last_run, next_run, last_job_id, missed_ticks and skipped_ticks of one schedule."""
    return conn.execute(
        "SELECT last_run, next_run, last_job_id, missed_ticks, skipped_ticks FROM cron_schedules WHERE id = %s",
        (schedule_id,),
    ).fetchone()
