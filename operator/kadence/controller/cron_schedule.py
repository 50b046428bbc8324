"""CronSchedule: the ``cron_schedules`` row a resource owns, and its status.

- create / spec change / operator restart → upsert of the row keyed by the resource UID
  (``schedule_recurring_task(owner_uid=…)``); ``suspend`` disables it. The dispatcher fires it.
- a timer copies lastRun, nextRun, lastJobId, lastResult from the row into ``status``
  (and puts the row back if it went missing).
- delete → the row is deleted (kopf finalizer).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from kadence.controller import builders
from kadence.controller.runtime import SYSTEM, Runtime, call_core, runtime_of
from kadence.core import TaskInput
from kadence.domain.errors import InvalidInput
from kadence.domain.models import CronSchedule
from kadence.domain.resources import CRON_SCHEDULE, GROUP, VERSION, CronScheduleSpec

PLURAL = CRON_SCHEDULE.plural
SYNC_INTERVAL = 2.0


def _now() -> datetime:
    return datetime.now(UTC)


def _upsert(runtime: Runtime, spec: CronScheduleSpec, uid: str, owner: str) -> CronSchedule:
    """Create or update the owned row (blocking; runs in a thread)."""
    task = TaskInput(
        task_id=owner,
        user_id=spec.user_id,
        task_goal=spec.task_goal,
        priority=spec.priority.value,
        max_attempts=spec.max_attempts,
        handler=spec.handler,
        args=spec.args,
    )
    return runtime.core.schedule_recurring_task(
        SYSTEM,
        task,
        name=owner,
        cron_expression=spec.schedule,
        timezone=spec.time_zone,
        metadata={"resource": owner, "uid": uid},
        concurrency_policy=spec.concurrency_policy.value,
        starting_deadline_seconds=spec.starting_deadline_seconds,
        jitter_seconds=spec.jitter_seconds,
        successful_jobs_history_limit=spec.successful_jobs_history_limit,
        failed_jobs_history_limit=spec.failed_jobs_history_limit,
        enabled=not spec.suspend,
        owner=owner,
        owner_uid=uid,
    )


def _ready(schedule: CronSchedule, *, now: datetime) -> dict[str, Any]:
    if not schedule.enabled:
        return builders.condition("Ready", True, "Suspended", f"schedule {schedule.id} is suspended", now=now)
    return builders.condition("Ready", True, "Scheduled", f"schedule {schedule.id} next runs at "
                              f"{builders.timestamp(schedule.next_run)}", now=now)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def reconcile_schedule(body: Any, spec: Any, status: Any, meta: Any, patch: kopf.Patch, memo: kopf.Memo,
                             retry: int, logger: Any, **_: Any) -> None:
    """Make the owned row match the spec; an invalid spec is reported once, not retried."""
    runtime = runtime_of(memo)
    now = _now()
    try:
        parsed = CronScheduleSpec.model_validate(dict(spec))
        owner = builders.owner_of(meta.get("namespace"), meta["name"])
        schedule = await call_core(_upsert, runtime, parsed, meta["uid"], owner, retry=retry)
    except (ValidationError, InvalidInput) as error:
        field, reason = builders.invalid_field(error)
        patch.status["conditions"] = builders.merge_conditions(
            status.get("conditions"), builders.invalid_spec_condition(field, reason, now=now, type_="Ready")
        )
        patch.status["observedGeneration"] = meta.get("generation")
        kopf.warn(body, reason="InvalidSpec", message=f"{field}: {reason}")
        logger.warning("cronschedule rejected field=%s reason=%s", field, reason)
        raise kopf.PermanentError(f"{field}: {reason}") from None
    patch.status.update(builders.cron_schedule_status(schedule))
    patch.status["conditions"] = builders.merge_conditions(status.get("conditions"), _ready(schedule, now=now))
    patch.status["observedGeneration"] = meta.get("generation")
    if status.get("scheduleId") != schedule.id or status.get("observedGeneration") != meta.get("generation"):
        kopf.event(body, type="Normal", reason="Scheduled",
                   message=f"schedule {schedule.id} saved; next run {builders.timestamp(schedule.next_run)}")
    logger.info("cronschedule reconciled schedule_id=%s enabled=%s next_run=%s",
                schedule.id, schedule.enabled, schedule.next_run)


def _has_schedule(status: Any, **_: Any) -> bool:
    return status.get("scheduleId") is not None


@kopf.timer(GROUP, VERSION, PLURAL, interval=SYNC_INTERVAL, initial_delay=SYNC_INTERVAL, when=_has_schedule)
async def sync_schedule(*, body: Any, spec: Any, status: Any, meta: Any, patch: kopf.Patch, memo: kopf.Memo,
                        retry: int = 0, logger: Any, **_: Any) -> None:
    """Copy the row's run history into the status; restore the row if someone removed it."""
    runtime = runtime_of(memo)
    schedule = await call_core(runtime.core.get_owned_schedule, SYSTEM, meta["uid"], retry=retry)
    if schedule is None:
        if meta.get("deletionTimestamp"):
            return
        logger.warning("cronschedule row missing, restoring uid=%s", meta["uid"])
        try:
            parsed = CronScheduleSpec.model_validate(dict(spec))
            owner = builders.owner_of(meta.get("namespace"), meta["name"])
            schedule = await call_core(_upsert, runtime, parsed, meta["uid"], owner, retry=retry)
        except (ValidationError, InvalidInput):
            return  # reported by the reconcile handler
    wanted = builders.cron_schedule_status(schedule)
    changes = builders.changed_fields(status, wanted)
    if not changes:
        return
    patch.status.update(changes)
    patch.status["conditions"] = builders.merge_conditions(status.get("conditions"), _ready(schedule, now=_now()))
    if "lastJobId" in changes and schedule.last_job_id:
        kopf.event(body, type="Normal", reason="Enqueued", message=f"tick fired job {schedule.last_job_id}")
    if "lastResult" in changes and schedule.last_result:
        if schedule.last_result.lower() in ("failed", "error"):
            kopf.warn(body, reason="Failed", message=f"last run {schedule.last_job_id} {schedule.last_result}")
        else:
            kopf.event(body, type="Normal", reason="Completed",
                       message=f"last run {schedule.last_job_id} {schedule.last_result}")


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def delete_schedule(meta: Any, memo: kopf.Memo, retry: int, logger: Any, **_: Any) -> None:
    runtime = runtime_of(memo)
    deleted = await call_core(runtime.core.delete_owned_schedule, SYSTEM, meta["uid"], retry=retry)
    logger.info("cronschedule deleted uid=%s row_deleted=%s", meta["uid"], deleted)
