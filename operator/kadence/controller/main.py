"""``kadence operator``: run kopf with Kadence's handlers.

Importing the handler modules registers them with kopf's default registry; nothing
connects until kopf runs the startup handler in ``kadence.controller.runtime``.

High availability: by default the operator runs with kopf peering (several replicas,
one active; the ``KopfPeering``/``ClusterKopfPeering`` CRDs are in ``crds/``). With
``standalone=True`` there is no peering and exactly one replica may run.
"""

from __future__ import annotations

import asyncio
import logging

import kopf

from kadence.config import Settings
from kadence.controller import cron_schedule, runtime, scheduled_task, worker_pool

HANDLER_MODULES = (runtime, scheduled_task, cron_schedule, worker_pool)
PEERING_NAME = "kadence"

log = logging.getLogger(__name__)


def operator_memo(settings: Settings, *, standalone: bool) -> kopf.Memo:
    """The root memo every handler's memo starts from: the process's settings."""
    return kopf.Memo(settings=settings, standalone=standalone)


def watched_namespaces(settings: Settings, namespaces: list[str] | None) -> list[str]:
    """Namespaces from the command line, else ``KADENCE_NAMESPACE``; empty means cluster-wide."""
    if namespaces:
        return list(namespaces)
    return [settings.namespace] if settings.namespace else []


async def serve(
    settings: Settings,
    *,
    standalone: bool,
    namespaces: list[str] | None = None,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    registry: kopf.OperatorRegistry | None = None,
    peering_name: str = PEERING_NAME,
) -> None:
    """Run the operator in the current event loop until ``stop_flag`` is set (or a signal)."""
    watched = watched_namespaces(settings, namespaces)
    log.info("operator starting standalone=%s namespaces=%s", standalone, watched or "*")
    await kopf.operator(
        registry=registry or kopf.get_default_registry(),
        standalone=standalone,
        peering_name=None if standalone else peering_name,
        clusterwide=not watched,
        namespaces=watched,
        memo=operator_memo(settings, standalone=standalone),
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def run_operator(
    settings: Settings, standalone: bool, namespaces: list[str] | None, peering_name: str = PEERING_NAME
) -> int:
    """Entry point of ``kadence operator``; returns the process exit code."""
    try:
        asyncio.run(serve(settings, standalone=standalone, namespaces=namespaces, peering_name=peering_name))
    except KeyboardInterrupt:
        pass
    return 0
