"""ScheduledTask against the real operator, real PostgreSQL/Redis and a real worker."""

from __future__ import annotations

import asyncio
from typing import Any

from kadence.core import SchedulerCore
from kadence.domain.models import JobState, UserContext
from tests.controller.conftest import NAMESPACE, Cluster, OperatorRunner, eventually
from tests.support import WebhookReceiver

PLURAL = "scheduledtasks"


def task(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kadence.dev/v1alpha1",
        "kind": "ScheduledTask",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"taskId": name, "userId": 7, **spec},
    }


def jobs_of(core: SchedulerCore, owner: str) -> list[tuple[str, str]]:
    with core.db.session(UserContext.system()) as conn:
        rows = conn.execute("SELECT id, state FROM jobs WHERE owner = %s", (owner,)).fetchall()
    return [(row["id"], row["state"]) for row in rows]


async def test_webhook_task_runs_to_completed(
    cluster: Cluster, operator: OperatorRunner, worker_pool: Any, receiver: WebhookReceiver, core: SchedulerCore
) -> None:
    worker_pool(1)
    created = await cluster.create(PLURAL, task("hello", handler="webhook", args={"url": receiver.url},
                                                taskGoal="say hello"))
    uid = created["metadata"]["uid"]
    job_id = f"stask-{uid}"

    status = await eventually(lambda: cluster.status(PLURAL, "hello").get("phase") == "Completed"
                              and cluster.status(PLURAL, "hello"), timeout=20, message="Completed")
    assert status["jobId"] == job_id
    assert status["attempts"] == 1
    assert status["finishedAt"] and status["startedAt"]
    assert status["observedGeneration"] == 1
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Accepted"]["status"] == "True"
    assert conditions["Complete"]["status"] == "True"
    deliveries = receiver.for_job(job_id)
    assert len(deliveries) == 1
    assert deliveries[0].body["userId"] == 7 and deliveries[0].body["taskGoal"] == "say hello"
    job = core.get_job(UserContext.system(), job_id)
    assert job.owner == f"{NAMESPACE}/hello" and job.user_id == 7
    await eventually(lambda: {"Enqueued", "Completed"} <= set(cluster.reasons("hello")), message="events")
    assert cluster.emulator.rejected == []


async def test_status_follows_the_job_within_two_seconds(
    cluster: Cluster, operator: OperatorRunner, worker_pool: Any, receiver: WebhookReceiver, core: SchedulerCore
) -> None:
    worker_pool(1)
    await cluster.create(PLURAL, task("quick", handler="noop"))
    await eventually(lambda: cluster.status(PLURAL, "quick").get("jobId"), timeout=10)
    job_id = cluster.status(PLURAL, "quick")["jobId"]
    finished = await eventually(
        lambda: (job := core.get_job(UserContext.system(), job_id)).state.is_final and job, timeout=20
    )
    assert finished.state is JobState.COMPLETED
    await eventually(lambda: cluster.status(PLURAL, "quick").get("phase") == "Completed", timeout=2.5,
                     message="status within 2 s of the job finishing")


async def test_failing_task_reaches_failed_after_max_attempts(
    cluster: Cluster, operator: OperatorRunner, worker_pool: Any, receiver: WebhookReceiver
) -> None:
    receiver.default_status = 500
    worker_pool(1)
    await cluster.create(PLURAL, task("broken", handler="webhook", args={"url": receiver.url}, maxAttempts=2,
                                      backoff={"baseSeconds": 0.2, "maxSeconds": 0.2}))
    status = await eventually(lambda: cluster.status(PLURAL, "broken").get("phase") == "Failed"
                              and cluster.status(PLURAL, "broken"), timeout=30, message="Failed")
    assert status["attempts"] == 2
    assert status["lastError"]
    assert len(receiver.for_job(status["jobId"])) == 2
    await eventually(lambda: "Failed" in cluster.reasons("broken"), message="Failed event")
    assert cluster.emulator.rejected == []


async def test_deleting_a_delayed_task_cancels_its_job(
    cluster: Cluster, operator: OperatorRunner, core: SchedulerCore
) -> None:
    await cluster.create(PLURAL, task("later", handler="noop", delaySeconds=600))
    status = await eventually(lambda: cluster.status(PLURAL, "later").get("phase") == "Delayed"
                              and cluster.status(PLURAL, "later"), timeout=10, message="Delayed")
    assert status["scheduledFor"]
    await cluster.delete(PLURAL, "later")
    await eventually(lambda: cluster.read(PLURAL, "later") is None, timeout=10, message="resource gone")
    job = core.get_job(UserContext.system(), status["jobId"])
    assert job.state is JobState.CANCELLED
    assert core.queue.backlog() == 0


