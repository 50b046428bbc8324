"""Job functions for the raw RQ baselines (Kadence's own jobs use its handlers)."""

from __future__ import annotations

import httpx

_client: httpx.Client | None = None


def noop() -> dict[str, bool]:
    return {"ok": True}


def post(url: str) -> int:
    """What Kadence's webhook handler does, without Kadence around it."""
    global _client
    if _client is None:
        _client = httpx.Client(timeout=10)
    return _client.post(url, json={"jobId": "x"}).status_code
