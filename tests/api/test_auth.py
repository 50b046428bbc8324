"""Bearer tokens and isolation: a user sees only their own jobs and schedules."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.api.conftest import LiveApi

NOOP = {"taskId": "t", "handler": "noop"}
CRON = {"name": "n", "cronExpression": "0 * * * *", "handler": "noop"}


def test_api_routes_need_a_valid_bearer_token(live_api: LiveApi) -> None:
    for client in (live_api.client(), live_api.client("not-a-token")):
        with client:
            for answer in (
                client.get("/api/scheduler/stats"),
                client.post("/api/scheduler/schedule", json={**NOOP, "userId": 1}),
                client.get("/api/scheduler/job/x"),
                client.post("/api/auth/tokens", json={"userId": 1, "role": "user"}),
            ):
                assert answer.status_code == 401, answer.text
                assert answer.headers["www-authenticate"] == "Bearer"
                assert answer.json()["error"] == "unauthorized"
    with httpx.Client(base_url=live_api.url, headers={"Authorization": f"Basic {live_api.master_token}"}) as basic:
        assert basic.get("/api/scheduler/stats").status_code == 401
    with live_api.client() as anonymous:
        assert anonymous.get("/healthz").status_code == 200


def test_master_mints_tokens_users_cannot(master: httpx.Client, user_client: Callable[[int], httpx.Client]) -> None:
    answer = master.post("/api/auth/tokens", json={"userId": 11, "role": "user", "description": "ci"})
    assert answer.status_code == 201
    assert answer.json()["userId"] == 11 and answer.json()["role"] == "user"
    assert answer.json()["token"].startswith("kdn_")

    alice = user_client(11)
    forbidden = alice.post("/api/auth/tokens", json={"userId": 11, "role": "master"})
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden"
    bad_role = master.post("/api/auth/tokens", json={"userId": 11, "role": "admin"})
    assert bad_role.status_code == 422 and bad_role.json()["field"] == "role"


def test_a_minted_master_token_sees_everything(
    master: httpx.Client, live_api: LiveApi, user_client: Callable[[int], httpx.Client]
) -> None:
    job_id = user_client(11).post("/api/scheduler/schedule", json={**NOOP, "userId": 11}).json()["jobId"]
    token = master.post("/api/auth/tokens", json={"userId": 99, "role": "master"}).json()["token"]
    with live_api.client(token) as second_master:
        assert second_master.get(f"/api/scheduler/job/{job_id}").status_code == 200
        assert second_master.post("/api/scheduler/pause").json() == {"paused": True}
        assert second_master.post("/api/scheduler/resume").json() == {"paused": False}


def test_users_are_isolated_from_each_other(
    master: httpx.Client, user_client: Callable[[int], httpx.Client]
) -> None:
    alice, bob = user_client(11), user_client(12)
    bob_job = bob.post("/api/scheduler/schedule-delayed", json={**NOOP, "userId": 12, "delay": 60_000})
    assert bob_job.status_code == 201
    job_id = bob_job.json()["jobId"]
    bob_schedule = bob.post("/api/scheduler/schedule-recurring", json={**CRON, "userId": 12})
    assert bob_schedule.status_code == 201
    schedule_id = bob_schedule.json()["scheduleId"]
    alice_job = alice.post("/api/scheduler/schedule", json={**NOOP, "userId": 11}).json()["jobId"]

    # Alice cannot see or change Bob's job or schedule: for her they do not exist.
    for answer in (
        alice.post(f"/api/scheduler/cron/{schedule_id}/trigger"),
        alice.get(f"/api/scheduler/job/{job_id}"),
        alice.get(f"/api/scheduler/job/{job_id}/events"),
        alice.delete(f"/api/scheduler/job/{job_id}"),
        alice.post(f"/api/scheduler/cron/{schedule_id}/enable"),
        alice.post(f"/api/scheduler/cron/{schedule_id}/disable"),
        alice.delete(f"/api/scheduler/cron/{schedule_id}"),
    ):
        assert answer.status_code == 404, (answer.request.url, answer.text)

    # Listing Bob's schedules, acting for Bob and pausing are forbidden outright.
    assert alice.get("/api/scheduler/cron/12").status_code == 403
    assert alice.post("/api/scheduler/schedule", json={**NOOP, "userId": 12}).status_code == 403
    assert alice.post("/api/scheduler/schedule-recurring", json={**CRON, "userId": 12}).status_code == 403
    bulk = alice.post("/api/scheduler/schedule-bulk", json={"tasks": [{**NOOP, "userId": 11}, {**NOOP, "userId": 12}]})
    assert bulk.status_code == 403
    assert alice.post("/api/scheduler/pause").status_code == 403
    assert alice.post("/api/scheduler/resume").status_code == 403

    # Nothing of Bob's changed; Bob and master still see it, and Alice sees her own.
    assert bob.get(f"/api/scheduler/job/{job_id}").json()["state"] == "delayed"
    assert [s["id"] for s in bob.get("/api/scheduler/cron/12").json()] == [schedule_id]
    assert bob.get(f"/api/scheduler/job/{alice_job}").status_code == 404
    assert alice.get(f"/api/scheduler/job/{alice_job}").status_code == 200
    assert alice.get("/api/scheduler/cron/11").json() == []
    assert master.get(f"/api/scheduler/job/{job_id}").status_code == 200
    assert master.get(f"/api/scheduler/job/{alice_job}").status_code == 200
    assert [s["id"] for s in master.get("/api/scheduler/cron/12").json()] == [schedule_id]

    # Bob can change his own.
    assert bob.post(f"/api/scheduler/cron/{schedule_id}/disable").json()["enabled"] is False
    assert bob.delete(f"/api/scheduler/job/{job_id}").json()["state"] == "cancelled"
    assert bob.delete(f"/api/scheduler/cron/{schedule_id}").status_code == 204
