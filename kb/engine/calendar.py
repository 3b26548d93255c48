"""The support team's business calendar, laid out as tables DuckDB can join against.

Business time is counted as a running total: every business day gets the number
of business seconds that lie before its opening (``cum_before``). The business
time elapsed at any instant is then that of the last opening at or before it,
plus the part of that day already gone; a deadline "N business days after
receipt" is the inverse lookup (the last day whose ``cum_before`` is below the
target total). Both are "last key at or below x" lookups, and ``clock_index``
lays them out as bucketed tables read by equality (hash) joins on one key
(the calendar and the bucket number), not ASOF joins, which would sort every
looked-up row: see ``kb/engine/business_time.py`` for the SQL that reads them.

Openings and closings are built from local wall-clock times with ``zoneinfo``,
so 09:00 stays 09:00 across daylight-saving changes.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

import duckdb
import holidays
import numpy as np
import pandas as pd
import pyarrow as pa

from kb.config import CalendarConfig, Versions
from kb.config.changes import ALWAYS
from kb.db.connection import MACROS, transaction
from kb.engine.business_time import SLOT_BITS
from kb.timestamps import now_utc

log = logging.getLogger(__name__)


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


def business_days(calendar: CalendarConfig, first_year: int, last_year: int) -> pd.DataFrame:
    """``dated_business_days`` of one unchanging calendar."""
    return dated_business_days(Versions(((ALWAYS, calendar),)), first_year, last_year)


@lru_cache(maxsize=32)
def dated_business_days(versions: Versions[CalendarConfig], first_year: int, last_year: int) -> pd.DataFrame:
    """One row per business day of the years given, each by the calendar's rules in force on that local date
    (``versions.on(day)``), with its opening, closing and the business time before its opening (counted from
    the first year's start).

    Columns: ``day`` (local date), ``opens_at`` and ``closes_at`` (UTC instants),
    ``length_us`` (business time in the day), ``cum_before_us`` and ``day_us`` (one business day of an
    ``Nd`` target started that day: close − open on the local clock), in microseconds so that sums and
    comparisons stay exact.
    """
    years = range(first_year, last_year + 1)
    closed = {rules: holiday_dates(rules, years) for _, rules in versions.versions}
    rows = []
    cum = 0
    day = date(first_year, 1, 1)
    while day.year <= last_year:
        rules = versions.on(day)
        if day in rules.working_days or (day.weekday() not in rules.weekend and day not in closed[rules]):
            opens = local_instant(rules, day, rules.opens)
            closes = local_instant(rules, day, rules.closes)
            length_us = (closes - opens) // timedelta(microseconds=1)
            rows.append((day, opens, closes, length_us, cum, rules.business_day_seconds * 1_000_000))
            cum += length_us
        day += timedelta(days=1)
    frame = pd.DataFrame(rows, columns=["day", "opens_at", "closes_at", "length_us", "cum_before_us", "day_us"])
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


def _step_index(*key_sets: np.ndarray) -> tuple[int, int, list[np.ndarray]]:
    """Buckets for "the last key at or below x" as a hash join rather than a sort, for one or more sets of
    keys that one lookup reads together.

    Each set is strictly increasing integers. The bucket width is the smallest gap within any set, so a
    bucket ``[origin + k·width, origin + (k+1)·width)`` holds at most one key of each. For each set and
    bucket, ``a`` is the index of the last key at or below its start (−1: none); the next key is ``a + 1``
    (``len``: none), and for x in bucket k the answer is ``a + 1`` when that key is at or below x, else ``a``.
    Returns (origin, width, [a of each set]).
    """
    width = min((int(np.diff(keys).min()) for keys in key_sets if len(keys) > 1), default=1)
    origin = min(int(keys[0]) for keys in key_sets) - width
    buckets = (max(int(keys[-1]) for keys in key_sets) - origin) // width + 2
    starts = origin + np.arange(buckets, dtype=np.int64) * width
    return origin, width, [np.searchsorted(keys, starts, side="right") - 1 for keys in key_sets]


def _pick(values: np.ndarray, index: np.ndarray) -> pa.Array:
    inside = (index >= 0) & (index < len(values))
    return pa.array(values[np.clip(index, 0, len(values) - 1)], mask=~inside)


@dataclass(frozen=True)
class EngineCalendar:
    """One calendar a target may run on, with its dated versions: ``support`` (``[calendar]``), a
    ``[calendars.NAME]``, or ``24x7``, where all time is business time and a business day is 24 hours (its
    days are the support zone's local dates, so "the end of the next day" is a local midnight)."""

    name: str
    versions: Versions[CalendarConfig]
    around_the_clock: bool = False

    def day_us_on(self, day: date) -> int:
        """One business day of an ``Nd`` target started on the local date ``day``, in microseconds."""
        seconds = 86_400 if self.around_the_clock else self.versions.on(day).business_day_seconds
        return seconds * 1_000_000

    @property
    def zone_calendar(self) -> CalendarConfig:
        """Its zone (which never changes on a date), as a calendar."""
        return self.versions.base

    def days(self, first_year: int, last_year: int) -> pd.DataFrame:
        """``dated_business_days`` of this calendar."""
        if self.around_the_clock:
            return every_day(self.zone_calendar, first_year, last_year)
        return dated_business_days(self.versions, first_year, last_year)


def engine_calendars(config) -> tuple[EngineCalendar, ...]:
    """The calendars of ``config.calendar_names`` in that order: a calendar's key in the lookup tables
    (``cal``) is its position here."""
    support, *named = config.calendars
    return (EngineCalendar("support", support.versions),
            EngineCalendar("24x7", Versions(((ALWAYS, config.calendar),)), around_the_clock=True),
            *(EngineCalendar(c.name, c.versions) for c in named))


def business_day_hours(config) -> dict[str, float]:
    """Calendar name → the hours of one of its business days today (9 for 09:00–18:00, 24 for ``24x7``):
    business time on a target's own calendar, written in days."""
    today = now_utc().astimezone(config.calendar.zone).date()
    return {calendar.name: calendar.day_us_on(today) / 3.6e9 for calendar in engine_calendars(config)}


@lru_cache(maxsize=16)
def every_day(calendar: CalendarConfig, first_year: int, last_year: int) -> pd.DataFrame:
    """``business_days`` of a calendar open around the clock: every local date, from midnight to midnight,
    one business day being 24 hours."""
    rows = []
    cum = 0
    day = date(first_year, 1, 1)
    while day.year <= last_year:
        opens = local_instant(calendar, day, time(0))
        closes = local_instant(calendar, day + timedelta(days=1), time(0))
        length_us = (closes - opens) // timedelta(microseconds=1)
        rows.append((day, opens, closes, length_us, cum, 86_400 * 1_000_000))
        cum += length_us
        day += timedelta(days=1)
    frame = pd.DataFrame(rows, columns=["day", "opens_at", "closes_at", "length_us", "cum_before_us", "day_us"])
    frame["opens_at"] = pd.to_datetime(frame["opens_at"], utc=True)
    frame["closes_at"] = pd.to_datetime(frame["closes_at"], utc=True)
    return frame


def _keyed(cal: int, table: pa.Table) -> pa.Table:
    keyed = table.add_column(0, "cal", pa.array(np.full(table.num_rows, cal, dtype=np.int32)))
    if "bucket" not in table.column_names:
        return keyed
    return keyed.add_column(0, "slot", pa.array((np.int64(cal) << SLOT_BITS) + table["bucket"].to_numpy()))


@lru_cache(maxsize=16)
def clock_index(calendars: tuple[EngineCalendar, ...], first_year: int, last_year: int) -> dict[str, pa.Table]:
    """Every calendar's business days as lookup tables for equality (hash) joins, keyed by ``cal`` (the
    calendar's position in ``calendars``), which stay fast on millions of rows where an ASOF join has to
    sort them all:

    * ``business_instants``: per calendar and bucket of instants (epoch microseconds), the business day
      with the last opening at or before the bucket's start (``a_*``) and the next one (``b_*``), each
      with ``opens_us``, ``cum_us`` (business time before the opening), ``length_us`` and ``day_us`` (one
      business day of an ``Nd`` target started that day); and the local date in the calendar's zone that
      began last at or before the bucket's start (``a_date``) and the next one with the instant it begins
      (``b_date``, ``b_starts_us``), each with the business time at the close of the first business day
      dated after it (``close_cum_us``: "the end of the next business day"). So one lookup of a clock's
      start gives all a rule needs;
    * ``business_clock``: per calendar and bucket of business time, the last business day whose
      ``cum_before_us`` is at or below the bucket's start and the next one, each with ``opens_at`` and
      ``cum_us``;
    * ``business_index``: per calendar, the ``origin``, ``width`` and ``last`` bucket of the bucketed ones.

    A row of the first two is found by its ``slot``: the calendar's key and the bucket in one number
    (``cal << SLOT_BITS`` plus it). One equality is one DuckDB can estimate; given the
    calendar and the bucket apart, it estimates by the calendar alone, as if each looked-up row matched that
    calendar's thousands, and after a few lookups builds its hash joins on the wrong side.

    One calendar or twenty, a lookup is the same join: the key grows, not the work per row.
    See ``_step_index`` and ``kb/engine/business_time.py`` for how a lookup reads them.
    """
    parts = [_calendar_index(c, first_year, last_year) for c in calendars]
    return {name: pa.concat_tables([_keyed(cal, part[name]) for cal, part in enumerate(parts)])
            for name in parts[0]}


def _calendar_index(engine_calendar: EngineCalendar, first_year: int, last_year: int) -> dict[str, pa.Table]:
    days = engine_calendar.days(first_year, last_year)
    opens_at = days.opens_at.to_numpy()
    opens_us = pd.DatetimeIndex(days.opens_at).as_unit("us").asi8
    cum_us = days.cum_before_us.to_numpy(dtype=np.int64)
    length_us = days.length_us.to_numpy(dtype=np.int64)
    day_us = days.day_us.to_numpy(dtype=np.int64)

    # The local dates in the calendar's zone, and for each the business time at the close of the first
    # business day dated after it ("the end of the next business day").
    every_date = np.arange(np.datetime64(date(first_year, 1, 1)), np.datetime64(date(last_year + 1, 1, 1)))
    zone = engine_calendar.zone_calendar
    midnights_us = np.array([local_instant(zone, d.item(), time(0)).timestamp() * 1_000_000 for d in every_date],
                            dtype=np.int64)
    business = np.array(pd.to_datetime(days.day).dt.date.tolist(), dtype="datetime64[D]")
    following = np.searchsorted(business, every_date, side="right")
    next_close_cum = np.where(following < len(cum_us), (cum_us + length_us)[np.clip(following, 0, len(cum_us) - 1)],
                              -1)

    t_origin, t_width, (a, m) = _step_index(opens_us, midnights_us)
    b, n = a + 1, m + 1
    instants = pa.table({
        "bucket": pa.array(np.arange(len(a), dtype=np.int64)),
        "a_opens_us": _pick(opens_us, a), "a_cum_us": _pick(cum_us, a), "a_length_us": _pick(length_us, a),
        "a_day_us": _pick(day_us, a),
        "b_opens_us": _pick(opens_us, b), "b_cum_us": _pick(cum_us, b), "b_length_us": _pick(length_us, b),
        "b_day_us": _pick(day_us, b),
        "a_date": _pick(every_date, m).cast(pa.date32()), "b_date": _pick(every_date, n).cast(pa.date32()),
        "b_starts_us": _pick(midnights_us, n),
        "a_close_cum_us": _closing(next_close_cum, m), "b_close_cum_us": _closing(next_close_cum, n),
    })

    # A day of no business time (a daylight-saving oddity) can never hold a deadline: a later day
    # has the same cum_before_us, and the lookup wants the last one below the target.
    kept = length_us > 0
    c_origin, c_width, (a,) = _step_index(cum_us[kept])
    b = a + 1
    kept_opens = pa.array(opens_at[kept], pa.timestamp("us", tz="UTC")).to_numpy(zero_copy_only=False)
    clock = pa.table({
        "bucket": pa.array(np.arange(len(a), dtype=np.int64)),
        "a_cum_us": _pick(cum_us[kept], a), "a_opens_at": _pick(kept_opens, a).cast(pa.timestamp("us", tz="UTC")),
        "b_cum_us": _pick(cum_us[kept], b), "b_opens_at": _pick(kept_opens, b).cast(pa.timestamp("us", tz="UTC")),
    })
    index = pa.table({
        "instant_origin": [t_origin], "instant_width": [t_width], "instant_last": [instants.num_rows - 1],
        "clock_origin": [c_origin], "clock_width": [c_width], "clock_last": [clock.num_rows - 1],
    })
    return {"business_instants": instants, "business_clock": clock, "business_index": index}


def _closing(next_close_cum: np.ndarray, index: np.ndarray) -> pa.Array:
    """The business time at the next day's close of the local dates at ``index`` (null before the first or
    after the last date, or where no business day follows: −1 in ``next_close_cum``)."""
    values = next_close_cum[np.clip(index, 0, len(next_close_cum) - 1)]
    return pa.array(values, mask=(index < 0) | (index >= len(next_close_cum)) | (values < 0))


def attach_calendar(con, config, as_of: datetime) -> None:
    """Give ``con`` the support calendar's ``business_days`` (as dated) and ``calendar_months``, covering
    every stored instant and ``as_of`` with a year to spare on each side, the lookup tables of
    ``clock_index`` for every calendar, and ``calendars`` (``cal``, ``name``) to find a calendar's key.

    They are tables of the database's in-memory catalog (``MACROS``), made once per process for these rules
    and years, in a schema of their own that ``con`` then searches. DuckDB keeps statistics of its own
    tables, not of Arrow it is handed: with them it knows that a few cases' lookups match one row each, and
    builds its hash joins on those few rows rather than on the calendars' tens of thousands (a third of the
    confirmation's query for a case just logged). A database opened read-only has no such catalog, and a
    transaction of ``con`` that began before they were made cannot see them: the tables are then registered
    on ``con``, which lets go of them once it can search the catalog's."""
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
    calendars = engine_calendars(config)
    schema = _schema_name(calendars, config.calendar, first, last)
    if not _holds(con, schema):
        tables = _calendar_tables(config, calendars, first, last)
        try:
            _create(con, schema, tables)
        except duckdb.Error as e:  # registered instead: the same rows, estimated less well for a few cases
            log.warning("the calendars' lookup tables could not be made in %s (%s): registered on the cursor",
                        MACROS, e)
        if not _holds(con, schema):  # read-only, or a transaction of ``con`` that began before
            for name, table in tables.items():
                con.register(name, table)
            _registered_on[con] = tuple(tables)
            return
    for name in _registered_on.pop(con, ()):
        con.unregister(name)
    con.execute(f"SET search_path = 'main,{MACROS}.main,{MACROS}.{schema}'")


def _holds(con, schema: str) -> bool:
    """Whether ``con`` sees the schema ``schema`` of ``MACROS`` (asked, not tried: a failed statement would
    abort a transaction ``con`` is in)."""
    return bool(con.execute("SELECT count(*) FROM duckdb_schemas() WHERE database_name = ? AND schema_name = ?",
                            [MACROS, schema]).fetchall()[0][0])


# The cursors the lookup tables were registered on (``attach_calendar``'s fallback), with their names: a cursor
# lets go of them before it searches the catalog's, as a view registered on it would come first.
_registered_on: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _calendar_tables(config, calendars: tuple[EngineCalendar, ...], first: int, last: int) -> dict:
    return {"business_days": calendars[0].days(first, last),
            "calendar_months": calendar_months(config.calendar, first, last),
            **clock_index(calendars, first, last),
            "calendars": pa.table({"cal": pa.array(range(len(calendars)), pa.int32()),
                                   "name": [c.name for c in calendars]})}


@lru_cache(maxsize=64)
def _schema_name(calendars: tuple[EngineCalendar, ...], zone_calendar: CalendarConfig, first: int, last: int) -> str:
    """A name for the lookup tables of these rules and years (a reload or another year gets another)."""
    return "calendars_" + hashlib.sha1(repr((calendars, zone_calendar, first, last)).encode()).hexdigest()[:16]


_creating = threading.Lock()


def _create(con, schema: str, tables: dict) -> None:
    """The schema ``schema`` of ``MACROS`` holding ``tables``, made whole in one transaction of a cursor of its
    own (``con`` may be writing the database, and a transaction writes one catalog), unless it exists or the
    database has no such catalog (opened read-only). A schema stays for the life of the process: a reload of
    other rules, or another span of years, makes another (a few MB each)."""
    with _creating, con.cursor() as own:
        schemas = own.execute("SELECT schema_name FROM duckdb_schemas() WHERE database_name = ?", [MACROS]).fetchall()
        if not schemas or (schema,) in schemas:
            return
        with transaction(own):
            own.execute(f"CREATE SCHEMA {MACROS}.{schema}")
            for name, table in tables.items():
                own.register("calendar_table", table)
                own.execute(f"CREATE TABLE {MACROS}.{schema}.{name} AS SELECT * FROM calendar_table")
                own.unregister("calendar_table")
