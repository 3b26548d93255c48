"""Reading and writing instants: UTC inside, the support zone with its offset outside."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


class TimestampError(ValueError):
    """Text that is not an ISO 8601 timestamp."""


def parse_timestamp(text: str, zone: ZoneInfo) -> datetime:
    """An aware UTC datetime from ISO 8601 text; text without an offset is local time in ``zone``."""
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        raise TimestampError(f"{text!r} is not an ISO 8601 timestamp (e.g. 2026-11-23T15:00:00+08:00)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def as_utc(moment: datetime, zone: ZoneInfo) -> datetime:
    """An aware UTC datetime; a naive one is read as local time in ``zone``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def format_local(moment: datetime | None, zone: ZoneInfo) -> str:
    """``2026-11-23T15:00:00+08:00``: ISO 8601 in the support zone, to the second."""
    if moment is None:
        return ""
    return moment.astimezone(zone).isoformat(timespec="seconds")


def format_for_people(moment: datetime | None, zone: ZoneInfo) -> str:
    """``Mon 2026-11-23 15:00 HKT``: what the dashboard shows."""
    if moment is None:
        return ""
    local = moment.astimezone(zone)
    return local.strftime("%a %Y-%m-%d %H:%M ") + (local.tzname() or local.strftime("%z"))


_fixed_now: datetime | None = None


def set_now(moment: datetime | None) -> None:
    """Take ``moment`` as now from here on (``--now``, ``$SUPPORT_NOW``: tests and replays); None: the clock."""
    global _fixed_now
    _fixed_now = None if moment is None else moment.astimezone(UTC)


def now_utc() -> datetime:
    """Now: the instant set by ``set_now``, else the clock."""
    return _fixed_now or datetime.now(UTC)


# SQL macros defined on every connection: ``iso_local`` writes a TIMESTAMPTZ as the
# data contract asks (local wall-clock time in the zone, then its offset);
# ``quote_text`` shows a user's value, shortened, inside an error message, with control and
# text-direction characters as U+FFFD (so they can neither reorder the message nor drive a terminal).
SQL_MACROS = r"""
CREATE OR REPLACE TEMP MACRO quote_text(v) AS (
    '''' || regexp_replace(CASE WHEN length(v) > 60 THEN left(v, 57) || '...' ELSE v END,
                           '[\x00-\x1f\x7f-\x9f\x{202A}-\x{202E}\x{2066}-\x{2069}]', chr(65533), 'g') || ''''
);
CREATE OR REPLACE TEMP MACRO offset_seconds(ts, tz) AS (
    CAST(epoch(timezone(tz, ts)) - epoch(timezone('UTC', ts)) AS BIGINT)
);
CREATE OR REPLACE TEMP MACRO offset_text(ts, tz) AS (
    (CASE WHEN offset_seconds(ts, tz) < 0 THEN '-' ELSE '+' END)
    || lpad(CAST(abs(offset_seconds(ts, tz)) // 3600 AS VARCHAR), 2, '0')
    || ':'
    || lpad(CAST(abs(offset_seconds(ts, tz)) % 3600 // 60 AS VARCHAR), 2, '0')
);
CREATE OR REPLACE TEMP MACRO iso_local(ts, tz) AS (
    strftime(timezone(tz, ts), '%Y-%m-%dT%H:%M:%S') || offset_text(ts, tz)
);
"""
