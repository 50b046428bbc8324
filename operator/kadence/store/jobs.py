"""The ``jobs`` table and its audit trail ``job_events``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from kadence.domain.models import Backoff, EventKind, Job, JobState, Priority, TaskSpec, UserContext
from kadence.store.db import Connection, Database, Row, count_affected

# The worker's bookkeeping acts for the system: it updates jobs of every user.
SYSTEM = UserContext.system()

_COLUMNS = (
    "id, user_id, task_id, task_goal, priority, handler, args, state, attempts, max_attempts, "
    "scheduled_for, created_at, started_at, finished_at, result, error, schedule_id, owner"
)

_ACTIVE_STATES = ("waiting", "delayed", "active")


@dataclass(frozen=True, slots=True)
class NewJob:
    """What is recorded when a job is created."""

    job_id: str
    spec: TaskSpec
    state: JobState
    scheduled_for: datetime | None
    schedule_id: int | None = None
    tick_at: datetime | None = None
    owner: str | None = None


def _to_job(row: Row) -> Job:
    return Job(
        job_id=row["id"],
        state=JobState(row["state"]),
        task_id=row["task_id"],
        user_id=row["user_id"],
        task_goal=row["task_goal"],
        priority=Priority(row["priority"]),
        handler=row["handler"],
        args=row["args"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        created_at=row["created_at"],
        scheduled_for=row["scheduled_for"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        result=row["result"],
        error=row["error"],
        schedule_id=row["schedule_id"],
        owner=row["owner"],
    )


def _row_values(new: NewJob) -> tuple[Any, ...]:
    spec = new.spec
    return (
        new.job_id, spec.user_id, spec.task_id, spec.task_goal, spec.priority.value, spec.handler, Jsonb(spec.args),
        new.state.value, spec.max_attempts, new.scheduled_for, new.schedule_id, new.tick_at, new.owner,
        spec.backoff.base_seconds, spec.backoff.max_seconds, spec.timeout_seconds,
    )  # fmt: skip


def record_job(db: Database, ctx: UserContext, new: NewJob) -> bool:
    """Record a new job acting for ``ctx`` in a single round trip; False if the id exists already.

    The user context and the insert travel as one statement (``kadence_insert_job``), which
    is what scheduling one task costs in PostgreSQL.
    """
    params = (str(ctx.user_id), ctx.role.value, *_row_values(new))
    row = db.call(f"SELECT kadence_insert_job({', '.join(['%s'] * len(params))}) AS created", params)
    return bool(row and row["created"])


_COLUMN_TYPES = (
    "text", "bigint", "text", "text", "text", "text", "jsonb", "text", "integer", "timestamptz", "bigint",
    "timestamptz", "text", "double precision", "double precision", "integer",
)  # fmt: skip


def insert_jobs(conn: Connection, jobs: Sequence[NewJob]) -> set[str]:
    """Record many new jobs in one statement; returns the ids that are new.

    Each column travels as one array and ``unnest`` turns them back into rows, so a
    thousand jobs cost one round trip. An id that exists already (a tick recorded before,
    say) is left alone and not returned, so the caller never queues it twice.
    """
    if not jobs:
        return set()
    columns = list(zip(*(_row_values(new) for new in jobs), strict=True))
    arrays = ", ".join(f"%b::{kind}[]" for kind in _COLUMN_TYPES)
    rows = conn.execute(
        f"""
        INSERT INTO jobs (id, user_id, task_id, task_goal, priority, handler, args, state, max_attempts,
                          scheduled_for, schedule_id, tick_at, owner,
                          backoff_base_seconds, backoff_max_seconds, timeout_seconds)
        SELECT * FROM unnest({arrays})
        ON CONFLICT (id) DO NOTHING
        RETURNING id
        """,
        [list(column) for column in columns],
    ).fetchall()
    return {row["id"] for row in rows}


def get_job(conn: Connection, job_id: str) -> Job | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = %s", (job_id,)).fetchone()
    return _to_job(row) if row else None


def cancel_job(conn: Connection, job_id: str, message: str = "cancelled") -> JobState | None:
    """Mark a waiting, delayed or active job cancelled; return the state it had, or None."""
    row = conn.execute(
        """
        WITH previous AS (
            SELECT id, state FROM jobs WHERE id = %s AND state IN ('waiting', 'delayed', 'active') FOR UPDATE
        ), updated AS (
            UPDATE jobs SET state = 'cancelled', finished_at = now()
            FROM previous WHERE jobs.id = previous.id
            RETURNING jobs.id, jobs.user_id, jobs.attempts, previous.state AS previous_state
        ), event AS (
            INSERT INTO job_events (job_id, user_id, kind, attempt, message)
            SELECT id, user_id, 'cancelled', attempts, %s FROM updated
        )
        SELECT previous_state FROM updated
        """,
        (job_id, message),
    ).fetchone()
    return JobState(row["previous_state"]) if row else None


def mark_started(db: Database, job_id: str, attempt: int) -> bool:
    """The worker took the job for ``attempt``; False if it was cancelled (or finished) meanwhile."""
    row = db.execute_once(
        SYSTEM,
        """
        WITH updated AS (
            UPDATE jobs SET state = 'active', attempts = %s, started_at = now(), error = NULL
            WHERE id = %s AND state IN ('waiting', 'delayed', 'active')
            RETURNING id, user_id
        ), event AS (
            INSERT INTO job_events (job_id, user_id, kind, attempt) SELECT id, user_id, 'started', %s FROM updated
        )
        SELECT id FROM updated
        """,
        (attempt, job_id, attempt),
    )
    return row is not None


def mark_completed(db: Database, job_id: str, attempt: int, result: Any) -> bool:
    row = db.execute_once(
        SYSTEM,
        """
        WITH updated AS (
            UPDATE jobs SET state = 'completed', attempts = %s, finished_at = now(), result = %s, error = NULL
            WHERE id = %s AND state = 'active'
            RETURNING id, user_id, schedule_id
        ), event AS (
            INSERT INTO job_events (job_id, user_id, kind, attempt) SELECT id, user_id, 'completed', %s FROM updated
        ), schedule AS (
            UPDATE cron_schedules s SET last_result = 'completed'
            FROM updated WHERE s.id = updated.schedule_id
        )
        SELECT id FROM updated
        """,
        (attempt, Jsonb(result), job_id, attempt),
    )
    return row is not None


def mark_attempt_failed(db: Database, job_id: str, attempt: int, error: str, retry_at: datetime | None) -> bool:
    """Record a failed attempt: 'delayed' until ``retry_at`` when another follows, else 'failed'."""
    final = retry_at is None
    row = db.execute_once(
        SYSTEM,
        """
        WITH updated AS (
            UPDATE jobs SET state = %s, attempts = GREATEST(attempts, %s), error = %s,
                            finished_at = CASE WHEN %s THEN now() END,
                            scheduled_for = COALESCE(%s, scheduled_for)
            WHERE id = %s AND state IN ('waiting', 'delayed', 'active')
            RETURNING id, user_id, schedule_id
        ), event AS (
            INSERT INTO job_events (job_id, user_id, kind, attempt, message)
            SELECT id, user_id, %s, %s, %s FROM updated
        ), schedule AS (
            UPDATE cron_schedules s SET last_result = 'failed'
            FROM updated WHERE %s AND s.id = updated.schedule_id
        )
        SELECT id FROM updated
        """,
        (
            "failed" if final else "delayed",
            attempt,
            error,
            final,
            retry_at,
            job_id,
            "failed" if final else "error",
            attempt,
            error,
            final,
        ),
    )
    return row is not None


def job_events(conn: Connection, job_id: str) -> list[Row]:
    """A job's audit trail, oldest first: its creation ('scheduled'), then what the workers recorded."""
    return conn.execute(
        f"""
        SELECT kind, attempt, message, created_at FROM (
            SELECT '{EventKind.SCHEDULED.value}' AS kind, 0 AS attempt, NULL AS message, created_at, 0 AS seq
            FROM jobs WHERE id = %s
            UNION ALL
            SELECT kind, attempt, message, created_at, id AS seq FROM job_events WHERE job_id = %s
        ) AS trail
        ORDER BY seq
        """,
        (job_id, job_id),
    ).fetchall()


