"""The pure builders of the operator (no cluster, no servers)."""

from __future__ import annotations

from datetime import UTC, datetime

import kubernetes_validate
import pytest
from pydantic import ValidationError

from kadence.config import Settings
from kadence.controller import builders
from kadence.domain.errors import InvalidInput
from kadence.domain.models import Job, JobState, Priority
from kadence.domain.resources import ScheduledTaskSpec, WorkerPoolSpec

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_worker_deployment_is_a_valid_restricted_deployment() -> None:
    spec = WorkerPoolSpec.model_validate({"concurrency": 4, "resources": {"requests": {"cpu": "100m"}},
                                          "env": [{"name": "KADENCE_LOG_LEVEL", "value": "DEBUG"}]})
    deployment = builders.build_worker_deployment("pool", "ns", spec, settings=Settings(), secret_name="sec")
    kubernetes_validate.validate(deployment, "1.30.0", strict=True)
    assert deployment["spec"]["replicas"] == 4
    assert deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"][
        "labels"].items()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == Settings().worker_image
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    env = [item["name"] for item in container["env"]]
    assert env.count("KADENCE_LOG_LEVEL") == 1
    assert {"name": "KADENCE_LOG_LEVEL", "value": "DEBUG"} in container["env"]


def test_drift_is_detected_by_replicas_and_template_hash() -> None:
    spec = WorkerPoolSpec(concurrency=2)
    desired = builders.build_worker_deployment("p", "ns", spec, settings=Settings(), secret_name="s")
    assert builders.deployment_drift(desired, desired) is None
    scaled = {**desired, "spec": {**desired["spec"], "replicas": 9}}
    assert builders.deployment_drift(scaled, desired) == {"spec": {"replicas": 2}}
    other = builders.build_worker_deployment("p", "ns", WorkerPoolSpec(concurrency=2, image="x:1"),
                                             settings=Settings(), secret_name="s")
    assert builders.deployment_drift(other, desired)["spec"]["template"] == desired["spec"]["template"]


def test_status_of_a_job() -> None:
    job = Job(job_id="stask-1", state=JobState.FAILED, task_id="t", user_id=1, task_goal="", priority=Priority.LOW,
              handler="noop", args={}, attempts=3, max_attempts=3, created_at=NOW, finished_at=NOW, error="boom")
    status = builders.scheduled_task_status(job)
    assert status["phase"] == "Failed" and status["attempts"] == 3 and status["lastError"] == "boom"
    assert status["finishedAt"] == "2030-01-01T12:00:00Z"
    assert builders.job_condition(job, now=NOW)["reason"] == "JobFailed"
    assert builders.is_final("Failed") and not builders.is_final("Delayed")


def test_conditions_keep_their_transition_time() -> None:
    first = builders.condition("Ready", True, "A", now=NOW)
    later = builders.condition("Ready", True, "B", now=datetime(2031, 1, 1, tzinfo=UTC))
    merged = builders.merge_conditions([first], later)
    assert merged == [{**later, "lastTransitionTime": first["lastTransitionTime"]}]
    flipped = builders.merge_conditions(merged, builders.condition("Ready", False, "C", now=NOW))
    assert flipped[0]["status"] == "False"


def test_invalid_field_paths() -> None:
    with pytest.raises(ValidationError) as caught:
        ScheduledTaskSpec.model_validate({"taskId": "t", "userId": 1, "backoff": {"baseSeconds": -1}})
    assert builders.invalid_field(caught.value)[0] == "spec.backoff.baseSeconds"
    assert builders.invalid_field(InvalidInput("args.url", "missing")) == ("spec.args.url", "missing")
