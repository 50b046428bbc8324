"""The dispatcher's SQL: lock due schedules, advance them, prune history.

The tick jobs themselves are recorded like any other jobs (``kadence.store.jobs.insert_jobs``).

Every function runs inside the caller's transaction (a master session). Due rows are taken
with ``FOR UPDATE SKIP LOCKED``, so any number of dispatchers share the work without a
leader: a row is handled by exactly one of them per transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kadence.domain.models import ConcurrencyPolicy, Priority
from kadence.domain.ticks import DueSchedule
from kadence.store.db import Connection, Row, count_affected

_DUE_COLUMNS = (
    "id, user_id, task_goal, cron_expression, timezone, priority, max_attempts, handler, args, "
    "concurrency_policy, starting_deadline_seconds, jitter_seconds, successful_jobs_history_limit, "
    "failed_jobs_history_limit, next_run"
)


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


def schedule_counters(conn: Connection, schedule_id: int) -> Row | None:
    """last_run, next_run, last_job_id, missed_ticks and skipped_ticks of one schedule."""
    return conn.execute(
        "SELECT last_run, next_run, last_job_id, missed_ticks, skipped_ticks FROM cron_schedules WHERE id = %s",
        (schedule_id,),
    ).fetchone()
