"""The rules a new row must pass, shared by the CSV import and the dashboard's forms.

Rows arrive as text (a CSV cell, a form field turned into text) in a staging
table with a ``line`` column. ``errors_sql`` checks every rule over the whole
staging table in one SQL query that lists each problem as (line, column,
reason); ``insert_sql`` and ``update_sql`` then turn the same text into typed
values (``typed_rows_sql``), which ``same_values`` compares with stored rows
(the forms' double-submit check). ``cell`` is the one place a cell is cleaned
(trimmed unless free text, blank → NULL) and ``typed`` the one place it gets
the type it is stored with. Text without an offset is read as local time in
the support zone.

SPEC 8, one reading for every way in:

- Timestamps are read in Python by ``kb.timestamps.parse_timestamp`` (strict ISO 8601, real offsets,
  a daylight-saving gap refused, a repeated hour taken at its first occurrence), once per distinct
  text (``read_instants``), before the SQL checks; the staging table carries, beside each timestamp
  column, its canonical UTC text (``"<column>@utc"``) and the reason it was refused
  (``"<column>@problem"``). SQL only ever casts that canonical text, so DuckDB's own, looser
  reading (``epoch``, zone names, ``+99:00``, the second occurrence of a repeated hour) never runs.
- Ids: 1–64 characters of ``A–Z a–z 0–9 . _ - @ + :`` (``ID_PATTERN``).
- Numbers: ASCII digits, no sign, no exponent, no words (``NaN``, ``inf``): money at least 0 with at
  most 2 decimals, percentages in (0, 100] with at most 4, business days a whole number 1–60
  (``NUMBER_PATTERNS``). Dates are ``YYYY-MM-DD``. What passes is stored exactly, never rounded.

The clock (SPEC 8): cases, responses, resolutions and incidents dated after
now + ``FUTURE_GRACE`` are refused; only maintenance may be scheduled ahead.
``errors_sql`` checks it on staged rows, ``future_reason`` on one typed instant
(recording a response, closing an incident), against the same limit.

Over 400 lines: ``TABLES`` declares every column of every table the forms and the import write, beside
the one SQL that enforces them all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from kb.credits import CreditScheduleError, parse_credit_schedule
from kb.db.schema import CATEGORIES, DEPLOYMENTS, IMPACTS, KINDS, TIERS
from kb.db.sqltext import instant, quote
from kb.timestamps import (
    FIRST_YEAR,
    LAST_YEAR,
    OUTSIDE_YEARS,
    TimestampError,
    in_calendar_years,
    now_utc,
    parse_timestamp,
)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # id, text, enum, ref, timestamp, date, money, percent, days, currency, schedule
    required: bool = True
    choices: tuple[str, ...] = ()
    refers_to: str = ""  # table whose key this column names

    @property
    def keeps_spaces(self) -> bool:
        """Free text is stored verbatim; everything else is trimmed first."""
        return self.kind == "text"


TABLES: dict[str, tuple[Column, ...]] = {
    "clients": (
        Column("client_id", "id"),
        Column("name", "text"),
        Column("tier", "enum", choices=TIERS),
        Column("email_domain", "text", required=False),
        Column("statement_recipients", "text", required=False),  # addresses, comma-separated
    ),
    "environments": (
        Column("environment_id", "id"),
        Column("name", "text"),
        Column("kind", "enum", choices=KINDS),
        Column("deployment", "enum", choices=DEPLOYMENTS),
        Column("client_id", "ref", required=False, refers_to="clients"),
        Column("active_from", "date"),
    ),
    "contracts": (
        Column("contract_id", "id"),
        Column("client_id", "ref", refers_to="clients"),
        Column("environment_id", "ref", refers_to="environments"),
        Column("uptime_target_pct", "percent", required=False),
        Column("response_business_days", "days", required=False),
        Column("monthly_fee", "money"),
        Column("currency", "currency"),
        Column("credit_schedule", "schedule", required=False),
        Column("starts_on", "date"),
        Column("ends_on", "date", required=False),
    ),
    "cases": (
        Column("case_id", "id"),
        Column("client_id", "ref", refers_to="clients"),
        Column("received_at", "timestamp"),
        Column("category", "enum", choices=CATEGORIES),
        Column("subject", "text"),
        Column("requester", "text", required=False),
        Column("assignee", "text", required=False),
        Column("first_response_at", "timestamp", required=False),
        Column("resolved_at", "timestamp", required=False),
    ),
    "incidents": (
        Column("incident_id", "id"),
        Column("environment_id", "ref", refers_to="environments"),
        Column("impact", "enum", choices=IMPACTS),
        Column("started_at", "timestamp"),
        Column("ended_at", "timestamp", required=False),
        Column("summary", "text", required=False),
    ),
}

KEYS = {table: columns[0].name for table, columns in TABLES.items()}

# Rules that involve two cells of a row: (condition for an error, column, reason).
ROW_RULES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "environments": (
        ("kind = 'dedicated' AND client_id IS NULL", "client_id", "is required for a dedicated environment"),
    ),
    "contracts": (
        ("day(CAST(starts_on AS DATE)) <> 1", "starts_on", "must be the first day of a month"),
        ("CAST(ends_on AS DATE) < CAST(starts_on AS DATE)", "ends_on", "is before the contract starts"),
        ("environment_id IN (SELECT environment_id FROM environments "
         "WHERE kind = 'dedicated' AND client_id <> s.client_id)",
         "environment_id", "is a dedicated environment of another client"),
    ),
    "cases": (
        ("CAST(first_response_at AS TIMESTAMPTZ) < CAST(received_at AS TIMESTAMPTZ)", "first_response_at",
         "is before the case was received"),
        ("CAST(resolved_at AS TIMESTAMPTZ) < CAST(received_at AS TIMESTAMPTZ)", "resolved_at",
         "is before the case was received"),
    ),
    "incidents": (
        ("CAST(ended_at AS TIMESTAMPTZ) < CAST(started_at AS TIMESTAMPTZ)", "ended_at",
         "is before the incident started"),
    ),
}

# The clock: (column, condition under which it may lie in the future) for the instants that record
# something that happened. Clocks differ a little, hence the grace; a case from tomorrow is a typo.
FUTURE_GRACE = timedelta(minutes=5)
CLOCK_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "cases": (("received_at", "FALSE"), ("first_response_at", "FALSE"), ("resolved_at", "FALSE")),
    "incidents": (("started_at", "impact = 'maintenance'"), ("ended_at", "impact = 'maintenance'")),
}

# Text made only of white space and invisible format characters (zero-width spaces, direction marks, BOM)
# counts as empty.
BLANK_TEXT = r"'[\s\x0b\x85\p{Z}\p{Cf}]*'"

# SPEC 8: what an id, a number and a date look like (over the trimmed cell; RE2, whole match, ASCII only).
ID_PATTERN = "[A-Za-z0-9._@+:-]{1,64}"
ID_RULE = "an id is 1–64 characters, each a letter A–Z or a–z, a digit 0–9 or one of . _ - @ + :"
NUMBER_PATTERNS = {
    "money": r"[0-9]{1,16}(\.[0-9]{1,2})?",   # DECIMAL(18, 2): at most 16 digits before the point
    "percent": r"[0-9]{1,3}(\.[0-9]{1,4})?",  # DECIMAL(7, 4)
    "days": "[0-9]{1,2}",
}
DATE_PATTERN = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
NUMBER_RULES = {
    "money": "is not an amount of at least 0 with at most 2 decimals, in ASCII digits (e.g. 1250.50)",
    "percent": "is not a percentage in (0, 100] with at most 4 decimals, in ASCII digits (e.g. 99.9)",
    "days": "is not a whole number of business days from 1 to 60, in ASCII digits",
}

SQL_TYPES = {
    "timestamp": "TIMESTAMPTZ",
    "date": "DATE",
    "money": "DECIMAL(18, 2)",
    "percent": "DECIMAL(7, 4)",
    "days": "INTEGER",
}


def cell(column: Column) -> str:
    """The SQL expression for a staged cell: NULL when empty, trimmed unless free text."""
    name = f'"{column.name}"'
    if column.keeps_spaces:
        return f"CASE WHEN regexp_full_match({name}, {BLANK_TEXT}) THEN NULL ELSE {name} END"
    return f"NULLIF(trim({name}, ' \t\r\n'), '')"


def _column_checks(table: str, column: Column, updating: bool) -> list[tuple[str, str]]:
    """(condition, reason SQL) pairs for one column; ``v`` is the cleaned cell."""
    shown = "quote_text(v)"
    checks: list[tuple[str, str]] = [("contains(v, chr(0))", "'contains a NUL character (byte 0); remove it'")]
    if column.required:
        checks.append(("v IS NULL", "'is empty'"))
    if column.kind == "enum":
        allowed = ", ".join(quote(c) for c in column.choices)
        checks.append((f"v NOT IN ({allowed})",
                       f"{shown} || ' is not one of {', '.join(column.choices)}'"))
    elif column.kind == "ref":
        key = KEYS[column.refers_to]
        noun = column.refers_to.rstrip("s")
        checks.append((f"v NOT IN (SELECT {key} FROM {column.refers_to})",
                       f"'no {noun} ' || {shown} || CASE WHEN {_is_id('v')} THEN '' "
                       f"ELSE '; it is not an id' || {_id_flaw('v')} || ': {ID_RULE}' END"))
    elif column.kind == "timestamp":
        checks.append(("p IS NOT NULL", "p"))  # read by parse_timestamp: see read_instants
    elif column.kind == "date":
        checks.append((f"NOT regexp_full_match(v, '{DATE_PATTERN}') OR try_cast(v AS DATE) IS NULL",
                       f"{shown} || ' is not an ISO date (e.g. 2026-11-01)'"))
        checks.append((f"regexp_full_match(v, '{DATE_PATTERN}') AND try_cast(v AS DATE) IS NOT NULL "
                        f"AND NOT {_in_years('try_cast(v AS DATE)')}", f"{shown} || ' {OUTSIDE_YEARS}'"))
    elif column.kind in NUMBER_PATTERNS:
        checks.append((f"NOT ({_number_ok(column.kind, 'v')})", f"{shown} || ' {NUMBER_RULES[column.kind]}'"))
    elif column.kind == "currency":
        checks.append(("NOT regexp_full_match(v, '[A-Z]{3}')", f"{shown} || ' is not a three-letter currency code'"))
    elif column.kind == "schedule":
        checks.append(("v IN (SELECT schedule FROM bad_schedules)",
                       "(SELECT reason FROM bad_schedules WHERE schedule = v)"))
    if column.kind == "id":
        checks.append((f"NOT {_is_id('v')}", f"{shown} || ' is not an id' || {_id_flaw('v')} || ': {ID_RULE}'"))
    if column.kind == "id" and updating:
        checks.append((f"v NOT IN (SELECT {column.name} FROM {table})", f"'no such row ' || {shown}"))
    elif column.kind == "id":
        checks.append((f"v IN (SELECT {column.name} FROM {table})", f"{shown} || ' already exists'"))
        checks.append((f"v IN (SELECT v FROM repeated_{column.name})",
                       f"{shown} || ' appears more than once in this file'"))
    return checks


def _is_id(v: str) -> str:
    return f"regexp_full_match({v}, '{ID_PATTERN}')"


def _id_flaw(v: str) -> str:
    """SQL text for what is wrong with an id that is not one: its length, or its first character not allowed
    (by code point when it is not plain ASCII, which an invisible or lookalike character is not)."""
    bad = f"regexp_extract({v}, '[^A-Za-z0-9._@+:-]')"
    return (f"CASE WHEN length({v}) > 64 THEN ' (' || length({v}) || ' characters)' "
            f"WHEN unicode({bad}) = 32 THEN ' (it contains a space)' "
            f"WHEN unicode({bad}) BETWEEN 33 AND 126 THEN ' (it contains ' || quote_text({bad}) || ')' "
            f"ELSE ' (it contains U+' || printf('%04X', unicode({bad})) || ')' END")


def _number_ok(kind: str, v: str) -> str:
    """SQL: the cleaned cell ``v`` is a number of this kind (SPEC 8), so its cast is exact."""
    shape = f"regexp_full_match({v}, '{NUMBER_PATTERNS[kind]}')"
    if kind == "percent":
        return f"{shape} AND coalesce(try_cast({v} AS DECIMAL(7, 4)) BETWEEN 0.0001 AND 100, FALSE)"
    if kind == "days":
        return f"{shape} AND coalesce(try_cast({v} AS INTEGER) BETWEEN 1 AND 60, FALSE)"
    return shape


def _date_ok(v: str) -> str:
    typed = f"try_cast({v} AS DATE)"
    return f"regexp_full_match({v}, '{DATE_PATTERN}') AND {_in_years(typed)}"


def errors_sql(table: str, staging: str, *, updating: bool = False, now: datetime | None = None) -> str:
    """A query listing (line, column, reason) for every broken rule in ``staging``.

    ``updating``: the rows replace existing ones with the same key, rather than add new ones.
    ``now``: the instant the clock rule compares with (default: ``kb.timestamps.now_utc()``).
    """
    columns = TABLES[table]
    parts = []
    key = columns[0]
    for column in columns:
        checks = _column_checks(table, column, updating)
        for condition, reason in checks:
            if condition.startswith("contains(v, chr(0))"):
                condition = f"v IS NOT NULL AND ({condition})"
            elif condition != "v IS NULL":
                condition = f"v IS NOT NULL AND NOT contains(v, chr(0)) AND ({condition})"
            problem = f', "{problem_column(column.name)}" AS p' if column.kind == "timestamp" else ""
            parts.append(
                f"SELECT line, {quote(column.name)} AS column_name, {reason} AS reason "
                f"FROM (SELECT line, {cell(column)} AS v{problem} FROM {staging}) WHERE {condition}"
            )
    # The rows as text ready to cast (timestamps as canonical UTC text), and whether every typed cell is
    # valid: rules over two cells only look at rows that pass, so a bad cell is reported once.
    ready = ", ".join(f'{_ready(c)} AS "{c.name}"' for c in columns)
    rows = f'(SELECT line, {ready}, {_typed_cells_are_valid(columns)} AS "@valid" FROM {staging}) s'
    for condition, column_name, reason in ROW_RULES.get(table, ()):
        parts.append(
            f"SELECT line, {quote(column_name)}, {quote(reason)} FROM {rows} WHERE \"@valid\" AND ({condition})"
        )
    now = now or now_utc()
    for column_name, allowed in CLOCK_RULES.get(table, ()):
        typed = f'CAST("{column_name}" AS TIMESTAMPTZ)'
        parts.append(
            f"SELECT line, {quote(column_name)}, {_future_reason_sql(typed, now)} FROM {rows} "
            f"WHERE \"@valid\" AND {typed} > {instant(now + FUTURE_GRACE)} AND NOT coalesce({allowed}, FALSE)"
        )
    repeated = (
        f"repeated_{key.name} AS (SELECT v FROM (SELECT {cell(key)} AS v FROM {staging}) "
        f"WHERE v IS NOT NULL GROUP BY v HAVING count(*) > 1)"
    )
    union = "\nUNION ALL\n".join(parts)
    return f"WITH {repeated} SELECT line, column_name, reason FROM ({union}) ORDER BY line, column_name"


def _typed_cells_are_valid(columns: tuple[Column, ...]) -> str:
    """SQL over the staged row: every cell that has a type is empty or a valid value of it."""
    conditions = []
    for c in columns:
        if c.kind == "timestamp":
            conditions.append(f'(({cell(c)}) IS NULL) = ("{utc_column(c.name)}" IS NULL)')
        elif c.kind == "date":
            conditions.append(f"({cell(c)} IS NULL OR {_date_ok(cell(c))})")
        elif c.kind in NUMBER_PATTERNS:
            conditions.append(f"({cell(c)} IS NULL OR {_number_ok(c.kind, cell(c))})")
    return " AND ".join(conditions) or "TRUE"


def _ready(column: Column) -> str:
    """A staged cell cleaned and ready to cast: a timestamp's canonical UTC text, else ``cell``."""
    return f'"{utc_column(column.name)}"' if column.kind == "timestamp" else cell(column)


