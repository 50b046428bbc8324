"""Recurring tasks: create, list, enable, disable, trigger and delete cron schedules."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from kadence.api.deps import CoreDep, CurrentUser
from kadence.api.routes import error_responses
from kadence.api.schemas import JobIdOut, RecurringOut, RecurringTaskIn, ScheduleOut
from kadence.core import TaskInput
from kadence.domain.validation import MAX_USER_ID

router = APIRouter(prefix="/api/scheduler", tags=["cron"])

ScheduleId = Annotated[int, Path(alias="scheduleId", ge=1, le=MAX_USER_ID)]
UserIdPath = Annotated[int, Path(alias="userId", ge=1, le=MAX_USER_ID)]


@router.post(
    "/schedule-recurring", status_code=status.HTTP_201_CREATED, response_model=RecurringOut,
    responses=error_responses(400, 403), summary="Create a cron schedule",
)
def schedule_recurring(body: RecurringTaskIn, user: CurrentUser, core: CoreDep) -> RecurringOut:
    schedule = core.schedule_recurring_task(
        user,
        # Each tick's task is named after the schedule.
        TaskInput.from_fields(body, task_id=body.name),
        name=body.name,
        cron_expression=body.cron_expression,
        timezone=body.timezone,
        metadata=body.metadata,
        concurrency_policy=body.concurrency_policy,
        starting_deadline_seconds=body.starting_deadline_seconds,
        jitter_seconds=body.jitter_seconds,
        enabled=body.enabled,
    )
    return RecurringOut(schedule_id=schedule.id, job_id=schedule.last_job_id, next_run=schedule.next_run)


@router.get(
    "/cron/{userId}", response_model=list[ScheduleOut], responses=error_responses(403),
    summary="The schedules of a user (a user token may list only its own)",
)
def list_schedules(user_id: UserIdPath, user: CurrentUser, core: CoreDep) -> list[ScheduleOut]:
    return [ScheduleOut.of(s) for s in core.list_cron_schedules(user, user_id)]


@router.post("/cron/{scheduleId}/enable", response_model=ScheduleOut, responses=error_responses(404, 409),
             summary="Enable a schedule (its next run is computed from now)")
def enable(schedule_id: ScheduleId, user: CurrentUser, core: CoreDep) -> ScheduleOut:
    return ScheduleOut.of(core.enable_schedule(user, schedule_id))


@router.post("/cron/{scheduleId}/disable", response_model=ScheduleOut, responses=error_responses(404, 409),
             summary="Disable a schedule (no ticks until enabled again)")
def disable(schedule_id: ScheduleId, user: CurrentUser, core: CoreDep) -> ScheduleOut:
    return ScheduleOut.of(core.disable_schedule(user, schedule_id))


@router.post(
    "/cron/{scheduleId}/trigger", status_code=status.HTTP_202_ACCEPTED, response_model=JobIdOut,
    responses=error_responses(404, 409), summary="One extra run now; the cadence is unchanged",
)
def trigger(schedule_id: ScheduleId, user: CurrentUser, core: CoreDep) -> JobIdOut:
    return JobIdOut(job_id=core.trigger_schedule(user, schedule_id).job_id)


@router.delete(
    "/cron/{scheduleId}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
    responses=error_responses(404, 409), summary="Delete a schedule",
)
def delete(schedule_id: ScheduleId, user: CurrentUser, core: CoreDep) -> Response:
    core.delete_schedule(user, schedule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
