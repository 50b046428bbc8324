"""Fresh embedded servers, timing helpers and child processes for the benchmarks."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from redis import Redis

from kadence.config import Settings
from kadence.core import SchedulerCore, core_from_settings
from kadence.domain.errors import Unavailable
from kadence.domain.models import UserContext
from kadence.embedded import APP_ROLE, EmbeddedServers
from kadence.store import jobs
from kadence.store.migrate import migrate
from tests.support import stop_process

SYSTEM = UserContext.system()

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class BenchEnv:
    servers: EmbeddedServers
    settings: Settings
    core: SchedulerCore

    def redis(self, db: int) -> Redis:
        return Redis.from_url(self.servers.redis.url(db))

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KADENCE_DATABASE_URL": self.settings.database_url.get_secret_value(),
                "KADENCE_MIGRATION_DATABASE_URL": self.settings.owner_database_url,
                "KADENCE_REDIS_URL": self.settings.redis_url.get_secret_value(),
                "KADENCE_LOG_LEVEL": "WARNING",
                "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), str(ROOT)]),
            }
        )
        return env


@contextmanager
def bench_env(persistent: bool = False) -> Iterator[BenchEnv]:
    """Embedded PostgreSQL and Redis in a temporary directory, migrated, with a connected core."""
    with tempfile.TemporaryDirectory(prefix="kadence-bench-") as data_dir:
        servers = EmbeddedServers(Path(data_dir), persistent=persistent).start()
        try:
            migrate(servers.postgres.owner_url(), APP_ROLE)
            settings = Settings(
                database_url=servers.postgres.app_url(),
                migration_database_url=servers.postgres.owner_url(),
                redis_url=servers.redis.url(0),
            )
            core = core_from_settings(settings)
            try:
                yield BenchEnv(servers, settings, core)
            finally:
                core.close()
        finally:
            servers.stop()


def reset(env: BenchEnv) -> None:
    """Empty Redis and the job tables between figures."""
    for db in (0, 1):
        env.redis(db).flushdb()
    with env.core.db.session(SYSTEM) as conn:
        jobs.delete_all_jobs(conn)


def job_counts(env: BenchEnv) -> dict[str, int]:
    with env.core.db.session(SYSTEM) as conn:
        return jobs.count_by_state(conn)


def job_timings(env: BenchEnv) -> list[dict[str, Any]]:
    with env.core.db.session(SYSTEM) as conn:
        return jobs.job_timings(conn)


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p99, max and min of ``values`` (milliseconds, rounded)."""
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {
        "p50": pick(0.50),
        "p99": pick(0.99),
        "max": round(ordered[-1], 2),
        "min": round(ordered[0], 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


def ratio(kadence: float, baseline: float) -> float:
    return round(kadence / baseline, 2) if baseline else 0.0


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kadence_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from kadence.cli import main; main()", *args]


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL to the whole process group after ``timeout`` seconds."""
    stop_process(process, timeout)


class FastReceiver:
    """A local HTTP endpoint that answers 200 to every POST (the webhook target)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> FastReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Unavailable:
            pass  # a server is restarting: ask again
        time.sleep(interval)
    return False
