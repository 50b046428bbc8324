"""Liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import httpx

from tests.api.conftest import LiveApi

ROUTES = {
    "/api/scheduler/schedule": {"post"},
    "/api/scheduler/schedule-delayed": {"post"},
    "/api/scheduler/schedule-bulk": {"post"},
    "/api/scheduler/schedule-recurring": {"post"},
    "/api/scheduler/job/{jobId}": {"get", "delete"},
    "/api/scheduler/job/{jobId}/events": {"get"},
    "/api/scheduler/stats": {"get"},
    "/api/scheduler/cron/{userId}": {"get"},
    "/api/scheduler/cron/{scheduleId}": {"delete"},
    "/api/scheduler/cron/{scheduleId}/enable": {"post"},
    "/api/scheduler/cron/{scheduleId}/disable": {"post"},
    "/api/scheduler/cron/{scheduleId}/trigger": {"post"},
    "/api/scheduler/pause": {"post"},
    "/api/scheduler/resume": {"post"},
    "/api/auth/tokens": {"post"},
    "/healthz": {"get"},
    "/readyz": {"get"},
    "/metrics": {"get"},
}


def test_health_and_readiness(live_api: LiveApi) -> None:
    assert httpx.get(f"{live_api.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{live_api.url}/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "postgres": True, "redis": True}


def test_metrics_are_prometheus_text(live_api: LiveApi) -> None:
    answer = httpx.get(f"{live_api.url}/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert "# TYPE kadence_api_requests_total counter" in answer.text
    assert "# TYPE kadence_queue_jobs gauge" in answer.text


def test_openapi_documents_every_route_with_models(live_api: LiveApi) -> None:
    document = httpx.get(f"{live_api.url}/openapi.json").json()
    assert {path: set(ops) for path, ops in document["paths"].items()} == ROUTES
    schedule = document["paths"]["/api/scheduler/schedule"]["post"]
    assert schedule["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ScheduleTaskIn")
    assert {"201", "400", "401", "403", "413", "422", "503"} <= set(schedule["responses"])
    task = document["components"]["schemas"]["ScheduleTaskIn"]
    assert {"taskId", "userId", "priority", "maxAttempts", "args"} <= set(task["properties"])
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    job = document["components"]["schemas"]["JobOut"]["properties"]
    assert {"jobId", "state", "scheduledFor", "startedAt", "finishedAt", "scheduleId"} <= set(job)
