"""Dependencies of the routes, as ``Annotated`` aliases: the settings, the core, the caller."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kadence.api.errors import ApiError
from kadence.api.metrics import ApiMetrics
from kadence.config import Settings
from kadence.core import SchedulerCore
from kadence.domain.models import UserContext

_bearer = HTTPBearer(auto_error=False, description="A token minted by POST /api/auth/tokens, or the master token.")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_core(request: Request) -> SchedulerCore:
    core: SchedulerCore | None = getattr(request.app.state, "core", None)
    if core is None:
        raise ApiError(503, "unavailable", "the scheduler core is not running")
    return core


def get_metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
CoreDep = Annotated[SchedulerCore, Depends(get_core)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]


def get_current_user(
    settings: SettingsDep,
    core: CoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> UserContext:
    """The caller of an /api/ route: the master token, or a minted token checked by its hash."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>", headers=_CHALLENGE)
    token = credentials.credentials
    master = settings.master_token.get_secret_value() if settings.master_token else ""
    if master and hmac.compare_digest(token.encode(), master.encode()):
        return UserContext.system()
    user = core.authenticate(token)
    if user is None:
        raise ApiError(401, "unauthorized", "the bearer token is not valid", headers=_CHALLENGE)
    return user


CurrentUser = Annotated[UserContext, Depends(get_current_user)]
