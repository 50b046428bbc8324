"""Real PostgreSQL and Redis for every test that needs them.

The servers are embedded ones started once per session (``kadence.embedded``) unless
``KADENCE_TEST_DATABASE_URL`` (a role that may create databases and roles) and
``KADENCE_TEST_REDIS_URL`` name running ones. Each test gets a fresh database cloned from
a migrated template and its own flushed Redis database.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from redis import Redis

from kadence.config import Settings
from kadence.core import SchedulerCore, core_from_settings
from kadence.embedded import APP_ROLE, EmbeddedPostgres, EmbeddedRedis
from kadence.store.migrate import migrate
from tests.support import WebhookReceiver, start_kadence, stop_process

TEMPLATE = "kadence_test_template"
_redis_db = itertools.count(1)


def _with_database(url: str, database: str, user: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}@{netloc.rsplit('@', 1)[-1]}"
    return urlunsplit((parts.scheme, netloc, f"/{database}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def postgres_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("KADENCE_TEST_DATABASE_URL")
    if external:
        yield external
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data").start()
    try:
        yield server.owner_url("postgres")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("KADENCE_TEST_REDIS_URL")
    if external:
        yield external
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persistent=False).start()
    try:
        yield server.url(0)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def template_database(postgres_admin_url: str) -> str:
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone():
            conn.execute(f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS")
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    migrate(_with_database(postgres_admin_url, TEMPLATE), APP_ROLE)
    return TEMPLATE


@pytest.fixture
def database(postgres_admin_url: str, template_database: str) -> Iterator[tuple[str, str]]:
    """A fresh, migrated database: (owner URL, application-role URL)."""
    name = f"kt_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    yield _with_database(postgres_admin_url, name), _with_database(postgres_admin_url, name, APP_ROLE)
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A flushed Redis database of its own."""
    index = next(_redis_db) % 60 + 1
    url = _with_database(redis_server_url, str(index))
    client = Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def settings(database: tuple[str, str], redis_url: str) -> Settings:
    owner_url, app_url = database
    return Settings(
        database_url=app_url,
        migration_database_url=owner_url,
        redis_url=redis_url,
        python_allowed_prefixes=["kadence.handlers.examples", "tests"],
        dispatcher_max_sleep_seconds=1.0,
    )


@pytest.fixture
def core(settings: Settings) -> Iterator[SchedulerCore]:
    instance = core_from_settings(settings)
    yield instance
    instance.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def worker_pool(settings: Settings) -> Iterator[object]:
    """Start ``kadence worker`` with a given concurrency: ``worker_pool(2)``; stopped afterwards."""
    processes = []

    def start(concurrency: int = 2) -> object:
        process = start_kadence(["worker", "--concurrency", str(concurrency)], settings)
        processes.append(process)
        return process

    yield start
    for process in processes:
        stop_process(process)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        suite = Path(str(item.fspath)).relative_to(root).parts[0]
        item.add_marker(getattr(pytest.mark, suite))
