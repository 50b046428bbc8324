"""Validation messages, the priority mapping and the backoff sequence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kadence.domain.errors import InvalidInput
from kadence.domain.models import Backoff, JobState, Priority
from kadence.domain.policies import attempt_number, backoff_delay, backoff_schedule
from kadence.domain.validation import build_task_spec, parse_priority, resolve_run_at

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_priorities_map_to_ranks_and_queues() -> None:
    assert [p.rank for p in Priority] == [1, 2, 5, 10]
    assert Priority.CRITICAL.queue_name == "kadence-critical"
    assert parse_priority("HIGH") is Priority.HIGH
    assert parse_priority(10) is Priority.LOW
    for bad in ("urgent", 3, True, None):
        with pytest.raises(InvalidInput, match="priority"):
            parse_priority(bad)


def test_backoff_doubles_from_one_second_and_is_capped() -> None:
    assert backoff_schedule(Backoff(), 5) == [1.0, 2.0, 4.0, 8.0]
    assert backoff_schedule(Backoff(base_seconds=0.5, max_seconds=3), 6) == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_delay(Backoff(), 200) == 3600.0
    assert backoff_schedule(Backoff(), 1) == []


def test_attempt_number_counts_from_retries_left() -> None:
    assert attempt_number(3, 2) == 1
    assert attempt_number(3, 0) == 3
    assert attempt_number(1, None) == 1


def test_final_states() -> None:
    assert {s for s in JobState if s.is_final} == {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED}


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"task_id": None}, "taskId", "required"),
        ({"task_id": 5}, "taskId", "must be a string"),
        ({"user_id": 0}, "userId", "positive integer"),
        ({"user_id": "7"}, "userId", "positive integer"),
        ({"max_attempts": 101}, "maxAttempts", "between 1 and 100"),
        ({"handler": "shell"}, "handler", "use one of webhook, python, noop"),
        ({"handler": "webhook", "args": {}}, "args.url", "needs an http(s) URL"),
        ({"handler": "python", "args": {"callable": "nocolon"}}, "args.callable", "module:function"),
        ({"args": [1]}, "args", "JSON object"),
        ({"args": {"url": "http://x", "blob": "x" * 70000}}, "args", "at most"),
        ({"backoff_base_seconds": -1}, "backoff.baseSeconds", "greater than 0"),
        ({"timeout_seconds": 0}, "timeoutSeconds", "between 1 and 86400"),
    ],
)
def test_task_validation_names_the_field(fields: dict[str, object], field: str, words: str) -> None:
    values: dict[str, object] = {"task_id": "t", "user_id": 1, "handler": "webhook", "args": {"url": "http://x"}}
    values.update(fields)
    with pytest.raises(InvalidInput) as caught:
        build_task_spec(**values)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert words in caught.value.message


def test_valid_task_gets_defaults() -> None:
    spec = build_task_spec(task_id="t", user_id=3, handler="noop")
    assert spec.priority is Priority.NORMAL and spec.max_attempts == 3 and spec.args == {}


def test_run_at_and_delay() -> None:
    assert resolve_run_at(delay_ms=1500, run_at=None, now=NOW) == NOW + timedelta(milliseconds=1500)
    assert resolve_run_at(delay_ms=None, run_at="2026-06-01T14:00:00+02:00", now=NOW) == NOW
    cases = [
        ({"delay_ms": None, "run_at": None}, "delay"),
        ({"delay_ms": 1, "run_at": "2026-06-01T12:00:00Z"}, "delay"),
        ({"delay_ms": -1, "run_at": None}, "delay"),
        ({"delay_ms": 10**12, "run_at": None}, "delay"),
        ({"delay_ms": "soon", "run_at": None}, "delay"),
        ({"delay_ms": float("nan"), "run_at": None}, "delay"),
        ({"delay_ms": None, "run_at": "2026-06-01T11:00:00Z"}, "runAt"),
        ({"delay_ms": None, "run_at": "2026-06-01T13:00:00"}, "runAt"),
        ({"delay_ms": None, "run_at": "tomorrow"}, "runAt"),
        ({"delay_ms": None, "run_at": "2030-01-01T00:00:00Z"}, "runAt"),
    ]
    for kwargs, field in cases:
        with pytest.raises(InvalidInput) as caught:
            resolve_run_at(now=NOW, **kwargs)  # type: ignore[arg-type]
        assert caught.value.field == field, kwargs
