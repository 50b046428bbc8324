"""Row-level security, tried directly as the application role: another user's rows stay out of reach."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import dict_row

from kadence.core import SchedulerCore, TaskInput
from kadence.domain.errors import Conflict, Forbidden, NotFound
from kadence.domain.models import Role, UserContext

ALICE = UserContext(10)
BOB = UserContext(20)
MASTER = UserContext(1, Role.MASTER)


def _as(app_url: str, user: UserContext) -> psycopg.Connection:
    conn = psycopg.connect(app_url, row_factory=dict_row)
    conn.execute(
        "SELECT set_config('kadence.user_id', %s, false), set_config('kadence.role', %s, false)",
        (str(user.user_id), user.role.value),
    )
    return conn


@pytest.fixture
def bobs_rows(core: SchedulerCore) -> dict[str, object]:
    job = core.schedule_task(BOB, TaskInput(task_id="secret", user_id=20, handler="noop"))
    cancelled = core.schedule_delayed_task(BOB, TaskInput(task_id="gone", user_id=20, handler="noop"), delay_ms=60_000)
    core.cancel_job(BOB, cancelled.job_id)  # leaves a row in job_events
    schedule = core.schedule_recurring_task(
        BOB, TaskInput(task_id="s", user_id=20, handler="noop"), name="bob's", cron_expression="0 * * * *"
    )
    token = core.create_token(MASTER, 20, "user")
    return {"job_id": job.job_id, "schedule_id": schedule.id, "token": token}


def test_the_application_role_does_not_own_the_tables(database: tuple[str, str]) -> None:
    _, app_url = database
    with psycopg.connect(app_url) as conn:
        owners = conn.execute(
            "SELECT tablename, tableowner FROM pg_tables"
            " WHERE schemaname = 'public' AND tablename <> 'kadence_migrations'"
        ).fetchall()
        me = conn.execute("SELECT current_user").fetchone()[0]
        assert owners and all(owner != me for _, owner in owners)
        flags = conn.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").fetchone()
        assert flags == (False, False)


def test_user_cannot_read_another_users_rows(database: tuple[str, str], bobs_rows: dict[str, object]) -> None:
    with _as(database[1], ALICE) as conn:
        assert conn.execute("SELECT * FROM jobs").fetchall() == []
        assert conn.execute("SELECT * FROM jobs WHERE id = %s", (bobs_rows["job_id"],)).fetchall() == []
        assert conn.execute("SELECT * FROM cron_schedules").fetchall() == []
        assert conn.execute("SELECT * FROM job_events").fetchall() == []
        assert conn.execute("SELECT * FROM api_tokens").fetchall() == []


def test_user_cannot_update_or_delete_another_users_rows(
    database: tuple[str, str], bobs_rows: dict[str, object]
) -> None:
    with _as(database[1], ALICE) as conn:
        assert conn.execute("UPDATE jobs SET state = 'cancelled'").rowcount == 0
        assert conn.execute("UPDATE cron_schedules SET enabled = false").rowcount == 0
        assert conn.execute("UPDATE job_events SET message = 'x'").rowcount == 0
        assert conn.execute("UPDATE api_tokens SET revoked = true").rowcount == 0
        assert conn.execute("DELETE FROM jobs").rowcount == 0
        assert conn.execute("DELETE FROM cron_schedules").rowcount == 0
        assert conn.execute("DELETE FROM job_events").rowcount == 0
        assert conn.execute("DELETE FROM api_tokens").rowcount == 0
        conn.commit()
    with _as(database[1], BOB) as conn:
        job = conn.execute("SELECT state FROM jobs WHERE id = %s", (bobs_rows["job_id"],)).fetchone()
        assert job == {"state": "waiting"}
        assert conn.execute("SELECT enabled FROM cron_schedules").fetchone() == {"enabled": True}
        assert len(conn.execute("SELECT * FROM job_events").fetchall()) == 1


def test_user_cannot_insert_rows_for_another_user(database: tuple[str, str]) -> None:
    statements = [
        "INSERT INTO jobs (id, user_id, task_id, priority, handler, state, max_attempts) "
        "VALUES ('forged', 20, 't', 'normal', 'noop', 'waiting', 1)",
        "INSERT INTO cron_schedules (name, cron_expression, user_id) VALUES ('forged', '* * * * *', 20)",
        "INSERT INTO api_tokens (token_hash, user_id, role) VALUES ('x', 10, 'master')",
        # The one-round-trip insert sets its own context: Alice's context, Bob's row.
        "SELECT kadence_insert_job('10', 'user', 'forged', 20, 't', '', 'normal', 'noop', '{}', 'waiting', 1,"
        " NULL, NULL, NULL, NULL, 1, 60, 30)",
    ]
    for statement in statements:
        with _as(database[1], ALICE) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_user_cannot_escape_into_another_users_job_by_changing_its_owner(
    database: tuple[str, str], core: SchedulerCore
) -> None:
    own = core.schedule_task(ALICE, TaskInput(task_id="mine", user_id=10, handler="noop"))
    with _as(database[1], ALICE) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE jobs SET user_id = 20 WHERE id = %s", (own.job_id,))


def test_master_sees_everything(database: tuple[str, str], bobs_rows: dict[str, object]) -> None:
    with _as(database[1], MASTER) as conn:
        assert len(conn.execute("SELECT * FROM jobs").fetchall()) == 2
        assert len(conn.execute("SELECT * FROM api_tokens").fetchall()) == 1
        assert len(conn.execute("SELECT * FROM job_events").fetchall()) == 1


def test_without_a_context_nothing_is_visible(database: tuple[str, str], bobs_rows: dict[str, object]) -> None:
    with psycopg.connect(database[1]) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM api_tokens").fetchone() == (0,)


def test_the_insert_function_acts_only_for_the_context_it_is_given(database: tuple[str, str]) -> None:
    with _as(database[1], BOB) as conn:
        created = conn.execute(
            "SELECT kadence_insert_job('10', 'user', 'alices', 10, 't', '', 'normal', 'noop', '{}', 'waiting', 1,"
            " NULL, NULL, NULL, NULL, 1, 60, 30)"
        ).fetchone()
        assert created == {"kadence_insert_job": True}
        # The context was Alice's for that statement's transaction only: Bob sees nothing of hers.
        assert conn.execute("SELECT count(*) AS n FROM jobs").fetchone() == {"n": 0}


def test_a_job_id_another_user_holds_is_a_conflict(core: SchedulerCore, bobs_rows: dict[str, object]) -> None:
    with pytest.raises(Conflict):
        core.schedule_task(ALICE, TaskInput(task_id="x", user_id=10, handler="noop"), job_id=str(bobs_rows["job_id"]))


def test_core_answers_not_found_for_another_users_job(core: SchedulerCore, bobs_rows: dict[str, object]) -> None:
    with pytest.raises(NotFound):
        core.get_job(ALICE, str(bobs_rows["job_id"]))
    with pytest.raises(NotFound):
        core.cancel_job(ALICE, str(bobs_rows["job_id"]))
    with pytest.raises(NotFound):
        core.delete_schedule(ALICE, int(bobs_rows["schedule_id"]))
    with pytest.raises(Forbidden):
        core.list_cron_schedules(ALICE, 20)
    assert core.get_job(BOB, str(bobs_rows["job_id"])).task_id == "secret"


def test_tokens_are_stored_hashed_and_authenticate(
    database: tuple[str, str], core: SchedulerCore, bobs_rows: dict[str, object]
) -> None:
    token = str(bobs_rows["token"])
    assert core.authenticate(token) == BOB
    assert core.authenticate(token + "x") is None
    with psycopg.connect(database[0]) as conn:
        stored = [row[0] for row in conn.execute("SELECT token_hash FROM api_tokens").fetchall()]
    assert stored and token not in stored and all(len(value) == 64 for value in stored)
