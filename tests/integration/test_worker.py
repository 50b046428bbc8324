"""The worker process's RQ worker, run in this process against the real servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis import Redis
from rq import SimpleWorker, Worker
from rq.suspension import resume, suspend

from kadence.config import Settings
from kadence.core import SchedulerCore, TaskInput
from kadence.domain.models import PRIORITIES_BY_URGENCY, JobState, UserContext
from kadence.queue import SERIALIZER, KadenceQueue, TaskQueue
from kadence.worker import KadenceWorker, _runtime_from_settings, install_runtime, task_queue_from_settings

ALICE = UserContext(10)
JOBS = 20


@pytest.fixture
def queue(settings: Settings) -> Iterator[TaskQueue]:
    runtime = _runtime_from_settings(settings)
    install_runtime(runtime)
    yield task_queue_from_settings(settings)
    install_runtime(None)
    runtime.db.close()


def _worker(worker_class: type[SimpleWorker], queue: TaskQueue) -> SimpleWorker:
    return worker_class(
        [queue.queues[priority] for priority in PRIORITIES_BY_URGENCY],
        connection=queue.redis,
        serializer=SERIALIZER,
        queue_class=KadenceQueue,
    )


def _round_trips(redis: Redis) -> int:
    """Requests Redis has read so far (a pipeline arrives as one): the round trips clients made."""
    return int(redis.info("stats")["total_reads_processed"])


def _schedule(core: SchedulerCore, count: int) -> list[str]:
    tasks = [(TaskInput(task_id=f"n{i}", user_id=10, handler="noop"), None, None) for i in range(count)]
    return [job.job_id for job in core.schedule_tasks(ALICE, tasks)]


def test_the_worker_makes_far_fewer_round_trips_than_rqs_and_records_every_job(
    core: SchedulerCore, queue: TaskQueue
) -> None:
    per_job = {}
    for worker_class in (SimpleWorker, KadenceWorker):
        ids = _schedule(core, JOBS)
        before = _round_trips(queue.redis)
        assert _worker(worker_class, queue).work(burst=True)
        per_job[worker_class.__name__] = (_round_trips(queue.redis) - before) / JOBS
        assert {core.get_job(ALICE, job_id).state for job_id in ids} == {JobState.COMPLETED}
    assert per_job["KadenceWorker"] < 0.7 * per_job["SimpleWorker"], per_job


def test_the_worker_stays_registered_and_ends_idle(core: SchedulerCore, queue: TaskQueue) -> None:
    _schedule(core, 3)
    worker = _worker(KadenceWorker, queue)
    worker.work(burst=True)
    seen = Worker.find_by_key(worker.key, connection=queue.redis)
    assert seen is not None and seen.get_state() == "idle" and seen.last_heartbeat is not None


def test_rq_suspend_still_stops_the_worker(core: SchedulerCore, queue: TaskQueue) -> None:
    ids = _schedule(core, 2)
    suspend(queue.redis)
    try:
        assert not _worker(KadenceWorker, queue).work(burst=True)
    finally:
        resume(queue.redis)
    assert {core.get_job(ALICE, job_id).state for job_id in ids} == {JobState.WAITING}
