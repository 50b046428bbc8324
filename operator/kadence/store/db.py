"""The connection pool and the per-transaction user context that row-level security reads."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from kadence.domain.errors import Forbidden, InvalidInput, Unavailable
from kadence.domain.models import UserContext

log = logging.getLogger(__name__)

Row = dict[str, Any]
Connection = psycopg.Connection[Row]

_SET_CONTEXT = "SELECT set_config('kadence.user_id', %s, true), set_config('kadence.role', %s, true)"


def count_affected(conn: Connection, statement: str, params: tuple[Any, ...] | list[Any] = ()) -> int:
    """Run an UPDATE or DELETE and return how many rows it touched.

    ``cursor.rowcount`` is not known yet inside a pipelined session, so the statement
    returns its rows and they are counted.
    """
    row = conn.execute(
        f"WITH affected AS ({statement} RETURNING 1) SELECT count(*) AS n FROM affected".encode(), params
    ).fetchone()
    return int(row["n"]) if row else 0


def _act_as_system(conn: Connection) -> None:
    conn.execute("SELECT set_config('kadence.user_id', '0', false), set_config('kadence.role', 'master', false)")


class Database:
    """A psycopg pool whose sessions act for one user (see the RLS policies in migrations/)."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        name: str = "kadence",
        timeout: float = 10.0,
        system: bool = False,
    ) -> None:
        self._system = system
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            name=name,
            kwargs={"row_factory": dict_row, "autocommit": system},
            configure=_act_as_system if system else None,
            timeout=timeout,
            reconnect_timeout=30.0,
        )

    @classmethod
    def for_system(cls, url: str, *, max_size: int = 2, name: str = "kadence-system") -> Database:
        """A pool for Kadence's own bookkeeping (workers): every connection acts as master.

        The context is set once per connection rather than per transaction, and each
        statement commits on its own, so a bookkeeping update is one plain round trip.
        Only trusted roles use it; request handling always uses per-transaction contexts.
        """
        return cls(url, min_size=1, max_size=max_size, name=name, system=True)

    def open(self, wait: bool = True, timeout: float = 10.0) -> None:
        try:
            self._pool.open(wait=wait, timeout=timeout)
        except PoolTimeout as exc:
            raise Unavailable(f"PostgreSQL is unreachable: {exc}") from exc

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def session(self, ctx: UserContext) -> Iterator[Connection]:
        """One transaction acting for ``ctx``: committed on success, rolled back on error.

        The session runs in pipeline mode: statements whose results are not read before
        the end travel with the commit, so a plain insert costs a single round trip.
        """
        with self._errors_translated(), ExitStack() as stack:
            if self._system:
                conn = stack.enter_context(self._pool.connection())
                stack.enter_context(conn.transaction())
                conn.execute(_SET_CONTEXT, (str(ctx.user_id), ctx.role.value))
                yield conn
                return
            conn = self._begin(stack, ctx)
            yield conn
            conn.commit()

    @contextmanager
    def _errors_translated(self) -> Iterator[None]:
        """Turn PostgreSQL's errors into the domain's: unreachable, forbidden, invalid."""
        try:
            yield
        except (psycopg.OperationalError, PoolTimeout) as exc:
            self._discard_broken()
            raise Unavailable(f"PostgreSQL is unreachable: {exc}") from exc
        except psycopg.errors.InsufficientPrivilege as exc:
            # Row-level security refused a write: the caller acted for another user.
            raise Forbidden(f"not allowed: {exc.diag.message_primary}") from exc
        except psycopg.errors.CheckViolation as exc:
            raise InvalidInput(exc.diag.column_name or "body", exc.diag.message_primary or "invalid") from exc

    def call(self, query: str, params: tuple[Any, ...]) -> Row | None:
        """Run one self-contained statement (a function that sets its own user context) in
        its own transaction and a single round trip; return its first row.

        Used for statements that are idempotent (an insert that skips existing ids), so one
        retry on a stale connection after a PostgreSQL restart is safe even if the first
        attempt reached the server.
        """
        with self._errors_translated():
            for attempt in (1, 2):
                try:
                    with self._pool.connection() as conn:
                        conn.autocommit = True
                        try:
                            return conn.execute(query.encode(), params).fetchone()
                        finally:
                            with suppress(psycopg.Error):
                                conn.autocommit = self._system
                except psycopg.OperationalError:
                    if attempt == 2:
                        raise
                    self._discard_broken()
        raise AssertionError("unreachable")  # pragma: no cover

    def _begin(self, stack: ExitStack, ctx: UserContext) -> Connection:
        """Check a connection out and set the user context, past one stale connection.

        After a PostgreSQL restart the pool still holds connections to the old server; the
        first statement on one fails at once, before anything was done, so trying another
        connection is safe.
        """
        for attempt in (1, 2):
            inner = ExitStack()
            try:
                conn = inner.enter_context(self._pool.connection())
                inner.enter_context(conn.pipeline())
                conn.execute(_SET_CONTEXT, (str(ctx.user_id), ctx.role.value))
            except psycopg.OperationalError:
                with suppress(psycopg.Error):
                    inner.close()
                if attempt == 2:
                    raise
                self._discard_broken()
                continue
            stack.enter_context(inner)
            return conn
        raise AssertionError("unreachable")  # pragma: no cover

    def _discard_broken(self) -> None:
        """Drop idle connections that lost their server, so the next request gets a fresh one."""
        with suppress(Exception):
            self._pool.check()

    def execute_once(self, ctx: UserContext, query: str, params: tuple[Any, ...]) -> Row | None:
        """Run one statement as its own transaction in a single round trip; return its first row.

        On a system pool the statement simply autocommits. Otherwise BEGIN, the user
        context, the statement and COMMIT travel together in a pipeline, and the result is
        read after the commit.
        """
        try:
            with self._pool.connection() as conn:
                if self._system:
                    if not ctx.is_master:
                        raise Forbidden("a system pool acts for the system only")
                    cursor = conn.execute(query.encode(), params)
                else:
                    with conn.pipeline():
                        conn.execute(_SET_CONTEXT, (str(ctx.user_id), ctx.role.value))
                        cursor = conn.execute(query.encode(), params)
                        conn.commit()
                return cursor.fetchone() if cursor.description else None
        except (psycopg.OperationalError, PoolTimeout) as exc:
            self._discard_broken()
            raise Unavailable(f"PostgreSQL is unreachable: {exc}") from exc

    @contextmanager
    def anonymous(self) -> Iterator[Connection]:
        """A transaction with no user context: it sees no user rows (used for authentication)."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            self._discard_broken()
            raise Unavailable(f"PostgreSQL is unreachable: {exc}") from exc

    def ping(self) -> bool:
        try:
            with self.anonymous() as conn:
                conn.execute("SELECT 1")
            return True
        except Unavailable:
            return False
