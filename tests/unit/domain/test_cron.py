"""Cron maths with fixed clocks: DST in Europe/Berlin and America/New_York, six fields, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kadence.domain.cron import fire_times_between, next_fire_time, parse_cron
from kadence.domain.errors import InvalidInput

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _runs(expression: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    return fire_times_between(parse_cron(expression, zone), start, end)


@pytest.mark.parametrize(
    ("zone", "spring_day"),
    [("Europe/Berlin", datetime(2026, 3, 29)), ("America/New_York", datetime(2026, 3, 8))],
)
@pytest.mark.parametrize("expression", ["0 2 * * *", "30 2 * * *"])
def test_spring_forward_runs_a_skipped_daily_time_once(zone: str, spring_day: datetime, expression: str) -> None:
    tz = ZoneInfo(zone)
    start = spring_day.replace(tzinfo=tz) - timedelta(days=1)
    runs = _runs(expression, zone, start, start + timedelta(days=3))
    on_the_day = [r for r in runs if r.astimezone(tz).date() == spring_day.date()]
    assert len(on_the_day) == 1
    local = on_the_day[0].astimezone(tz)
    # 02:xx does not exist that day: it runs at 03:xx, the same instant as 02:xx standard time.
    assert (local.hour, local.minute) == (3, int(expression.split()[0]))
    assert len(runs) == 3


@pytest.mark.parametrize(
    ("zone", "fall_day"),
    [("Europe/Berlin", datetime(2026, 10, 25)), ("America/New_York", datetime(2026, 11, 1))],
)
@pytest.mark.parametrize("expression", ["0 2 * * *", "30 2 * * *", "30 1 * * *"])
def test_fall_back_runs_a_repeated_daily_time_once(zone: str, fall_day: datetime, expression: str) -> None:
    tz = ZoneInfo(zone)
    start = fall_day.replace(tzinfo=tz) - timedelta(days=1)
    runs = _runs(expression, zone, start, start + timedelta(days=3))
    on_the_day = [r for r in runs if r.astimezone(tz).date() == fall_day.date()]
    assert len(on_the_day) == 1
    assert len(set(runs)) == len(runs) == 3


def test_fall_back_keeps_real_time_cadence_for_wildcard_hours() -> None:
    start = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)  # 02:00 CEST; the clock goes back at 01:00 UTC
    runs = _runs("*/30 * * * *", "Europe/Berlin", start, start + timedelta(hours=3))
    gaps = {later - earlier for earlier, later in zip(runs, runs[1:], strict=False)}
    assert gaps == {timedelta(minutes=30)} and len(runs) == 6


def test_spring_forward_wildcard_hours_skip_the_missing_hour_without_duplicates() -> None:
    start = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # 01:00 CET; 02:00 CET becomes 03:00 CEST
    runs = _runs("0 * * * *", "Europe/Berlin", start, start + timedelta(hours=4))
    assert len(set(runs)) == len(runs)
    assert all(later - earlier == timedelta(hours=1) for earlier, later in zip(runs, runs[1:], strict=False))


def test_six_fields_have_seconds_first() -> None:
    spec = parse_cron("*/15 * * * * *")
    start = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert next_fire_time(spec, start) == start + timedelta(seconds=15)
    assert next_fire_time(spec, start + timedelta(seconds=1)) == start + timedelta(seconds=15)


def test_next_fire_time_is_strictly_after() -> None:
    spec = parse_cron("0 9 * * 1-5", "America/New_York")
    friday_nine = datetime(2026, 1, 9, 9, 0, tzinfo=NEW_YORK)
    assert next_fire_time(spec, friday_nine) == datetime(2026, 1, 12, 9, 0, tzinfo=NEW_YORK).astimezone(UTC)


@pytest.mark.parametrize(
    ("expression", "timezone", "field", "words"),
    [
        ("61 * * * *", "UTC", "cronExpression", "not a valid cron"),
        ("* * * *", "UTC", "cronExpression", "4 fields"),
        ("* * * * * * *", "UTC", "cronExpression", "7 fields"),
        ("", "UTC", "cronExpression", "must be a cron expression"),
        ("0 0 30 2 *", "UTC", "cronExpression", ""),
        ("* * * * *", "Mars/Olympus", "timezone", "unknown time zone"),
        ("* * * * *", "", "timezone", "not an IANA"),
    ],
)
def test_invalid_expressions_name_the_field(expression: str, timezone: str, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_cron(expression, timezone)
    assert caught.value.field == field
    assert words in caught.value.message
