"""The small error taxonomy every front door maps to its own vocabulary.

HTTP maps them to status codes, the operator to kopf's permanent or temporary errors.
"""

from __future__ import annotations


class KadenceError(Exception):
    """Base of every error Kadence raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(KadenceError):
    """The caller sent something Kadence cannot accept; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class NotFound(KadenceError):
    """The job, schedule or token does not exist (or is not visible to the caller)."""


class Conflict(KadenceError):
    """The request clashes with the current state (already finished, owned by a resource)."""


class Forbidden(KadenceError):
    """The caller may not do this, whatever the data says."""


class Unavailable(KadenceError):
    """Redis or PostgreSQL cannot be reached; trying again later may work."""
