"""Handlers as workers run them: webhook signatures, the python allow-list, noop."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from kadence.config import Settings
from kadence.core import SchedulerCore, TaskInput
from kadence.domain.models import JobState, Role, UserContext
from tests.support import WebhookReceiver, start_kadence, stop_process, wait_for

ALICE = UserContext(10)
MASTER = UserContext(1, Role.MASTER)


@pytest.fixture
def signed_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_secret": SecretStr("s3cret")})


@pytest.fixture
def signing_pool(signed_settings: Settings) -> Iterator[None]:
    process = start_kadence(["worker", "--concurrency", "1"], signed_settings)
    yield
    stop_process(process)


def _final(core: SchedulerCore, job_id: str) -> object:
    return wait_for(lambda: (job := core.get_job(MASTER, job_id)).state.is_final and job, 20)


def test_webhook_body_is_signed_with_hmac_sha256(core: SchedulerCore, receiver: WebhookReceiver, signing_pool) -> None:
    task = TaskInput(task_id="signed", user_id=10, handler="webhook", args={"url": receiver.url, "k": "v"})
    job_id = core.schedule_task(ALICE, task).job_id
    assert _final(core, job_id).state is JobState.COMPLETED
    [delivery] = receiver.for_job(job_id)
    expected = "sha256=" + hmac.new(b"s3cret", delivery.raw, hashlib.sha256).hexdigest()
    assert delivery.headers["X-Kadence-Signature"] == expected
    assert set(delivery.body) == {
        "jobId",
        "taskId",
        "userId",
        "taskGoal",
        "attempt",
        "maxAttempts",
        "priority",
        "scheduledFor",
        "scheduleId",
        "args",
    }
    assert delivery.body["attempt"] == 1 and delivery.body["args"] == {"k": "v"}


def test_python_handler_refuses_modules_outside_the_allow_list(core: SchedulerCore, worker_pool) -> None:
    worker_pool(1)
    allowed = TaskInput(
        task_id="ok", user_id=10, handler="python", args={"callable": "kadence.handlers.examples:echo", "x": 1}
    )
    refused = TaskInput(task_id="no", user_id=10, handler="python", max_attempts=1, args={"callable": "os:getcwd"})
    ok_id = core.schedule_task(ALICE, allowed).job_id
    refused_id = core.schedule_task(ALICE, refused).job_id
    ok = _final(core, ok_id)
    assert ok.state is JobState.COMPLETED and ok.result == {"x": 1}
    failed = _final(core, refused_id)
    assert failed.state is JobState.FAILED and "not under an allowed prefix" in failed.error


def test_unreachable_webhook_fails_with_a_clear_error(core: SchedulerCore, worker_pool) -> None:
    worker_pool(1)
    task = TaskInput(
        task_id="down",
        user_id=10,
        handler="webhook",
        max_attempts=1,
        args={"url": "http://127.0.0.1:9/nothing-listens"},
    )
    job = _final(core, core.schedule_task(ALICE, task).job_id)
    assert job.state is JobState.FAILED and "unreachable" in job.error
