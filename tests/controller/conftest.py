"""Run the real operator (kopf, in this event loop) against the strict kmock emulator.

``cluster`` is the emulated API server with Kadence's CRDs and the built-in resources kopf
and the operator use; ``operator`` starts ``kadence.controller.main.serve`` against it with
the test's ``settings`` (real embedded PostgreSQL and Redis) and stops it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml

from kadence.config import Settings
from kadence.controller import main
from tests.controller.emulator import StrictKubernetesEmulator

NAMESPACE = "team-a"
KADENCE = "kadence.dev/v1alpha1"
BUILTINS: dict[str, kmock.ResourceInfo] = {
    "v1/namespaces": kmock.ResourceInfo(kind="Namespace", namespaced=False, verbs={"list", "watch", "get"}),
    "v1/events": kmock.ResourceInfo(kind="Event", namespaced=True, verbs={"create", "list", "get", "patch"}),
    "apps/v1/deployments": kmock.ResourceInfo(
        kind="Deployment", namespaced=True, subresources={"status", "scale"},
        verbs={"create", "get", "list", "watch", "patch", "update", "delete"},
    ),
    "apiextensions.k8s.io/v1/customresourcedefinitions": kmock.ResourceInfo(
        kind="CustomResourceDefinition", namespaced=False, verbs={"list", "watch", "get"}
    ),
}


async def eventually(predicate: Callable[[], Any], timeout: float = 15.0, message: str = "") -> Any:
    """Poll ``predicate`` without blocking the loop (kmock and kopf run on it) until truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        await asyncio.sleep(0.1)


class Cluster:
    """The emulated API server, with a client that talks to it over HTTP like kubectl."""

    def __init__(self, emulator: StrictKubernetesEmulator, server: kmock.Server) -> None:
        self.emulator = emulator
        self.server = server

    @property
    def url(self) -> str:
        return str(self.server.url).rstrip("/")

    @staticmethod
    def path(api_version: str, plural: str, namespace: str | None, name: str | None = None,
             subresource: str | None = None) -> str:
        root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        path = f"{root}/namespaces/{namespace}/{plural}" if namespace else f"{root}/{plural}"
        path = f"{path}/{name}" if name else path
        return f"{path}/{subresource}" if subresource else path

    async def request(self, method: str, path: str, body: Any = None,
                      content_type: str = "application/merge-patch+json") -> tuple[int, Any]:
        headers = {"Content-Type": content_type} if body is not None else {}
        async with self.server.client.request(method, path, json=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    async def create(self, plural: str, body: dict[str, Any], api_version: str = KADENCE) -> dict[str, Any]:
        namespace = body["metadata"].setdefault("namespace", NAMESPACE)
        status, answer = await self.request("POST", self.path(api_version, plural, namespace), body,
                                            "application/json")
        assert status in (200, 201), answer
        return answer

    async def patch(self, plural: str, name: str, patch: dict[str, Any], api_version: str = KADENCE,
                    subresource: str | None = None) -> dict[str, Any]:
        status, answer = await self.request(
            "PATCH", self.path(api_version, plural, NAMESPACE, name, subresource), patch
        )
        assert status == 200, answer
        return answer

    async def delete(self, plural: str, name: str, api_version: str = KADENCE) -> None:
        status, answer = await self.request("DELETE", self.path(api_version, plural, NAMESPACE, name))
        assert status == 200, answer

    def read(self, plural: str, name: str, api_version: str = KADENCE) -> dict[str, Any] | None:
        return self.emulator.read(f"{api_version}/{plural}", NAMESPACE, name)

    def status(self, plural: str, name: str) -> dict[str, Any]:
        return (self.read(plural, name) or {}).get("status") or {}

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for (resource, _, _), obj in list(self.emulator.objects.items()):
            if resource.plural != "events" or obj.deleted:
                continue
            if obj.raw.get("involvedObject", {}).get("name") == name:
                found.append(obj.raw)
        return found

    def reasons(self, name: str) -> list[str]:
        return [event.get("reason", "") for event in self.events(name)]


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    emulator = StrictKubernetesEmulator()
    for key, info in BUILTINS.items():
        emulator.resources[key] = info
    async with emulator, kmock.Server(emulator) as server:
        emulator.objects["v1/namespaces", None, NAMESPACE] = {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "uid": "ns-uid"},
        }
        cluster = Cluster(emulator, server)
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
            "clusters": [{"name": "kmock", "cluster": {"server": cluster.url}}],
            "users": [{"name": "kmock", "user": {"token": "test"}}],
            "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock", "namespace": NAMESPACE}}],
        }))
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        yield cluster


class OperatorRunner:
    """Start and stop the operator in this event loop, as often as a test needs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.task: asyncio.Task[None] | None = None
        self.stop_flag: asyncio.Event | None = None

    async def start(self) -> None:
        assert self.task is None, "already running"
        self.stop_flag = asyncio.Event()
        ready = asyncio.Event()
        self.task = asyncio.create_task(
            main.serve(self.settings, standalone=True, stop_flag=self.stop_flag, ready_flag=ready)
        )
        done, _ = await asyncio.wait({self.task, asyncio.create_task(ready.wait())}, timeout=30,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self.task in done:
            self.task.result()
            raise AssertionError("the operator stopped while starting")
        assert ready.is_set(), "the operator did not become ready"

    async def stop(self) -> None:
        if self.task is None:
            return
        assert self.stop_flag is not None
        self.stop_flag.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, timeout=30)
        self.task = None


@pytest.fixture
async def operator(cluster: Cluster, settings: Settings) -> AsyncIterator[OperatorRunner]:
    logging.getLogger("kopf").setLevel(logging.INFO)
    runner = OperatorRunner(settings.model_copy(update={"worker_secret_name": "kadence-test"}))
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()
