"""Map the domain's error taxonomy (and FastAPI's own validation errors) to HTTP answers.

Every error body is an :class:`~kadence.api.schemas.ErrorOut`: ``{"error", "field", "message"}``.
Anything unexpected is logged with its traceback and answered 500 as a last resort.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from kadence.api.schemas import ErrorOut
from kadence.domain.errors import Conflict, Forbidden, InvalidInput, KadenceError, NotFound, Unavailable

log = logging.getLogger(__name__)

_STATUS: dict[type[KadenceError], tuple[int, str]] = {
    InvalidInput: (422, "invalid_input"),
    NotFound: (404, "not_found"),
    Conflict: (409, "conflict"),
    Forbidden: (403, "forbidden"),
    Unavailable: (503, "unavailable"),
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    503: "unavailable",
}


class ApiError(Exception):
    """An HTTP answer raised from a route or dependency (401, 403 … with extra headers)."""

    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers


def error_response(
    status: int, error: str, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorOut(error=error, field=field, message=message)
    return JSONResponse(body.model_dump(mode="json", by_alias=True), status_code=status, headers=headers)


def field_path(loc: Sequence[int | str]) -> str:
    """``("body", "tasks", 0, "taskId")`` → ``tasks[0].taskId``; the source part is dropped."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "path", "query", "header") else list(loc)
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _is_union_tag(part):
            continue  # pydantic's name of a union member, not a field
        else:
            path += f".{part}" if path else part
    return path or (str(loc[0]) if loc else "body")


_SCALAR_TAGS = {"int", "float", "str", "bool", "none", "bytes"}


def _is_union_tag(part: str) -> bool:
    """Pydantic names union members in error locations (``str-enum[Priority]``, ``int``)."""
    return part in _SCALAR_TAGS or any(c in part for c in "[(-,") or part.startswith("function")


def _describe_validation(errors: Sequence[Any]) -> tuple[int, str, str, str]:
    """(status, code, field, message) of the first validation error worth naming."""
    first: dict[str, Any] = dict(errors[0]) if errors else {"loc": ("body",), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        detail = first.get("ctx", {}).get("error", "")
        return 400, "malformed_json", "body", f"the body is not valid JSON: {detail}".rstrip(": ")
    loc = tuple(first.get("loc", ("body",)))
    field = field_path(loc)
    message = str(first.get("msg", "invalid"))
    if first.get("type") == "missing":
        message = "is required"
    if len(errors) > 1:
        others = sorted({field_path(tuple(e.get("loc", ()))) for e in errors[1:]} - {field})
        if others:
            message += f" (also check: {', '.join(others[:5])})"
    return 422, "invalid_input", field, f"{field}: {message}"


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``; routes then just raise domain errors."""

    @app.exception_handler(KadenceError)
    async def domain_error(request: Request, exc: KadenceError) -> JSONResponse:
        status, code = next(
            (mapped for kind, mapped in _STATUS.items() if isinstance(exc, kind)), (500, "internal")
        )
        if status == 503:
            log.warning("dependency unavailable path=%s error=%s", request.url.path, exc.message)
        field = exc.field if isinstance(exc, InvalidInput) else None
        return error_response(status, code, exc.message, field)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, field, message = _describe_validation(exc.errors())
        return error_response(status, code, message, field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def redis_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("redis unavailable path=%s error=%s", request.url.path, exc)
        return error_response(503, "unavailable", f"Redis is unreachable: {exc}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error method=%s path=%s", request.method, request.url.path)
        return error_response(500, "internal", "internal error; the server log has the details")
