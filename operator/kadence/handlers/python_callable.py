"""Call ``args.callable`` (``module:function``) from an allow-listed module prefix with ``args``."""

from __future__ import annotations

import importlib
from typing import Any

from kadence.handlers.base import HandlerError, TaskContext


class PythonHandler:
    def __init__(self, *, allowed_prefixes: list[str]) -> None:
        self.allowed_prefixes = allowed_prefixes

    def _allowed(self, module: str) -> bool:
        return any(module == prefix or module.startswith(prefix + ".") for prefix in self.allowed_prefixes)

    def __call__(self, task: TaskContext) -> Any:
        target = task.args.get("callable")
        if not isinstance(target, str) or ":" not in target:
            raise HandlerError("args.callable must be 'module:function'")
        module_name, _, function_name = target.partition(":")
        if not self._allowed(module_name):
            raise HandlerError(f"module {module_name!r} is not under an allowed prefix")
        try:
            function = getattr(importlib.import_module(module_name), function_name)
        except (ImportError, AttributeError) as exc:
            raise HandlerError(f"cannot load {target}: {exc}") from None
        arguments = {key: value for key, value in task.args.items() if key != "callable"}
        return function(arguments)
