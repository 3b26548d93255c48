"""The support team's business calendar, laid out as tables DuckDB can join against.

Business time is counted as a running total: every business day gets the number
of business seconds that lie before its opening (``cum_before``). The business
time elapsed at any instant is then one ASOF join away (the last opening at or
before it, plus the part of that day already gone), and a deadline "N business
days after receipt" is the inverse lookup (the last day whose ``cum_before`` is
below the target total). See ``kb/sla.py`` for the queries.

Openings and closings are built from local wall-clock times with ``zoneinfo``,
so 09:00 stays 09:00 across daylight-saving changes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

import holidays
import pandas as pd

from kb.config import CalendarConfig


def holiday_dates(calendar: CalendarConfig, years: range) -> frozenset[date]:
    """Public holidays from the `holidays` package plus the configured extra ones."""
    public: set[date] = set()
    if calendar.holidays_country:
        public = set(
            holidays.country_holidays(
                calendar.holidays_country, subdiv=calendar.holidays_subdivision or None, years=years
            )
        )
    return frozenset(public | set(calendar.extra_holidays))


def is_business_day(calendar: CalendarConfig, day: date) -> bool:
    if day in calendar.working_days:
        return True
    if day.weekday() in calendar.weekend:
        return False
    return day not in holiday_dates(calendar, range(day.year, day.year + 1))


def local_instant(calendar: CalendarConfig, day: date, clock: time) -> datetime:
    """The UTC instant of a local wall-clock time on a local date."""
    return datetime.combine(day, clock, tzinfo=calendar.zone).astimezone(UTC)


@lru_cache(maxsize=16)
def business_days(calendar: CalendarConfig, first_year: int, last_year: int) -> pd.DataFrame:
    """One row per business day of the years given, with its opening, closing and
    the business time before its opening (counted from the first year's start).

    Columns: ``day`` (local date), ``opens_at`` and ``closes_at`` (UTC instants),
    ``length_us`` (business time in the day) and ``cum_before_us``, both in
    microseconds so that sums and comparisons stay exact.
    """
    years = range(first_year, last_year + 1)
    closed = holiday_dates(calendar, years)
    rows = []
    cum = 0
    day = date(first_year, 1, 1)
    while day.year <= last_year:
        if day in calendar.working_days or (day.weekday() not in calendar.weekend and day not in closed):
            opens = local_instant(calendar, day, calendar.opens)
            closes = local_instant(calendar, day, calendar.closes)
            length_us = (closes - opens) // timedelta(microseconds=1)
            rows.append((day, opens, closes, length_us, cum))
            cum += length_us
        day += timedelta(days=1)
    frame = pd.DataFrame(rows, columns=["day", "opens_at", "closes_at", "length_us", "cum_before_us"])
    frame["opens_at"] = pd.to_datetime(frame["opens_at"], utc=True)
    frame["closes_at"] = pd.to_datetime(frame["closes_at"], utc=True)
    frame["day"] = pd.to_datetime(frame["day"]).dt.date
    return frame


@lru_cache(maxsize=16)
def calendar_months(calendar: CalendarConfig, first_year: int, last_year: int) -> pd.DataFrame:
    """One row per calendar month in the support zone: ``month`` ('YYYY-MM'),
    ``month_start`` and ``month_end`` (UTC instants of local midnights, so a DST
    month has its true length) and ``first_day``, ``last_day`` (local dates)."""
    rows = []
    for year in range(first_year, last_year + 1):
        for month in range(1, 13):
            first = date(year, month, 1)
            following = date(year + (month == 12), month % 12 + 1, 1)
            rows.append((
                f"{year:04d}-{month:02d}",
                local_instant(calendar, first, time(0)),
                local_instant(calendar, following, time(0)),
                first,
                following - timedelta(days=1),
            ))
    frame = pd.DataFrame(rows, columns=["month", "month_start", "month_end", "first_day", "last_day"])
    frame["month_start"] = pd.to_datetime(frame["month_start"], utc=True)
    frame["month_end"] = pd.to_datetime(frame["month_end"], utc=True)
    return frame


def attach_calendar(con, calendar: CalendarConfig, as_of: datetime) -> None:
    """Register ``business_days`` and ``calendar_months`` on ``con``, covering
    every stored instant and ``as_of`` with a year to spare on each side."""
    first, last = con.execute(
        """
        SELECT min(y), max(y) FROM (
            SELECT year(min(received_at)) AS y FROM cases UNION ALL SELECT year(max(received_at)) FROM cases
            UNION ALL SELECT year(min(started_at)) FROM incidents
            UNION ALL SELECT year(min(active_from)) FROM environments
            UNION ALL SELECT year(min(starts_on)) FROM contracts
            UNION ALL SELECT year(?::TIMESTAMPTZ)
        )
        """,
        [as_of],
    ).fetchall()[0]
    first, last = first - 1, max(last, as_of.year) + 1
    con.register("business_days", business_days(calendar, first, last))
    con.register("calendar_months", calendar_months(calendar, first, last))
