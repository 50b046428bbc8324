"""CronSchedule against the real operator, PostgreSQL, Redis, dispatcher and a worker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from kadence.config import Settings
from kadence.core import SchedulerCore
from kadence.domain.models import UserContext
from tests.controller.conftest import NAMESPACE, Cluster, OperatorRunner, eventually
from tests.support import WebhookReceiver, start_kadence, stop_process

PLURAL = "cronschedules"


def schedule(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kadence.dev/v1alpha1",
        "kind": "CronSchedule",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"schedule": "* * * * * *", "taskGoal": f"{name} tick", "userId": 9, **spec},
    }


@pytest.fixture
def dispatcher(settings: Settings) -> Iterator[None]:
    process = start_kadence(["dispatcher"], settings)
    yield
    stop_process(process)


async def test_cron_schedule_owns_a_row_and_reports_runs(
    cluster: Cluster, operator: OperatorRunner, core: SchedulerCore, receiver: WebhookReceiver,
    worker_pool: Any, dispatcher: None,
) -> None:
    worker_pool(1)
    created = await cluster.create(PLURAL, schedule("every-second", handler="webhook", args={"url": receiver.url}))
    uid = created["metadata"]["uid"]
    status = await eventually(lambda: cluster.status(PLURAL, "every-second").get("nextRun")
                              and cluster.status(PLURAL, "every-second"), timeout=10, message="nextRun")
    row = core.get_owned_schedule(UserContext.system(), uid)
    assert row is not None and row.id == status["scheduleId"]
    assert row.owner == f"{NAMESPACE}/every-second" and row.enabled and row.user_id == 9
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["status"] == "True"

    ran = await eventually(lambda: cluster.status(PLURAL, "every-second").get("lastRun")
                           and cluster.status(PLURAL, "every-second"), timeout=15, message="lastRun")
    assert ran["lastJobId"]
    await eventually(lambda: receiver.deliveries, timeout=15, message="a tick's webhook")
    assert receiver.deliveries[0].body["scheduleId"] == row.id
    assert cluster.emulator.rejected == []


async def test_suspend_update_and_delete_follow_the_resource(
    cluster: Cluster, operator: OperatorRunner, core: SchedulerCore
) -> None:
    created = await cluster.create(PLURAL, schedule("nightly", schedule="0 3 * * *", timeZone="Europe/Berlin",
                                                    handler="noop", concurrencyPolicy="Forbid"))
    uid = created["metadata"]["uid"]
    await eventually(lambda: cluster.status(PLURAL, "nightly").get("scheduleId"), timeout=10)
    row = core.get_owned_schedule(UserContext.system(), uid)
    assert row is not None and row.timezone == "Europe/Berlin" and row.concurrency_policy.value == "Forbid"

    await cluster.patch(PLURAL, "nightly", {"spec": {"suspend": True}})
    await eventually(lambda: not core.get_owned_schedule(UserContext.system(), uid).enabled, timeout=10,
                     message="disabled")
    await eventually(lambda: cluster.status(PLURAL, "nightly").get("observedGeneration") == 2, timeout=10)
    assert "nextRun" not in cluster.status(PLURAL, "nightly")

    await cluster.delete(PLURAL, "nightly")
    await eventually(lambda: cluster.read(PLURAL, "nightly") is None, timeout=10, message="resource gone")
    assert core.get_owned_schedule(UserContext.system(), uid) is None


async def test_invalid_cron_expression_is_reported_once(
    cluster: Cluster, operator: OperatorRunner, core: SchedulerCore
) -> None:
    # Passes the CRD's pattern (characters and field count) but is not a valid cron expression.
    await cluster.create(PLURAL, schedule("bad", schedule="99 * * * *", handler="noop"))

    def ready() -> dict[str, Any] | None:
        return {c["type"]: c for c in cluster.status(PLURAL, "bad").get("conditions", [])}.get("Ready")

    condition = await eventually(ready, timeout=10, message="Ready condition")
    assert condition["status"] == "False" and condition["reason"] == "InvalidSpec"
    assert "spec.schedule" in condition["message"] or "cronExpression" in condition["message"]
    await eventually(lambda: "InvalidSpec" in cluster.reasons("bad"), message="InvalidSpec event")
    await asyncio.sleep(2)
    assert cluster.reasons("bad").count("InvalidSpec") == 1
    assert core.list_cron_schedules(UserContext.system()) == []
