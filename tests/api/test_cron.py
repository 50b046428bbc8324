"""Recurring tasks over real HTTP: create, list, enable, disable, trigger, delete."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from kadence.core import SchedulerCore, TaskInput
from kadence.domain.models import UserContext

RECURRING = {
    "name": "nightly report",
    "taskGoal": "build the report",
    "userId": 7,
    "cronExpression": "30 2 * * *",
    "timezone": "Europe/Berlin",
    "handler": "noop",
    "metadata": {"team": "data"},
}


def create(client: httpx.Client, **overrides: object) -> dict[str, object]:
    answer = client.post("/api/scheduler/schedule-recurring", json={**RECURRING, **overrides})
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_create_list_disable_enable_delete(master: httpx.Client) -> None:
    created = create(master)
    schedule_id = created["scheduleId"]
    assert created["jobId"] is None
    next_run = datetime.fromisoformat(str(created["nextRun"]))
    assert next_run > datetime.now(UTC) and next_run.astimezone().minute in (30, 0)

    [listed] = master.get("/api/scheduler/cron/7").json()
    assert listed["id"] == schedule_id and listed["enabled"] is True
    assert (listed["name"], listed["cronExpression"], listed["timezone"]) == (
        "nightly report", "30 2 * * *", "Europe/Berlin"
    )
    assert listed["metadata"] == {"team": "data"} and listed["taskGoal"] == "build the report"
    assert set(listed) >= {"id", "name", "taskGoal", "cronExpression", "timezone", "userId", "enabled",
                           "lastRun", "nextRun", "metadata", "createdAt", "updatedAt"}
    assert master.get("/api/scheduler/cron/8").json() == []

    disabled = master.post(f"/api/scheduler/cron/{schedule_id}/disable").json()
    assert disabled["enabled"] is False and disabled["nextRun"] is None
    enabled = master.post(f"/api/scheduler/cron/{schedule_id}/enable").json()
    assert enabled["enabled"] is True and enabled["nextRun"]

    assert master.delete(f"/api/scheduler/cron/{schedule_id}").status_code == 204
    assert master.delete(f"/api/scheduler/cron/{schedule_id}").status_code == 404
    assert master.post(f"/api/scheduler/cron/{schedule_id}/enable").status_code == 404
    assert master.get("/api/scheduler/cron/7").json() == []


def test_trigger_runs_once_now_and_keeps_the_cadence(master: httpx.Client, core: SchedulerCore) -> None:
    created = create(master)
    answer = master.post(f"/api/scheduler/cron/{created['scheduleId']}/trigger")
    assert answer.status_code == 202, answer.text
    job = master.get(f"/api/scheduler/job/{answer.json()['jobId']}").json()
    assert job["scheduleId"] == created["scheduleId"] and job["state"] in ("waiting", "active", "completed")
    [schedule] = master.get("/api/scheduler/cron/7").json()
    assert schedule["nextRun"] == created["nextRun"]
    assert master.post("/api/scheduler/cron/999/trigger").status_code == 404


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"cronExpression": "61 * * * *"}, "cronExpression"),
        ({"cronExpression": "every day"}, "cronExpression"),
        ({"cronExpression": ""}, "cronExpression"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"priority": "urgent"}, "priority"),
        ({"userId": 0}, "userId"),
        ({"name": " "}, "name"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"concurrencyPolicy": "Sometimes"}, "concurrencyPolicy"),
        ({"handler": "webhook"}, "args.url"),
    ],
)
def test_bad_schedules_are_422_naming_the_field(
    master: httpx.Client, overrides: dict[str, object], field: str
) -> None:
    answer = master.post("/api/scheduler/schedule-recurring", json={**RECURRING, **overrides})
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field and answer.json()["error"] == "invalid_input"


def test_missing_fields_are_named(master: httpx.Client) -> None:
    body = {k: v for k, v in RECURRING.items() if k != "cronExpression"}
    answer = master.post("/api/scheduler/schedule-recurring", json=body)
    assert answer.status_code == 422 and answer.json()["field"] == "cronExpression"
    assert "required" in answer.json()["message"]


def test_non_integer_schedule_ids_are_422(master: httpx.Client) -> None:
    for answer in (
        master.post("/api/scheduler/cron/abc/enable"),
        master.post("/api/scheduler/cron/1.5/disable"),
        master.delete("/api/scheduler/cron/abc"),
        master.post("/api/scheduler/cron/0/trigger"),
        master.post(f"/api/scheduler/cron/{2**64}/enable"),
        master.get("/api/scheduler/cron/someone"),
    ):
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] in ("scheduleId", "userId")


def test_a_schedule_owned_by_a_resource_is_read_only(master: httpx.Client, core: SchedulerCore) -> None:
    owned = core.schedule_recurring_task(
        UserContext.system(), TaskInput(task_id="r", user_id=7, handler="noop"), name="from-k8s",
        cron_expression="*/5 * * * *", owner="team-a/nightly", owner_uid="4f0c-uid",
    )
    for answer in (
        master.post(f"/api/scheduler/cron/{owned.id}/disable"),
        master.post(f"/api/scheduler/cron/{owned.id}/enable"),
        master.delete(f"/api/scheduler/cron/{owned.id}"),
    ):
        assert answer.status_code == 409, answer.text
        assert "team-a/nightly" in answer.json()["message"]
    [listed] = master.get("/api/scheduler/cron/7").json()
    assert listed["owner"] == "team-a/nightly"
