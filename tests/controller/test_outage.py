"""Redis down: the operator retries with backoff, and the task is scheduled once Redis is back."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import SecretStr

from kadence.config import Settings
from kadence.core import SchedulerCore
from kadence.domain.models import JobState, UserContext
from kadence.embedded import EmbeddedRedis, free_port
from tests.controller.conftest import NAMESPACE, Cluster, OperatorRunner, eventually
from tests.controller.test_scheduled_task import PLURAL, jobs_of, task


def retries(cluster: Cluster) -> int:
    """kopf's own record (an annotation) of how often the create handler was retried."""
    annotations = (cluster.read(PLURAL, "patient") or {}).get("metadata", {}).get("annotations", {})
    progress = [json.loads(value) for key, value in annotations.items() if key.endswith("create_task")]
    return int(progress[0].get("retries") or 0) if progress else 0


async def test_task_created_while_redis_is_down_is_scheduled_when_it_returns(
    cluster: Cluster, settings: Settings, core: SchedulerCore, tmp_path: Path
) -> None:
    port = free_port()
    down = settings.model_copy(update={"redis_url": SecretStr(f"redis://127.0.0.1:{port}/0")})
    runner = OperatorRunner(down)
    await runner.start()
    redis = None
    try:
        await cluster.create(PLURAL, task("patient", handler="noop", delaySeconds=300))
        await eventually(lambda: retries(cluster) >= 2, timeout=15, message="retries during the outage")
        assert "jobId" not in cluster.status(PLURAL, "patient")
        assert jobs_of(core, f"{NAMESPACE}/patient") == []  # nothing half-written

        redis = EmbeddedRedis(tmp_path / "redis", port=port, persistent=False).start()
        status = await eventually(lambda: cluster.status(PLURAL, "patient").get("phase") == "Delayed"
                                  and cluster.status(PLURAL, "patient"), timeout=20, message="Delayed")
        job = core.get_job(UserContext.system(), status["jobId"])
        assert job.state is JobState.DELAYED
        assert jobs_of(core, f"{NAMESPACE}/patient") == [(status["jobId"], "delayed")]
    finally:
        await runner.stop()
        if redis is not None:
            redis.stop()
