"""The ``cron_schedules`` table."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from kadence.domain.models import ConcurrencyPolicy, CronSchedule, Priority, TaskSpec
from kadence.store.db import Connection, Row, count_affected

_COLUMNS = (
    "id, name, task_goal, cron_expression, timezone, user_id, enabled, priority, max_attempts, handler, "
    "args, metadata, concurrency_policy, starting_deadline_seconds, jitter_seconds, "
    "successful_jobs_history_limit, failed_jobs_history_limit, last_run, next_run, last_job_id, "
    "last_result, missed_ticks, skipped_ticks, owner, created_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class NewSchedule:
    """What is stored when a recurring task is created (or updated by its owning resource)."""

    name: str
    spec: TaskSpec
    cron_expression: str
    timezone: str
    next_run: datetime | None
    enabled: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)
    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.ALLOW
    starting_deadline_seconds: int | None = None
    jitter_seconds: int = 0
    successful_jobs_history_limit: int = 3
    failed_jobs_history_limit: int = 1
    owner: str | None = None
    owner_uid: str | None = None


def to_schedule(row: Row) -> CronSchedule:
    return CronSchedule(
        id=row["id"],
        name=row["name"],
        task_goal=row["task_goal"],
        cron_expression=row["cron_expression"],
        timezone=row["timezone"],
        user_id=row["user_id"],
        enabled=row["enabled"],
        priority=Priority(row["priority"]),
        max_attempts=row["max_attempts"],
        handler=row["handler"],
        args=row["args"],
        metadata=row["metadata"],
        concurrency_policy=ConcurrencyPolicy(row["concurrency_policy"]),
        starting_deadline_seconds=row["starting_deadline_seconds"],
        jitter_seconds=row["jitter_seconds"],
        successful_jobs_history_limit=row["successful_jobs_history_limit"],
        failed_jobs_history_limit=row["failed_jobs_history_limit"],
        last_run=row["last_run"],
        next_run=row["next_run"],
        last_job_id=row["last_job_id"],
        last_result=row["last_result"],
        missed_ticks=row["missed_ticks"],
        skipped_ticks=row["skipped_ticks"],
        owner=row["owner"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _values(new: NewSchedule) -> tuple[Any, ...]:
    spec = new.spec
    return (
        new.name,
        spec.task_goal,
        new.cron_expression,
        new.timezone,
        spec.user_id,
        new.enabled,
        new.next_run,
        Jsonb(new.metadata),
        spec.priority.value,
        spec.max_attempts,
        spec.handler,
        Jsonb(spec.args),
        new.concurrency_policy.value,
        new.starting_deadline_seconds,
        new.jitter_seconds,
        new.successful_jobs_history_limit,
        new.failed_jobs_history_limit,
        new.owner,
        new.owner_uid,
    )


_INSERT = """
    INSERT INTO cron_schedules (name, task_goal, cron_expression, timezone, user_id, enabled, next_run,
        metadata, priority, max_attempts, handler, args, concurrency_policy, starting_deadline_seconds,
        jitter_seconds, successful_jobs_history_limit, failed_jobs_history_limit, owner, owner_uid)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def insert_schedule(conn: Connection, new: NewSchedule) -> CronSchedule:
    row = conn.execute(_INSERT + f" RETURNING {_COLUMNS}", _values(new)).fetchone()
    assert row is not None
    return to_schedule(row)


def upsert_owned_schedule(conn: Connection, new: NewSchedule) -> CronSchedule:
    """Create or update the schedule a custom resource owns (keyed by the resource UID).

    ``next_run`` is kept when the timing fields did not change, so a re-applied resource
    neither skips nor repeats a tick.
    """
    row = conn.execute(
        _INSERT
        + f"""
        ON CONFLICT (owner_uid) DO UPDATE SET
            name = EXCLUDED.name, task_goal = EXCLUDED.task_goal, user_id = EXCLUDED.user_id,
            next_run = CASE
                WHEN cron_schedules.cron_expression = EXCLUDED.cron_expression
                 AND cron_schedules.timezone = EXCLUDED.timezone
                 AND cron_schedules.enabled = EXCLUDED.enabled
                 AND cron_schedules.next_run IS NOT NULL
                THEN cron_schedules.next_run ELSE EXCLUDED.next_run END,
            cron_expression = EXCLUDED.cron_expression, timezone = EXCLUDED.timezone,
            enabled = EXCLUDED.enabled, metadata = EXCLUDED.metadata, priority = EXCLUDED.priority,
            max_attempts = EXCLUDED.max_attempts, handler = EXCLUDED.handler, args = EXCLUDED.args,
            concurrency_policy = EXCLUDED.concurrency_policy,
            starting_deadline_seconds = EXCLUDED.starting_deadline_seconds,
            jitter_seconds = EXCLUDED.jitter_seconds,
            successful_jobs_history_limit = EXCLUDED.successful_jobs_history_limit,
            failed_jobs_history_limit = EXCLUDED.failed_jobs_history_limit,
            owner = EXCLUDED.owner, updated_at = now()
        RETURNING {_COLUMNS}
        """,
        _values(new),
    ).fetchone()
    assert row is not None
    return to_schedule(row)


def get_schedule(conn: Connection, schedule_id: int, *, for_update: bool = False) -> CronSchedule | None:
    lock = " FOR UPDATE" if for_update else ""
    row = conn.execute(f"SELECT {_COLUMNS} FROM cron_schedules WHERE id = %s{lock}", (schedule_id,)).fetchone()
    return to_schedule(row) if row else None


def get_owned_schedule(conn: Connection, owner_uid: str) -> CronSchedule | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM cron_schedules WHERE owner_uid = %s", (owner_uid,)).fetchone()
    return to_schedule(row) if row else None


def list_schedules(conn: Connection, user_id: int | None) -> list[CronSchedule]:
    """Schedules of ``user_id`` (all visible ones when None), oldest first."""
    if user_id is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM cron_schedules ORDER BY id").fetchall()
    else:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM cron_schedules WHERE user_id = %s ORDER BY id", (user_id,)
        ).fetchall()
    return [to_schedule(row) for row in rows]


def set_enabled(conn: Connection, schedule_id: int, enabled: bool, next_run: datetime | None) -> CronSchedule | None:
    row = conn.execute(
        f"""
        UPDATE cron_schedules SET enabled = %s, next_run = %s, updated_at = now()
        WHERE id = %s RETURNING {_COLUMNS}
        """,
        (enabled, next_run, schedule_id),
    ).fetchone()
    return to_schedule(row) if row else None


def delete_schedule(conn: Connection, schedule_id: int) -> bool:
    return count_affected(conn, "DELETE FROM cron_schedules WHERE id = %s", (schedule_id,)) > 0


def delete_owned_schedule(conn: Connection, owner_uid: str) -> bool:
    return count_affected(conn, "DELETE FROM cron_schedules WHERE owner_uid = %s", (owner_uid,)) > 0
