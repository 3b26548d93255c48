"""Business time in SQL (rules §2): what the calendar's lookup tables answer, as builders a query composes.

Business time is a running total (``kb/engine/calendar.py``): each business day
has its opening and the business time before it, ``cum_us``. Then

* the business time elapsed at an instant ``t`` is that of the last opening at
  or before ``t``: ``cum_us + clamp(t − opens_at, 0, length_us)``
  (``elapsed_us``);
* the instant at which the elapsed business time reaches a total ``c`` is found
  from the last business day whose ``cum_us`` is *below* ``c``: its opening plus
  the rest. Strictly below, so a total that lands exactly on a close gives that
  close and not the next opening (``reached_at``);
* the local date of an instant is that of the last local midnight at or before
  it, and "the end of the next business day" after it the close of the first
  business day dated after that date (``elapsed_us`` gives both, and
  ``local_day`` the date alone).

All are "last key at or below x" lookups. They read the calendar's bucketed
lookup tables (``clock_index`` in ``kb/engine/calendar.py``) with equality
joins, because an ASOF join sorts every row it looks up with its whole row and
takes seconds on a million cases: the bucket of x holds at most one key, and
the answer is that key when it is at or below x, else the last key before the
bucket. An instant's bucket holds at most one opening and one local midnight,
so one row answers everything a clock's start needs.

Every lookup takes the key of the calendar it reads (``cal``, its position in
``kb.engine.calendar.engine_calendars``): the tables hold every calendar, so
one calendar or twenty is the same join, on one column (``slot``: the
calendar's key and the bucket together).

Each builder returns a ``Lookup``: the JOIN clauses to append after the FROM
item whose columns its SQL arguments name, and the expression that reads the
answer. ``alias`` names the joined lookup table and must be unique in that
SELECT. A null argument gives a null answer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lookup:
    """``join`` goes after a FROM item, ``value`` into the select list. For a lookup of an instant,
    ``value_cum_us`` is the business time elapsed at that instant (the running total), and ``elapsed_us`` also
    gives the length of a business day of an ``Nd`` target started then (``day_us``), the instant's local date
    (``local_day``) and the business time at the close of the first business day dated after it
    (``next_close_cum_us``)."""

    join: str
    value: str
    value_cum_us: str | None = None
    day_us: str | None = None
    local_day: str | None = None
    next_close_cum_us: str | None = None


def _bucket(x: str, kind: str, index: str) -> str:
    """The bucket of ``x`` in the lookup table ``kind`` ('instant' or 'clock'); ``index``: a ``business_index`` row."""
    # Not least(…, last): least() skips nulls, and a null x must find no bucket.
    return (f"CASE WHEN {x} < {index}.{kind}_origin THEN 0 "
            f"WHEN {x} >= {index}.{kind}_origin + {index}.{kind}_last * {index}.{kind}_width THEN {index}.{kind}_last "
            f"ELSE ({x} - {index}.{kind}_origin) // {index}.{kind}_width END")


SLOT_BITS = 32  # a lookup row's ``slot``: its calendar's key shifted by this, plus its bucket (or day)


def _slot(cal_sql: str, key_sql: str) -> str:
    """A lookup row's one key (``slot`` in ``kb.engine.calendar.clock_index``): its calendar's and its bucket's
    (or day's) in one number."""
    return f"(({cal_sql})::BIGINT << {SLOT_BITS}) + ({key_sql})"


def elapsed_us(instant_sql: str, cal_sql: str, alias: str) -> Lookup:
    """Business microseconds elapsed at the instant (TIMESTAMPTZ) ``instant_sql`` on the calendar
    ``cal_sql`` (its key in ``calendars``), as a running total; and what else the same row of the lookup
    table knows of that instant (``Lookup``)."""
    x, k, ix = f"epoch_us({instant_sql})", alias, f"{alias}_ix"
    after_midnight = f"{x} >= {k}.b_starts_us"
    return Lookup(
        join=(f"LEFT JOIN business_index {ix} ON {ix}.cal = {cal_sql} "
              f"LEFT JOIN business_instants {k} ON {k}.slot = {_slot(cal_sql, _bucket(x, 'instant', ix))}"),
        value=(f"CASE WHEN {x} >= {k}.b_opens_us THEN {k}.b_cum_us + least({x} - {k}.b_opens_us, {k}.b_length_us) "
               f"ELSE {k}.a_cum_us + least(greatest({x} - {k}.a_opens_us, 0), {k}.a_length_us) END"),
        # the business day the clock starts on: the one open at the instant, else the next one
        day_us=(f"CASE WHEN {x} >= {k}.b_opens_us OR {x} >= {k}.a_opens_us + {k}.a_length_us "
                f"OR {k}.a_opens_us IS NULL THEN {k}.b_day_us ELSE {k}.a_day_us END"),
        local_day=f"CASE WHEN {after_midnight} THEN {k}.b_date ELSE {k}.a_date END",
        next_close_cum_us=f"CASE WHEN {after_midnight} THEN {k}.b_close_cum_us ELSE {k}.a_close_cum_us END",
    )


def reached_at(cum_us_sql: str, cal_sql: str, alias: str) -> Lookup:
    """The earliest instant at which the elapsed business time on the calendar ``cal_sql`` (a running
    total, as from ``elapsed_us``) reaches ``cum_us_sql`` microseconds: an opening, a time of a business
    day, or a close."""
    c, k, ix = f"({cum_us_sql})", alias, f"{alias}_ix"
    return Lookup(
        join=(f"LEFT JOIN business_index {ix} ON {ix}.cal = {cal_sql} "
              f"LEFT JOIN business_clock {k} ON {k}.slot = {_slot(cal_sql, _bucket(f'{c} - 1', 'clock', ix))}"),
        value=(f"CASE WHEN {c} - 1 >= {k}.b_cum_us THEN {k}.b_opens_at + to_microseconds({c} - {k}.b_cum_us) "
               f"ELSE {k}.a_opens_at + to_microseconds({c} - {k}.a_cum_us) END"),
        value_cum_us=c,
    )


def local_day(instant_sql: str, cal_sql: str, alias: str) -> Lookup:
    """The local date (DATE) of the instant ``instant_sql`` in the time zone of the calendar ``cal_sql``."""
    lookup = elapsed_us(instant_sql, cal_sql, alias)
    return Lookup(join=lookup.join, value=lookup.local_day)