def _in_years(typed: str) -> str:
    """A typed instant or date lies in the years the business calendar can hold (infinity does not)."""
    return f"coalesce(year({typed}) BETWEEN {FIRST_YEAR} AND {LAST_YEAR}, FALSE)"


def future_reason(moment: datetime, zone: ZoneInfo, now: datetime | None = None) -> str | None:
    """Why the clock rule refuses the instant ``moment``, or None when it is not in the future."""
    now = now or now_utc()
    if moment <= now + FUTURE_GRACE:
        return None
    shown = [m.astimezone(zone).isoformat(timespec="seconds") for m in (moment, now)]  # as iso_local writes it
    return f"is in the future ({shown[0]}; now is {shown[1]})"


def _future_reason_sql(typed: str, now: datetime) -> str:
    """``future_reason`` in SQL, in the session's zone."""
    zone = "current_setting('TimeZone')"
    return (f"'is in the future (' || iso_local({typed}, {zone}) || '; now is ' "
            f"|| iso_local({instant(now)}, {zone}) || ')'")


def utc_column(name: str) -> str:
    """The staging column beside timestamp column ``name`` holding its canonical UTC text (NULL when the
    cell is empty or refused)."""
    return f"{name}@utc"


def problem_column(name: str) -> str:
    """The staging column beside timestamp column ``name`` holding why its cell was refused (else NULL)."""
    return f"{name}@problem"


