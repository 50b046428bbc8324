"""Typed spec and status of Kadence's custom resources (group ``kadence.dev``, ``v1alpha1``).

These models are the single source of the CRD schemas (``kadence.controller.crds`` turns
them into structural OpenAPI) and the parse-once edge of the operator: a resource's raw
``spec`` becomes ``ScheduledTaskSpec.model_validate(spec)`` and a status patch is
``status.model_dump(by_alias=True, mode="json", exclude_none=True)``.

Field names are camelCase on the wire (the names ``kubectl`` users write) and snake_case in
Python; both are accepted when parsing. Limits mirror ``kadence.domain.validation`` so
that the API server rejects what the HTTP API would reject.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from kadence.domain.models import ConcurrencyPolicy, Priority

GROUP = "kadence.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

MAX_USER_ID = 2**63 - 1
MAX_ARGS_PROPERTIES = 256
MAX_DELAY_SECONDS = 365 * 86400
HANDLER_NAMES = ("webhook", "python", "noop")

# Five fields, or six with seconds first; each field made of the characters croniter
# understands. Also the @-macros croniter accepts. Anything else is obviously malformed;
# the operator still parses the expression properly and reports what the pattern cannot tell.
_CRON_FIELD = r"[0-9A-Za-z*/,?#-]+"
CRON_PATTERN = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
    rf"|{_CRON_FIELD}( +{_CRON_FIELD}){{4,5}})$"
)
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
# Kubernetes resource.Quantity, as a string ("500m", "1Gi", "0.5").
_DECIMAL = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
QUANTITY_PATTERN = rf"^(\+|-)?{_DECIMAL}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_DECIMAL}))?$"

Handler = Literal["webhook", "python", "noop"]
UserId = Annotated[int, Field(ge=1, le=MAX_USER_ID, json_schema_extra={"format": "int64"})]
TaskId = Annotated[str, StringConstraints(min_length=1, max_length=255)]
TaskGoal = Annotated[str, StringConstraints(max_length=10_000)]
RequiredTaskGoal = Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
Args = Annotated[
    dict[str, Any],
    Field(
        description="Free-form arguments of the handler: url and headers for webhook, callable for python.",
        json_schema_extra={"maxProperties": MAX_ARGS_PROPERTIES},
    ),
]
Quantity = Annotated[
    int | Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN)],
    Field(json_schema_extra={"x-kubernetes-int-or-string": True}),
]


class _Model(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown keys are ignored (the API
    server prunes them before the operator ever sees them)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class ConditionStatus(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(_Model):
    """One entry of ``status.conditions``, shaped like the Kubernetes ``metav1.Condition``."""

    type: str = Field(min_length=1, max_length=316, description="Condition type, e.g. Ready or Scheduled.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str | None = Field(
        default=None, max_length=1024, description="CamelCase reason of the last change."
    )
    message: str | None = Field(default=None, max_length=32768, description="Human-readable details.")
    last_transition_time: datetime | None = Field(default=None, description="When status last changed.")


Conditions = Annotated[
    list[Condition],
    Field(
        description="Latest observations of the resource's state.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]


class Backoff(_Model):
    """Retry delays: baseSeconds, 2×base, 4×base … capped at maxSeconds."""

    base_seconds: float = Field(default=1.0, gt=0, le=86400, description="First retry delay in seconds.")
    max_seconds: float = Field(
        default=3600.0, gt=0, le=7 * 86400, description="Longest retry delay in seconds."
    )


class ScheduledTaskPhase(enum.StrEnum):
    WAITING = "Waiting"
    DELAYED = "Delayed"
    ACTIVE = "Active"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


class ScheduledTaskSpec(_Model):
    """One task to run now, after ``delaySeconds`` or at ``runAt`` (at most one of them)."""

    model_config = ConfigDict(
        json_schema_extra={
            "not": {"required": ["delaySeconds", "runAt"]},
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.delaySeconds) && has(self.runAt))",
                    "message": "give either delaySeconds or runAt, not both",
                }
            ],
        }
    )

    task_id: TaskId = Field(description="Caller's identifier of the task.")
    user_id: UserId = Field(description="Owner of the job (row-level security applies).")
    task_goal: TaskGoal = Field(default="", description="What the task is for (free text).")
    priority: Priority = Field(default=Priority.NORMAL, description="Queue to run on.")
    max_attempts: int = Field(default=3, ge=1, le=100, description="Runs in total, retries included.")
    backoff: Backoff | None = Field(default=None, description="Retry delays (default 1 s doubling to 1 h).")
    delay_seconds: float | None = Field(
        default=None, ge=0, le=MAX_DELAY_SECONDS, description="Start this many seconds after creation."
    )
    run_at: datetime | None = Field(default=None, description="Start at this time (RFC 3339).")
    timeout_seconds: int | None = Field(
        default=None, ge=1, le=86400, description="Run time limit of one attempt."
    )
    handler: Handler | None = Field(default=None, description="What runs the task (default from settings).")
    args: Args = Field(default_factory=dict)
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, description="Delete the resource this long after the job finished."
    )

    @model_validator(mode="after")
    def _one_start_time(self) -> ScheduledTaskSpec:
        if self.delay_seconds is not None and self.run_at is not None:
            raise ValueError("give either delaySeconds or runAt, not both")
        return self


class ScheduledTaskStatus(_Model):
    """What the operator observed of the task's job."""

    phase: ScheduledTaskPhase | None = Field(default=None, description="Where the job is in its life.")
    job_id: str | None = Field(default=None, description="Kadence job id.")
    attempts: int | None = Field(default=None, ge=0, description="Runs started so far.")
    scheduled_for: datetime | None = Field(default=None, description="When the job is due.")
    started_at: datetime | None = Field(default=None, description="When the last attempt started.")
    finished_at: datetime | None = Field(default=None, description="When the job finished.")
    last_error: str | None = Field(default=None, description="Error of the last failed attempt.")
    conditions: Conditions | None = None
    observed_generation: int | None = Field(default=None, ge=0, description="Generation last acted on.")