async def test_spec_change_after_scheduling_is_refused(
    cluster: Cluster, operator: OperatorRunner, core: SchedulerCore
) -> None:
    await cluster.create(PLURAL, task("fixed", handler="noop", delaySeconds=600))
    status = await eventually(lambda: cluster.status(PLURAL, "fixed").get("jobId")
                              and cluster.status(PLURAL, "fixed"), timeout=10)
    await cluster.patch(PLURAL, "fixed", {"spec": {"priority": "critical"}})

    def refused() -> dict[str, Any] | None:
        conditions = {c["type"]: c for c in cluster.status(PLURAL, "fixed").get("conditions", [])}
        applied = conditions.get("SpecApplied")
        return applied if applied and applied["status"] == "False" else None

    applied = await eventually(refused, timeout=10, message="SpecApplied=False")
    assert applied["reason"] == "SpecImmutable"
    assert cluster.status(PLURAL, "fixed")["observedGeneration"] == 2
    assert core.get_job(UserContext.system(), status["jobId"]).priority.value == "normal"
    assert [job_id for job_id, _ in jobs_of(core, f"{NAMESPACE}/fixed")] == [status["jobId"]]
    await eventually(lambda: "SpecImmutable" in cluster.reasons("fixed"), message="SpecImmutable event")


async def test_invalid_spec_names_the_field_and_is_not_retried(
    cluster: Cluster, operator: OperatorRunner, core: SchedulerCore
) -> None:
    # The schema cannot tell that a webhook needs args.url; the operator can.
    await cluster.create(PLURAL, task("nourl", handler="webhook", args={}))

    def rejected() -> dict[str, Any] | None:
        conditions = {c["type"]: c for c in cluster.status(PLURAL, "nourl").get("conditions", [])}
        return conditions.get("Accepted")

    accepted = await eventually(rejected, timeout=10, message="Accepted condition")
    assert accepted["status"] == "False"
    assert accepted["reason"] == "InvalidSpec"
    assert "spec.args.url" in accepted["message"]
    patches_before = len(cluster.emulator._requests)
    await asyncio.sleep(3)
    assert cluster.reasons("nourl").count("InvalidSpec") == 1
    assert jobs_of(core, f"{NAMESPACE}/nourl") == []
    assert "phase" not in cluster.status(PLURAL, "nourl")
    assert len(cluster.emulator._requests) - patches_before < 10  # no retry loop


async def test_operator_restart_does_not_enqueue_twice(
    cluster: Cluster, operator: OperatorRunner, core: SchedulerCore, worker_pool: Any
) -> None:
    created = await cluster.create(PLURAL, task("once", handler="noop", delaySeconds=3))
    status = await eventually(lambda: cluster.status(PLURAL, "once").get("jobId")
                              and cluster.status(PLURAL, "once"), timeout=10)
    await operator.stop()
    # As if the operator had died after scheduling but before it recorded anything:
    # kopf's progress annotations and the status are lost, so the create handler runs again.
    key = ("kadence.dev/v1alpha1/scheduledtasks", NAMESPACE, "once")
    stored = cluster.emulator.objects[key]
    annotations = {name: None for name in stored["metadata"].get("annotations", {}) if name.startswith("kadence.dev")}
    stored.patch({"metadata": {"annotations": annotations}, "status": None})
    await operator.start()
    worker_pool(1)
    final = await eventually(lambda: cluster.status(PLURAL, "once").get("phase") == "Completed"
                             and cluster.status(PLURAL, "once"), timeout=20, message="Completed after restart")
    assert final["jobId"] == status["jobId"] == f"stask-{created['metadata']['uid']}"
    assert jobs_of(core, f"{NAMESPACE}/once") == [(status["jobId"], "completed")]
    assert core.queue.stats().completed == 1


async def test_ttl_deletes_finished_tasks(cluster: Cluster, operator: OperatorRunner, worker_pool: Any) -> None:
    worker_pool(1)
    await cluster.create(PLURAL, task("shortlived", handler="noop", ttlSecondsAfterFinished=1))
    await eventually(lambda: cluster.status(PLURAL, "shortlived").get("phase") == "Completed", timeout=20)
    await eventually(lambda: cluster.read(PLURAL, "shortlived") is None, timeout=10, message="deleted after ttl")
