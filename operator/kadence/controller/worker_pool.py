"""WorkerPool: an owned worker Deployment whose replicas follow ``spec.concurrency``.

Each pod runs ``kadence worker --concurrency 1`` (one RQ worker process), so
``replicas = concurrency``. The Deployment is created if missing and patched back when
it drifts (scaled or edited by hand, or deleted) — by the reconcile handler on spec
changes and by a timer that also reports replicas, ready replicas and the queue backlog.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from kadence.controller import builders, k8s
from kadence.controller.runtime import Runtime, call_core, runtime_of
from kadence.domain.resources import GROUP, VERSION, WORKER_POOL, WorkerPoolSpec

PLURAL = WORKER_POOL.plural
SYNC_INTERVAL = 2.0


def _now() -> datetime:
    return datetime.now(UTC)


async def _ensure_deployment(runtime: Runtime, body: Any, spec: WorkerPoolSpec, logger: Any) -> dict[str, Any]:
    """Exists-then-create, else patch what drifted; returns the live Deployment."""
    meta = body["metadata"]
    namespace = meta.get("namespace")
    desired = builders.build_worker_deployment(
        meta["name"], namespace, spec, settings=runtime.settings, secret_name=runtime.worker_secret
    )
    kopf.adopt(desired, owner=body)
    collection = k8s.object_path("apps/v1", "deployments", namespace)
    path = k8s.object_path("apps/v1", "deployments", namespace, desired["metadata"]["name"])
    existing = await k8s.get(runtime.kopf_settings, path, logger=logger)
    if existing is None:
        try:
            created = await k8s.create(runtime.kopf_settings, collection, desired, logger=logger)
        except k8s.Conflict:
            raise kopf.TemporaryError("the worker Deployment appeared meanwhile; retrying", delay=1) from None
        kopf.event(body, type="Normal", reason="DeploymentCreated",
                   message=f"created Deployment {desired['metadata']['name']} with {spec.concurrency} replica(s)")
        logger.info("workerpool deployment created name=%s replicas=%s", desired["metadata"]["name"], spec.concurrency)
        return created
    drift = builders.deployment_drift(existing, desired)
    if drift is None:
        return existing
    patched = await k8s.merge_patch(runtime.kopf_settings, path, drift, logger=logger)
    kopf.event(body, type="Normal", reason="DeploymentUpdated",
               message=f"Deployment {desired['metadata']['name']} set to {spec.concurrency} replica(s)")
    logger.info("workerpool deployment corrected name=%s replicas=%s was=%s", desired["metadata"]["name"],
                spec.concurrency, existing.get("spec", {}).get("replicas"))
    return patched or existing


async def _reconcile(body: Any, status: Any, patch: kopf.Patch, memo: kopf.Memo, retry: int, logger: Any,
                     *, report_invalid: bool) -> None:
    runtime = runtime_of(memo)
    meta = body["metadata"]
    try:
        spec = WorkerPoolSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as error:
        if not report_invalid:
            return
        field, reason = builders.invalid_field(error)
        patch.status["conditions"] = builders.merge_conditions(
            status.get("conditions"), builders.invalid_spec_condition(field, reason, now=_now(), type_="Ready")
        )
        patch.status["observedGeneration"] = meta.get("generation")
        kopf.warn(body, reason="InvalidSpec", message=f"{field}: {reason}")
        raise kopf.PermanentError(f"{field}: {reason}") from None
    deployment = await _ensure_deployment(runtime, body, spec, logger)
    backlog = await call_core(runtime.core.queue.backlog, spec.queues, retry=retry)
    wanted = builders.worker_pool_status(deployment, backlog)
    ready = wanted["readyReplicas"] >= spec.concurrency
    wanted_conditions = builders.merge_conditions(
        status.get("conditions"),
        builders.condition(
            "Ready", ready, "WorkersReady" if ready else "WorkersStarting",
            f"{wanted['readyReplicas']}/{spec.concurrency} worker(s) ready", now=_now(),
        ),
    )
    changes = builders.changed_fields(status, wanted)
    if wanted_conditions != list(status.get("conditions") or []):
        changes["conditions"] = wanted_conditions
    if status.get("observedGeneration") != meta.get("generation"):
        changes["observedGeneration"] = meta.get("generation")
    if changes:
        patch.status.update(changes)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def reconcile_pool(body: Any, status: Any, patch: kopf.Patch, memo: kopf.Memo, retry: int, logger: Any,
                         **_: Any) -> None:
    await _reconcile(body, status, patch, memo, retry, logger, report_invalid=True)


@kopf.timer(GROUP, VERSION, PLURAL, interval=SYNC_INTERVAL, initial_delay=SYNC_INTERVAL)
async def sync_pool(*, body: Any, status: Any, patch: kopf.Patch, memo: kopf.Memo, retry: int = 0, logger: Any,
                    **_: Any) -> None:
    """Correct drift of the Deployment and refresh replicas, readiness and backlog."""
    await _reconcile(body, status, patch, memo, retry, logger, report_invalid=False)
