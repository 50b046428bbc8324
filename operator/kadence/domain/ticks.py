"""What a cron schedule does when the dispatcher looks at it: pure decisions, no I/O.

Given a schedule's first unfired tick (``next_run``), the time now and whether a previous
run is still going, :func:`plan_tick` says which tick fires (at most one), how many older
ticks were missed, whether the latest one is skipped (past ``startingDeadlineSeconds``, or
``Forbid`` while a run is going), and where ``next_run`` moves. The job of a tick has a
deterministic id (:func:`tick_job_id`) and a deterministic jitter (:func:`jitter_offset`),
so every dispatcher replica makes the same decision and a redone tick is the same job.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from kadence.domain.cron import CronSpec, next_fire_time
from kadence.domain.models import ConcurrencyPolicy, Priority, TaskSpec

# A tick dispatched this late still counts as on time whatever startingDeadlineSeconds says
# (a deadline of 0 would otherwise skip ticks that are a few milliseconds late).
DISPATCH_GRACE = timedelta(seconds=1)
# After a long outage, missed ticks are counted one by one up to this many; beyond it the
# latest tick is found by searching backwards from now and the count saturates.
MAX_COUNTED_MISSED = 10_000
# Windows searched backwards from now for the latest tick when the forward count saturates.
_BACKWARD_WINDOWS = tuple(
    timedelta(seconds=s) for s in (1, 60, 3600, 86400, 32 * 86400, 367 * 86400, 8 * 367 * 86400, 29 * 367 * 86400)
)


class SkipReason(enum.StrEnum):
    """Why a tick did not fire (the label of the skipped-ticks metric)."""

    FORBID = "forbid"  # concurrencyPolicy Forbid and the previous run is still going
    MISSED = "missed"  # an older tick passed over after downtime (only the latest is considered)
    DEADLINE = "deadline"  # the latest tick is later than startingDeadlineSeconds


class ScheduleTask(Protocol):
    """What a schedule's job is made of (a ``CronSchedule`` or a ``DueSchedule``)."""

    @property
    def id(self) -> int: ...
    @property
    def user_id(self) -> int: ...
    @property
    def task_goal(self) -> str: ...
    @property
    def priority(self) -> Priority: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def handler(self) -> str: ...
    @property
    def args(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class DueSchedule:
    """The fields of a due ``cron_schedules`` row that firing it needs."""

    id: int
    user_id: int
    task_goal: str
    cron_expression: str
    timezone: str
    priority: Priority
    max_attempts: int
    handler: str
    args: dict[str, Any]
    concurrency_policy: ConcurrencyPolicy
    starting_deadline_seconds: int | None
    jitter_seconds: int
    successful_jobs_history_limit: int
    failed_jobs_history_limit: int
    next_run: datetime

    @property
    def cron(self) -> CronSpec:
        return CronSpec(self.cron_expression, self.timezone)


@dataclass(frozen=True, slots=True)
class DueTicks:
    """The ticks in [next_run, now]: the latest one, how many older ones, and the tick after."""

    latest: datetime | None
    older: int
    following: datetime
    saturated: bool = False


@dataclass(frozen=True, slots=True)
class TickPlan:
    """What to do with one due schedule now."""

    tick: datetime | None  # the tick that fires now, if any
    run_at: datetime | None  # when its job starts: the tick plus the jitter offset
    next_run: datetime  # the schedule's first tick not yet handled
    missed: int = 0  # older ticks passed over (downtime), never fired
    skipped: tuple[SkipReason, ...] = field(default_factory=tuple)  # what happened to the latest tick
    replace: bool = False  # cancel the previous, still unfinished run(s) first

    @property
    def missed_ticks(self) -> int:
        """What ``cron_schedules.missed_ticks`` grows by: older ticks plus a latest one past its deadline."""
        return self.missed + (1 if SkipReason.DEADLINE in self.skipped else 0)

    @property
    def skipped_ticks(self) -> int:
        """What ``cron_schedules.skipped_ticks`` grows by: ticks skipped by the Forbid policy."""
        return 1 if SkipReason.FORBID in self.skipped else 0


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, exactly (no float rounding)."""
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def tick_job_id(schedule_id: int, tick: datetime) -> str:
    """The job id of a tick: the same on every replica and on every retry of the tick."""
    return f"cron-{schedule_id}-{epoch_ms(tick)}"


def manual_job_id(schedule_id: int, token: str) -> str:
    """The job id of a manual "run now" of a schedule (``token`` makes it unique)."""
    return f"cron-{schedule_id}-manual-{token}"


def jitter_offset(schedule_id: int, tick: datetime, jitter_seconds: int) -> timedelta:
    """A deterministic delay in [0, jitter_seconds] (millisecond steps) for one tick of one schedule.

    It is derived from a hash of the schedule id and the tick, so every replica computes the
    same start time and a redone tick keeps it.
    """
    if jitter_seconds <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{schedule_id}:{epoch_ms(tick)}".encode()).digest()
    return timedelta(milliseconds=int.from_bytes(digest[:8], "big") % (jitter_seconds * 1000 + 1))


def tick_task_spec(schedule: ScheduleTask, defaults: TaskSpec) -> TaskSpec:
    """The task a schedule's tick (or manual run) runs: the row's fields, backoff and timeout from defaults."""
    return TaskSpec(
        task_id=f"schedule-{schedule.id}",
        user_id=schedule.user_id,
        task_goal=schedule.task_goal,
        priority=schedule.priority,
        max_attempts=schedule.max_attempts,
        handler=schedule.handler,
        args=dict(schedule.args),
        backoff=defaults.backoff,
        timeout_seconds=defaults.timeout_seconds,
    )


def due_ticks(cron: CronSpec, next_run: datetime, now: datetime) -> DueTicks:
    """The ticks in [next_run, now]; ``next_run`` itself counts as a tick (it was computed as one)."""
    if next_run > now:
        return DueTicks(None, 0, next_run)
    latest = next_run
    older = 0
    following = next_fire_time(cron, latest)
    while following <= now:
        if older >= MAX_COUNTED_MISSED:
            latest = _latest_tick_at_or_before(cron, now, following)
            return DueTicks(latest, older, next_fire_time(cron, latest), saturated=True)
        older += 1
        latest = following
        following = next_fire_time(cron, latest)
    return DueTicks(latest, older, following)


def _latest_tick_at_or_before(cron: CronSpec, now: datetime, known: datetime) -> datetime:
    """The last tick at or before ``now``; ``known`` is some tick at or before it."""
    for window in _BACKWARD_WINDOWS:
        start = max(now - window, known - timedelta(microseconds=1))
        candidate = next_fire_time(cron, start)
        if candidate <= now:
            break
    else:  # pragma: no cover - a tick exists in the last 29 years by construction
        candidate = known
    following = next_fire_time(cron, candidate)
    while following <= now:
        candidate = following
        following = next_fire_time(cron, candidate)
    return candidate


def plan_tick(schedule: DueSchedule, now: datetime, *, previous_running: bool) -> TickPlan:
    """Decide what a due schedule does now.

    Only the latest due tick may fire (as in Kubernetes CronJob); older ones are missed. The
    latest is skipped when it is later than ``starting_deadline_seconds`` (no deadline: it
    always fires), or under ``Forbid`` while ``previous_running``. Under ``Replace`` the
    previous run is cancelled and the tick fires.
    """
    ticks = due_ticks(schedule.cron, schedule.next_run, now)
    if ticks.latest is None:
        return TickPlan(None, None, ticks.following)
    lateness = now - ticks.latest
    deadline = schedule.starting_deadline_seconds
    if deadline is not None and lateness > max(timedelta(seconds=deadline), DISPATCH_GRACE):
        return TickPlan(None, None, ticks.following, ticks.older, (SkipReason.DEADLINE,))
    policy = schedule.concurrency_policy
    if previous_running and policy is ConcurrencyPolicy.FORBID:
        return TickPlan(None, None, ticks.following, ticks.older, (SkipReason.FORBID,))
    run_at = ticks.latest + jitter_offset(schedule.id, ticks.latest, schedule.jitter_seconds)
    return TickPlan(
        ticks.latest,
        run_at,
        ticks.following,
        ticks.older,
        replace=previous_running and policy is ConcurrencyPolicy.REPLACE,
    )
