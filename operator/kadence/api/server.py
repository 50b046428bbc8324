"""``kadence api``: serve the app with uvicorn until SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging

import uvicorn

from kadence.api.app import create_app
from kadence.config import Settings

log = logging.getLogger(__name__)


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    """Run the API in this process; 0 after a clean stop, 1 when it could not start."""
    bind_host = host or settings.api_host
    bind_port = settings.api_port if port is None else port
    config = uvicorn.Config(
        create_app(settings),
        host=bind_host,
        port=bind_port,
        log_config=None,  # keep the process's own logging set-up
        access_log=False,  # RequestMetrics counts requests; errors are logged where they happen
        lifespan="on",
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    log.info("api starting host=%s port=%s", bind_host, bind_port)
    server.run()
    if not server.started:
        log.error("api did not start host=%s port=%s", bind_host, bind_port)
        return 1
    return 0
