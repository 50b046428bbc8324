"""Kadence writes RQ job hashes itself; they must be what RQ's own ``Job.save`` writes."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from redis import Redis
from rq.callbacks import Callback
from rq.job import JobStatus, Retry

from kadence.domain.models import Backoff, Priority, TaskSpec
from kadence.domain.policies import backoff_schedule
from kadence.queue import CALLBACK_TIMEOUT_SECONDS, ON_FAILURE, ON_SUCCESS, PERFORM, SERIALIZER, TaskQueue, job_payload

NOW = datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=UTC)

SPECS = {
    "retries": TaskSpec(task_id="t1", user_id=7, handler="webhook", args={"url": "http://x", "n": [1, 2]}),
    "one attempt": TaskSpec(task_id="t2", user_id=7, handler="noop", max_attempts=1, priority=Priority.CRITICAL),
    "fractional backoff": TaskSpec(
        task_id="t3", user_id=8, handler="noop", max_attempts=5, backoff=Backoff(base_seconds=0.25, max_seconds=1.0),
        task_goal="ünïcode", timeout_seconds=7,
    ),
}  # fmt: skip


def _rq_hash(queue: TaskQueue, job_id: str, spec: TaskSpec, run_at: datetime | None) -> dict[str, Any]:
    """What RQ itself saves for the same job (the way Kadence built its jobs through RQ before)."""
    delays = backoff_schedule(spec.backoff, spec.max_attempts)
    rq_queue = queue.queues[spec.priority]
    job = rq_queue.create_job(
        PERFORM,
        kwargs=job_payload(job_id, spec, run_at, None),
        job_id=job_id,
        timeout=spec.timeout_seconds,
        result_ttl=queue.completed_max_age_seconds,
        failure_ttl=queue.completed_max_age_seconds * 7,
        retry=Retry(max=spec.max_attempts - 1, interval=cast(list[int], delays)) if delays else None,
        on_success=Callback(ON_SUCCESS, timeout=CALLBACK_TIMEOUT_SECONDS),
        on_failure=Callback(ON_FAILURE, timeout=CALLBACK_TIMEOUT_SECONDS),
        description=f"{spec.handler} task {spec.task_id}",
    )
    job.created_at = NOW
    job.origin = rq_queue.name
    if run_at is None:
        job.enqueued_at = NOW
        job._status = JobStatus.QUEUED
    else:
        job._status = JobStatus.SCHEDULED
    return job.to_dict()


def _comparable(fields: dict[str, Any]) -> dict[str, Any]:
    out = {key: str(value) if isinstance(value, (int, JobStatus)) else value for key, value in fields.items()}
    out["status"] = str(JobStatus(fields["status"]).value)
    out["data"] = _call(fields["data"])
    return out


def _call(data: bytes) -> Any:
    """A job's call as RQ reads it: compressed or not."""
    try:
        data = zlib.decompress(data)
    except zlib.error:
        pass
    return SERIALIZER.loads(data)


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("delayed", [False, True])
def test_job_hash_is_what_rq_saves(name: str, delayed: bool) -> None:
    queue = TaskQueue(Redis(), completed_max_age_seconds=3600)
    spec = SPECS[name]
    run_at = NOW + timedelta(seconds=5) if delayed else None
    ours = queue.job_hash("job-1", spec, run_at, None, NOW)
    assert _comparable(ours) == _comparable(_rq_hash(queue, "job-1", spec, run_at))


@pytest.mark.parametrize("size", [10, 5000])
def test_job_hash_data_is_the_call_rq_makes(size: int) -> None:
    queue = TaskQueue(Redis())
    spec = TaskSpec(task_id="t4", user_id=7, handler="noop", args={"blob": "x" * size})
    data = cast(bytes, queue.job_hash("job-2", spec, None, 4, NOW)["data"])
    assert _call(data) == [PERFORM, None, [], json.loads(json.dumps(job_payload("job-2", spec, None, 4)))]
    assert (len(data) < size) == (size > 1000)  # a large call is stored compressed, a small one as it is
