"""Build the FastAPI app: routers, error mapping, body limit, metrics; the core lives in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kadence import __version__
from kadence.api.errors import install_error_handlers
from kadence.api.metrics import ApiMetrics
from kadence.api.middleware import BodySizeLimit, RequestMetrics
from kadence.api.routes import auth, cron, health, scheduler
from kadence.config import Settings
from kadence.core import SchedulerCore, core_from_settings
from kadence.domain.models import QueueStats, UserContext

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Schedule one-off, delayed and recurring (cron) tasks. Every `/api/` route needs "
    "`Authorization: Bearer <token>`; a user token sees only its own jobs and schedules."
)


def create_app(settings: Settings, core: SchedulerCore | None = None) -> FastAPI:
    """The API app. Without ``core`` it connects one at startup and closes it at shutdown;
    a ``core`` passed in belongs to the caller and is neither built nor closed here."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned: SchedulerCore | None = None
        if app.state.core is None:
            owned = core_from_settings(settings)
            app.state.core = owned
            log.info("api started database and redis connected")
        try:
            yield
        finally:
            if owned is not None:
                app.state.core = None
                owned.close()
                log.info("api stopped connections closed")

    app = FastAPI(
        title="Kadence",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.core = core

    def read_stats() -> QueueStats | None:
        current: SchedulerCore | None = app.state.core
        return current.get_queue_stats(UserContext.system()) if current is not None else None

    app.state.metrics = ApiMetrics(read_stats)
    install_error_handlers(app)
    for router in (scheduler.router, cron.router, auth.router, health.router):
        app.include_router(router)
    # The last one added runs first: metrics see every request, including refused ones.
    app.add_middleware(BodySizeLimit, limit=settings.api_max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    return app