Reading = tuple[str | None, str | None]  # (canonical UTC text, problem): at most one of them set
_HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def quoted(text: str) -> str:
    """A user's value inside an error message, as the SQL macro ``quote_text`` shows it: shortened, with
    control and text-direction characters as U+FFFD."""
    short = text if len(text) <= 60 else text[:57] + "..."
    return "'" + _HIDDEN.sub("\ufffd", short) + "'"


def read_instant(text: str | None, zone: ZoneInfo) -> Reading:
    """One staged timestamp cell read as the forms read it (``kb.timestamps.parse_timestamp``):
    (its canonical UTC text, None), or (None, why it is refused); (None, None) when empty (or holding a
    NUL, which the SQL checks report). Cleaned as ``cell`` cleans it."""
    cleaned = (text or "").strip(" \t\r\n")
    if not cleaned or "\x00" in cleaned:
        return None, None
    try:
        moment = parse_timestamp(cleaned, zone)
    except TimestampError as e:
        message = str(e)
        shown = repr(cleaned)
        return None, (quoted(cleaned) + message[len(shown):] if message.startswith(shown) else message)
    if not in_calendar_years(moment, zone):
        return None, f"{quoted(cleaned)} {OUTSIDE_YEARS}"
    return moment.isoformat(), None


def read_instants(values: Sequence[str | None], zone: ZoneInfo,
                  cache: dict[str | None, Reading] | None = None) -> tuple[list[str | None], list[str | None]]:
    """The canonical UTC texts and the problems of a staged timestamp column, row by row, each distinct
    text read once (``cache``, shared between the columns of one import)."""
    cache = {} if cache is None else cache
    readings = []
    for value in values:
        reading = cache.get(value)
        if reading is None:
            reading = cache[value] = read_instant(value, zone)
        readings.append(reading)
    return [r[0] for r in readings], [r[1] for r in readings]


