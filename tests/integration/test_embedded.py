"""The embedded servers start, keep their data across restarts, and leave no process behind."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from redis import Redis

from kadence.embedded import EmbeddedRedis, EmbeddedServerError, EmbeddedServers
from tests.support import children_of


def test_servers_start_persist_and_stop_cleanly(tmp_path: Path) -> None:
    before = set(children_of(os.getpid()))
    servers = EmbeddedServers(tmp_path / "data").start()
    assert len(set(children_of(os.getpid())) - before) >= 2
    try:
        with psycopg.connect(servers.postgres.owner_url(), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (value text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")
        Redis.from_url(servers.redis.url()).set("kept", "yes")
        pids = [servers.postgres.process.pid, servers.redis.process.pid]
    finally:
        servers.stop()
    assert set(children_of(os.getpid())) - before == set()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]

    with EmbeddedServers(tmp_path / "data") as again:
        with psycopg.connect(again.postgres.owner_url()) as conn:
            assert conn.execute("SELECT value FROM kept").fetchone() == ("still here",)
        assert Redis.from_url(again.redis.url()).get("kept") == b"yes"
    assert set(children_of(os.getpid())) - before == set()


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path / "a", persistent=False).start()
    try:
        with pytest.raises(EmbeddedServerError, match="Redis"):
            EmbeddedRedis(tmp_path / "b", port=first.port, persistent=False).start()
    finally:
        first.stop()
