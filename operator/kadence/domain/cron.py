"""Cron maths: validate expressions and compute fire times correctly across DST changes.

Expressions have five fields, or six with seconds first (as BullMQ accepts). Times are
computed in the schedule's wall clock and converted to UTC with these rules, the ones
Vixie cron made familiar:

- a wall time skipped by a spring-forward change fires once, shifted forward by the gap,
  when the hour field is fixed (``30 2 * * *`` runs at 03:30 that day); schedules with a
  wildcard hour simply have no ticks in the missing hour;
- a wall time repeated by a fall-back change fires once (at its first occurrence) when the
  hour field is fixed; schedules with a wildcard hour fire at both occurrences, so an
  every-five-minutes job keeps its real-time cadence.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from kadence.domain.errors import InvalidInput

# Far enough to find the next tick of any valid expression (29 February on a Monday
# is the rarest, every 28 years); bounded so that a pathological one cannot spin forever.
_MAX_CANDIDATES = 100_000
_LOOKBACK = timedelta(hours=3)
# Longest gap to the next tick that the fixed-offset shortcut answers (no zone changes its
# offset twice within this span plus two lookbacks).
_FIXED_OFFSET_SPAN = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A validated cron expression bound to a time zone."""

    expression: str
    timezone: str

    @property
    def has_seconds(self) -> bool:
        return len(self.expression.split()) == 6

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def hour_is_wildcard(self) -> bool:
        fields = self.expression.split()
        hour = fields[2] if self.has_seconds else fields[1]
        return "*" in hour


def parse_timezone(name: str, field: str = "timezone") -> ZoneInfo:
    """Return the IANA zone called ``name`` or raise InvalidInput naming ``field``."""
    if not name or name != name.strip():
        raise InvalidInput(field, f"{name!r} is not an IANA time zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(field, f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from None


def parse_cron(
    expression: str, timezone: str = "UTC", field: str = "cronExpression", tz_field: str = "timezone"
) -> CronSpec:
    """Validate a five- or six-field cron expression and its time zone."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidInput(field, "must be a cron expression such as '*/5 * * * *'")
    normalized = " ".join(expression.split())
    count = len(normalized.split())
    if count not in (5, 6):
        raise InvalidInput(
            field,
            f"{expression!r} has {count} fields; use five (minute hour day month weekday) "
            "or six with seconds first",
        )
    try:
        croniter(normalized, datetime(2000, 1, 1), second_at_beginning=count == 6)
    except (CroniterError, ValueError, KeyError) as exc:
        raise InvalidInput(field, f"{expression!r} is not a valid cron expression: {exc}") from None
    parse_timezone(timezone, tz_field)
    spec = CronSpec(normalized, timezone)
    try:
        next_fire_time(spec, datetime(2000, 1, 1, tzinfo=UTC))
    except ValueError:
        raise InvalidInput(field, f"{expression!r} never fires") from None
    return spec


@lru_cache(maxsize=4096)
def _parsed(expression: str, has_seconds: bool) -> croniter:
    return croniter(expression, datetime(2000, 1, 1), second_at_beginning=has_seconds, ret_type=datetime)


def _iterator(spec: CronSpec, start_wall: datetime) -> croniter:
    """A croniter positioned at ``start_wall``; a copy of a cached parse (parsing dominates the cost)."""
    it = copy.copy(_parsed(spec.expression, spec.has_seconds))
    it.set_current(start_wall, force=True)
    return it


def _wall_candidates(spec: CronSpec, start_wall: datetime) -> Iterator[datetime]:
    it = _iterator(spec, start_wall)
    for _ in range(_MAX_CANDIDATES):
        yield it.get_next(datetime)
    raise ValueError(f"no fire time found for {spec.expression!r}")


def _occurrences(spec: CronSpec, wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """The UTC instants at which the wall-clock time ``wall`` fires (zero, one or two)."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    exists = first.astimezone(zone).replace(tzinfo=None) == wall
    if not exists:
        return [] if spec.hour_is_wildcard else [first]
    if first != second and spec.hour_is_wildcard:
        return [first, second]
    return [first]


def next_fire_time(spec: CronSpec, after: datetime) -> datetime:
    """The first instant strictly after ``after`` (tz-aware) at which the schedule fires, in UTC."""
    return _next_fire_time_utc(spec, after.astimezone(UTC))


# Schedules fall due together because they share an expression ("0 * * * *" on the hour),
# so a burst of thousands asks the same question thousands of times: remember the answers.
@lru_cache(maxsize=8192)
def _next_fire_time_utc(spec: CronSpec, after_utc: datetime) -> datetime:
    zone = spec.zone
    quick = _next_fire_time_fixed_offset(spec, zone, after_utc)
    if quick is not None:
        return quick
    return _next_fire_time_scan(spec, zone, after_utc)


def _next_fire_time_fixed_offset(spec: CronSpec, zone: ZoneInfo, after_utc: datetime) -> datetime | None:
    """The next fire time when no UTC-offset change is near ``after`` or the answer, else None.

    With one fixed offset every wall time exists exactly once and maps to its instant in
    order, so the first wall-clock match is the answer. This keeps dense schedules (every
    second) cheap; the scan below is only needed around DST changes.
    """
    local = after_utc.astimezone(zone)
    offset = local.utcoffset()
    if offset is None or (after_utc - _LOOKBACK).astimezone(zone).utcoffset() != offset:
        return None
    wall: datetime = _iterator(spec, local.replace(tzinfo=None)).get_next(datetime)
    instant = (wall - offset).replace(tzinfo=UTC)
    if instant - after_utc > _FIXED_OFFSET_SPAN:
        return None
    for probe in (instant, instant + _LOOKBACK):
        if probe.astimezone(zone).utcoffset() != offset:
            return None
    return instant


def _next_fire_time_scan(spec: CronSpec, zone: ZoneInfo, after_utc: datetime) -> datetime:
    """The next fire time by scanning wall times from ``_LOOKBACK`` before ``after`` (DST-safe)."""
    start_wall = (after_utc.astimezone(zone) - _LOOKBACK).replace(tzinfo=None, fold=0)
    # Around a fall-back change two wall times' occurrences interleave, so keep looking a
    # little past the first match for an earlier instant.
    best: datetime | None = None
    horizon: datetime | None = None
    for wall in _wall_candidates(spec, start_wall):
        if horizon is not None and wall > horizon:
            return best  # type: ignore[return-value]
        for instant in _occurrences(spec, wall, zone):
            if instant > after_utc and (best is None or instant < best):
                best = instant
                horizon = wall + _LOOKBACK
    raise ValueError(f"no fire time found for {spec.expression!r}")  # pragma: no cover


def fire_times_between(spec: CronSpec, after: datetime, until: datetime, limit: int = 10_000) -> list[datetime]:
    """Every fire time in (after, until], at most ``limit`` of them (the latest ones are kept)."""
    times: list[datetime] = []
    current = after
    while True:
        current = next_fire_time(spec, current)
        if current > until:
            return times
        times.append(current)
        if len(times) > limit:
            del times[0]
