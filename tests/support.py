"""Helpers shared by the test suites: a recording webhook receiver, process helpers, waiting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kadence.config import Settings


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, message: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


@dataclass
class Delivery:
    at: float
    body: dict[str, Any]
    headers: dict[str, str]
    raw: bytes


@dataclass
class WebhookReceiver:
    """A local HTTP server that records every POST and answers from a scripted list of codes."""

    statuses: list[int] = field(default_factory=list)
    default_status: int = 200
    deliveries: list[Delivery] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.deliveries.append(
                    Delivery(time.time(), json.loads(raw or b"{}"), dict(self.headers.items()), raw)
                )
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.default_status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def for_job(self, job_id: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.body.get("jobId") == job_id]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process the same settings."""
    env = dict(os.environ)
    env.update(
        {
            "KADENCE_DATABASE_URL": settings.database_url.get_secret_value(),
            "KADENCE_MIGRATION_DATABASE_URL": settings.owner_database_url,
            "KADENCE_REDIS_URL": settings.redis_url.get_secret_value(),
            "KADENCE_LOG_LEVEL": "INFO",
            "KADENCE_PYTHON_ALLOWED_PREFIXES": ",".join(settings.python_allowed_prefixes),
            "KADENCE_BACKOFF_BASE_SECONDS": str(settings.backoff_base_seconds),
        }
    )
    if settings.webhook_secret:
        env["KADENCE_WEBHOOK_SECRET"] = settings.webhook_secret.get_secret_value()
    return env


def start_kadence(args: list[str], settings: Settings, **kwargs: Any) -> subprocess.Popen[bytes]:
    """Run ``kadence <args>`` as a child process with ``settings``."""
    return subprocess.Popen(
        [sys.executable, "-c", "from kadence.cli import main; main()", *args],
        env=settings_env(settings),
        start_new_session=True,
        **kwargs,
    )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 40.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    return process.returncode


def children_of(pid: int) -> list[int]:
    """PIDs of every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
        except (OSError, IndexError):
            continue
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        for child, parent in parents.items():
            if parent == current:
                found.append(child)
                frontier.append(child)
    return found
