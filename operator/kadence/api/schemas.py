"""Request and response bodies of the HTTP API: camelCase JSON, validated at the edge.

Field types and bounds here mirror what :mod:`kadence.domain.validation` accepts, so the
OpenAPI document tells clients the truth; the core validates again (it is the authority)
and its InvalidInput becomes the same 422 body.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, Strict
from pydantic.alias_generators import to_camel

from kadence.domain.models import ConcurrencyPolicy, CronSchedule, Job, JobState, Priority, QueueStats, Role
from kadence.domain.validation import MAX_ATTEMPTS, MAX_DELAY, MAX_USER_ID

MAX_DELAY_MS = int(MAX_DELAY.total_seconds() * 1000)
MAX_BULK = 1000

# JSON numbers only: no true → 1, no "5" → 5, no 5.0 → 5.
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]

UserId = Annotated[int, Strict(), Field(ge=1, le=MAX_USER_ID, description="Owner of the task (a positive integer).")]


def _no_bool_or_float(value: object) -> object:
    if isinstance(value, bool | float):
        raise ValueError("must be critical, high, normal or low (or 1, 2, 5, 10)")
    return value


PriorityIn = Annotated[
    Priority | Literal[1, 2, 5, 10],
    BeforeValidator(_no_bool_or_float),
    Field(description="critical, high, normal or low (or the numbers 1, 2, 5, 10)."),
]
Text = Annotated[str, Field(max_length=10_000, pattern=r"^[^\x00]*$")]
JsonObject = dict[str, Any]


class CamelModel(BaseModel):
    """Base of every body: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


