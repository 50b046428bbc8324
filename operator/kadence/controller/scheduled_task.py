"""ScheduledTask: one Kadence job per resource, its status following the job to the end.

- create → ``SchedulerCore`` with the job id ``stask-<uid>`` (a retried or restarted
  handler finds the job instead of enqueueing it twice); the task acts for ``spec.userId``.
- a timer (1 s) on unfinished resources copies the job's state into ``status``;
  another deletes finished resources ``ttlSecondsAfterFinished`` after they finished.
- a spec change after scheduling is refused (``SpecApplied=False``), like a Job's template.
- delete → the job is cancelled (kopf finalizer); an already finished job is fine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from pydantic import ValidationError

from kadence.controller import builders, k8s
from kadence.controller.runtime import SYSTEM, Runtime, call_core, runtime_of
from kadence.core import ScheduledJob, TaskInput
from kadence.domain.errors import Conflict, InvalidInput, NotFound, Unavailable
from kadence.domain.models import Job
from kadence.domain.resources import GROUP, SCHEDULED_TASK, VERSION, ScheduledTaskSpec

PLURAL = SCHEDULED_TASK.plural
SYNC_INTERVAL = 1.0
_NOT_FINAL_PHASES = ("Waiting", "Delayed", "Active")


def _now() -> datetime:
    return datetime.now(UTC)


def _start_time(spec: ScheduledTaskSpec, created: datetime) -> datetime | None:
    """When the job is due: ``runAt``, or ``delaySeconds`` after the resource was created."""
    if spec.run_at is not None:
        return spec.run_at.astimezone(UTC)
    if spec.delay_seconds is not None:
        return created + timedelta(seconds=spec.delay_seconds)
    return None


def _schedule(runtime: Runtime, spec: ScheduledTaskSpec, job_id: str, owner: str, created: datetime) -> Job:
    """Find the resource's job, or schedule it (blocking; runs in a thread)."""
    core = runtime.core
    try:
        return core.get_job(SYSTEM, job_id)
    except NotFound:
        pass
    if not core.queue.ping():
        # Checked before the job row is written, so that during an outage each retry
        # does not write a row only for the core to withdraw it again.
        raise Unavailable("Redis is unreachable")
    task = TaskInput.from_fields(spec)
    start = _start_time(spec, created)
    scheduled: ScheduledJob
    if start is not None and start > core.clock():
        scheduled = core.schedule_delayed_task(SYSTEM, task, run_at=start, job_id=job_id, owner=owner)
    else:
        # A start time already passed (the operator was down, or runAt was in the past) runs now.
        scheduled = core.schedule_task(SYSTEM, task, job_id=job_id, owner=owner)
    return core.get_job(SYSTEM, scheduled.job_id)


def _reject(patch: kopf.Patch, status: dict[str, Any], body: Any, error: ValidationError | InvalidInput,
            generation: int | None, logger: Any) -> None:
    field, reason = builders.invalid_field(error)
    message = f"{field}: {reason}"
    patch.status["conditions"] = builders.merge_conditions(
        status.get("conditions"), builders.invalid_spec_condition(field, reason, now=_now())
    )
    patch.status["observedGeneration"] = generation
    kopf.warn(body, reason="InvalidSpec", message=message)
    logger.warning("scheduledtask rejected field=%s reason=%s", field, reason)
    raise kopf.PermanentError(message)


async def _accept(
    body: Any, spec: dict[str, Any], status: dict[str, Any], meta: Any, patch: kopf.Patch, memo: kopf.Memo,
    retry: int, logger: Any,
) -> None:
    runtime = runtime_of(memo)
    generation = meta.get("generation")
    try:
        parsed = ScheduledTaskSpec.model_validate(spec)
    except ValidationError as error:
        _reject(patch, status, body, error, generation, logger)
        return
    uid = meta["uid"]
    job_id = builders.job_id_for(uid)
    owner = builders.owner_of(meta.get("namespace"), meta["name"])
    created = builders.parse_timestamp(meta.get("creationTimestamp")) or _now()
    try:
        job = await call_core(_schedule, runtime, parsed, job_id, owner, created, retry=retry)
    except InvalidInput as error:
        _reject(patch, status, body, error, generation, logger)
        return
    now = _now()
    patch.status.update(builders.scheduled_task_status(job))
    patch.status["conditions"] = builders.merge_conditions(
        status.get("conditions"),
        builders.condition("Accepted", True, "Scheduled", f"job {job_id} scheduled", now=now),
        builders.condition("SpecApplied", True, "SpecAccepted", "the job runs with this spec", now=now),
        builders.job_condition(job, now=now),
    )
    patch.status["observedGeneration"] = generation
    patch.meta.annotations[builders.SPEC_HASH_ANNOTATION] = builders.spec_hash(spec)
    when = f" for {builders.timestamp(job.scheduled_for)}" if job.scheduled_for else ""
    kopf.event(body, type="Normal", reason="Enqueued", message=f"job {job_id} enqueued{when}")
    logger.info("scheduledtask accepted job_id=%s state=%s scheduled_for=%s", job_id, job.state.value,
                job.scheduled_for)


