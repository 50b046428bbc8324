"""The harness itself: the emulator keeps a real API server's rules."""

from __future__ import annotations

from collections.abc import AsyncIterator

import kmock
import pytest

from tests.controller.conftest import BUILTINS, NAMESPACE, Cluster
from tests.controller.emulator import StrictKubernetesEmulator

PLURAL = "scheduledtasks"


@pytest.fixture
async def api() -> AsyncIterator[Cluster]:
    emulator = StrictKubernetesEmulator()
    for key, info in BUILTINS.items():
        emulator.resources[key] = info
    async with emulator, kmock.Server(emulator) as server:
        yield Cluster(emulator, server)


def body(**spec: object) -> dict:
    return {"apiVersion": "kadence.dev/v1alpha1", "kind": "ScheduledTask", "metadata": {"name": "t"},
            "spec": {"taskId": "t", "userId": 1, **spec}, "status": {"phase": "Completed"}}


async def test_create_assigns_metadata_and_ignores_status(api: Cluster) -> None:
    created = await api.create(PLURAL, body())
    meta = created["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["generation"] == 1 and meta["creationTimestamp"]
    assert "status" not in created


async def test_schema_violations_are_rejected_with_422(api: Cluster) -> None:
    status, answer = await api.request("POST", api.path("kadence.dev/v1alpha1", PLURAL, NAMESPACE),
                                       body(priority="urgent"), "application/json")
    assert status == 422 and "priority" in answer["message"]
    await api.create(PLURAL, body())
    status, answer = await api.request("PATCH", api.path("kadence.dev/v1alpha1", PLURAL, NAMESPACE, "t", "status"),
                                       {"status": {"attempts": -1}})
    assert status == 422 and "attempts" in answer["message"]


async def test_status_subresource_and_pruning(api: Cluster) -> None:
    await api.create(PLURAL, body())
    patched = await api.patch(PLURAL, "t", {"status": {"phase": "Failed"}, "spec": {"maxAttempts": 5}})
    assert "status" not in patched and patched["metadata"]["generation"] == 2
    patched = await api.patch(PLURAL, "t", {"status": {"phase": "Active", "kopf": {"progress": {}}},
                                            "spec": {"maxAttempts": 9}}, subresource="status")
    assert patched["status"] == {"phase": "Active"}  # unknown status fields pruned
    assert patched["spec"]["maxAttempts"] == 5 and patched["metadata"]["generation"] == 2


async def test_resource_versions_are_checked(api: Cluster) -> None:
    created = await api.create(PLURAL, body())
    version = created["metadata"]["resourceVersion"]
    await api.patch(PLURAL, "t", {"metadata": {"labels": {"a": "b"}}})
    status, _ = await api.request("PATCH", api.path("kadence.dev/v1alpha1", PLURAL, NAMESPACE, "t"),
                                  {"metadata": {"resourceVersion": version, "labels": {"a": "c"}}})
    assert status == 409
    status, _ = await api.request(
        "PATCH", api.path("kadence.dev/v1alpha1", PLURAL, NAMESPACE, "t"),
        [{"op": "test", "path": "/metadata/resourceVersion", "value": version},
         {"op": "add", "path": "/metadata/finalizers", "value": ["x"]}],
        "application/json-patch+json",
    )
    assert status == 422


async def test_deployments_are_validated_against_kubernetes_schemas(api: Cluster) -> None:
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"replicas": "three", "selector": {}, "template": {}}}
    status, _ = await api.request("POST", api.path("apps/v1", "deployments", NAMESPACE), bad, "application/json")
    assert status == 422