class RequestModel(CamelModel):
    """Base of request bodies: unknown fields are an error, so a typo never passes silently."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", serialize_by_alias=True
    )


# -- requests --------------------------------------------------------------------------


class BackoffIn(RequestModel):
    base_seconds: float | None = Field(default=None, gt=0, le=86400, allow_inf_nan=False)
    max_seconds: float | None = Field(default=None, gt=0, le=7 * 86400, allow_inf_nan=False)


class TaskIn(RequestModel):
    """A one-off task: what to run, for whom, how urgently and how often to try."""

    task_id: str = Field(min_length=1, max_length=255, pattern=r"^[^\x00]*\S[^\x00]*$",
                         description="Caller's name for the task.")
    user_id: UserId
    task_goal: Text | None = Field(default=None, description="Free text passed to the handler.")
    priority: PriorityIn | None = None
    max_attempts: Int | None = Field(default=None, ge=1, le=MAX_ATTEMPTS, description="Runs in all (default 3).")
    handler: Literal["webhook", "python", "noop"] | None = Field(
        default=None, description="What runs the task (default from settings, usually webhook)."
    )
    args: JsonObject | None = Field(
        default=None, description="Handler arguments: webhook needs `url`, python needs `callable`."
    )
    backoff: BackoffIn | None = None
    timeout_seconds: Int | None = Field(default=None, ge=1, le=86400)


class ScheduleTaskIn(TaskIn):
    job_id: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[^\x00]+$",
        description="Optional idempotency key: scheduling the same jobId again returns the existing job.",
    )


class DelayedTaskIn(ScheduleTaskIn):
    """A task that starts after ``delay`` milliseconds or at ``runAt`` (exactly one of them)."""

    delay: float | None = Field(default=None, ge=0, le=MAX_DELAY_MS, allow_inf_nan=False,
                                description="Milliseconds from now.")
    run_at: AwareDatetime | None = Field(default=None, description="RFC 3339 time with an offset.")


class BulkTaskIn(TaskIn):
    delay: float | None = Field(default=None, ge=0, le=MAX_DELAY_MS, allow_inf_nan=False)
    run_at: AwareDatetime | None = None


class BulkIn(RequestModel):
    tasks: list[BulkTaskIn] = Field(min_length=1, max_length=MAX_BULK)


class RecurringTaskIn(RequestModel):
    """A cron schedule; the dispatcher starts one job per tick."""

    name: str = Field(min_length=1, max_length=255, pattern=r"^[^\x00]*\S[^\x00]*$")
    task_goal: Text | None = None
    user_id: UserId
    cron_expression: str = Field(
        min_length=1, max_length=255, description="Five fields, or six with seconds first."
    )
    timezone: str | None = Field(default=None, max_length=64, description="IANA name (default UTC).")
    priority: PriorityIn | None = None
    max_attempts: Int | None = Field(default=None, ge=1, le=MAX_ATTEMPTS)
    handler: Literal["webhook", "python", "noop"] | None = None
    args: JsonObject | None = None
    metadata: JsonObject | None = None
    backoff: BackoffIn | None = None
    timeout_seconds: Int | None = Field(default=None, ge=1, le=86400)
    concurrency_policy: ConcurrencyPolicy | None = None
    starting_deadline_seconds: Int | None = Field(default=None, ge=0, le=366 * 86400)
    jitter_seconds: Int | None = Field(default=None, ge=0, le=3600)
    enabled: Bool = True


class TokenIn(RequestModel):
    user_id: UserId
    role: Role = Role.USER
    description: str = Field(default="", max_length=255, pattern=r"^[^\x00]*$")


# -- responses -------------------------------------------------------------------------


class ErrorOut(CamelModel):
    """Every error answer: a machine-readable code, the field at fault (if any) and a message."""

    error: str = Field(description="invalid_input, malformed_json, unauthorized, forbidden, not_found, "
                                   "conflict, payload_too_large, unavailable or internal.")
    field: str | None = Field(default=None, description="The camelCase path of the offending field.")
    message: str


class JobIdOut(CamelModel):
    job_id: str


class ScheduledOut(CamelModel):
    job_id: str
    scheduled_for: datetime | None = None


class BulkOut(CamelModel):
    job_ids: list[str]
    scheduled_for: list[datetime | None]


class RecurringOut(CamelModel):
    schedule_id: int
    job_id: str | None = Field(description="The schedule's latest job (null until the first tick).")
    next_run: datetime | None


class JobOut(CamelModel):
    job_id: str
    state: JobState
    task_id: str
    user_id: int
    task_goal: str
    priority: Priority
    handler: str
    args: JsonObject
    attempts: int
    max_attempts: int
    created_at: datetime
    scheduled_for: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    result: Any = None
    error: str | None
    schedule_id: int | None
    owner: str | None = Field(description="namespace/name of the ScheduledTask that owns the job, if any.")

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls.model_validate(job.model_dump())


class CancelledOut(CamelModel):
    job_id: str
    state: JobState


class JobEventOut(CamelModel):
    kind: str
    attempt: int | None
    message: str | None
    created_at: datetime


class StateCounts(CamelModel):
    waiting: int = 0
    active: int = 0
    completed: int = 0
    failed: int = 0
    delayed: int = 0
    paused: int = 0


class StatsOut(StateCounts):
    is_paused: bool
    by_priority: dict[Priority, StateCounts]

    @classmethod
    def of(cls, stats: QueueStats) -> StatsOut:
        return cls(
            waiting=stats.waiting, active=stats.active, completed=stats.completed, failed=stats.failed,
            delayed=stats.delayed, paused=stats.paused, is_paused=stats.is_paused,
            by_priority={p: StateCounts.model_validate(c) for p, c in stats.by_priority.items()},
        )


class ScheduleOut(CamelModel):
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
    args: JsonObject
    metadata: JsonObject
    concurrency_policy: ConcurrencyPolicy
    starting_deadline_seconds: int | None
    jitter_seconds: int
    last_run: datetime | None
    next_run: datetime | None
    last_job_id: str | None
    last_result: str | None
    missed_ticks: int
    skipped_ticks: int
    owner: str | None = Field(description="namespace/name of the CronSchedule resource that owns it (read-only).")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, schedule: CronSchedule) -> ScheduleOut:
        return cls.model_validate(schedule.model_dump())


class PausedOut(CamelModel):
    paused: bool


class TokenOut(CamelModel):
    token: str = Field(description="Shown once; only its hash is stored.")
    user_id: int
    role: Role


class HealthOut(CamelModel):
    status: Literal["ok"]


class ReadyOut(CamelModel):
    ready: bool
    postgres: bool
    redis: bool
