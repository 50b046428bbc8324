"""Property-based: every operation of the app's own OpenAPI, fed valid and invalid input.

Whatever schemathesis sends (with a master token), the API answers a documented status
code with a body that matches the documented schema, and never a 5xx. The app is built at
import time without connecting anything; each test attaches a core on a fresh database.
"""

from __future__ import annotations

from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from pydantic import SecretStr
from schemathesis import checks

from kadence.api.app import create_app
from kadence.config import Settings
from kadence.core import SchedulerCore

MASTER_TOKEN = "schemathesis-master-token"
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]

app = create_app(Settings(master_token=SecretStr(MASTER_TOKEN), api_max_body_bytes=64 * 1024))
# The document the app serves at /openapi.json, read without starting the app (its lifespan
# would connect a core of its own); requests then go to the app in-process over ASGI.
schema = schemathesis.openapi.from_dict(
    app.openapi(),
    config=schemathesis.Config.from_dict(
        {
            "generation": {"mode": "all", "deterministic": True},
            "headers": {"Authorization": f"Bearer {MASTER_TOKEN}"},
        }
    ),
)
schema.app = app


@pytest.fixture
def attached_core(settings: Settings, core: SchedulerCore) -> Iterator[SchedulerCore]:
    """Point the module's app at this test's database and Redis."""
    app.state.settings = settings.model_copy(
        update={"master_token": SecretStr(MASTER_TOKEN), "api_max_body_bytes": 64 * 1024}
    )
    app.state.core = core
    yield core
    app.state.core = None


@schema.parametrize()
@hypothesis.settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_the_api_answers_any_input_by_its_schema(case: schemathesis.Case, attached_core: SchedulerCore) -> None:
    case.call_and_validate(checks=CHECKS)
