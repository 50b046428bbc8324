"""Pure builders of the operator: typed specs and records in, Kubernetes dicts out.

Nothing here talks to Kubernetes, PostgreSQL or Redis; every function is unit-testable
without a cluster. Status dicts use the wire (camelCase) names of
``kadence.domain.resources`` and RFC 3339 UTC timestamps.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from kadence.config import Settings
from kadence.domain.errors import InvalidInput
from kadence.domain.models import CronSchedule, Job, JobState
from kadence.domain.resources import ScheduledTaskPhase, WorkerPoolSpec

JOB_ID_PREFIX = "stask-"
MANAGED_BY = "kadence-operator"
TEMPLATE_HASH_ANNOTATION = "kadence.dev/template-hash"
SPEC_HASH_ANNOTATION = "kadence.dev/accepted-spec-hash"
WORKER_CONTAINER = "worker"
FINAL_PHASES = frozenset({ScheduledTaskPhase.COMPLETED, ScheduledTaskPhase.FAILED, ScheduledTaskPhase.CANCELLED})

_PHASES = {
    JobState.WAITING: ScheduledTaskPhase.WAITING,
    JobState.DELAYED: ScheduledTaskPhase.DELAYED,
    JobState.ACTIVE: ScheduledTaskPhase.ACTIVE,
    JobState.COMPLETED: ScheduledTaskPhase.COMPLETED,
    JobState.FAILED: ScheduledTaskPhase.FAILED,
    JobState.CANCELLED: ScheduledTaskPhase.CANCELLED,
}


# -- names and small values ------------------------------------------------------------


def job_id_for(uid: str) -> str:
    """The Kadence job id of a ScheduledTask: derived from its UID, so a retry never enqueues twice."""
    return f"{JOB_ID_PREFIX}{uid}"


def owner_of(namespace: str | None, name: str) -> str:
    """How jobs and schedules name the resource that owns them: ``namespace/name``."""
    return f"{namespace or ''}/{name}"


def timestamp(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a ``Z`` and whole seconds' precision kept as given."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def spec_hash(spec: Mapping[str, Any]) -> str:
    """A stable digest of a spec, to tell later whether it changed."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- conditions --------------------------------------------------------------------------


def condition(type_: str, status: bool, reason: str, message: str = "", *, now: datetime) -> dict[str, Any]:
    """One ``metav1.Condition``-shaped entry."""
    return {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": timestamp(now),
    }