def bad_schedules(values: set[str]) -> list[tuple[str, str]]:
    """(schedule, reason) for each distinct credit schedule text that cannot be read."""
    bad = []
    for text in values:
        try:
            parse_credit_schedule(text)
        except CreditScheduleError as e:
            bad.append((text, f"{text!r} is not a credit schedule: {e}"))
    return bad


def typed(column: Column) -> str:
    """The SQL expression for a staged cell as it is stored: ``cell`` (for a timestamp, its canonical UTC
    text), cast to the column's type."""
    return f"CAST({_ready(column)} AS {SQL_TYPES[column.kind]})" if column.kind in SQL_TYPES else cell(column)


def typed_rows_sql(table: str, staging: str) -> str:
    """The staged rows as they would be stored, in file order (valid rows only: the casts raise)."""
    values = ", ".join(f'{typed(c)} AS "{c.name}"' for c in TABLES[table])
    return f"SELECT {values} FROM {staging} ORDER BY line"


def update_sql(table: str, staging: str) -> str:
    """UPDATE of the rows whose key is staged, every other column from the staged text."""
    key, *rest = TABLES[table]
    assignments = ", ".join(f'"{c.name}" = s."{c.name}"' for c in rest)
    return (f"UPDATE {table} SET {assignments} FROM ({typed_rows_sql(table, staging)}) s "
            f"WHERE {table}.{key.name} = s.{key.name}")


def insert_sql(table: str, staging: str) -> str:
    """INSERT of every staged row, typed, in file order."""
    names = ", ".join(f'"{c.name}"' for c in TABLES[table])
    return f"INSERT INTO {table} ({names}) {typed_rows_sql(table, staging)}"


def same_values(table: str, stored: str, staged: str) -> str:
    """A join condition: the row ``stored`` holds, in every column but the key, the values of the typed
    row ``staged`` (from ``typed_rows_sql``), NULL matching NULL."""
    _, *rest = TABLES[table]
    return " AND ".join(f'{stored}."{c.name}" IS NOT DISTINCT FROM {staged}."{c.name}"' for c in rest)
