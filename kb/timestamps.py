"""Reading and writing instants: UTC inside, the support zone with its offset outside.

Also the one reading, outside the staging tables' SQL, of the dates, times of day and plain numbers that
people write (rules §8: ASCII digits only), for the configuration and the credit schedules.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo


class TimestampError(ValueError):
    """Text that is not an ISO 8601 timestamp (or date, or time of day)."""


class NumberError(ValueError):
    """Text that is not a plain number."""


class OutsideYears(TimestampError):
    """A timestamp outside the years the business calendar holds (``FIRST_YEAR``–``LAST_YEAR``)."""


# Instants and dates are refused outside these years (local time): the business calendar is laid out
# year by year between the oldest row and the as-of instant, so a year-9999 typo or as-of would make it
# enormous (seconds of CPU per request), and years 1 and 9999 overflow a datetime once moved to UTC.
FIRST_YEAR, LAST_YEAR = 1970, 2200
OUTSIDE_YEARS = f"is outside {FIRST_YEAR}–{LAST_YEAR}"


# ISO 8601 as people and spreadsheets write it: a date, then optionally a time (hours 00–23) and an offset.
# ASCII digits only; no zone names, no words ("now", "epoch"), no 24:00.
_DATE = r"(\d{4}-\d{2}-\d{2})"
_CLOCK = r"([01]\d|2[0-3]):([0-5]\d)"
_ISO = re.compile(rf"{_DATE}(?:[T ]{_CLOCK}(?::([0-5]\d)(\.\d{{1,6}})?)?)?"
                  r"\s*(Z|z|[+-](?:\d{2}):?(?:\d{2})?)?", re.ASCII)
MAX_OFFSET = timedelta(hours=14)
# A plain number: ASCII digits, at most one point and 4 decimals; no sign, exponent, separator or word.
_NUMBER = re.compile(r"[0-9]{1,16}(\.[0-9]{1,4})?", re.ASCII)


def parse_timestamp(text: str, zone: ZoneInfo) -> datetime:
    """An aware UTC datetime from ISO 8601 text; raises TimestampError naming what is wrong.

    Text without an offset is local time in ``zone``: a local time that does not exist (the hour
    skipped when clocks go forward) is refused, and one that happens twice (clocks going back)
    is its first occurrence.
    """
    cleaned = text.strip()
    match = _ISO.fullmatch(cleaned)
    if not match:
        raise TimestampError(f"{text!r} is not an ISO 8601 timestamp (e.g. 2026-11-23T15:00:00+08:00)")
    offset = match.group(6)
    try:
        parsed = datetime.fromisoformat(cleaned[: match.start(6)].strip() if offset else cleaned)
    except ValueError:
        raise TimestampError(f"{text!r} is not a real date and time (e.g. 2026-11-23T15:00:00+08:00)") from None
    try:
        if offset:
            sign, digits = (1 if offset[0] == "+" else -1), offset[1:].replace(":", "")
            shift = timedelta(hours=int(digits[:2] or 0), minutes=int(digits[2:] or 0)) if offset not in "Zz" else None
            if shift is not None and (shift > MAX_OFFSET or int(digits[2:] or 0) > 59):
                raise TimestampError(f"{text!r} has the offset {offset}, which no place on Earth uses "
                                     "(±14:00 at most)")
            return parsed.replace(tzinfo=UTC if shift is None else timezone(sign * shift)).astimezone(UTC)
        return local_to_utc(parsed, zone, shown=text)
    except OverflowError:  # years 1 and 9999 moved past what a datetime holds
        raise OutsideYears(f"{text!r} {OUTSIDE_YEARS}") from None


def in_calendar_years(moment: datetime, zone: ZoneInfo) -> bool:
    """Whether the instant falls in FIRST_YEAR–LAST_YEAR, local time in ``zone``."""
    if FIRST_YEAR < moment.year < LAST_YEAR:
        return True
    try:
        return FIRST_YEAR <= moment.astimezone(zone).year <= LAST_YEAR
    except OverflowError:
        return False


def parse_as_of(text: str, zone: ZoneInfo, *, name: str) -> datetime:
    """An instant the as-of views are computed for (``--as-of``, ``?as_of=``, ``--now``, ``$SUPPORT_NOW``,
    ``$SUPPORT_AS_OF``), read as ``parse_timestamp`` reads it. ``OutsideYears`` (naming ``name`` and the
    range) outside FIRST_YEAR–LAST_YEAR: refused at once, before any calendar is laid out for it."""
    try:
        moment = parse_timestamp(text, zone)
    except OutsideYears as e:
        raise OutsideYears(f"{name}: {e}, the years the business calendar holds") from None
    except TimestampError as e:
        raise TimestampError(f"{name}: {e}") from None
    if not in_calendar_years(moment, zone):
        raise OutsideYears(f"{name}: {text.strip()!r} {OUTSIDE_YEARS}, the years the business calendar holds")
    return moment


def parse_date(text: str) -> date:
    """A date written ``YYYY-MM-DD`` in ASCII digits; raises TimestampError."""
    if not re.fullmatch(_DATE, text, re.ASCII):
        raise TimestampError(f"{text!r} is not an ISO date like \"2026-12-24\"")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise TimestampError(f"{text!r} is not a real date (e.g. \"2026-12-24\")") from None


def parse_clock(text: str) -> time:
    """A time of day written ``HH:MM`` (00:00 to 23:59) in ASCII digits; raises TimestampError."""
    match = re.fullmatch(_CLOCK, text, re.ASCII)
    if not match:
        raise TimestampError(f"{text!r} is not a time of day like \"09:00\" (00:00 to 23:59, digits 0-9)")
    return time(int(match.group(1)), int(match.group(2)))


def parse_number(text: str) -> Decimal:
    """A plain number (``99.9``, ``24``, ``0.5``), exactly as written; raises NumberError."""
    if not _NUMBER.fullmatch(text):
        raise NumberError(f"{text!r} is not a number written with the digits 0-9 and at most 4 decimals "
                          "(e.g. 99.9)")
    return Decimal(text)


def local_to_utc(local: datetime, zone: ZoneInfo, *, shown: str | None = None) -> datetime:
    """The instant of a local wall-clock time in ``zone``: its first occurrence when the clocks went back;
    TimestampError when it falls in the hour skipped when they went forward."""
    first = local.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        before, after = ((instant + timedelta(hours=h)).astimezone(zone) for h in (-3, 3))
        raise TimestampError(f"{shown or local.isoformat(sep=' ')!r} does not exist in {zone.key}: the clocks skip "
                             f"it that night (daylight saving, UTC{_offset(before)} to UTC{_offset(after)})")
    return instant


def _offset(moment: datetime) -> str:
    """'+01:00': the UTC offset of an aware datetime."""
    text = moment.strftime("%z")
    return f"{text[:3]}:{text[3:5]}"


def format_for_people(moment: datetime | None, zone: ZoneInfo) -> str:
    """``Mon 2026-11-23 15:00 HKT (UTC+08:00)``: what the dashboard shows (``kb.formats.instant``)."""
    from kb.formats import instant  # kb.formats reads pandas, which the commands that only parse never need

    return instant(moment, zone)


_fixed_now: datetime | None = None


def set_now(moment: datetime | None) -> None:
    """Take ``moment`` as now from here on (``--now``, ``$SUPPORT_NOW``: tests and replays); None: the clock."""
    global _fixed_now
    _fixed_now = None if moment is None else moment.astimezone(UTC)


def now_utc() -> datetime:
    """Now: the instant set by ``set_now``, else the clock."""
    return _fixed_now or datetime.now(UTC)


# SQL macros defined on every connection: ``iso_local`` writes a TIMESTAMPTZ as the
# data contract asks (local wall-clock time in the zone, then its offset), ``people_local`` as a message to a
# person says it (``people_local`` below);
# ``spreadsheet_safe`` puts a ``'`` before text a spreadsheet would run as a formula (rules §8);
# ``quote_text`` shows a user's value, shortened, inside an error message, with control and
# text-direction characters as U+FFFD (so they can neither reorder the message nor drive a terminal).
SQL_MACROS = r"""
CREATE OR REPLACE TEMP MACRO spreadsheet_safe(v) AS (
    CASE WHEN regexp_matches(v, '^[=+\-@\t\r]') THEN '''' || v ELSE v END
);
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
CREATE OR REPLACE TEMP MACRO people_local(ts, tz) AS (
    strftime(timezone(tz, ts), '%a %Y-%m-%d %H:%M:%S') || ' (UTC' || offset_text(ts, tz) || ')'
);
"""


def people_local(moment: datetime, zone: ZoneInfo) -> str:
    """``Wed 2026-12-09 10:00:00 (UTC+08:00)``: an instant in a message a person reads (a refused form or CSV
    line), to the second, as the SQL macro ``people_local`` writes it (SQL has no zone abbreviation)."""
    local = moment.astimezone(zone)
    offset = local.strftime("%z")
    return f"{local:%a %Y-%m-%d %H:%M:%S} (UTC{offset[:3]}:{offset[3:]})"
