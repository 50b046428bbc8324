"""One-off and delayed tasks, jobs, queue statistics, pause and resume."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from kadence.api.deps import CoreDep, CurrentUser, MetricsDep
from kadence.api.routes import error_responses
from kadence.api.schemas import (
    BulkIn,
    BulkOut,
    CancelledOut,
    DelayedTaskIn,
    JobEventOut,
    JobOut,
    PausedOut,
    ScheduledOut,
    ScheduleTaskIn,
    StatsOut,
    TaskIn,
)
from kadence.core import ScheduledJob, SchedulerCore, TaskInput
from kadence.domain.models import Priority
from kadence.domain.validation import parse_priority

router = APIRouter(prefix="/api/scheduler", tags=["scheduler"])

JobId = Annotated[str, Path(alias="jobId", min_length=1, max_length=200, pattern=r"^[^\x00]+$")]


def priority_of(task: TaskIn, core: SchedulerCore) -> Priority:
    return core.defaults.priority if task.priority is None else parse_priority(task.priority)


def _answer(scheduled: ScheduledJob, response: Response) -> None:
    """201 for a new job; 200 when an idempotency key named an existing job of the caller.

    (An id held by another user's job is a Conflict raised by the core.)
    """
    if not scheduled.created:
        response.status_code = status.HTTP_200_OK


@router.post(
    "/schedule", status_code=status.HTTP_201_CREATED, response_model=ScheduledOut,
    responses={200: {"model": ScheduledOut, "description": "The jobId already existed."},
               **error_responses(400, 403, 409)},
    summary="Run a task as soon as a worker is free",
)
def schedule(body: ScheduleTaskIn, user: CurrentUser, core: CoreDep, metrics: MetricsDep,
             response: Response) -> ScheduledOut:
    scheduled = core.schedule_task(user, TaskInput.from_fields(body), job_id=body.job_id)
    _answer(scheduled, response)
    if scheduled.created:
        metrics.job_scheduled(priority_of(body, core))
    return ScheduledOut(job_id=scheduled.job_id, scheduled_for=scheduled.scheduled_for)


@router.post(
    "/schedule-delayed", status_code=status.HTTP_201_CREATED, response_model=ScheduledOut,
    responses={200: {"model": ScheduledOut, "description": "The jobId already existed."},
               **error_responses(400, 403, 409)},
    summary="Run a task after `delay` milliseconds or at `runAt`",
)
def schedule_delayed(body: DelayedTaskIn, user: CurrentUser, core: CoreDep, metrics: MetricsDep,
                     response: Response) -> ScheduledOut:
    scheduled = core.schedule_delayed_task(
        user, TaskInput.from_fields(body), delay_ms=body.delay, run_at=body.run_at, job_id=body.job_id
    )
    _answer(scheduled, response)
    if scheduled.created:
        metrics.job_scheduled(priority_of(body, core))
    return ScheduledOut(job_id=scheduled.job_id, scheduled_for=scheduled.scheduled_for)


@router.post(
    "/schedule-bulk", status_code=status.HTTP_201_CREATED, response_model=BulkOut,
    responses=error_responses(400, 403), summary="Schedule many tasks at once (all or none)",
)
def schedule_bulk(body: BulkIn, user: CurrentUser, core: CoreDep, metrics: MetricsDep) -> BulkOut:
    scheduled = core.schedule_tasks(user, [(TaskInput.from_fields(t), t.delay, t.run_at) for t in body.tasks])
    for task in body.tasks:
        metrics.job_scheduled(priority_of(task, core))
    return BulkOut(job_ids=[s.job_id for s in scheduled], scheduled_for=[s.scheduled_for for s in scheduled])


@router.get("/job/{jobId}", response_model=JobOut, responses=error_responses(404), summary="A job and its state")
def get_job(job_id: JobId, user: CurrentUser, core: CoreDep) -> JobOut:
    return JobOut.of(core.get_job(user, job_id))


@router.get(
    "/job/{jobId}/events", response_model=list[JobEventOut], responses=error_responses(404),
    summary="The audit trail of a job",
)
def job_events(job_id: JobId, user: CurrentUser, core: CoreDep) -> list[JobEventOut]:
    return [JobEventOut.model_validate(row) for row in core.job_events(user, job_id)]


@router.delete(
    "/job/{jobId}", response_model=CancelledOut, responses=error_responses(404, 409),
    summary="Cancel a waiting, delayed or active job",
)
def cancel_job(job_id: JobId, user: CurrentUser, core: CoreDep) -> CancelledOut:
    job = core.cancel_job(user, job_id)
    return CancelledOut(job_id=job.job_id, state=job.state)


@router.get("/stats", response_model=StatsOut, responses=error_responses(), summary="Queue statistics")
def stats(user: CurrentUser, core: CoreDep) -> StatsOut:
    return StatsOut.of(core.get_queue_stats(user))


@router.post("/pause", response_model=PausedOut, responses=error_responses(403),
             summary="Stop workers from taking jobs (master only)")
def pause(user: CurrentUser, core: CoreDep) -> PausedOut:
    return PausedOut(paused=core.pause(user))


@router.post("/resume", response_model=PausedOut, responses=error_responses(403),
             summary="Let workers take jobs again (master only)")
def resume(user: CurrentUser, core: CoreDep) -> PausedOut:
    return PausedOut(paused=core.resume(user))
