"""The operator's runtime: clients built at startup, kept in kopf's memo, closed at cleanup.

Nothing connects at import time. ``run_operator`` passes the process's ``Settings`` in the
memo; the startup handler builds one ``SchedulerCore`` from them and stores it, with
kopf's own ``OperatorSettings`` (needed by ``kadence.controller.k8s``), in the memo that
every handler receives.

Errors from the core are mapped here, once: Redis or PostgreSQL unreachable becomes
``kopf.TemporaryError`` with a growing delay, so kopf retries and nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import kopf
import redis.exceptions

from kadence.config import Settings
from kadence.core import SchedulerCore, core_from_settings
from kadence.domain.errors import Unavailable
from kadence.domain.models import UserContext

log = logging.getLogger(__name__)

T = TypeVar("T")

SYSTEM = UserContext.system()
FINALIZER = "kadence.dev/finalizer"
ANNOTATION_PREFIX = "kadence.dev"
# Retry delays (seconds) while Redis or PostgreSQL is unreachable: 1, 2, 4 … capped at 60.
MAX_RETRY_DELAY = 60.0


@dataclass
class Runtime:
    """What every handler needs: the Kadence settings, the core and kopf's settings."""

    settings: Settings
    core: SchedulerCore
    kopf_settings: kopf.OperatorSettings
    worker_secret: str


def retry_delay(retry: int) -> float:
    """Exponential backoff for temporary errors: 1 s, 2 s, 4 s … at most a minute."""
    return float(min(MAX_RETRY_DELAY, 2 ** max(0, min(retry, 10))))


def runtime_of(memo: kopf.Memo) -> Runtime:
    runtime = memo.get("runtime")
    if runtime is None:
        raise kopf.TemporaryError("the operator runtime is not ready yet", delay=1)
    assert isinstance(runtime, Runtime)
    return runtime


async def call_core(fn: Callable[..., T], *args: Any, retry: int = 0, **kwargs: Any) -> T:
    """Run a blocking core call in a thread; an outage of Redis or PostgreSQL is a TemporaryError."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except Unavailable as error:
        raise kopf.TemporaryError(f"backend unavailable: {error.message}", delay=retry_delay(retry)) from error
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        raise kopf.TemporaryError(f"backend unavailable: Redis: {error}", delay=retry_delay(retry)) from error


def configure(kopf_settings: kopf.OperatorSettings, *, standalone: bool | None = None) -> None:
    """Where kopf keeps its own bookkeeping, and what it posts as Kubernetes events.

    Progress and the last-handled spec go to annotations (a real API server prunes unknown
    ``status`` fields, so kopf's default status storage would be lost); object-logger
    messages are not turned into events below WARNING (handlers post their own events).
    """
    kopf_settings.persistence.finalizer = FINALIZER
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    kopf_settings.posting.level = logging.WARNING
    kopf_settings.posting.reporting_component = "kadence-operator"
    kopf_settings.watching.server_timeout = 300
    kopf_settings.watching.client_timeout = 330
    kopf_settings.networking.error_backoffs = [1, 2, 5]
    if standalone is False:
        # Peering was asked for: refuse to run unsynchronised if its CRDs are missing.
        kopf_settings.peering.mandatory = True


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account first, else the kubeconfig (``KUBECONFIG`` or ~/.kube/config).

    Declared explicitly because kopf picks its fallback logins when the registry is created
    (at import), before a test or a wrapper may have pointed ``KUBECONFIG`` elsewhere.
    """
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def start_runtime(memo: kopf.Memo, settings: kopf.OperatorSettings, retry: int, logger: Any, **_: Any) -> None:
    """Connect to PostgreSQL and Redis once; retried with backoff while they are unreachable."""
    configure(settings, standalone=memo.get("standalone"))
    kadence_settings = memo.get("settings")
    if not isinstance(kadence_settings, Settings):
        kadence_settings = Settings()
    core = await call_core(core_from_settings, kadence_settings, retry=retry)
    secret = kadence_settings.worker_secret_name
    memo["runtime"] = Runtime(settings=kadence_settings, core=core, kopf_settings=settings, worker_secret=secret)
    logger.info("operator runtime ready worker_secret=%s namespace=%s", secret, kadence_settings.namespace)


@kopf.on.cleanup()
async def stop_runtime(memo: kopf.Memo, logger: Any, **_: Any) -> None:
    runtime = memo.pop("runtime", None)
    if isinstance(runtime, Runtime):
        await asyncio.to_thread(runtime.core.close)
        logger.info("operator runtime closed")
