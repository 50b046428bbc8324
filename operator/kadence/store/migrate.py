"""Apply the plain-SQL migrations in order, once each, and grant the application role access."""

from __future__ import annotations

import logging
from importlib import resources

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

# Any constant will do: it makes concurrent migrators (several pods starting) wait in turn.
_LOCK_ID = 0x6B6164656E6365


def migration_files() -> list[tuple[str, str]]:
    """(version, SQL text) of every migration shipped with the package, in order."""
    folder = resources.files("kadence.store") / "migrations"
    entries = sorted((entry.name, entry.read_text()) for entry in folder.iterdir() if entry.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), text) for name, text in entries]


def migrate(owner_url: str, app_role: str | None = None) -> list[str]:
    """Apply pending migrations as the table owner; return the versions applied now."""
    applied_now: list[str] = []
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS kadence_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM kadence_migrations").fetchall()}
            for version, text in migration_files():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(text.encode())
                    conn.execute("INSERT INTO kadence_migrations (version) VALUES (%s)", (version,))
                log.info("migration applied version=%s", version)
                applied_now.append(version)
            if app_role:
                _grant(conn, app_role)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


def _grant(conn: psycopg.Connection[tuple[object, ...]], role: str) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    current = conn.execute("SELECT current_user").fetchone()
    if not exists or (current and current[0] == role):
        return
    ident = sql.Identifier(role)
    for statement in (
        "GRANT USAGE ON SCHEMA public TO {}",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON cron_schedules, jobs, job_events, api_tokens TO {}",
        "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}",
        "GRANT EXECUTE ON FUNCTION kadence_authenticate(text) TO {}",
        "GRANT EXECUTE ON FUNCTION kadence_insert_job TO {}",
    ):
        conn.execute(sql.SQL(statement).format(ident))
