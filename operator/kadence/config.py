"""One typed settings object shared by every role (operator, api, worker, dispatcher, dev).

Every field reads from the environment with the prefix ``KADENCE_`` (``database_url`` is
``KADENCE_DATABASE_URL``). Nothing here connects to anything.
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kadence.domain.models import Priority


class Settings(BaseSettings):
    """Configuration for every Kadence process."""

    model_config = SettingsConfigDict(env_prefix="KADENCE_", extra="ignore")

    database_url: SecretStr = Field(
        default=SecretStr("postgresql://kadence_app@127.0.0.1:5432/kadence"),
        description="PostgreSQL URL of the application role (subject to row-level security).",
    )
    migration_database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL of the role that owns the tables and runs migrations (defaults to database_url).",
    )
    app_role: str = Field(
        default="kadence_app",
        description="Database role the application connects as; migrations grant it access.",
    )
    redis_url: SecretStr = Field(default=SecretStr("redis://127.0.0.1:6379/0"), description="Redis URL of the queues.")
    master_token: SecretStr | None = Field(
        default=None, description="Bearer token with the master role (optional; tokens can be minted)."
    )
    db_pool_min: int = Field(default=1, ge=0, description="Minimum PostgreSQL connections per process.")
    db_pool_max: int = Field(default=10, ge=1, description="Maximum PostgreSQL connections per process.")
    db_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Longest a request waits for a PostgreSQL connection before it answers 503."
    )
    default_handler: str = Field(default="webhook", description="Handler of tasks that name none.")
    default_priority: Priority = Field(default=Priority.NORMAL, description="Priority of tasks that name none.")
    default_max_attempts: int = Field(default=3, ge=1, le=100, description="Attempts of tasks that name none.")
    backoff_base_seconds: float = Field(default=1.0, gt=0, description="First retry delay; doubles each retry.")
    backoff_max_seconds: float = Field(default=3600.0, gt=0, description="Upper bound of a retry delay.")
    job_timeout_seconds: int = Field(default=300, ge=1, description="Default run time limit of one attempt.")
    webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key that signs webhook bodies (X-Kadence-Signature)."
    )
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, description="Timeout of one webhook call.")
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*"],
        description="Hosts webhooks may call; '*' allows any. Comma-separated or a JSON list.",
    )
    python_allowed_prefixes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["kadence.handlers.examples"],
        description="Module prefixes the python handler may import callables from.",
    )
    completed_keep: int = Field(default=100, ge=0, description="Completed jobs kept in Redis.")
    completed_max_age_seconds: int = Field(default=86400, ge=1, description="Longest a completed job stays in Redis.")
    failed_keep: int = Field(default=1000, ge=0, description="Failed jobs kept in Redis.")
    history_days: int = Field(default=30, ge=1, description="Days of job history and events kept in PostgreSQL.")
    api_host: str = Field(default="127.0.0.1", description="Address the HTTP API listens on.")
    api_port: int = Field(default=8080, ge=1, le=65535, description="Port the HTTP API listens on.")
    api_max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest request body accepted.")
    dispatcher_max_sleep_seconds: float = Field(
        default=5.0, gt=0, description="Longest the dispatcher sleeps before it looks at the schedules again."
    )
    dispatcher_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Port the dispatcher serves Prometheus metrics on (off when unset)."
    )
    namespace: str | None = Field(
        default=None, description="Namespace the operator watches (all namespaces when unset)."
    )
    worker_image: str = Field(default="ghcr.io/kadence-dev/kadence:0.1.0", description="Image of worker Deployments.")
    worker_secret_name: str = Field(
        default="kadence",
        description="Secret worker Deployments read their connection settings from "
        "(keys database-url, redis-url and optionally webhook-secret).",
    )
    log_level: str = Field(default="INFO", description="Log level of every role.")

    @field_validator("webhook_allowed_hosts", "python_allowed_prefixes", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @property
    def owner_database_url(self) -> str:
        """The URL migrations run with: the table owner's, or the application's when unset."""
        url = self.migration_database_url or self.database_url
        return url.get_secret_value()
