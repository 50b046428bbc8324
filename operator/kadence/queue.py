"""The RQ adapter: priority queues, precise delays, retries, cancel, pause and retention.

RQ gives Kadence its workers, job hashes and registries. Two things Kadence does itself:

- **Timing.** RQ's scheduler stores whole seconds and polls once a second, so its delayed
  jobs start up to a second early or late. Kadence keeps delayed jobs (and retries) in its
  own sorted sets scored in milliseconds and moves them to their queue with one atomic
  script the moment they are due (see :meth:`TaskQueue.promote_due`), woken by a pub/sub
  message whenever an earlier job arrives. Any number of processes may promote at once.
- **Pause.** RQ's suspension is only checked between jobs, so a worker blocked waiting
  would still take the next job. Kadence pauses the way BullMQ does: waiting jobs move to a
  paused list that no worker listens on, and everything enqueued meanwhile lands there too.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from kadence.domain.errors import Unavailable
from kadence.domain.models import PRIORITIES_BY_URGENCY, Backoff, JobState, Priority, QueueStats, TaskSpec
from kadence.domain.policies import backoff_schedule

log = logging.getLogger(__name__)

PERFORM = "kadence.worker.perform_task"
ON_SUCCESS = "kadence.worker.on_job_success"
ON_FAILURE = "kadence.worker.on_job_failure"

# How long RQ lets Kadence's success and failure callbacks run. They record the outcome in
# PostgreSQL and wait out an outage doing so (``worker.RECORD_PATIENCE_SECONDS``); with RQ's
# default of 60 s a longer outage would cut them short and count a finished job as failed,
# so that it ran again.
CALLBACK_TIMEOUT_SECONDS = 180

PAUSED_KEY = "kadence:paused"
WAKE_CHANNEL = "kadence:wake"
SERIALIZER = JSONSerializer

_RQ_TO_STATE = {
    JobStatus.QUEUED: JobState.WAITING,
    JobStatus.DEFERRED: JobState.WAITING,
    JobStatus.SCHEDULED: JobState.DELAYED,
    JobStatus.STARTED: JobState.ACTIVE,
    JobStatus.FINISHED: JobState.COMPLETED,
    JobStatus.FAILED: JobState.FAILED,
    JobStatus.CANCELED: JobState.CANCELLED,
    JobStatus.STOPPED: JobState.CANCELLED,
}


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _parse_time(text: str) -> datetime:
    """An RQ timestamp (ISO 8601, Z suffix); the epoch when missing or unreadable."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


def delayed_key(queue_name: str) -> str:
    return f"kadence:delayed:{queue_name}"


def paused_key(queue_name: str) -> str:
    return f"kadence:paused-queue:{queue_name}"


def queue_key(queue_name: str) -> str:
    return f"{Queue.redis_queue_namespace_prefix}{queue_name}"


def _now_ms() -> float:
    return time.time() * 1000.0


def _ms(when: datetime) -> float:
    return when.timestamp() * 1000.0


# Create jobs and queue them, skipping any whose id exists already (so a retried or
# concurrent call changes nothing). A job due now goes on its queue, or on the queue's
# paused list while Kadence is paused; a later one goes in the queue's delayed set, and
# promoters are woken in case it is due before whatever they wait for. Returns how many
# jobs were created.
# KEYS: paused flag, RQ's set of queues, then (queue list, paused list, delayed zset) per queue.
# ARGV: job key prefix, wake channel, the number n of fields every job shares, those n
# field/value pairs; then per job: its id, its queue's place in KEYS (1 for the first
# triple), its due time in ms ('' for now), the number m of its own fields and those m
# field/value pairs.
_CREATE = """
local paused = redis.call('EXISTS', KEYS[1]) == 1
local shared = {}
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  shared[#shared + 1] = ARGV[i]
  shared[#shared + 1] = ARGV[i + 1]
  i = i + 2
end
local created = 0
while i <= #ARGV do
  local id, base, due, own = ARGV[i], 3 * tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[i + 3])
  local jkey = ARGV[1] .. id
  i = i + 4
  if redis.call('EXISTS', jkey) == 0 then
    redis.call('HSET', jkey, unpack(shared))
    redis.call('HSET', jkey, unpack(ARGV, i, i + 2 * own - 1))
    redis.call('SADD', KEYS[2], KEYS[base])
    if due ~= '' then
      redis.call('ZADD', KEYS[base + 2], due, id)
      redis.call('PUBLISH', ARGV[2], due)
    elseif paused then
      redis.call('RPUSH', KEYS[base + 1], id)
    else
      redis.call('RPUSH', KEYS[base], id)
    end
    created = created + 1
  end
  i = i + 2 * own
end
return created
"""

