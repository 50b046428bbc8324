"""The fault drills of `make drills`, in their short form, so they cannot rot."""

from __future__ import annotations

import pytest

from bench import drills


@pytest.mark.parametrize("name", sorted(drills.DRILLS))
def test_drill_loses_nothing(name: str) -> None:
    report = drills.run([name], short=True)[name]
    assert report["accepted"] > 0
    assert report["lost"] == 0, report
    assert report["stuck_active"] == 0, report
    assert report.get("server_errors", 0) == 0, report
    assert report.get("server_errors_other_than_503", 0) == 0, report
    if name == "worker_kill":
        assert report["kills"] >= 3 and report["failed"] == 0, report
    if name == "dispatcher_kill":
        assert report["kills"] >= 3 and report["duplicates"] == 0, report
        assert report["unexpected_ticks"] == 0 and report["not_queued"] == 0, report
    if name == "postgres_restart":
        assert report["responses"].get("503", 0) > 0, "PostgreSQL was down: some requests must have answered 503"