class CronScheduleSpec(_Model):
    """A recurring task: the fields of a Kubernetes CronJob, running Kadence jobs."""

    schedule: str = Field(
        pattern=CRON_PATTERN,
        max_length=256,
        description="Cron expression: five fields, or six with seconds first.",
    )
    time_zone: str = Field(
        default="UTC", pattern=TIME_ZONE_PATTERN, max_length=64, description="IANA time zone of the schedule."
    )
    suspend: bool = Field(default=False, description="Stop firing new runs while true.")
    task_goal: RequiredTaskGoal = Field(description="What each run is for (free text).")
    user_id: UserId = Field(description="Owner of the schedule and its jobs.")
    priority: Priority = Field(default=Priority.NORMAL, description="Queue each run goes to.")
    max_attempts: int = Field(
        default=3, ge=1, le=100, description="Runs in total per tick, retries included."
    )
    handler: Handler | None = Field(default=None, description="What runs each tick (default from settings).")
    args: Args = Field(default_factory=dict)
    concurrency_policy: ConcurrencyPolicy = Field(
        default=ConcurrencyPolicy.ALLOW, description="What a tick does while the previous run is active."
    )
    starting_deadline_seconds: int | None = Field(
        default=None, ge=0, description="A tick missed by more than this is skipped (and counted)."
    )
    successful_jobs_history_limit: int = Field(
        default=3, ge=0, le=1000, description="Completed runs to keep."
    )
    failed_jobs_history_limit: int = Field(default=1, ge=0, le=1000, description="Failed runs to keep.")
    jitter_seconds: int = Field(default=0, ge=0, le=3600, description="Random delay added to each tick.")


