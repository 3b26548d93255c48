"""The rules a new row must pass, shared by the CSV import and the dashboard's forms.

Rows arrive as text (a CSV cell, a form field turned into text) in a staging
table with a ``line`` column. ``errors_sql`` checks every rule over the whole
staging table in one SQL query that lists each problem as (line, column,
reason); ``insert_sql`` and ``update_sql`` then turn the same text into typed
values (``typed_rows_sql``), which ``same_values`` compares with stored rows
(the forms' double-submit check). ``cell`` is the one place a cell is cleaned
(trimmed unless free text, blank → NULL) and ``typed`` the one place it gets
the type it is stored with. Text without an offset is read as local time in
the support zone: all of them run with the session's TimeZone set to it
(``kb.db.connection.local_zone``).

The clock (SPEC 8): cases, responses, resolutions and incidents dated after
now + ``FUTURE_GRACE`` are refused; only maintenance may be scheduled ahead.
``errors_sql`` checks it on staged rows, ``future_reason`` on one typed instant
(recording a response, closing an incident), against the same limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from kb.credits import CreditScheduleError, parse_credit_schedule
from kb.db.schema import CATEGORIES, DEPLOYMENTS, IMPACTS, KINDS, TIERS
from kb.db.sqltext import instant, quote
from kb.timestamps import now_utc


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
        ("CAST(ends_on AS DATE) < CAST(starts_on AS DATE)", "ends_on", "is before starts_on"),
        ("environment_id IN (SELECT environment_id FROM environments "
         "WHERE kind = 'dedicated' AND client_id <> s.client_id)",
         "environment_id", "is a dedicated environment of another client"),
    ),
    "cases": (
        ("CAST(first_response_at AS TIMESTAMPTZ) < CAST(received_at AS TIMESTAMPTZ)", "first_response_at",
         "is before received_at"),
        ("CAST(resolved_at AS TIMESTAMPTZ) < CAST(received_at AS TIMESTAMPTZ)", "resolved_at", "is before received_at"),
    ),
    "incidents": (
        ("CAST(ended_at AS TIMESTAMPTZ) < CAST(started_at AS TIMESTAMPTZ)", "ended_at", "is before started_at"),
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

# Instants and dates are refused outside these years (local time): the business calendar is laid out
# year by year between the oldest and newest row, so a year-9999 typo would make it enormous.
FIRST_YEAR, LAST_YEAR = 1970, 2200

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
        checks.append((f"v NOT IN (SELECT {key} FROM {column.refers_to})", f"'no {noun} ' || {shown}"))
    elif column.kind == "timestamp":
        checks.append(("try_cast(v AS TIMESTAMPTZ) IS NULL",
                       f"{shown} || ' is not an ISO 8601 timestamp (e.g. 2026-11-23T15:00:00+08:00)'"))
        checks.append((f"NOT {_in_years('try_cast(v AS TIMESTAMPTZ)')}", f"{shown} || ' {_OUTSIDE}'"))
    elif column.kind == "date":
        checks.append(("try_cast(v AS DATE) IS NULL", f"{shown} || ' is not an ISO date (e.g. 2026-11-01)'"))
        checks.append((f"NOT {_in_years('try_cast(v AS DATE)')}", f"{shown} || ' {_OUTSIDE}'"))
    elif column.kind == "money":
        checks.append(("try_cast(v AS DECIMAL(18, 2)) IS NULL OR try_cast(v AS DOUBLE) < 0",
                       f"{shown} || ' is not an amount of at least 0'"))
    elif column.kind == "percent":
        checks.append(("try_cast(v AS DECIMAL(7, 4)) IS NULL OR try_cast(v AS DOUBLE) NOT BETWEEN 1e-9 AND 100",
                       f"{shown} || ' is not a percentage in (0, 100]'"))
    elif column.kind == "days":
        checks.append(("try_cast(v AS INTEGER) IS NULL OR try_cast(v AS INTEGER) NOT BETWEEN 1 AND 60",
                       f"{shown} || ' is not a whole number of business days from 1 to 60'"))
    elif column.kind == "currency":
        checks.append(("NOT regexp_full_match(v, '[A-Z]{3}')", f"{shown} || ' is not a three-letter currency code'"))
    elif column.kind == "schedule":
        checks.append(("v IN (SELECT schedule FROM bad_schedules)",
                       "(SELECT reason FROM bad_schedules WHERE schedule = v)"))
    elif column.kind == "id" and updating:
        checks.append((f"v NOT IN (SELECT {column.name} FROM {table})", f"'no such row ' || {shown}"))
    elif column.kind == "id":
        checks.append((f"v IN (SELECT {column.name} FROM {table})", f"{shown} || ' already exists'"))
        checks.append((f"v IN (SELECT v FROM repeated_{column.name})",
                       f"{shown} || ' appears more than once in this file'"))
    return checks


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
            parts.append(
                f"SELECT line, {quote(column.name)} AS column_name, {reason} AS reason "
                f"FROM (SELECT line, {cell(column)} AS v FROM {staging}) WHERE {condition}"
            )
    cleaned = ", ".join(f"{cell(c)} AS \"{c.name}\"" for c in columns)
    valid = _typed_cells_are_valid(columns)
    for condition, column_name, reason in ROW_RULES.get(table, ()):
        parts.append(
            f"SELECT line, {quote(column_name)}, {quote(reason)} FROM (SELECT line, {cleaned} FROM {staging}) s "
            f"WHERE {valid} AND ({condition})"
        )
    now = now or now_utc()
    for column_name, allowed in CLOCK_RULES.get(table, ()):
        typed = f'CAST("{column_name}" AS TIMESTAMPTZ)'
        parts.append(
            f"SELECT line, {quote(column_name)}, {_future_reason_sql(typed, now)} "
            f"FROM (SELECT line, {cleaned} FROM {staging}) s "
            f"WHERE {valid} AND {typed} > {instant(now + FUTURE_GRACE)} AND NOT coalesce({allowed}, FALSE)"
        )
    repeated = (
        f"repeated_{key.name} AS (SELECT v FROM (SELECT {cell(key)} AS v FROM {staging}) "
        f"WHERE v IS NOT NULL GROUP BY v HAVING count(*) > 1)"
    )
    union = "\nUNION ALL\n".join(parts)
    return f"WITH {repeated} SELECT line, column_name, reason FROM ({union}) ORDER BY line, column_name"


def _typed_cells_are_valid(columns: tuple[Column, ...]) -> str:
    """Row rules only look at rows whose typed cells parse, so a bad cell is reported once."""
    conditions = [
        f"(\"{c.name}\" IS NULL OR try_cast(\"{c.name}\" AS {SQL_TYPES[c.kind]}) IS NOT NULL)"
        for c in columns if c.kind in SQL_TYPES
    ]
    for c in columns:
        if c.kind in ("timestamp", "date"):
            typed = f"try_cast(\"{c.name}\" AS {SQL_TYPES[c.kind]})"
            conditions.append(f"({typed} IS NULL OR {_in_years(typed)})")
    return " AND ".join(conditions) or "TRUE"


_OUTSIDE = f"is outside {FIRST_YEAR}–{LAST_YEAR}"


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
    """The SQL expression for a staged cell as it is stored: ``cell``, cast to the column's type."""
    return f"CAST({cell(column)} AS {SQL_TYPES[column.kind]})" if column.kind in SQL_TYPES else cell(column)


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
