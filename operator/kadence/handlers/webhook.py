"""POST the task to ``args.url``, signed with HMAC-SHA256 when a secret is set."""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import logging
from typing import Any
from urllib.parse import urlsplit

import httpx

from kadence.handlers.base import HandlerError, TaskContext

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Kadence-Signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header value: ``sha256=<hex HMAC of the raw body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookHandler:
    def __init__(self, *, secret: str | None, timeout: float, allowed_hosts: list[str]) -> None:
        self.secret = secret
        self.timeout = timeout
        self.allowed_hosts = allowed_hosts
        self._client: httpx.Client | None = None

    def _allowed(self, host: str) -> bool:
        return any(fnmatch.fnmatch(host.lower(), pattern.lower()) for pattern in self.allowed_hosts)

    def __call__(self, task: TaskContext) -> dict[str, Any]:
        url = task.args.get("url")
        if not isinstance(url, str):
            raise HandlerError("args.url is missing")
        host = urlsplit(url).hostname or ""
        if not self._allowed(host):
            raise HandlerError(f"webhook host {host!r} is not in the allowed hosts")
        body = json.dumps(task.webhook_body(), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "kadence-webhook/0.1"}
        extra = task.args.get("headers")
        if isinstance(extra, dict):
            headers.update({str(k): str(v) for k, v in extra.items()})
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, follow_redirects=False)
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise HandlerError(f"webhook {host} unreachable: {type(exc).__name__}: {exc}") from None
        if not 200 <= response.status_code < 300:
            raise HandlerError(f"webhook {host} answered HTTP {response.status_code}")
        return {"statusCode": response.status_code}
