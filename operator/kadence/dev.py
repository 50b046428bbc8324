"""``kadence dev``: the whole scheduler on one machine, on embedded PostgreSQL and Redis.

It starts the servers under ``--data-dir``, applies the migrations, writes
``<data-dir>/kadence.env`` (so roles started by hand can join), and runs the API, the
dispatcher and a worker pool as child processes. Ctrl-C or SIGTERM stops the children
first, then the servers. The runtimes are only ever started as subprocesses: this module
imports none of them.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from kadence.embedded import APP_ROLE, EmbeddedServerError, EmbeddedServers
from kadence.store.migrate import migrate

log = logging.getLogger(__name__)

ENV_FILE = "kadence.env"
_STOP_TIMEOUT = 30.0
_READY_TIMEOUT = 60.0


@dataclass
class Child:
    """A role running as a child process, in a process group of its own."""

    role: str
    process: subprocess.Popen[bytes]


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of an env file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    """Write the connection settings readable by the owner only (the master token is in it)."""
    lines = [
        "# Written by `kadence dev`: connection settings of the local scheduler.",
        "# Join it from another shell with:  set -a; . " + str(path) + "; set +a",
        *(f"{key}={value}" for key, value in values.items()),
    ]
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def connection_env(servers: EmbeddedServers, master_token: str) -> dict[str, str]:
    return {
        "KADENCE_DATABASE_URL": servers.postgres.app_url(),
        "KADENCE_MIGRATION_DATABASE_URL": servers.postgres.owner_url(),
        "KADENCE_REDIS_URL": servers.redis.url(0),
        "KADENCE_MASTER_TOKEN": master_token,
    }


def _start_role(role: str, args: list[str], env: Mapping[str, str]) -> Child:
    process = subprocess.Popen(
        [sys.executable, "-c", "from kadence.cli import main; main()", *args],
        env=dict(env),
        start_new_session=True,  # Ctrl-C reaches only us; we stop the children in order
    )
    log.info("role started role=%s pid=%s", role, process.pid)
    return Child(role, process)


def _stop_children(children: list[Child]) -> None:
    """SIGTERM every child, wait for each, and SIGKILL the process group of any that lingers."""
    for child in children:
        if child.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT
    for child in children:
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("role did not stop in time, killing role=%s pid=%s", child.role, child.process.pid)
        # Whatever the role left behind in its group (worker processes) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(5)
        log.info("role stopped role=%s code=%s", child.role, child.process.returncode)


def _wait_until_ready(url: str, children: list[Child], stop: threading.Event) -> bool:
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline and not stop.is_set():
        if any(child.process.poll() is not None for child in children):
            return False
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
            if answer.status == 200:
                return True
        stop.wait(0.2)
    return False


def _say(text: str) -> None:
    """The command's own output (logs go to stderr)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run_dev(options: argparse.Namespace) -> int:
    """Run everything until Ctrl-C or SIGTERM; 0 after a clean stop, 1 when a part failed."""
    data_dir = Path(options.data_dir).absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("dev stopping signal=%s", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    servers = EmbeddedServers(data_dir)
    children: list[Child] = []
    try:
        try:
            servers.start()
        except EmbeddedServerError as exc:
            log.error("embedded servers did not start error=%s", exc)
            return 1
        migrate(servers.postgres.owner_url(), APP_ROLE)

        env_path = data_dir / ENV_FILE
        master_token = read_env_file(env_path).get("KADENCE_MASTER_TOKEN") or "kdn_master_" + secrets.token_urlsafe(24)
        connection = connection_env(servers, master_token)
        write_env_file(env_path, connection)
        env = {**os.environ, **connection}

        children.append(_start_role("api", ["api", "--host", options.host, "--port", str(options.port)], env))
        children.append(_start_role("dispatcher", ["dispatcher"], env))
        children.append(_start_role("worker", ["worker", "--concurrency", str(options.concurrency)], env))

        url = f"http://{options.host}:{options.port}"
        if not _wait_until_ready(url, children, stop):
            if stop.is_set():
                return 0
            failed = [c.role for c in children if c.process.poll() is not None]
            log.error("kadence dev did not become ready url=%s exited=%s", url, ",".join(failed) or "none")
            return 1
        _say(f"Kadence is running: {url}  (API docs at {url}/docs)")
        _say(f"Master token: {master_token}")
        _say(f"Settings for other roles: {env_path}  (set -a; . {env_path}; set +a)")
        _say("Press Ctrl-C to stop.")

        while not stop.wait(0.5):
            exited = next((c for c in children if c.process.poll() is not None), None)
            if exited is not None:
                log.error("role exited, stopping everything role=%s code=%s", exited.role, exited.process.returncode)
                return 1
        return 0
    finally:
        _stop_children(children)
        servers.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("dev stopped data_dir=%s", data_dir)
