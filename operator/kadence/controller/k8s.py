"""The few Kubernetes API calls the operator makes itself (Deployments, TTL deletion).

kopf ships no general-purpose client, and the ``kubernetes`` package is deliberately not a
dependency. Instead these helpers reuse kopf's own authenticated aiohttp session through
``kopf._cogs.clients.api``: the same credentials, retries on 5xx and re-login on 401 as
kopf's watches, and no second configuration. That module is internal to kopf, so every
use of it is kept in this one file; if kopf changes it, only this file changes.

Call these only from inside kopf handlers (they need kopf's credentials vault, which kopf
puts in a context variable for its tasks) with the ``kopf.OperatorSettings`` that the
startup handler kept in the memo.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kopf._cogs.clients import api as kopf_api
from kopf._cogs.clients import errors as kopf_errors

NotFound = kopf_errors.APINotFoundError
Conflict = kopf_errors.APIConflictError
APIError = kopf_errors.APIError


def object_path(api_version: str, plural: str, namespace: str | None, name: str | None = None) -> str:
    """The URL path of a collection or an object: ``/apis/apps/v1/namespaces/ns/deployments/x``."""
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{root}/namespaces/{namespace}/{plural}" if namespace else f"{root}/{plural}"
    return f"{path}/{name}" if name else path


async def get(
    settings: kopf.OperatorSettings, path: str, *, logger: logging.Logger | logging.LoggerAdapter[Any]
) -> dict[str, Any] | None:
    """The object at ``path``, or None when it does not exist."""
    try:
        body: dict[str, Any] = await kopf_api.get(path, settings=settings, logger=logger)
    except kopf_errors.APINotFoundError:
        return None
    return body


async def create(
    settings: kopf.OperatorSettings, path: str, body: dict[str, Any], *,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> dict[str, Any]:
    """POST ``body`` to the collection at ``path``; raises ``Conflict`` when it already exists."""
    created: dict[str, Any] = await kopf_api.post(path, payload=body, settings=settings, logger=logger)
    return created


async def merge_patch(
    settings: kopf.OperatorSettings, path: str, patch: dict[str, Any], *,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> dict[str, Any] | None:
    """JSON-merge-patch the object at ``path``; None when it is gone."""
    try:
        patched: dict[str, Any] = await kopf_api.patch(
            path, payload=patch, headers={"Content-Type": "application/merge-patch+json"},
            settings=settings, logger=logger,
        )
    except kopf_errors.APINotFoundError:
        return None
    return patched


async def delete(
    settings: kopf.OperatorSettings, path: str, *, logger: logging.Logger | logging.LoggerAdapter[Any],
    propagation: str = "Background",
) -> bool:
    """Delete the object at ``path``; False when it was already gone."""
    try:
        await kopf_api.delete(
            path, payload={"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation},
            settings=settings, logger=logger,
        )
    except kopf_errors.APINotFoundError:
        return False
    return True
