"""WorkerPool: the owned Deployment, drift correction and status."""

from __future__ import annotations

from typing import Any

from kadence.core import SchedulerCore, TaskInput
from kadence.domain.models import UserContext
from tests.controller.conftest import NAMESPACE, Cluster, OperatorRunner, eventually

PLURAL = "workerpools"


def pool(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kadence.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def deployment(cluster: Cluster, name: str) -> dict[str, Any] | None:
    return cluster.read("deployments", name, api_version="apps/v1")


async def test_pool_owns_a_deployment_that_follows_concurrency(
    cluster: Cluster, operator: OperatorRunner, core: SchedulerCore
) -> None:
    created = await cluster.create(PLURAL, pool("default", concurrency=3, queues=["critical", "high"],
                                                image="registry.example/kadence:1.2",
                                                env=[{"name": "EXTRA", "value": "1"}],
                                                resources={"limits": {"memory": "256Mi"}}))
    found = await eventually(lambda: deployment(cluster, "default-workers"), timeout=10, message="Deployment")
    assert found["spec"]["replicas"] == 3
    owner = found["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "WorkerPool" and owner["uid"] == created["metadata"]["uid"] and owner["controller"]
    container = found["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/kadence:1.2"
    assert container["args"] == ["worker", "--concurrency", "1", "--queues", "critical,high"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    env = {item["name"]: item for item in container["env"]}
    assert env["KADENCE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "kadence-test"
    assert env["EXTRA"]["value"] == "1"
    assert container["resources"] == {"limits": {"memory": "256Mi"}}

    # Three jobs wait on the pool's queues, one on a queue it does not serve.
    for priority in ("critical", "high", "high", "low"):
        core.schedule_task(UserContext.system(), TaskInput(task_id="t", user_id=1, priority=priority, handler="noop"))
    await eventually(lambda: cluster.status(PLURAL, "default").get("backlog") == 3, timeout=10, message="backlog")

    # The Deployment controller reports two ready pods.
    await cluster.patch("deployments", "default-workers", {"status": {"replicas": 3, "readyReplicas": 2}},
                        api_version="apps/v1", subresource="status")
    status = await eventually(lambda: cluster.status(PLURAL, "default").get("readyReplicas") == 2
                              and cluster.status(PLURAL, "default"), timeout=10, message="readyReplicas")
    assert status["replicas"] == 3
    assert {c["type"]: c for c in status["conditions"]}["Ready"]["status"] == "False"

    await cluster.patch(PLURAL, "default", {"spec": {"concurrency": 5}})
    await eventually(lambda: deployment(cluster, "default-workers")["spec"]["replicas"] == 5, timeout=10,
                     message="scaled to 5")
    await eventually(lambda: cluster.status(PLURAL, "default").get("observedGeneration") == 2, timeout=10)
    assert cluster.emulator.rejected == []


async def test_manual_changes_to_the_deployment_are_corrected(
    cluster: Cluster, operator: OperatorRunner
) -> None:
    await cluster.create(PLURAL, pool("drifty", concurrency=2))
    await eventually(lambda: deployment(cluster, "drifty-workers"), timeout=10, message="Deployment")
    await cluster.patch("deployments", "drifty-workers", {"spec": {"replicas": 7}}, api_version="apps/v1")
    assert deployment(cluster, "drifty-workers")["spec"]["replicas"] == 7
    await eventually(lambda: deployment(cluster, "drifty-workers")["spec"]["replicas"] == 2, timeout=10,
                     message="replicas corrected")
    image = deployment(cluster, "drifty-workers")["spec"]["template"]["spec"]["containers"][0]["image"]
    await cluster.patch("deployments", "drifty-workers", {"metadata": {"annotations": {
        "kadence.dev/template-hash": "edited"}}, "spec": {"template": {"spec": {"containers": [
            {"name": "worker", "image": "someone/else:latest"}]}}}}, api_version="apps/v1")
    await eventually(
        lambda: deployment(cluster, "drifty-workers")["spec"]["template"]["spec"]["containers"][0]["image"] == image,
        timeout=10, message="template restored",
    )
    await cluster.delete("deployments", "drifty-workers", api_version="apps/v1")
    await eventually(lambda: deployment(cluster, "drifty-workers"), timeout=10, message="Deployment recreated")
    assert cluster.emulator.rejected == []
