"""Liveness, readiness and Prometheus metrics (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from kadence.api.deps import CoreDep, MetricsDep
from kadence.api.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["health"])

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/healthz", response_model=HealthOut, summary="Liveness: the process answers (no I/O)")
def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/readyz", response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Redis or PostgreSQL is unreachable."}},
    summary="Readiness: PostgreSQL and Redis are reachable",
)
def readyz(core: CoreDep) -> JSONResponse:
    checks = core.ready()
    body = ReadyOut(ready=all(checks.values()), postgres=checks.get("postgres", False),
                    redis=checks.get("redis", False))
    return JSONResponse(body.model_dump(by_alias=True), status_code=200 if body.ready else 503)


@router.get(
    "/metrics", response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text."}},
    summary="Prometheus metrics",
)
def metrics(api_metrics: MetricsDep) -> Response:
    return Response(api_metrics.render(), media_type=PROMETHEUS_TEXT)
