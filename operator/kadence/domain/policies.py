"""Retry backoff, retention and other rules that need no I/O."""

from __future__ import annotations

from kadence.domain.models import Backoff


def backoff_delay(backoff: Backoff, retry_number: int) -> float:
    """Seconds to wait before retry ``retry_number`` (1 for the first retry): base × 2^(n-1), capped."""
    if retry_number < 1:
        raise ValueError("retry_number starts at 1")
    exponent = min(retry_number - 1, 62)
    return float(min(backoff.base_seconds * (2**exponent), backoff.max_seconds))


def backoff_schedule(backoff: Backoff, max_attempts: int) -> list[float]:
    """The delays before attempts 2 … max_attempts: [1, 2, 4, …] seconds by default."""
    return [backoff_delay(backoff, n) for n in range(1, max_attempts)]


def attempt_number(max_attempts: int, retries_left: int | None) -> int:
    """Which attempt is running, given how many retries remain after it."""
    return max_attempts - (retries_left or 0)