# Move due delayed jobs to their queues. KEYS: paused flag, then (delayed zset, queue list,
# paused list) per queue, most urgent first so a blocked worker is handed the most urgent job.
# ARGV: now (ms), batch limit, enqueued_at text, job key prefix.
_PROMOTE = """
local paused = redis.call('EXISTS', KEYS[1]) == 1
local moved = 0
for i = 2, #KEYS, 3 do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
  for _, id in ipairs(ids) do
    redis.call('ZREM', KEYS[i], id)
    local jkey = ARGV[4] .. id
    if redis.call('HGET', jkey, 'status') == 'scheduled' then
      redis.call('HSET', jkey, 'status', 'queued', 'enqueued_at', ARGV[3])
      if paused then redis.call('RPUSH', KEYS[i + 2], id) else redis.call('RPUSH', KEYS[i + 1], id) end
      moved = moved + 1
    end
  end
end
return moved
"""

# Cancel a job that has not started: take it out of its queue, paused list or delayed set.
# KEYS: job hash, queue list, paused list, delayed zset. ARGV: job id, ttl. Returns the old status.
_CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status == 'queued' or status == 'scheduled' or status == 'deferred' then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  redis.call('LREM', KEYS[3], 0, ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('HSET', KEYS[1], 'status', 'canceled')
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return status
"""

# Pause: move every waiting job to its paused list. KEYS: flag, then (queue, paused) pairs.
# Put back a job that a worker took off its queue and then died before starting it (RQ pops
# with BLPOP, so for a moment the id lives only in that worker). Only a job still 'queued'
# and in neither list is pushed, to the front, as it was due first.
# KEYS: job hash, queue list, paused list, paused flag. ARGV: job id.
_RESTORE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
if redis.call('LPOS', KEYS[2], ARGV[1]) or redis.call('LPOS', KEYS[3], ARGV[1]) then return 0 end
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('LPUSH', KEYS[3], ARGV[1])
else
  redis.call('LPUSH', KEYS[2], ARGV[1])
end
return 1
"""

_PAUSE = """
redis.call('SET', KEYS[1], '1')
for i = 2, #KEYS, 2 do
  while true do
    local id = redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'LEFT', 'RIGHT')
    if not id then break end
  end
end
return 1
"""

# Resume: paused jobs go back in front of anything pushed meanwhile, most urgent queue first.
_RESUME = """
redis.call('DEL', KEYS[1])
for i = 2, #KEYS, 2 do
  while true do
    local id = redis.call('RPOP', KEYS[i + 1])
    if not id then break end
    redis.call('LPUSH', KEYS[i], id)
  end
end
return 1
"""


class KadenceQueue(Queue):
    """An RQ queue whose delayed jobs (including RQ's own retries) keep millisecond times."""

    def move_dependents_to_ready(
        self, job: RQJob, pipeline: Any = None, exclude_job_id: str | None = None, refresh_job_status: bool = True
    ) -> dict[str, list[str]]:
        # Kadence jobs never depend on one another; RQ would read every finished job's
        # (empty) set of dependents, one more round trip per job.
        return {}

    def schedule_job(self, job: RQJob, datetime: datetime, pipeline: Any = None, unique: bool = False) -> RQJob:
        pipe = pipeline if pipeline is not None else self.connection.pipeline()
        if datetime.tzinfo is None:
            datetime = datetime.replace(tzinfo=UTC)
        pipe.sadd(self.redis_queues_keys, self.key)
        job.origin = self.name
        job._status = JobStatus.SCHEDULED  # saved with the rest of the hash just below
        job.save(pipeline=pipe)
        score = _ms(datetime)
        pipe.zadd(delayed_key(self.name), {job.id: score})
        pipe.publish(WAKE_CHANNEL, f"{score:.0f}")
        if pipeline is None:
            pipe.execute()
        return job


class KadenceStartedJobRegistry(StartedJobRegistry):
    """Started-job registry whose abandoned-job cleanup retries through :class:`KadenceQueue`."""

    def get_queue(self) -> Queue:
        return KadenceQueue(self.name, connection=self.connection, serializer=self.serializer)


BulkJob = tuple[str, TaskSpec, datetime | None, int | None]  # job id, spec, run_at, schedule id


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The outcome of putting one job on a queue."""

    job_id: str
    created: bool  # False when a job with this id already existed (an idempotent retry)


def job_payload(job_id: str, spec: TaskSpec, scheduled_for: datetime | None, schedule_id: int | None) -> dict[str, Any]:
    """The keyword arguments the worker's entry point receives (JSON only)."""
    return {
        "job_id": job_id,
        "task_id": spec.task_id,
        "user_id": spec.user_id,
        "task_goal": spec.task_goal,
        "priority": spec.priority.value,
        "handler": spec.handler,
        "args": spec.args,
        "max_attempts": spec.max_attempts,
        "scheduled_for": scheduled_for.isoformat() if scheduled_for else None,
        "schedule_id": schedule_id,
    }


_COMPRESS_ABOVE = 1024  # bytes of a job's call data


@functools.lru_cache(maxsize=256)
def _retry_intervals(backoff: Backoff, max_attempts: int) -> str:
    # RQ types the intervals as int but feeds them to timedelta: fractions of a second work.
    return json.dumps(backoff_schedule(backoff, max_attempts))


def rq_time(when: datetime) -> str:
    """A time as RQ writes it in job hashes."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class TaskQueue:
    """Kadence's view of Redis: the four priority queues and what surrounds them."""

    def __init__(
        self,
        redis: Redis,
        *,
        completed_keep: int = 100,
        completed_max_age_seconds: int = 86400,
        failed_keep: int = 1000,
    ) -> None:
        self.redis = redis
        self.completed_keep = completed_keep
        self.completed_max_age_seconds = completed_max_age_seconds
        self.failed_keep = failed_keep
        self.queues: dict[Priority, KadenceQueue] = {
            priority: KadenceQueue(priority.queue_name, connection=redis, serializer=SERIALIZER)
            for priority in PRIORITIES_BY_URGENCY
        }
        self._promote = redis.register_script(_PROMOTE)
        self._cancel = redis.register_script(_CANCEL)
        self._pause = redis.register_script(_PAUSE)
        self._resume = redis.register_script(_RESUME)
        self._restore = redis.register_script(_RESTORE)
        self._create_sha = ""
        self._create_key_list = self._create_keys()
        self._place = {priority: place for place, priority in enumerate(self.queues, start=1)}

    # -- creating and queueing -----------------------------------------------------------
    #
    # Kadence writes RQ's job hashes itself rather than through RQ's ``Job`` object, which
    # costs several times the Redis write; ``tests/unit/test_queue.py`` checks that the two
    # agree field for field.

    def _shared_fields(self, now: datetime) -> dict[str, str | int]:
        """The fields of the RQ job hash that every job created at ``now`` has in common."""
        return {
            "created_at": rq_time(now),
            "success_callback_name": ON_SUCCESS,
            "failure_callback_name": ON_FAILURE,
            "stopped_callback_name": "",
            "started_at": "",
            "ended_at": "",
            "last_heartbeat": "",
            "worker_name": "",
            "group_id": "",
            "success_callback_timeout": CALLBACK_TIMEOUT_SECONDS,
            "failure_callback_timeout": CALLBACK_TIMEOUT_SECONDS,
            "result_ttl": self.completed_max_age_seconds,
            "failure_ttl": self.completed_max_age_seconds * 7,
        }

    @staticmethod
    def _own_fields(job: BulkJob, now: datetime, now_text: str) -> dict[str, str | bytes | int]:
        """The fields of one job's RQ hash that are its own."""
        job_id, spec, run_at, schedule_id = job
        data = json.dumps((PERFORM, None, (), job_payload(job_id, spec, run_at, schedule_id))).encode()
        delayed = run_at is not None and run_at > now
        fields: dict[str, str | bytes | int] = {
            # RQ reads the call compressed or not; small ones are stored as they are.
            "data": zlib.compress(data) if len(data) > _COMPRESS_ABOVE else data,
            "origin": spec.priority.queue_name,
            "description": f"{spec.handler} task {spec.task_id}",
            "timeout": spec.timeout_seconds,
            "status": JobStatus.SCHEDULED.value if delayed else JobStatus.QUEUED.value,
        }
        if not delayed:
            fields["enqueued_at"] = now_text
        if spec.max_attempts > 1:  # RQ's own retry re-queues a failed attempt after these delays
            fields["retries_left"] = spec.max_attempts - 1
            fields["retry_intervals"] = _retry_intervals(spec.backoff, spec.max_attempts)
        return fields

    def job_hash(
        self, job_id: str, spec: TaskSpec, run_at: datetime | None, schedule_id: int | None, now: datetime
    ) -> dict[str, str | bytes | int]:
        """The whole RQ job hash of a new job, as RQ's ``Job.save`` would write it."""
        return self._shared_fields(now) | self._own_fields((job_id, spec, run_at, schedule_id), now, rq_time(now))

    def _create_keys(self) -> list[str]:
        keys = [PAUSED_KEY, Queue.redis_queues_keys]
        for queue in self.queues.values():
            keys += [queue.key, paused_key(queue.name), delayed_key(queue.name)]
        return keys

    def _create_args(self, jobs: Sequence[BulkJob]) -> list[Any]:
        now = datetime.now(UTC)
        shared = self._shared_fields(now)
        now_text = str(shared["created_at"])
        args: list[Any] = [RQJob.redis_job_namespace_prefix, WAKE_CHANNEL, len(shared)]
        for shared_pair in shared.items():
            args += shared_pair
        for job in jobs:
            job_id, spec, run_at, _ = job
            own = self._own_fields(job, now, now_text)
            due = f"{_ms(run_at):.0f}" if run_at is not None and run_at > now else ""
            args += (job_id, self._place[spec.priority], due, len(own))
            for own_pair in own.items():
                args += own_pair
        return args

    def enqueue(
        self, job_id: str, spec: TaskSpec, *, run_at: datetime | None = None, schedule_id: int | None = None
    ) -> Enqueued:
        """Queue a job now (or at ``run_at``); a second call with the same id changes nothing."""
        return Enqueued(job_id, created=self.enqueue_many([(job_id, spec, run_at, schedule_id)]) == 1)

    def enqueue_many(self, jobs: Sequence[BulkJob]) -> int:
        """Queue every job whose id is not in Redis yet, in one round trip; returns how many.

        One script creates the whole batch atomically (no other command runs in between),
        so a job that another process (a second dispatcher, the recovery sweep, a retried
        call) queues at the same moment is created once, and no worker sees half a batch.
        """
        if not jobs:
            return 0
        args = self._create_args(jobs)
        for attempt in (1, 2):
            try:
                if not self._create_sha:
                    # Called by digest: redis-py's Script would check that it exists before
                    # every call. Loaded on first use and again after a Redis restart.
                    self._create_sha = str(self.redis.script_load(_CREATE))
                keys = self._create_key_list
                return int(self.redis.evalsha(self._create_sha, len(keys), *keys, *args))
            except NoScriptError:
                self._create_sha = ""
                if attempt == 2:
                    raise
            except (RedisConnectionError, RedisTimeoutError) as exc:
                raise Unavailable(f"Redis is unreachable: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def stranded(self, job_ids: Sequence[str]) -> list[str]:
        """Those of ``job_ids`` that are 'queued' in Redis but on no queue or paused list.

        A worker that dies between taking a job (BLPOP) and starting it leaves it so. A job
        being taken right now looks the same for a moment: confirm with a later call.
        """
        if not job_ids:
            return []
        prefix = RQJob.redis_job_namespace_prefix
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(f"{prefix}{job_id}", "status", "origin")
            fields = pipe.execute()
        queued = [
            (job_id, _text(origin) or "")
            for job_id, (status, origin) in zip(job_ids, fields, strict=True)
            if _text(status) == "queued"
        ]
        if not queued:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id, origin in queued:
                pipe.lpos(queue_key(origin), job_id)
                pipe.lpos(paused_key(origin), job_id)
            positions = pipe.execute()
        return [
            job_id
            for index, (job_id, _) in enumerate(queued)
            if positions[2 * index] is None and positions[2 * index + 1] is None
        ]

    def restore(self, job_ids: Iterable[str]) -> int:
        """Put stranded jobs (see :meth:`stranded`) back at the front of their queue."""
        restored = 0
        prefix = RQJob.redis_job_namespace_prefix
        for job_id in job_ids:
            origin = _text(self.redis.hget(f"{prefix}{job_id}", "origin"))
            if origin:
                keys = [f"{prefix}{job_id}", queue_key(origin), paused_key(origin), PAUSED_KEY]
                restored += int(self._restore(keys=keys, args=[job_id]))
        return restored

    def missing(self, job_ids: Sequence[str]) -> list[str]:
        """Those of ``job_ids`` that have no job in Redis (one round trip)."""
        if not job_ids:
            return []
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    pipe.exists(f"{RQJob.redis_job_namespace_prefix}{job_id}")
                present = pipe.execute()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise Unavailable(f"Redis is unreachable: {exc}") from exc
        return [job_id for job_id, exists in zip(job_ids, present, strict=True) if not exists]

    # -- timing ------------------------------------------------------------------------

    def _promote_keys(self) -> list[str]:
        keys = [PAUSED_KEY]
        for queue in self.queues.values():
            keys += [delayed_key(queue.name), queue.key, paused_key(queue.name)]
        return keys

    def promote_due(self, now_ms: float | None = None, limit: int = 1000) -> int:
        """Move every delayed job whose time has come to its queue; returns how many moved."""
        moment = _now_ms() if now_ms is None else now_ms
        enqueued_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        total = 0
        while True:
            moved = int(
                self._promote(
                    keys=self._promote_keys(),
                    args=[f"{moment:.3f}", limit, enqueued_at, RQJob.redis_job_namespace_prefix],
                )
            )
            total += moved
            if moved < limit:
                return total

    def next_due_ms(self) -> float | None:
        """When the earliest delayed job is due (epoch milliseconds), or None."""
        with self.redis.pipeline(transaction=False) as pipe:
            for queue in self.queues.values():
                pipe.zrange(delayed_key(queue.name), 0, 0, withscores=True)
            firsts = [entry[0][1] for entry in pipe.execute() if entry]
        return min(firsts) if firsts else None

    # -- inspecting and cancelling -------------------------------------------------------

    def fetch(self, job_id: str) -> RQJob | None:
        try:
            return RQJob.fetch(job_id, connection=self.redis, serializer=SERIALIZER)
        except Exception:  # NoSuchJobError, or a hash that is not ours
            return None

    def state(self, job_id: str) -> JobState | None:
        status = self.redis.hget(f"{RQJob.redis_job_namespace_prefix}{job_id}", "status")
        if status is None:
            return None
        return _RQ_TO_STATE.get(JobStatus(status.decode() if isinstance(status, bytes) else status))

    def cancel(self, job_id: str, priority: Priority) -> JobState | None:
        """Take a waiting or delayed job off its queue; returns the state it was in.

        A running job cannot be interrupted from here (workers run it in their own
        process); the worker sees its cancelled record and neither records its result
        nor retries it.
        """
        name = self.queues[priority].name
        try:
            status = self._cancel(
                keys=[
                    f"{RQJob.redis_job_namespace_prefix}{job_id}",
                    queue_key(name),
                    paused_key(name),
                    delayed_key(name),
                ],
                args=[job_id, self.completed_max_age_seconds],
            )
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise Unavailable(f"Redis is unreachable: {exc}") from exc
        if status is None:
            return None
        text = status.decode() if isinstance(status, bytes) else str(status)
        return _RQ_TO_STATE.get(JobStatus(text))

    # -- pause -------------------------------------------------------------------------

    def _pair_keys(self) -> list[str]:
        keys = [PAUSED_KEY]
        for queue in self.queues.values():
            keys += [queue.key, paused_key(queue.name)]
        return keys

    def pause(self) -> None:
        self._pause(keys=self._pair_keys())

    def resume(self) -> None:
        self._resume(keys=self._pair_keys())

    def is_paused(self) -> bool:
        return bool(self.redis.exists(PAUSED_KEY))

    # -- statistics and housekeeping -----------------------------------------------------

    def stats(self) -> QueueStats:
        """Counts by state, overall and per priority (BullMQ's getJobCounts, by priority too)."""
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.exists(PAUSED_KEY)
                for queue in self.queues.values():
                    pipe.llen(queue.key)
                    pipe.llen(paused_key(queue.name))
                    pipe.zcard(StartedJobRegistry(queue=queue).key)
                    pipe.zcard(FinishedJobRegistry(queue=queue).key)
                    pipe.zcard(FailedJobRegistry(queue=queue).key)
                    pipe.zcard(delayed_key(queue.name))
                    pipe.zcard(queue.scheduled_job_registry.key)
                results = pipe.execute()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise Unavailable(f"Redis is unreachable: {exc}") from exc
        stats = QueueStats(is_paused=bool(results[0]))
        for index, priority in enumerate(self.queues):
            waiting, paused, active, completed, failed, delayed, rq_scheduled = results[1 + index * 7 : 8 + index * 7]
            counts = {
                "waiting": int(waiting),
                "active": int(active),
                "completed": int(completed),
                "failed": int(failed),
                "delayed": int(delayed) + int(rq_scheduled),
                "paused": int(paused),
            }
            stats.by_priority[priority] = counts
            stats.waiting += counts["waiting"]
            stats.active += counts["active"]
            stats.completed += counts["completed"]
            stats.failed += counts["failed"]
            stats.delayed += counts["delayed"]
            stats.paused += counts["paused"]
        return stats

    def backlog(self, priorities: Iterable[Priority] | None = None) -> int:
        """Jobs waiting (or paused) in the given queues: what a worker pool still has to do."""
        with self.redis.pipeline(transaction=False) as pipe:
            for priority in priorities or self.queues:
                pipe.llen(self.queues[priority].key)
                pipe.llen(paused_key(self.queues[priority].name))
            return sum(int(count) for count in pipe.execute())

    def apply_retention(self) -> int:
        """Keep the newest ``completed_keep`` finished and ``failed_keep`` failed jobs; drop the rest.

        Completed jobs older than ``completed_max_age_seconds`` go too. PostgreSQL keeps the
        history; this only bounds Redis memory.
        """
        removed = 0
        cutoff = datetime.fromtimestamp(time.time() - self.completed_max_age_seconds, UTC)
        for registry_class, keep in ((FinishedJobRegistry, self.completed_keep), (FailedJobRegistry, self.failed_keep)):
            entries: list[tuple[str, str, KadenceQueue]] = []  # (ended_at, job id, queue)
            for queue in self.queues.values():
                key = registry_class(queue=queue).key
                members: list[bytes] = self.redis.zrange(key, 0, -1)  # type: ignore[assignment]
                ids = [member.decode() for member in members]
                with self.redis.pipeline(transaction=False) as pipe:
                    for job_id in ids:
                        pipe.hget(f"{RQJob.redis_job_namespace_prefix}{job_id}", "ended_at")
                    ended = pipe.execute()
                entries += [(_text(end) or "", job_id, queue) for job_id, end in zip(ids, ended, strict=True)]
            entries.sort(reverse=True)  # ISO timestamps sort in time order: newest first
            stale = entries[keep:]
            if registry_class is FinishedJobRegistry:
                stale += [entry for entry in entries[:keep] if _parse_time(entry[0]) < cutoff]
            for start in range(0, len(stale), 500):
                with self.redis.pipeline(transaction=False) as pipe:
                    for _, job_id, queue in stale[start : start + 500]:
                        pipe.zrem(registry_class(queue=queue).key, job_id)
                        pipe.delete(
                            f"{RQJob.redis_job_namespace_prefix}{job_id}",
                            f"{RQJob.redis_job_namespace_prefix}{job_id}:dependents",
                            f"rq:results:{job_id}",
                            f"rq:executions:{job_id}",
                        )
                    pipe.execute()
            removed += len(stale)
        return removed

    def recover_abandoned(self, job_ids: Iterable[str] = ()) -> None:
        """Fail (and so retry or finally fail) jobs whose worker died.

        Jobs named in ``job_ids`` are treated as abandoned at once (their worker is known to
        be dead); others are found when their started-registry entry expires.
        """
        wanted = set(job_ids)
        for queue in self.queues.values():
            registry = KadenceStartedJobRegistry(queue=queue)
            if wanted:
                started: list[bytes] = self.redis.zrange(registry.key, 0, -1)  # type: ignore[assignment]
                for member in started:
                    text = member.decode()
                    if text.split(":", 1)[0] in wanted:
                        self.redis.zadd(registry.key, {text: 0}, xx=True)
            registry.cleanup()

    def jobs_of_worker(self, worker_name: str) -> list[str]:
        """Ids of the jobs a worker was executing (RQ indexes its executions per worker)."""
        members = self.redis.smembers(WORKER_EXECUTIONS_KEY_TEMPLATE.format(worker_name))
        return sorted({(m.decode() if isinstance(m, bytes) else m).split(":", 1)[0] for m in members})

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except (RedisConnectionError, RedisTimeoutError):
            return False


class Promoter:
    """Moves delayed jobs to their queues the moment they are due.

    It sleeps until the earliest delayed job is due, and is woken early by a pub/sub
    message whenever a job with an earlier time is scheduled. Several promoters (one per
    worker pool and dispatcher) may run at once: the move is one atomic script.
    """

    def __init__(self, queue: TaskQueue, max_sleep: float = 5.0) -> None:
        self.queue = queue
        self.max_sleep = max_sleep

    def run(self, should_stop: Any) -> None:
        """Loop until ``should_stop()`` is true (checked at least every ``max_sleep`` seconds)."""
        pubsub = None
        while not should_stop():
            try:
                if pubsub is None:
                    pubsub = self.queue.redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                    pubsub.subscribe(WAKE_CHANNEL)
                self.queue.promote_due()
                due = self.queue.next_due_ms()
                wait = self.max_sleep if due is None else (due - _now_ms()) / 1000.0
                wait = min(max(wait, 0.0), self.max_sleep)
                if wait > 0:
                    pubsub.get_message(timeout=wait)
                    while pubsub.get_message(timeout=0) is not None:
                        pass
            except (RedisConnectionError, RedisTimeoutError) as exc:
                log.warning("promoter lost Redis, retrying error=%s", exc)
                if pubsub is not None:
                    pubsub.close()
                    pubsub = None
                time.sleep(1.0)
        if pubsub is not None:
            pubsub.close()
