"""Example resources validate against the CRD schemas; the invalid ones are rejected."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from kadence.domain.resources import resource_kind
from tests.deploy.deploy_support import (
    EXAMPLES_DIR,
    INVALID_EXAMPLES_DIR,
    ROOT,
    crds_by_kind,
    load_docs,
    validate_custom_object,
)

EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml"))
INVALID = sorted(INVALID_EXAMPLES_DIR.glob("*.yaml"))


def test_there_is_an_example_of_every_kind() -> None:
    kinds = {doc["kind"] for path in EXAMPLES for doc in load_docs(path)}
    assert kinds == {"ScheduledTask", "CronSchedule", "WorkerPool"}
    invalid_kinds = {doc["kind"] for path in INVALID for doc in load_docs(path)}
    assert invalid_kinds == kinds


@pytest.mark.parametrize("path", [*EXAMPLES, ROOT / "hack" / "e2e-cronschedule.yaml"], ids=lambda p: p.name)
def test_example_is_valid(path: Path) -> None:
    for obj in load_docs(path):
        assert validate_custom_object(obj) == []
        # The operator parses the same spec without complaint.
        resource_kind(obj["kind"]).spec_model.model_validate(obj["spec"])


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_example_is_rejected_by_the_crd_schema(path: Path) -> None:
    [obj] = load_docs(path)
    assert validate_custom_object(obj), f"{path.name} should be rejected by the {obj['kind']} schema"


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_example_is_rejected_by_the_spec_model(path: Path) -> None:
    [obj] = load_docs(path)
    with pytest.raises(pydantic.ValidationError):
        resource_kind(obj["kind"]).spec_model.model_validate(obj["spec"])


def test_unknown_spec_field_is_rejected_like_strict_field_validation() -> None:
    obj = {
        "apiVersion": "kadence.dev/v1alpha1",
        "kind": "ScheduledTask",
        "metadata": {"name": "typo"},
        "spec": {"taskId": "t", "userId": 1, "priorty": "high"},
    }
    assert any("priorty" in error for error in validate_custom_object(obj))


def test_args_keep_any_shape() -> None:
    obj = {
        "apiVersion": "kadence.dev/v1alpha1",
        "kind": "ScheduledTask",
        "metadata": {"name": "free-args"},
        "spec": {"taskId": "t", "userId": 1, "args": {"nested": {"list": [1, "two", {"three": None}]}}},
    }
    assert validate_custom_object(obj) == []


def test_status_written_by_the_operator_validates() -> None:
    from kadence.domain.resources import Condition, ScheduledTaskStatus

    status = ScheduledTaskStatus(
        phase="Completed",
        job_id="stask-1234",
        attempts=1,
        scheduled_for="2030-01-01T09:00:00Z",
        finished_at="2030-01-01T09:00:01.250000Z",
        conditions=[
            Condition(
                type="Ready", status="True", reason="Completed", last_transition_time="2030-01-01T09:00:01Z"
            )
        ],
        observed_generation=1,
    ).model_dump(by_alias=True, mode="json", exclude_none=True)
    obj = {
        "apiVersion": "kadence.dev/v1alpha1",
        "kind": "ScheduledTask",
        "metadata": {"name": "done"},
        "spec": {"taskId": "t", "userId": 1},
        "status": status,
    }
    assert validate_custom_object(obj) == []
    assert status["jobId"] == "stask-1234" and "lastError" not in status


@pytest.mark.parametrize(
    "schedule",
    [
        "*/5 * * * *",
        "0 3 * * 1-5",
        "30 */2 * * * *",
        "0 0 1 JAN,JUL *",
        "0 12 ? * MON#1",
        "@daily",
        "0 0 L * *",
    ],
)
def test_cron_pattern_accepts_real_expressions(schedule: str) -> None:
    obj = {
        "apiVersion": "kadence.dev/v1alpha1",
        "kind": "CronSchedule",
        "metadata": {"name": "c"},
        "spec": {"schedule": schedule, "taskGoal": "g", "userId": 1},
    }
    assert validate_custom_object(obj) == []


@pytest.mark.parametrize(
    "schedule", ["", "* * * *", "* * * * * * *", "@sometimes", "* * * * *;rm", " * * * * *"]
)
def test_cron_pattern_rejects_obvious_mistakes(schedule: str) -> None:
    obj = {
        "apiVersion": "kadence.dev/v1alpha1",
        "kind": "CronSchedule",
        "metadata": {"name": "c"},
        "spec": {"schedule": schedule, "taskGoal": "g", "userId": 1},
    }
    assert validate_custom_object(obj)


def test_every_kadence_crd_is_checked() -> None:
    assert {"ScheduledTask", "CronSchedule", "WorkerPool"} <= set(crds_by_kind())