class CronScheduleStatus(_Model):
    """What the operator observed of the schedule."""

    schedule_id: int | None = Field(default=None, ge=0, description="Kadence schedule id.")
    last_run: datetime | None = Field(default=None, description="When the last run was fired.")
    next_run: datetime | None = Field(default=None, description="When the next run is due.")
    last_job_id: str | None = Field(default=None, description="Job id of the last run.")
    last_result: str | None = Field(default=None, description="Outcome of the last finished run.")
    missed_ticks: int | None = Field(default=None, ge=0, description="Ticks skipped after downtime.")
    skipped_ticks: int | None = Field(
        default=None, ge=0, description="Ticks skipped by the Forbid policy while the previous run was going."
    )
    conditions: Conditions | None = None
    observed_generation: int | None = Field(default=None, ge=0, description="Generation last acted on.")


class ResourceRequirements(_Model):
    """Compute resources of each worker container, as in a Pod spec."""

    requests: dict[str, Quantity] | None = Field(
        default=None, description="Minimum resources, e.g. cpu: 100m."
    )
    limits: dict[str, Quantity] | None = Field(
        default=None, description="Maximum resources, e.g. memory: 512Mi."
    )


class EnvVar(_Model):
    """A plain environment variable of the worker containers."""

    name: str = Field(min_length=1, max_length=256, pattern=ENV_NAME_PATTERN, description="Variable name.")
    value: str = Field(default="", description="Variable value.")


class WorkerPoolSpec(_Model):
    """A set of RQ workers: a Deployment whose replicas follow ``concurrency``."""

    concurrency: int = Field(default=5, ge=1, le=1000, description="Jobs run at the same time by the pool.")
    queues: list[Priority] = Field(
        default_factory=lambda: list(Priority),
        min_length=1,
        max_length=4,
        description="Priorities the pool takes jobs from, most urgent first.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    image: str | None = Field(default=None, min_length=1, description="Worker image (default from settings).")
    resources: ResourceRequirements | None = Field(default=None, description="Resources of each worker.")
    env: list[EnvVar] | None = Field(
        default=None,
        description="Extra environment variables of the workers.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class WorkerPoolStatus(_Model):
    """What the operator observed of the pool's Deployment and queues."""

    replicas: int | None = Field(default=None, ge=0, description="Worker pods wanted.")
    ready_replicas: int | None = Field(default=None, ge=0, description="Worker pods ready.")
    backlog: int | None = Field(default=None, ge=0, description="Jobs waiting on the pool's queues.")
    conditions: Conditions | None = None
    observed_generation: int | None = Field(default=None, ge=0, description="Generation last acted on.")


@dataclass(frozen=True, slots=True)
class ResourceKind:
    """Names of one custom resource and the models of its spec and status."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    description: str

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


SCHEDULED_TASK = ResourceKind(
    kind="ScheduledTask",
    plural="scheduledtasks",
    singular="scheduledtask",
    short_names=("stask",),
    spec_model=ScheduledTaskSpec,
    status_model=ScheduledTaskStatus,
    description="A one-off task run by Kadence now, after a delay or at a given time.",
)
CRON_SCHEDULE = ResourceKind(
    kind="CronSchedule",
    plural="cronschedules",
    singular="cronschedule",
    short_names=("cronsched",),
    spec_model=CronScheduleSpec,
    status_model=CronScheduleStatus,
    description="A task Kadence runs on a cron schedule.",
)
WORKER_POOL = ResourceKind(
    kind="WorkerPool",
    plural="workerpools",
    singular="workerpool",
    short_names=("wpool",),
    spec_model=WorkerPoolSpec,
    status_model=WorkerPoolStatus,
    description="A pool of Kadence workers that take jobs from the priority queues.",
)

RESOURCE_KINDS: tuple[ResourceKind, ...] = (SCHEDULED_TASK, CRON_SCHEDULE, WORKER_POOL)


def resource_kind(kind: str) -> ResourceKind:
    """Look a resource up by kind, plural, singular or short name (case-insensitive)."""
    wanted = kind.lower()
    for candidate in RESOURCE_KINDS:
        names = {candidate.kind.lower(), candidate.plural, candidate.singular, *candidate.short_names}
        if wanted in names:
            return candidate
    raise KeyError(f"{kind!r} is not a Kadence resource kind")
