"""What a job runs. Each handler takes a :class:`TaskContext` and returns a JSON-able result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kadence.handlers.base import HandlerError, TaskContext
from kadence.handlers.noop import run_noop
from kadence.handlers.python_callable import PythonHandler
from kadence.handlers.webhook import WebhookHandler

Handler = Callable[[TaskContext], Any]

__all__ = ["Handler", "HandlerError", "PythonHandler", "TaskContext", "WebhookHandler", "build_handlers", "run_noop"]


def build_handlers(
    *,
    webhook_secret: str | None,
    webhook_timeout: float,
    webhook_allowed_hosts: list[str],
    python_allowed_prefixes: list[str],
) -> dict[str, Handler]:
    """The handler registry of one worker process, built from its settings."""
    return {
        "webhook": WebhookHandler(secret=webhook_secret, timeout=webhook_timeout, allowed_hosts=webhook_allowed_hosts),
        "python": PythonHandler(allowed_prefixes=python_allowed_prefixes),
        "noop": run_noop,
    }
