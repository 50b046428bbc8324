"""One router per area of the API."""

from __future__ import annotations

from typing import Any

from kadence.api.schemas import ErrorOut

_DESCRIPTIONS = {
    400: "Malformed JSON.",
    401: "Missing or invalid bearer token.",
    403: "Another user's data, or a master-only action.",
    404: "Unknown id (or not visible to the caller).",
    409: "Conflicts with the current state.",
    413: "Request body too large.",
    422: "Invalid input; `field` names the culprit.",
    503: "Redis or PostgreSQL is unreachable.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give (always 401, 413, 422 and 503)."""
    wanted = sorted({401, 413, 422, 503, *codes})
    return {code: {"model": ErrorOut, "description": _DESCRIPTIONS[code]} for code in wanted}
