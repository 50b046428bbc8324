"""Small callables for the ``python`` handler, allowed by default: useful to try things out."""

from __future__ import annotations

import time
from typing import Any


def sleep(args: dict[str, Any]) -> dict[str, Any]:
    """Sleep ``args['seconds']`` seconds, then succeed."""
    seconds = float(args.get("seconds", 1))
    time.sleep(seconds)
    return {"slept": seconds}


def fail(args: dict[str, Any]) -> None:
    """Always fail with ``args['message']``."""
    raise RuntimeError(str(args.get("message", "failing on purpose")))


def echo(args: dict[str, Any]) -> dict[str, Any]:
    """Return the arguments it was given."""
    return dict(args)
