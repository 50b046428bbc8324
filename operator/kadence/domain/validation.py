"""Turn raw caller input into typed specs, or raise InvalidInput naming the field.

Field names in messages are the public (camelCase) ones that the HTTP API and the custom
resources share, so a message reads the same from curl and from ``kubectl describe``.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from kadence.domain.errors import InvalidInput
from kadence.domain.models import Backoff, ConcurrencyPolicy, Priority, TaskSpec

HANDLERS = ("webhook", "python", "noop")
MAX_ATTEMPTS = 100
MAX_DELAY = timedelta(days=365)
MAX_ARGS_BYTES = 64 * 1024
MAX_TEXT = 1024
MAX_USER_ID = 2**63 - 1
# A runAt this far in the past still counts as "now" (clocks of callers drift).
RUN_AT_TOLERANCE = timedelta(seconds=1)

_NUMERIC_PRIORITIES = {p.rank: p for p in Priority}


def parse_priority(value: object, field: str = "priority") -> Priority:
    """Accept a priority name (critical, high, normal, low) or its number (1, 2, 5, 10)."""
    if isinstance(value, Priority):
        return value
    if isinstance(value, str) and value.lower() in Priority._value2member_map_:
        return Priority(value.lower())
    if isinstance(value, int) and not isinstance(value, bool) and value in _NUMERIC_PRIORITIES:
        return _NUMERIC_PRIORITIES[value]
    raise InvalidInput(field, f"{value!r} is not a priority; use critical, high, normal or low")


def parse_user_id(value: object, field: str = "userId") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_USER_ID:
        raise InvalidInput(field, f"must be a positive integer, got {value!r}")
    return value


def parse_text(value: object, field: str, *, required: bool, max_length: int = MAX_TEXT) -> str:
    if value is None:
        if required:
            raise InvalidInput(field, "is required")
        return ""
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise InvalidInput(field, "must not be empty")
    if len(value) > max_length:
        raise InvalidInput(field, f"must be at most {max_length} characters")
    if "\x00" in value:
        raise InvalidInput(field, "must not contain NUL characters")
    return value


def parse_int(value: object, field: str, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"must be an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise InvalidInput(field, f"must be between {minimum} and {maximum}, got {value}")
    return value


def parse_args(value: object, field: str = "args") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(field, "must be a JSON object")
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, f"must be plain JSON: {exc}") from None
    if len(encoded.encode()) > MAX_ARGS_BYTES:
        raise InvalidInput(field, f"must be at most {MAX_ARGS_BYTES} bytes of JSON")
    if "\\u0000" in encoded:
        raise InvalidInput(field, "must not contain NUL characters")
    return dict(value)


def check_handler_args(handler: str, args: dict[str, Any]) -> None:
    """What each handler needs in ``args``: a URL for webhook, a callable for python."""
    if handler == "webhook":
        url = args.get("url")
        if not isinstance(url, str) or not url:
            raise InvalidInput("args.url", "the webhook handler needs an http(s) URL in args.url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput("args.url", f"{url!r} is not an http(s) URL")
        headers = args.get("headers")
        if headers is not None and (
            not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values())
        ):
            raise InvalidInput("args.headers", "must be an object of string header values")
    elif handler == "python":
        target = args.get("callable")
        if not isinstance(target, str) or ":" not in target:
            raise InvalidInput("args.callable", "the python handler needs 'module:function' in args.callable")


def parse_handler(value: object, default: str, field: str = "handler") -> str:
    handler = default if value is None else value
    if handler not in HANDLERS:
        raise InvalidInput(field, f"{handler!r} is not a handler; use one of {', '.join(HANDLERS)}")
    return str(handler)


def parse_backoff(base: object, maximum: object, defaults: Backoff) -> Backoff:
    base_s = defaults.base_seconds if base is None else _positive_number(base, "backoff.baseSeconds", 86400)
    max_s = defaults.max_seconds if maximum is None else _positive_number(maximum, "backoff.maxSeconds", 7 * 86400)
    if max_s < base_s:
        raise InvalidInput("backoff.maxSeconds", "must not be smaller than backoff.baseSeconds")
    return Backoff(base_seconds=base_s, max_seconds=max_s)


def _positive_number(value: object, field: str, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(field, f"must be a number, got {value!r}")
    if not 0 < value <= maximum:
        raise InvalidInput(field, f"must be greater than 0 and at most {maximum:g}")
    return float(value)


def build_task_spec(
    *,
    task_id: object,
    user_id: object,
    task_goal: object = None,
    priority: object = None,
    max_attempts: object = None,
    handler: object = None,
    args: object = None,
    backoff_base_seconds: object = None,
    backoff_max_seconds: object = None,
    timeout_seconds: object = None,
    defaults: TaskSpec | None = None,
) -> TaskSpec:
    """Validate every field of a task; ``defaults`` supplies what the caller left out."""
    base = defaults or TaskSpec(task_id="-", user_id=1)
    handler_name = parse_handler(handler, base.handler)
    parsed_args = parse_args(args)
    check_handler_args(handler_name, parsed_args)
    return TaskSpec(
        task_id=parse_text(task_id, "taskId", required=True, max_length=255),
        user_id=parse_user_id(user_id),
        task_goal=parse_text(task_goal, "taskGoal", required=False, max_length=10_000),
        priority=base.priority if priority is None else parse_priority(priority),
        max_attempts=base.max_attempts
        if max_attempts is None
        else parse_int(max_attempts, "maxAttempts", minimum=1, maximum=MAX_ATTEMPTS),
        handler=handler_name,
        args=parsed_args,
        backoff=parse_backoff(backoff_base_seconds, backoff_max_seconds, base.backoff),
        timeout_seconds=base.timeout_seconds
        if timeout_seconds is None
        else parse_int(timeout_seconds, "timeoutSeconds", minimum=1, maximum=86400),
    )


def resolve_run_at(*, delay_ms: object, run_at: object, now: datetime) -> datetime:
    """When a delayed task should start: ``now + delay`` or ``runAt``, exactly one of them."""
    if delay_ms is None and run_at is None:
        raise InvalidInput("delay", "give either delay (milliseconds) or runAt (RFC 3339)")
    if delay_ms is not None and run_at is not None:
        raise InvalidInput("delay", "give either delay or runAt, not both")
    if delay_ms is not None:
        if isinstance(delay_ms, bool) or not isinstance(delay_ms, int | float) or not math.isfinite(delay_ms):
            raise InvalidInput("delay", f"must be a number of milliseconds, got {delay_ms!r}")
        if delay_ms < 0:
            raise InvalidInput("delay", "must not be negative")
        if delay_ms > MAX_DELAY.total_seconds() * 1000:
            raise InvalidInput("delay", f"must be at most {int(MAX_DELAY.total_seconds() * 1000)} ms (365 days)")
        return now + timedelta(milliseconds=delay_ms)
    when = parse_datetime(run_at, "runAt")
    if when < now - RUN_AT_TOLERANCE:
        raise InvalidInput("runAt", f"{when.isoformat()} is in the past")
    if when > now + MAX_DELAY:
        raise InvalidInput("runAt", "must be at most 365 days ahead")
    return when


def parse_datetime(value: object, field: str) -> datetime:
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InvalidInput(field, f"{value!r} is not an RFC 3339 timestamp") from None
    else:
        raise InvalidInput(field, f"must be an RFC 3339 timestamp, got {value!r}")
    if when.tzinfo is None:
        raise InvalidInput(field, "needs a time zone offset (for example 2030-01-01T09:00:00Z)")
    return when.astimezone(UTC)


def parse_concurrency_policy(value: object, field: str = "concurrencyPolicy") -> ConcurrencyPolicy:
    if value is None:
        return ConcurrencyPolicy.ALLOW
    if isinstance(value, str):
        for policy in ConcurrencyPolicy:
            if policy.value.lower() == value.lower():
                return policy
    raise InvalidInput(field, f"{value!r} is not a policy; use Allow, Forbid or Replace")
