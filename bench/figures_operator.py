"""The operator figure: ScheduledTasks created on the Kubernetes emulator until all are Completed.

The real operator (``kadence.controller.main.serve``, standalone) runs in this process's
event loop against the strict kmock emulator, exactly as ``tests/controller`` runs it, with
a real ``kadence worker --concurrency 5`` child process doing the jobs. The emulator (which
validates every write against the CRD schema) shares the process and its CPU with the
operator, so the time is an upper bound for the operator alone, and the memory increase is
the operator's plus the emulator's copies of the objects.
"""

from __future__ import annotations

import asyncio
import os
import resource
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kmock
import yaml

from bench.harness import BenchEnv, kadence_command, rate, reset, start, stop
from tests.controller.conftest import BUILTINS, NAMESPACE, Cluster, OperatorRunner
from tests.controller.emulator import StrictKubernetesEmulator

PLURAL = "scheduledtasks"
TIMEOUT_S = 300.0  # past this, report how far it got and the rate
PROGRESS_EVERY_S = 5
CREATE_CONCURRENCY = 10  # like a few `kubectl apply` running side by side


class _BenchEmulator(StrictKubernetesEmulator):
    """The strict emulator without kmock's request log.

    kmock keeps every request it has served, and matches each new request against that
    whole history (for test assertions), so its cost per request grows with the number of
    requests: with 150 ScheduledTasks a request took ~0.1 s and kmock, not the operator,
    bounded the figure. The benchmark asserts nothing on the history, so it keeps only the
    request being served. Objects, validation and watches are unchanged.
    """

    async def _handle(self, request: Any) -> Any:
        if len(self._requests) > 1:
            del self._requests[:-1]  # the current request is the last one appended
        return await super()._handle(request)


def _max_rss_mb() -> float:
    """The process's peak resident set so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    """The process's current resident set."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _write_kubeconfig(path: Path, url: str) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "kmock",
                "clusters": [{"name": "kmock", "cluster": {"server": url}}],
                "users": [{"name": "kmock", "user": {"token": "bench"}}],
                "contexts": [
                    {"name": "kmock", "context": {"cluster": "kmock", "user": "kmock", "namespace": NAMESPACE}}
                ],
            }
        )
    )


def _task(i: int) -> dict[str, Any]:
    name = f"bench-{i:05d}"
    return {
        "apiVersion": "kadence.dev/v1alpha1",
        "kind": "ScheduledTask",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"taskId": name, "userId": 7, "handler": "noop"},
    }


def operator_burst(env: BenchEnv, count: int) -> dict[str, Any]:
    """Create ``count`` no-op ScheduledTasks; time until every one reaches phase Completed, and memory."""
    reset(env)
    with tempfile.TemporaryDirectory(prefix="kadence-bench-kube-") as directory:
        return asyncio.run(_operator_burst(env, count, Path(directory) / "kubeconfig"))


async def _operator_burst(env: BenchEnv, count: int, kubeconfig: Path) -> dict[str, Any]:
    emulator = _BenchEmulator()
    for key, info in BUILTINS.items():
        emulator.resources[key] = info
    async with emulator, kmock.Server(emulator) as server:
        emulator.objects["v1/namespaces", None, NAMESPACE] = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "uid": "ns-uid"},
        }
        cluster = Cluster(emulator, server)
        _write_kubeconfig(kubeconfig, cluster.url)
        with _environment(KUBECONFIG=str(kubeconfig), KADENCE_WORKER_SECRET_NAME="kadence-bench"):
            runner = OperatorRunner(env.settings)
            rss_before, max_rss_before = _rss_mb(), _max_rss_mb()
            await runner.start()
            pool = start(kadence_command("worker", "--concurrency", "5"), env.env())
            try:
                return await _measure(cluster, count, rss_before, max_rss_before) | {
                    "rejected_writes": len(emulator.rejected)
                }
            finally:
                stop(pool)
                await runner.stop()


async def _measure(cluster: Cluster, count: int, rss_before: float, max_rss_before: float) -> dict[str, Any]:
    names = [_task(i)["metadata"]["name"] for i in range(count)]
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)
    peak_rss = rss_before

    async def create(i: int) -> None:
        async with gate:
            await cluster.create(PLURAL, _task(i))

    began = time.perf_counter()
    await asyncio.gather(*(create(i) for i in range(count)))
    created_s = time.perf_counter() - began
    completed = 0
    deadline = began + TIMEOUT_S
    progress: dict[str, int] = {}  # completed so far, every PROGRESS_EVERY_S seconds
    while time.perf_counter() < deadline:
        peak_rss = max(peak_rss, _rss_mb())
        completed = sum(1 for name in names if cluster.status(PLURAL, name).get("phase") == "Completed")
        if completed >= count:
            break
        mark = int((time.perf_counter() - began) // PROGRESS_EVERY_S * PROGRESS_EVERY_S)
        progress.setdefault(str(mark), completed)
        await asyncio.sleep(0.2)
    elapsed = time.perf_counter() - began
    phases: dict[str, int] = {}
    for name in names:
        phase = cluster.status(PLURAL, name).get("phase") or "none"
        phases[phase] = phases.get(phase, 0) + 1
    return {
        "tasks": count,
        "created_s": round(created_s, 2),
        "all_completed": completed >= count,
        "completed": completed,
        "seconds_to_all_completed": round(elapsed, 2) if completed >= count else None,
        "seconds_measured": round(elapsed, 2),
        "completed_per_s": rate(completed, elapsed),
        "phases": phases,
        "completed_by_second": progress,
        "rss_before_mb": round(rss_before, 1),
        "rss_peak_increase_mb": round(peak_rss - rss_before, 1),
        "maxrss_increase_mb": round(max(_max_rss_mb() - max_rss_before, 0.0), 1),
    }
