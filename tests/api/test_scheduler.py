"""One-off, delayed and bulk tasks, jobs, statistics, pause and resume over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.api.conftest import LiveApi
from tests.support import WebhookReceiver, wait_for

NOOP = {"taskId": "t-1", "userId": 7, "handler": "noop"}


def test_schedule_get_and_cancel_a_job(master: httpx.Client) -> None:
    answer = master.post("/api/scheduler/schedule", json={**NOOP, "priority": "high", "taskGoal": "say hi"})
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["jobId"]

    job = master.get(f"/api/scheduler/job/{job_id}").json()
    assert job["jobId"] == job_id and job["state"] == "waiting"
    assert (job["taskId"], job["userId"], job["priority"], job["taskGoal"]) == ("t-1", 7, "high", "say hi")
    assert job["maxAttempts"] == 3 and job["attempts"] == 0
    assert job["createdAt"].endswith("Z")

    cancelled = master.delete(f"/api/scheduler/job/{job_id}")
    assert cancelled.status_code == 200 and cancelled.json() == {"jobId": job_id, "state": "cancelled"}
    again = master.delete(f"/api/scheduler/job/{job_id}")
    assert again.status_code == 409 and again.json()["error"] == "conflict"

    events = master.get(f"/api/scheduler/job/{job_id}/events").json()
    assert [e["kind"] for e in events] == ["scheduled", "cancelled"]


def test_a_job_id_makes_scheduling_idempotent(master: httpx.Client) -> None:
    first = master.post("/api/scheduler/schedule", json={**NOOP, "jobId": "order-42"})
    second = master.post("/api/scheduler/schedule", json={**NOOP, "jobId": "order-42"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["jobId"] == second.json()["jobId"] == "order-42"


def test_a_job_id_another_user_holds_is_a_conflict(user_client: Callable[[int], httpx.Client]) -> None:
    alice, bob = user_client(7), user_client(8)
    assert alice.post("/api/scheduler/schedule", json={**NOOP, "jobId": "shared-1"}).status_code == 201
    taken = bob.post("/api/scheduler/schedule", json={**NOOP, "userId": 8, "jobId": "shared-1"})
    assert taken.status_code == 409 and taken.json()["error"] == "conflict", taken.text
    assert "shared-1" in taken.text
    assert alice.get("/api/scheduler/job/shared-1").json()["userId"] == 7


def test_unknown_job_is_404(master: httpx.Client) -> None:
    for answer in (
        master.get("/api/scheduler/job/nope"),
        master.get("/api/scheduler/job/nope/events"),
        master.delete("/api/scheduler/job/nope"),
    ):
        assert answer.status_code == 404 and answer.json()["error"] == "not_found"


def test_delayed_by_milliseconds_or_at_a_time(master: httpx.Client) -> None:
    before = datetime.now(UTC)
    by_delay = master.post("/api/scheduler/schedule-delayed", json={**NOOP, "delay": 60_000})
    assert by_delay.status_code == 201, by_delay.text
    scheduled_for = datetime.fromisoformat(by_delay.json()["scheduledFor"])
    assert before + timedelta(seconds=59) < scheduled_for < before + timedelta(seconds=62)
    assert master.get(f"/api/scheduler/job/{by_delay.json()['jobId']}").json()["state"] == "delayed"

    run_at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    at_time = master.post("/api/scheduler/schedule-delayed", json={**NOOP, "runAt": run_at.isoformat()})
    assert at_time.status_code == 201
    assert datetime.fromisoformat(at_time.json()["scheduledFor"]) == run_at
    assert master.get("/api/scheduler/stats").json()["delayed"] == 2


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({}, "delay"),
        ({"delay": 1000, "runAt": "2099-01-01T00:00:00Z"}, "delay"),
        ({"delay": -1}, "delay"),
        ({"delay": 10**15}, "delay"),
        ({"delay": "soon"}, "delay"),
        ({"runAt": "2001-01-01T00:00:00Z"}, "runAt"),
        ({"runAt": "2099-01-01T00:00:00"}, "runAt"),
        ({"runAt": "tomorrow"}, "runAt"),
    ],
)
def test_bad_delays_are_422_naming_the_field(master: httpx.Client, extra: dict[str, object], field: str) -> None:
    answer = master.post("/api/scheduler/schedule-delayed", json={**NOOP, **extra})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_input" and answer.json()["field"] == field


def test_bulk_schedules_all_or_nothing(master: httpx.Client) -> None:
    tasks = [{**NOOP, "taskId": f"b-{i}"} for i in range(3)] + [{**NOOP, "taskId": "later", "delay": 5000}]
    answer = master.post("/api/scheduler/schedule-bulk", json={"tasks": tasks})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert len(body["jobIds"]) == 4 and len(set(body["jobIds"])) == 4
    assert body["scheduledFor"][:3] == [None, None, None] and body["scheduledFor"][3] is not None
    assert master.get("/api/scheduler/stats").json()["waiting"] == 3

    # A webhook task without a URL: the core names the task and the field; nothing is scheduled.
    bad = master.post("/api/scheduler/schedule-bulk",
                      json={"tasks": [NOOP, {"taskId": "x", "userId": 7, "handler": "webhook"}]})
    assert bad.status_code == 422 and bad.json()["field"] == "tasks[1].args.url"
    assert master.get("/api/scheduler/stats").json()["waiting"] == 3

    typed = master.post("/api/scheduler/schedule-bulk", json={"tasks": [NOOP, {**NOOP, "priority": "urgent"}]})
    assert typed.status_code == 422 and typed.json()["field"] == "tasks[1].priority"
    assert master.post("/api/scheduler/schedule-bulk", json={"tasks": []}).json()["field"] == "tasks"


def test_stats_count_by_priority(master: httpx.Client) -> None:
    for priority in ("critical", "low", "low", 2):
        assert master.post("/api/scheduler/schedule", json={**NOOP, "priority": priority}).status_code == 201
    stats = master.get("/api/scheduler/stats").json()
    assert stats["waiting"] == 4 and stats["isPaused"] is False
    assert {p: c["waiting"] for p, c in stats["byPriority"].items()} == {
        "critical": 1, "high": 1, "normal": 0, "low": 2
    }
    assert set(stats) >= {"waiting", "active", "completed", "failed", "delayed", "paused", "byPriority"}


def test_pause_and_resume(master: httpx.Client) -> None:
    assert master.post("/api/scheduler/pause").json() == {"paused": True}
    assert master.get("/api/scheduler/stats").json()["isPaused"] is True
    assert master.post("/api/scheduler/resume").json() == {"paused": False}
    assert master.get("/api/scheduler/stats").json()["isPaused"] is False


def test_a_webhook_task_is_delivered_and_recorded(
    master: httpx.Client, receiver: WebhookReceiver, worker_pool: object
) -> None:
    worker_pool(1)  # type: ignore[operator]
    answer = master.post("/api/scheduler/schedule", json={
        "taskId": "hook", "userId": 7, "taskGoal": "ping", "args": {"url": receiver.url, "n": 1},
    })
    job_id = answer.json()["jobId"]
    wait_for(lambda: receiver.for_job(job_id), timeout=30, message="the webhook delivery")
    body = receiver.for_job(job_id)[0].body
    assert (body["taskId"], body["userId"], body["taskGoal"], body["args"]["n"]) == ("hook", 7, "ping", 1)
    job = wait_for(lambda: (j := master.get(f"/api/scheduler/job/{job_id}").json())["state"] == "completed" and j,
                   timeout=30, message="the job to complete")
    assert job["attempts"] == 1 and job["finishedAt"]
    kinds = [e["kind"] for e in master.get(f"/api/scheduler/job/{job_id}/events").json()]
    assert kinds[0] == "scheduled" and "completed" in kinds


def test_metrics_count_requests_and_scheduled_jobs(master: httpx.Client, live_api: LiveApi) -> None:
    master.post("/api/scheduler/schedule", json={**NOOP, "priority": "critical"})
    master.get("/api/scheduler/job/nope")
    text = httpx.get(f"{live_api.url}/metrics").text
    assert 'kadence_api_jobs_scheduled_total{priority="critical"} 1.0' in text
    assert ('kadence_api_requests_total{method="GET",route="/api/scheduler/job/{jobId}",status="404"} 1.0'
            in text)
    assert ('kadence_api_request_duration_seconds_bucket{le="0.005",method="POST",'
            'route="/api/scheduler/schedule"}') in text
    assert 'kadence_queue_jobs{priority="critical",state="waiting"} 1.0' in text
    assert "kadence_queue_paused 0.0" in text

