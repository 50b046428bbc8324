"""The handler that does nothing, successfully (for tests and benchmarks)."""

from __future__ import annotations

from typing import Any

from kadence.handlers.base import TaskContext


def run_noop(task: TaskContext) -> dict[str, Any]:
    return {"ok": True}