def merge_conditions(current: Iterable[Mapping[str, Any]] | None, *updates: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Replace conditions by type; keep ``lastTransitionTime`` when the status did not change."""
    merged = [dict(item) for item in current or ()]
    for update in updates:
        for index, existing in enumerate(merged):
            if existing.get("type") == update["type"]:
                new = dict(update)
                if existing.get("status") == update["status"] and existing.get("lastTransitionTime"):
                    new["lastTransitionTime"] = existing["lastTransitionTime"]
                merged[index] = new
                break
        else:
            merged.append(dict(update))
    return merged


def invalid_field(error: ValidationError | InvalidInput) -> tuple[str, str]:
    """The field path (``spec.args.url``) and reason of a spec the operator cannot accept."""
    if isinstance(error, InvalidInput):
        return f"spec.{error.field}", error.reason
    first = error.errors(include_url=False)[0]
    path = ".".join(str(part) for part in first.get("loc", ()))
    return (f"spec.{path}" if path else "spec"), str(first.get("msg", "invalid"))


def invalid_spec_condition(field: str, reason: str, *, now: datetime, type_: str = "Accepted") -> dict[str, Any]:
    return condition(type_, False, "InvalidSpec", f"{field}: {reason}", now=now)


# -- ScheduledTask -----------------------------------------------------------------------


def phase_of(state: JobState) -> ScheduledTaskPhase:
    return _PHASES[state]


def scheduled_task_status(job: Job) -> dict[str, Any]:
    """The job-derived part of a ScheduledTask's status (conditions and generation are added by callers)."""
    return {
        "phase": phase_of(job.state).value,
        "jobId": job.job_id,
        "attempts": job.attempts,
        "scheduledFor": timestamp(job.scheduled_for),
        "startedAt": timestamp(job.started_at),
        "finishedAt": timestamp(job.finished_at),
        "lastError": job.error,
    }


def job_condition(job: Job, *, now: datetime) -> dict[str, Any]:
    """``Complete``-style summary: True once the job finished successfully."""
    state = job.state
    if state is JobState.COMPLETED:
        return condition("Complete", True, "JobCompleted", f"job {job.job_id} completed", now=now)
    if state is JobState.FAILED:
        return condition(
            "Complete", False, "JobFailed",
            f"job {job.job_id} failed after {job.attempts} attempt(s): {job.error or 'unknown error'}", now=now,
        )
    if state is JobState.CANCELLED:
        return condition("Complete", False, "JobCancelled", f"job {job.job_id} was cancelled", now=now)
    return condition("Complete", False, f"Job{state.value.capitalize()}", f"job {job.job_id} is {state.value}", now=now)


def changed_fields(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``wanted`` that differ from ``current`` (None clears a field)."""
    return {key: value for key, value in wanted.items() if current.get(key) != value}


def is_final(phase: str | None) -> bool:
    return phase in {p.value for p in FINAL_PHASES}


# -- CronSchedule ------------------------------------------------------------------------


def cron_schedule_status(schedule: CronSchedule) -> dict[str, Any]:
    """The row-derived part of a CronSchedule's status."""
    return {
        "scheduleId": schedule.id,
        "lastRun": timestamp(schedule.last_run),
        "nextRun": timestamp(schedule.next_run),
        "lastJobId": schedule.last_job_id,
        "lastResult": schedule.last_result,
        "missedTicks": schedule.missed_ticks,
        "skippedTicks": schedule.skipped_ticks,
    }


# -- WorkerPool --------------------------------------------------------------------------


def worker_labels(pool_name: str) -> dict[str, str]:
    """Selector labels of a pool's worker pods (stable: they never change after creation)."""
    return {
        "app.kubernetes.io/name": "kadence",
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/instance": pool_name,
    }


def worker_deployment_name(pool_name: str) -> str:
    return f"{pool_name}-workers"[:63].rstrip("-")


def worker_env(settings: Settings, secret_name: str, extra: Sequence[Any] | None) -> list[dict[str, Any]]:
    """Connection settings from the Kadence Secret, the operator's own handler settings, then the pool's env."""
    env: list[dict[str, Any]] = [
        {"name": "KADENCE_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "database-url"}}},
        {"name": "KADENCE_REDIS_URL", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "redis-url"}}},
        {
            "name": "KADENCE_WEBHOOK_SECRET",
            "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "webhook-secret", "optional": True}},
        },
        {"name": "KADENCE_LOG_LEVEL", "value": settings.log_level},
        {"name": "KADENCE_WEBHOOK_ALLOWED_HOSTS", "value": ",".join(settings.webhook_allowed_hosts)},
        {"name": "KADENCE_PYTHON_ALLOWED_PREFIXES", "value": ",".join(settings.python_allowed_prefixes)},
        {"name": "KADENCE_WEBHOOK_TIMEOUT_SECONDS", "value": str(settings.webhook_timeout_seconds)},
    ]
    for var in extra or ():
        env = [item for item in env if item["name"] != var.name]
        env.append({"name": var.name, "value": var.value})
    return env


def worker_args(spec: WorkerPoolSpec) -> list[str]:
    """``kadence worker`` for one process, on the pool's queues when it names some."""
    args = ["worker", "--concurrency", "1"]
    if spec.queues:
        args += ["--queues", ",".join(priority.value for priority in spec.queues)]
    return args


def build_worker_deployment(
    pool_name: str, namespace: str | None, spec: WorkerPoolSpec, *, settings: Settings, secret_name: str
) -> dict[str, Any]:
    """The Deployment of a WorkerPool: ``concurrency`` pods of one RQ worker process each.

    One process per pod lets Kubernetes place, limit and restart each worker on its own;
    the pod template's hash is kept in an annotation so drift is cheap to detect.
    """
    labels = worker_labels(pool_name)
    container: dict[str, Any] = {
        "name": WORKER_CONTAINER,
        "image": spec.image or settings.worker_image,
        "imagePullPolicy": "IfNotPresent",
        "args": worker_args(spec),
        "env": worker_env(settings, secret_name, spec.env),
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if spec.resources is not None:
        resources = spec.resources.model_dump(by_alias=True, exclude_none=True)
        if resources:
            container["resources"] = resources
    template: dict[str, Any] = {
        "metadata": {"labels": {**labels, "app.kubernetes.io/managed-by": MANAGED_BY}},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "automountServiceAccountToken": False,
            # Workers finish their current job on SIGTERM (warm shutdown, at most 30 s).
            "terminationGracePeriodSeconds": 45,
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        },
    }
    metadata: dict[str, Any] = {
        "name": worker_deployment_name(pool_name),
        "labels": {**labels, "app.kubernetes.io/managed-by": MANAGED_BY},
        "annotations": {TEMPLATE_HASH_ANNOTATION: spec_hash(template)},
    }
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": spec.concurrency,
            "selector": {"matchLabels": labels},
            "template": template,
        },
    }


def deployment_drift(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch that brings ``existing`` back to ``desired``, or None when nothing drifted."""
    wanted_hash = desired["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION]
    have_hash = (existing.get("metadata", {}).get("annotations") or {}).get(TEMPLATE_HASH_ANNOTATION)
    patch: dict[str, Any] = {}
    if have_hash != wanted_hash:
        patch["metadata"] = {"annotations": {TEMPLATE_HASH_ANNOTATION: wanted_hash}}
        patch["spec"] = {"template": desired["spec"]["template"]}
    if existing.get("spec", {}).get("replicas") != desired["spec"]["replicas"]:
        patch.setdefault("spec", {})["replicas"] = desired["spec"]["replicas"]
    return patch or None


def worker_pool_status(deployment: Mapping[str, Any] | None, backlog: int | None) -> dict[str, Any]:
    """Replicas wanted and ready (from the Deployment) and the jobs waiting on the pool's queues."""
    spec = (deployment or {}).get("spec", {})
    status = (deployment or {}).get("status", {}) or {}
    result: dict[str, Any] = {
        "replicas": int(spec.get("replicas") or 0),
        "readyReplicas": int(status.get("readyReplicas") or 0),
    }
    if backlog is not None:
        result["backlog"] = backlog
    return result