def delete_history_before(conn: Connection, cutoff: datetime, limit: int = 5000) -> int:
    """Drop up to ``limit`` jobs (and, by cascade, their events) that finished before ``cutoff``."""
    return count_affected(
        conn,
        """
        DELETE FROM jobs WHERE id IN (
            SELECT id FROM jobs
            WHERE finished_at < %s AND state IN ('completed', 'failed', 'cancelled')
            LIMIT %s
        )
        """,
        (cutoff, limit),
    )


def count_by_state(conn: Connection) -> dict[str, int]:
    """How many visible jobs are in each state."""
    rows = conn.execute("SELECT state, count(*) AS n FROM jobs GROUP BY state").fetchall()
    return {row["state"]: int(row["n"]) for row in rows}


def job_timings(conn: Connection) -> list[Row]:
    """When each visible job was created, due, started and finished (for measurements)."""
    return conn.execute(
        "SELECT id, state, created_at, scheduled_for, started_at, finished_at, tick_at FROM jobs"
    ).fetchall()


def delete_jobs(conn: Connection, job_ids: list[str]) -> int:
    """Remove jobs (and their events) by id."""
    return count_affected(conn, "DELETE FROM jobs WHERE id = ANY(%s)", (job_ids,))


def delete_all_jobs(conn: Connection) -> int:
    """Remove every visible job (used to reset between measurements and drills)."""
    return count_affected(conn, "DELETE FROM jobs")


_PENDING_COLUMNS = f"{_COLUMNS}, backoff_base_seconds, backoff_max_seconds, timeout_seconds"


def pending_jobs_older_than(conn: Connection, age_seconds: float, limit: int) -> list[tuple[Job, TaskSpec]]:
    """Waiting or delayed jobs created more than ``age_seconds`` ago, with the spec to queue them again."""
    rows = conn.execute(
        f"""
        SELECT {_PENDING_COLUMNS} FROM jobs
        WHERE state IN ('waiting', 'delayed') AND created_at < now() - make_interval(secs => %s)
        ORDER BY created_at LIMIT %s
        """,
        (age_seconds, limit),
    ).fetchall()
    return [(_to_job(row), _to_spec(row)) for row in rows]


def lock_pending_jobs(conn: Connection, job_ids: Sequence[str]) -> list[tuple[Job, TaskSpec]]:
    """Lock those of ``job_ids`` that are still waiting or delayed (rows others hold are skipped),
    with the spec to queue them again.

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
    return [(_to_job(row), _to_spec(row)) for row in rows]


def _to_spec(row: Row) -> TaskSpec:
    return TaskSpec(
        task_id=row["task_id"],
        user_id=row["user_id"],
        task_goal=row["task_goal"],
        priority=Priority(row["priority"]),
        max_attempts=row["max_attempts"],
        handler=row["handler"],
        args=row["args"],
        backoff=Backoff(base_seconds=row["backoff_base_seconds"], max_seconds=row["backoff_max_seconds"]),
        timeout_seconds=row["timeout_seconds"],
    )
