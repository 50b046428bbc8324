"""Bad input gets a clear 4xx naming the field; an unreachable Redis gets 503; never a 500."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from kadence.config import Settings
from kadence.embedded import free_port
from tests.api.conftest import LiveApi, start_api

NOOP = {"taskId": "t", "userId": 7, "handler": "noop"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"userId": 7}, "taskId"),
        ({"taskId": "t"}, "userId"),
        ({**NOOP, "userId": "seven"}, "userId"),
        ({**NOOP, "userId": -3}, "userId"),
        ({**NOOP, "userId": True}, "userId"),
        ({**NOOP, "taskId": 5}, "taskId"),
        ({**NOOP, "taskId": ""}, "taskId"),
        ({**NOOP, "priority": "urgent"}, "priority"),
        ({**NOOP, "priority": 3}, "priority"),
        ({**NOOP, "maxAttempts": 0}, "maxAttempts"),
        ({**NOOP, "maxAttempts": 1000}, "maxAttempts"),
        ({**NOOP, "handler": "shell"}, "handler"),
        ({**NOOP, "args": "x"}, "args"),
        ({**NOOP, "args": {"blob": "x" * 70_000}}, "args"),
        ({**NOOP, "handler": "webhook", "args": {"url": "ftp://x"}}, "args.url"),
        ({**NOOP, "handler": "python", "args": {}}, "args.callable"),
        ({**NOOP, "backoff": {"baseSeconds": 0}}, "backoff.baseSeconds"),
        ({**NOOP, "backoff": {"baseSeconds": 10, "maxSeconds": 5}}, "backoff.maxSeconds"),
        ({**NOOP, "taskGoal": "a\x00b"}, "taskGoal"),
        ({**NOOP, "surprise": 1}, "surprise"),
    ],
)
def test_bad_tasks_are_422_naming_the_field(master: httpx.Client, body: dict[str, object], field: str) -> None:
    answer = master.post("/api/scheduler/schedule", json=body)
    assert answer.status_code in (413, 422), answer.text
    if answer.status_code == 422:
        assert answer.json() == {"error": "invalid_input", "field": field, "message": answer.json()["message"]}
        assert field in answer.json()["message"]


def test_malformed_json_is_400(master: httpx.Client) -> None:
    answer = master.post("/api/scheduler/schedule", content=b'{"taskId": ',
                         headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"] == "malformed_json"
    assert answer.json()["field"] == "body"


def test_a_body_that_is_not_an_object_is_422(master: httpx.Client) -> None:
    for content in (b"[1, 2]", b'"text"', b"null"):
        answer = master.post("/api/scheduler/schedule", content=content, headers={"Content-Type": "application/json"})
        assert answer.status_code == 422 and answer.json()["field"] == "body", answer.text
    plain = master.post("/api/scheduler/schedule", content=b"taskId=t", headers={"Content-Type": "text/plain"})
    assert 400 <= plain.status_code < 500


def test_oversized_bodies_are_413(master: httpx.Client, api_settings: Settings) -> None:
    limit = api_settings.api_max_body_bytes
    declared = master.post("/api/scheduler/schedule", content=b"x" * (limit + 1),
                           headers={"Content-Type": "application/json"})
    assert declared.status_code == 413 and declared.json()["error"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size is only known as it streams
        for _ in range(limit // 1024 + 2):
            yield b" " * 1024

    streamed = master.post("/api/scheduler/schedule", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    # A body just under the limit still reaches validation.
    assert master.post("/api/scheduler/schedule", json={**NOOP, "taskGoal": "g" * 9000}).status_code == 201


def test_unknown_routes_and_methods(master: httpx.Client) -> None:
    assert master.get("/api/nothing-here").status_code == 404
    assert master.put("/api/scheduler/schedule", json=NOOP).status_code == 405


@pytest.fixture
def api_without_redis(api_settings: Settings) -> Iterator[LiveApi]:
    """An API whose Redis URL points at a port nobody listens on (PostgreSQL is fine)."""
    broken = api_settings.model_copy(update={"redis_url": SecretStr(f"redis://127.0.0.1:{free_port()}/0")})
    api = start_api(broken)
    yield api
    api.stop()


def test_an_unreachable_redis_is_503(api_without_redis: LiveApi) -> None:
    ready = httpx.get(f"{api_without_redis.url}/readyz")
    assert ready.status_code == 503 and ready.json() == {"ready": False, "postgres": True, "redis": False}
    assert httpx.get(f"{api_without_redis.url}/healthz").status_code == 200
    assert httpx.get(f"{api_without_redis.url}/metrics").status_code == 200
    with api_without_redis.master() as master:
        for answer in (
            master.post("/api/scheduler/schedule", json=NOOP),
            master.get("/api/scheduler/stats"),
            master.post("/api/scheduler/pause"),
            master.post("/api/scheduler/schedule-recurring",
                        json={"name": "n", "userId": 7, "cronExpression": "* * * * *", "handler": "noop"}),
        ):
            assert answer.status_code == 503, (answer.request.url, answer.text)
            assert answer.json()["error"] == "unavailable"
