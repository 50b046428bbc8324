"""Typed models of tasks, jobs and schedules, validated once at the edge."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Priority(enum.StrEnum):
    """Job priorities; each has its own queue and a numeric rank (lower runs first)."""

    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """The numeric priority of the original system: 1, 2, 5, 10."""
        return _PRIORITY_RANKS[self]

    @property
    def queue_name(self) -> str:
        """Name of the RQ queue that holds jobs of this priority."""
        return f"kadence-{self.value}"


_PRIORITY_RANKS = {Priority.CRITICAL: 1, Priority.HIGH: 2, Priority.NORMAL: 5, Priority.LOW: 10}

PRIORITIES_BY_URGENCY: tuple[Priority, ...] = (Priority.CRITICAL, Priority.HIGH, Priority.NORMAL, Priority.LOW)


class JobState(enum.StrEnum):
    """Where a job is in its life."""

    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True once nothing more will happen to the job."""
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


class Role(enum.StrEnum):
    """What a caller may see: their own rows, or everything."""

    USER = "user"
    MASTER = "master"


class ConcurrencyPolicy(enum.StrEnum):
    """What a cron tick does while the previous run is still going, as in Kubernetes CronJob."""

    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class EventKind(enum.StrEnum):
    """Entries of the audit trail."""

    SCHEDULED = "scheduled"
    STARTED = "started"
    COMPLETED = "completed"
    ERROR = "error"  # an attempt failed and another will follow
    FAILED = "failed"  # the last attempt failed
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class UserContext:
    """Who a call acts for; row-level security is applied from it."""

    user_id: int
    role: Role = Role.USER

    @property
    def is_master(self) -> bool:
        return self.role is Role.MASTER

    @classmethod
    def system(cls) -> UserContext:
        """The context of Kadence's own processes (dispatcher, workers, operator)."""
        return cls(user_id=0, role=Role.MASTER)


class Backoff(BaseModel):
    """Exponential retry delays: base, 2×base, 4×base … capped at max_seconds."""

    model_config = ConfigDict(frozen=True)

    base_seconds: float = Field(default=1.0, gt=0, le=86400)
    max_seconds: float = Field(default=3600.0, gt=0, le=7 * 86400)


class TaskSpec(BaseModel):
    """What to run: the part shared by one-off tasks, delayed tasks and cron schedules."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    user_id: int
    task_goal: str = ""
    priority: Priority = Priority.NORMAL
    max_attempts: int = 3
    handler: str = "webhook"
    args: dict[str, Any] = Field(default_factory=dict)
    backoff: Backoff = Field(default_factory=Backoff)
    timeout_seconds: int = 300


class Job(BaseModel):
    """A job as Kadence records it (the durable row in PostgreSQL)."""

    job_id: str
    state: JobState
    task_id: str
    user_id: int
    task_goal: str
    priority: Priority
    handler: str
    args: dict[str, Any]
    attempts: int
    max_attempts: int
    created_at: datetime
    scheduled_for: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: Any = None
    error: str | None = None
    schedule_id: int | None = None
    owner: str | None = None


class CronSchedule(BaseModel):
    """A recurring task as stored in ``cron_schedules``."""

    id: int
    name: str
    task_goal: str
    cron_expression: str
    timezone: str
    user_id: int
    enabled: bool
    priority: Priority
    max_attempts: int
    handler: str
    args: dict[str, Any]
    metadata: dict[str, Any]
    concurrency_policy: ConcurrencyPolicy
    starting_deadline_seconds: int | None
    jitter_seconds: int
    successful_jobs_history_limit: int
    failed_jobs_history_limit: int
    last_run: datetime | None
    next_run: datetime | None
    last_job_id: str | None
    last_result: str | None
    missed_ticks: int
    skipped_ticks: int = 0  # ticks a Forbid policy skipped while the previous run was going
    owner: str | None
    created_at: datetime
    updated_at: datetime


class QueueStats(BaseModel):
    """Counts of jobs by state, overall and per priority."""

    waiting: int = 0
    active: int = 0
    completed: int = 0
    failed: int = 0
    delayed: int = 0
    paused: int = 0
    is_paused: bool = False
    by_priority: dict[Priority, dict[str, int]] = Field(default_factory=dict)