@kopf.on.create(GROUP, VERSION, PLURAL)
async def create_task(body: Any, spec: Any, status: Any, meta: Any, patch: kopf.Patch, memo: kopf.Memo,
                      retry: int, logger: Any, **_: Any) -> None:
    await _accept(body, dict(spec), dict(status), meta, patch, memo, retry, logger)


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def refuse_spec_change(body: Any, spec: Any, status: Any, meta: Any, patch: kopf.Patch, memo: kopf.Memo,
                             retry: int, logger: Any, **_: Any) -> None:
    """A scheduled task's spec is immutable; a spec that was never accepted may still be fixed."""
    if not status.get("jobId"):
        await _accept(body, dict(spec), dict(status), meta, patch, memo, retry, logger)
        return
    accepted = (meta.get("annotations") or {}).get(builders.SPEC_HASH_ANNOTATION)
    now = _now()
    if accepted == builders.spec_hash(dict(spec)):
        update = builders.condition("SpecApplied", True, "SpecAccepted", "the job runs with this spec", now=now)
    else:
        message = (f"spec is immutable once job {status.get('jobId')} is scheduled; the job runs with the "
                   "original spec. Delete and recreate the ScheduledTask to change it")
        update = builders.condition("SpecApplied", False, "SpecImmutable", message, now=now)
        kopf.warn(body, reason="SpecImmutable", message=message)
        logger.warning("scheduledtask spec change refused job_id=%s", status.get("jobId"))
    patch.status["conditions"] = builders.merge_conditions(status.get("conditions"), update)
    patch.status["observedGeneration"] = meta.get("generation")


def _tracking(status: Any, **_: Any) -> bool:
    return bool(status.get("jobId")) and status.get("phase") in _NOT_FINAL_PHASES


@kopf.timer(GROUP, VERSION, PLURAL, interval=SYNC_INTERVAL, initial_delay=SYNC_INTERVAL, when=_tracking)
async def sync_job(*, body: Any, status: Any, patch: kopf.Patch, memo: kopf.Memo, retry: int = 0, logger: Any,
                   **_: Any) -> None:
    """Copy the job's state into the status; patch only what changed."""
    runtime = runtime_of(memo)
    job_id = status["jobId"]
    try:
        job = await call_core(runtime.core.get_job, SYSTEM, job_id, retry=retry)
    except NotFound:
        logger.warning("scheduledtask job vanished job_id=%s", job_id)
        return
    wanted = builders.scheduled_task_status(job)
    changes = builders.changed_fields(status, wanted)
    if not changes:
        return
    patch.status.update(changes)
    patch.status["conditions"] = builders.merge_conditions(
        status.get("conditions"), builders.job_condition(job, now=_now())
    )
    phase = wanted["phase"]
    if "phase" in changes:
        if phase == "Completed":
            kopf.event(body, type="Normal", reason="Completed",
                       message=f"job {job_id} completed after {job.attempts} attempt(s)")
        elif phase == "Failed":
            kopf.warn(body, reason="Failed",
                      message=f"job {job_id} failed after {job.attempts} attempt(s): {job.error or 'unknown error'}")
        elif phase == "Cancelled":
            kopf.event(body, type="Normal", reason="Cancelled", message=f"job {job_id} was cancelled")
        logger.info("scheduledtask phase=%s job_id=%s attempts=%s", phase, job_id, job.attempts)


def _expiring(spec: Any, status: Any, **_: Any) -> bool:
    return spec.get("ttlSecondsAfterFinished") is not None and builders.is_final(status.get("phase"))


@kopf.timer(GROUP, VERSION, PLURAL, interval=SYNC_INTERVAL, when=_expiring)
async def expire_finished(spec: Any, status: Any, meta: Any, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    """Delete a finished resource ``ttlSecondsAfterFinished`` after its job finished."""
    finished = builders.parse_timestamp(status.get("finishedAt")) or _now()
    due = finished + timedelta(seconds=int(spec["ttlSecondsAfterFinished"]))
    if _now() < due:
        return
    runtime = runtime_of(memo)
    path = k8s.object_path(f"{GROUP}/{VERSION}", PLURAL, meta.get("namespace"), meta["name"])
    if await k8s.delete(runtime.kopf_settings, path, logger=logger):
        logger.info("scheduledtask deleted after ttl name=%s finished_at=%s", meta["name"], status.get("finishedAt"))


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def cancel_task(meta: Any, status: Any, memo: kopf.Memo, retry: int, logger: Any, **_: Any) -> None:
    """Cancel the resource's job; one that already finished (or never existed) needs nothing."""
    runtime = runtime_of(memo)
    job_id = status.get("jobId") or builders.job_id_for(meta["uid"])
    try:
        job = await call_core(runtime.core.cancel_job, SYSTEM, job_id, retry=retry)
    except (NotFound, Conflict) as error:
        logger.info("scheduledtask deleted, job not cancelled job_id=%s reason=%s", job_id, error.message)
        return
    logger.info("scheduledtask deleted, job cancelled job_id=%s state=%s", job_id, job.state.value)
