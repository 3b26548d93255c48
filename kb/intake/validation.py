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

A row is identified by its table's ``KEYS`` (one column, or several: a policy row is its policy, metric,
priority and date): a key already stored, or twice in one file, is refused. The key is compared on the row
as it would be stored (``_stored_rows_sql``), defaults and derived columns included: an imported message is
stored under a key made from its Message-ID or, without one, from its case, instant and direction
(``STORED``), and a second import of it is refused like any repeated id.

The clock (SPEC 8): cases, responses, resolutions, incidents, pauses and messages dated after
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
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from kb.credits import CreditScheduleError, parse_credit_schedule
from kb.db.schema import CATEGORIES, DEPLOYMENTS, DIRECTIONS, IMPACTS, KINDS, METRICS, PRIORITIES, TIERS
from kb.db.sqltext import instant, quote
from kb.engine.policies import NEXT_DAY_CLOSE, WITHIN_UNITS, within_ok_sql
from kb.timestamps import (
    FIRST_YEAR,
    LAST_YEAR,
    OUTSIDE_YEARS,
    TimestampError,
    in_calendar_years,
    now_utc,
    parse_timestamp,
    people_local,
)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # id, text, enum, ref, timestamp, date, money, percent, days, currency, schedule, within,
    #            calendar, message_id
    required: bool = True
    choices: tuple[str, ...] = ()
    refers_to: str = ""  # the table whose rows this column names, by its column of the same name
    default: str | None = None  # stored when the cell is empty

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
        Column("policy_id", "ref", required=False, refers_to="policies"),
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
        Column("priority", "enum", required=False, choices=PRIORITIES, default="normal"),
    ),
    "incidents": (
        Column("incident_id", "id"),
        Column("environment_id", "ref", refers_to="environments"),
        Column("impact", "enum", choices=IMPACTS),
        Column("started_at", "timestamp"),
        Column("ended_at", "timestamp", required=False),
        Column("summary", "text", required=False),
    ),
    "policies": (
        Column("policy_id", "id"),
        Column("metric", "enum", choices=METRICS),
        Column("priority", "enum", choices=(*PRIORITIES, "*")),
        Column("within", "within"),
        Column("calendar", "calendar", required=False, default="support"),
        Column("valid_from", "date", required=False, default="1970-01-01"),
    ),
    "pauses": (
        Column("case_id", "ref", refers_to="cases"),
        Column("paused_at", "timestamp"),
        Column("resumed_at", "timestamp", required=False),
        Column("reason", "text", required=False),
    ),
    "messages": (
        Column("case_id", "ref", refers_to="cases"),
        Column("at", "timestamp"),
        Column("direction", "enum", choices=DIRECTIONS),
        Column("message_id", "message_id", required=False),
    ),
}

# What identifies a stored row: a key already stored, or twice in one file, is refused ("already exists").
KEYS: dict[str, tuple[str, ...]] = {
    "clients": ("client_id",),
    "environments": ("environment_id",),
    "contracts": ("contract_id",),
    "cases": ("case_id",),
    "incidents": ("incident_id",),
    "policies": ("policy_id", "metric", "priority", "valid_from"),
    "pauses": ("case_id", "paused_at"),
    "messages": ("message_key",),
}

# Rows a reference may name that no table holds: the tier policies always exist, holding what [sla] says when
# no policies row names them (SPEC 12).
BUILT_IN: dict[str, tuple[str, ...]] = {"policies": TIERS}

# A Message-ID as it is stored (kb/mail keeps it without its <>), and an imported message's key: its
# Message-ID, else a hash of its case, instant (UTC, to the microsecond) and direction, so that importing the
# same file twice is refused rather than doubling the thread.
MESSAGE_KEY = ("coalesce(message_id, 'import:' || sha256(case_id || '|' || "
               "strftime(timezone('UTC', \"at\"), '%Y-%m-%dT%H:%M:%S.%fZ') || '|' || direction))")

# Where a stored row is not the typed row column for column: each stored column as SQL over the typed row,
# the importing actor ("@actor") and the instant it writes ("@now"). Other tables store their columns as
# typed.
STORED: dict[str, dict[str, str]] = {
    "pauses": {
        "case_id": "case_id", "paused_at": "paused_at", "resumed_at": "resumed_at", "reason": "reason",
        "paused_by": '"@actor"',
        "resumed_by": 'CASE WHEN resumed_at IS NOT NULL THEN "@actor" END',
    },
    "messages": {
        "message_key": MESSAGE_KEY, "message_id": "message_id", "case_id": "case_id", "source": "'import'",
        "is_team": "direction = 'team'", "is_automatic": "FALSE", "unverified": "FALSE",
        "received_at": '"at"', "taken_at": '"@now"',
    },
}

# A stored column that people know by the name of the import column it comes from: problems name that one.
KNOWN_AS: dict[str, dict[str, str]] = {"messages": {"message_key": "message_id"}}

VOIDED_CASE = "case_id IN (SELECT case_id FROM cases WHERE voided_at IS NOT NULL)"
RECEIVED = "(SELECT received_at FROM cases c WHERE c.case_id = s.case_id)"  # of the case a row ``s`` names


def _overlapping(a: str, b: str) -> str:
    """SQL: the pauses ``a`` and ``b`` are of one case, begin at different instants (the same one is a repeated
    key) and overlap, one not resumed running on; a pause that resumes before it begins is refused by itself."""
    runs_to = "coalesce({}.resumed_at, 'infinity'::TIMESTAMPTZ)"
    return (f"{a}.case_id = {b}.case_id AND {a}.paused_at <> {b}.paused_at "
            f"AND {a}.paused_at < {runs_to.format(b)} AND {b}.paused_at < {runs_to.format(a)} "
            f"AND coalesce({a}.resumed_at >= {a}.paused_at AND {b}.resumed_at >= {b}.paused_at, TRUE)")


# Rules that involve two cells of a row, or other rows: (condition for an error, column, reason), over the typed
# row ``s`` (among the file's valid rows, ``valid``).
ROW_RULES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "environments": (
        ("kind = 'dedicated' AND client_id IS NULL", "client_id", "is required for a dedicated environment"),
    ),
    "contracts": (
        ("policy_id IS NOT NULL AND response_business_days IS NOT NULL", "policy_id",
         "a contract that names a policy takes its targets from it: leave response_business_days empty"),
        ("day(starts_on) <> 1", "starts_on", "must be the first day of a month"),
        ("ends_on < starts_on", "ends_on", "is before the contract starts"),
        ("environment_id IN (SELECT environment_id FROM environments "
         "WHERE kind = 'dedicated' AND client_id <> s.client_id)",
         "environment_id", "is a dedicated environment of another client"),
    ),
    "cases": (
        ("first_response_at < received_at", "first_response_at", "is before the case was received"),
        ("resolved_at < received_at", "resolved_at", "is before the case was received"),
    ),
    "incidents": (
        ("ended_at < started_at", "ended_at", "is before the incident started"),
    ),
    "pauses": (
        (VOIDED_CASE, "case_id", "is a voided case"),
        (f"paused_at < {RECEIVED}", "paused_at", "is before the case was received"),
        ("resumed_at < paused_at", "resumed_at", "is before the pause began"),
        (f"EXISTS (SELECT 1 FROM pauses p WHERE {_overlapping('p', 's')})", "paused_at",
         "overlaps a pause of this case already stored (pauses of a case never overlap; one not resumed runs on)"),
        (f"EXISTS (SELECT 1 FROM valid p WHERE p.line <> s.line AND {_overlapping('p', 's')})", "paused_at",
         "overlaps another pause of this case in this file (pauses of a case never overlap; one not resumed "
         "runs on)"),
    ),
    "messages": (
        (VOIDED_CASE, "case_id", "is a voided case"),
        (f'"at" < {RECEIVED}', "at", "is before the case was received"),
    ),
}

# The clock: (column, condition under which it may lie in the future) for the instants that record
# something that happened. Clocks differ a little, hence the grace; a case from tomorrow is a typo.
FUTURE_GRACE = timedelta(minutes=5)
CLOCK_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "cases": (("received_at", "FALSE"), ("first_response_at", "FALSE"), ("resolved_at", "FALSE")),
    "incidents": (("started_at", "impact = 'maintenance'"), ("ended_at", "impact = 'maintenance'")),
    "pauses": (("paused_at", "FALSE"), ("resumed_at", "FALSE")),
    "messages": (("at", "FALSE"),),
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
# A policy's target (``kb.engine.policies.WITHIN_UNITS``): N hours of business time, N business days, or the end
# of the next business day.
WITHIN_RULE = (f"is not a target: Nh (N hours of business time, N from 1 to {WITHIN_UNITS['h'][1]}), Nd (N business "
               f"days, N from 1 to {WITHIN_UNITS['d'][1]}) or {NEXT_DAY_CLOSE}")
# A Message-ID: printable ASCII without spaces or angle brackets, in <> or not (RFC 5322 keeps a line to 998).
MESSAGE_ID_PATTERN = "<[!-;=?-~]{1,996}>|[!-;=?-~]{1,998}"
MESSAGE_ID_RULE = ("is not a Message-ID: printable ASCII without spaces, at most 998 characters, in <> or not "
                   "(e.g. <abc.123@mail.example>)")

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


def _column_checks(column: Column, calendars: Sequence[str]) -> list[tuple[str, str]]:
    """(condition, reason SQL) pairs for one column; ``v`` is the cleaned cell. ``calendars``: the names a
    calendar cell may hold."""
    shown = "quote_text(v)"
    checks: list[tuple[str, str]] = [("contains(v, chr(0))", "'contains a NUL character (byte 0); remove it'")]
    if column.required:
        checks.append(("v IS NULL", "'is empty'"))
    if column.kind == "enum":
        allowed = ", ".join(quote(c) for c in column.choices)
        checks.append((f"v NOT IN ({allowed})",
                       f"{shown} || ' is not one of {', '.join(column.choices)}'"))
    elif column.kind == "ref":
        built_in = ", ".join(quote(name) for name in BUILT_IN.get(column.refers_to, ()))
        noun = singular(column.refers_to)
        checks.append((f"v NOT IN (SELECT {column.name} FROM {column.refers_to})"
                       + (f" AND v NOT IN ({built_in})" if built_in else ""),
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
    elif column.kind == "within":
        checks.append((f"NOT coalesce({within_ok_sql('v')}, FALSE)", f"{shown} || ' {WITHIN_RULE}'"))
    elif column.kind == "calendar":
        checks.append((f"v NOT IN ({', '.join(quote(name) for name in calendars)})",
                       f"{shown} || ' is not one of the calendars {', '.join(calendars)}'"))
    elif column.kind == "message_id":
        checks.append((f"NOT regexp_full_match(v, '{MESSAGE_ID_PATTERN}')", f"{shown} || ' {MESSAGE_ID_RULE}'"))
    elif column.kind == "id":
        checks.append((f"NOT {_is_id('v')}", f"{shown} || ' is not an id' || {_id_flaw('v')} || ': {ID_RULE}'"))
    return checks


def singular(table: str) -> str:
    """One row of ``table`` in words: ``cases`` → ``case``, ``policies`` → ``policy``."""
    return table.removesuffix("ies") + "y" if table.endswith("ies") else table.removesuffix("s")


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


def errors_sql(table: str, staging: str, *, calendars: Sequence[str], updating: bool = False,
               now: datetime | None = None, words: bool = True) -> str:
    """A query listing (line, column, reason) for every broken rule in ``staging``.

    ``calendars``: the calendars a policy row may name (``Config.calendar_names``).
    ``updating``: the rows replace existing ones with the same key, rather than add new ones.
    ``now``: the instant the clock rule compares with (default: ``kb.timestamps.now_utc()``).
    ``words``: with False, only whether a rule is broken: each column's rules are asked at once, and every
    column and reason is NULL. The same rules, quicker to ask of one row that most likely breaks none: DuckDB
    binds and plans a part per rule, and the reasons' quoting and local times, for tens of milliseconds.
    """
    parts = []
    for column in TABLES[table]:
        checks = []
        for condition, reason in _column_checks(column, calendars):
            if condition.startswith("contains(v, chr(0))"):
                condition = f"v IS NOT NULL AND ({condition})"
            elif condition != "v IS NULL":
                condition = f"v IS NOT NULL AND NOT contains(v, chr(0)) AND ({condition})"
            checks.append((condition, quote(column.name), reason))
        problem = f', "{problem_column(column.name)}" AS p' if column.kind == "timestamp" else ""
        parts += _asked(checks, f"(SELECT line, {cell(column)} AS v{problem} FROM staged_cells)", words)
    # Rules over two cells, other rows and keys look only at the rows whose every typed cell is valid, typed
    # (``valid``) and as they would be stored (``stored``): a bad cell is reported once.
    now = now or now_utc()
    row_checks = [(condition, quote(column_name), quote(reason))
                  for condition, column_name, reason in ROW_RULES.get(table, ())]
    for column_name, allowed in CLOCK_RULES.get(table, ()):
        typed_value = f's."{column_name}"'
        row_checks.append((f"{typed_value} > {instant(now + FUTURE_GRACE)} AND NOT coalesce({allowed}, FALSE)",
                           quote(column_name), _future_reason_sql(typed_value, now)))
    # Asked one by one even without words: asked at once, DuckDB may evaluate the typed cells' casts on rows
    # that ``valid`` sets aside, and they raise.
    parts += [f"SELECT line, {column if words else 'NULL'}, {reason if words else 'NULL'} FROM valid s "
              f"WHERE {condition}" for condition, column, reason in row_checks]
    parts += _key_problems(table, updating, words)
    union = "\nUNION ALL\n".join(parts)
    # The columns' rules read ``staging`` as ``staged_cells``, named once: an Arrow table registered from Python
    # is bound (a call into Python) wherever a query names it. ``valid`` reads it itself: reading the CTE, DuckDB
    # may cast the cells before it sets aside the rows whose casts raise.
    return (f"WITH staged_cells AS (SELECT * FROM {staging}), "
            f"valid AS ({_typed_sql(table, staging, valid_only=True)}), "
            f"stored AS ({_stored_rows_sql(table, 'valid')}) "
            f"SELECT line, column_name, reason FROM ({union}) ORDER BY line, column_name, reason")


def _asked(checks: list[tuple[str, str, str]], rows: str, words: bool) -> list[str]:
    """Queries of (line, column, reason) over ``rows`` for one column's ``checks``, (condition, column SQL,
    reason SQL): with ``words``, one query per check; else one for them all, naming neither column nor reason."""
    if not words:
        broken = " OR ".join(f"({condition})" for condition, _, _ in checks)
        return [f"SELECT line, NULL AS column_name, NULL AS reason FROM {rows} WHERE {broken}"] if checks else []
    return [f"SELECT line, {column} AS column_name, {reason} AS reason FROM {rows} WHERE {condition}"
            for condition, column, reason in checks]


def _key_problems(table: str, updating: bool, words: bool) -> list[str]:
    """Queries of (line, column, reason) for the ``stored`` rows whose key is stored already or repeated in the
    file, or (``updating``) is not stored. A key of several columns is named by all of them."""
    key = KEYS[table]
    known_as = KNOWN_AS.get(table, {})
    column = quote(", ".join(known_as.get(k, k) for k in key))
    shown = _shown_key(table, "s") if words else "''"
    complete = " AND ".join(f's."{k}" IS NOT NULL' for k in key)
    same = " AND ".join(f't."{k}" = s."{k}"' for k in key)
    held = f"EXISTS (SELECT 1 FROM {table} t WHERE {same})"
    if updating:
        return [f"SELECT line, {column}, 'no such row ' || {shown} FROM stored s WHERE {complete} AND NOT {held}"]
    names = ", ".join(f'"{k}"' for k in key)
    repeats = f'(SELECT *, count(*) OVER (PARTITION BY {names}) AS "@rows" FROM stored) s'
    return [f"SELECT line, {column}, {shown} || ' already exists' FROM stored s WHERE {complete} AND {held}",
            f"SELECT line, {column}, {shown} || ' appears more than once in this file' FROM {repeats} "
            f'WHERE {complete} AND "@rows" > 1']


def _shown_key(table: str, row: str) -> str:
    """SQL: the key of the stored row ``row`` as a message quotes it, ``'CS-00001'``; the values of a key of
    several columns in its order, ``'CS-00001', '2026-11-23T10:00:00+08:00'``, instants in local time."""
    kinds = {c.name: c.kind for c in TABLES[table]}

    def text(k: str) -> str:
        value = f'{row}."{k}"'
        if kinds.get(k) == "timestamp":
            return f"quote_text(iso_local({value}, current_setting('TimeZone')))"
        return f"quote_text(CAST({value} AS VARCHAR))"

    return " || ', ' || ".join(text(k) for k in KEYS[table])


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
    return f"is in the future ({people_local(moment, zone)}; now is {people_local(now, zone)})"


def _future_reason_sql(typed: str, now: datetime) -> str:
    """``future_reason`` in SQL, in the session's zone."""
    zone = "current_setting('TimeZone')"
    return (f"'is in the future (' || people_local({typed}, {zone}) || '; now is ' "
            f"|| people_local({instant(now)}, {zone}) || ')'")


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
    text), cast to the column's type; a Message-ID without its <>; the column's default when empty."""
    if column.kind in SQL_TYPES:
        value = f"CAST({_ready(column)} AS {SQL_TYPES[column.kind]})"
    elif column.kind == "message_id":
        value = f"regexp_replace({cell(column)}, '^<(.*)>$', '\\1')"
    else:
        value = cell(column)
    if column.default is None:
        return value
    default = quote(column.default)
    if column.kind in SQL_TYPES:
        default = f"CAST({default} AS {SQL_TYPES[column.kind]})"
    return f"coalesce({value}, {default})"


def _typed_sql(table: str, staging: str, *, valid_only: bool = False) -> str:
    """The staged rows typed, with their line; ``valid_only``: the rows whose every typed cell is valid (the
    casts of the others raise)."""
    columns = TABLES[table]
    values = ", ".join(f'{typed(c)} AS "{c.name}"' for c in columns)
    return f"SELECT line, {values} FROM {staging}" + (f" WHERE {_typed_cells_are_valid(columns)}" if valid_only else "")


def stored_columns(table: str) -> dict[str, str]:
    """Each column of a stored row, as SQL over the typed row (see ``STORED``)."""
    return STORED.get(table) or {c.name: f'"{c.name}"' for c in TABLES[table]}


def _stored_rows_sql(table: str, typed_rows: str, *, actor: str | None = None, now: datetime | None = None) -> str:
    """The rows of the relation ``typed_rows`` (typed, with their line) as they would be stored when written by
    ``actor`` (an address) at ``now``, still with their line."""
    values = ", ".join(f'{expression} AS "{name}"' for name, expression in stored_columns(table).items())
    writer = (f'SELECT CAST({quote(actor) if actor is not None else "NULL"} AS VARCHAR) AS "@actor", '
              f'{instant(now) if now is not None else "CAST(NULL AS TIMESTAMPTZ)"} AS "@now"')
    return f"SELECT line, {values} FROM {typed_rows}, ({writer})"


def typed_rows_sql(table: str, staging: str, *, actor: str | None = None, now: datetime | None = None) -> str:
    """The staged rows as they would be stored (written by ``actor`` at ``now``), in file order (valid rows
    only: the casts raise)."""
    names = ", ".join(f'"{name}"' for name in stored_columns(table))
    typed_rows = f"({_typed_sql(table, staging)})"
    return f"SELECT {names} FROM ({_stored_rows_sql(table, typed_rows, actor=actor, now=now)}) ORDER BY line"


def keys_sql(table: str, staging: str, lines: Sequence[int]) -> str:
    """The key values, as stored, of the staged rows on ``lines``, in file order."""
    on_lines = f"(SELECT * FROM {staging} WHERE line IN ({', '.join(str(line) for line in lines)}))"
    rows = _stored_rows_sql(table, f"({_typed_sql(table, on_lines)})")
    key = ", ".join(f'"{k}"' for k in KEYS[table])
    return f"SELECT {key} FROM ({rows}) ORDER BY line"


def key_text(values: Sequence) -> str:
    """A stored row's key as the audit trail names an import's first and last row: its values joined by
    spaces, instants in UTC."""
    return " ".join(v.astimezone(UTC).isoformat() if isinstance(v, datetime) else str(v) for v in values)


def update_sql(table: str, staging: str) -> str:
    """UPDATE of the rows whose key is staged, every other column from the staged text."""
    key = KEYS[table]
    assignments = ", ".join(f'"{name}" = s."{name}"' for name in stored_columns(table) if name not in key)
    matches = " AND ".join(f'{table}."{k}" = s."{k}"' for k in key)
    return f"UPDATE {table} SET {assignments} FROM ({typed_rows_sql(table, staging)}) s WHERE {matches}"


def insert_sql(table: str, staging: str, *, actor: str, now: datetime) -> str:
    """INSERT of every staged row, typed, in file order, written by ``actor`` at ``now``."""
    names = ", ".join(f'"{name}"' for name in stored_columns(table))
    return f"INSERT INTO {table} ({names}) {typed_rows_sql(table, staging, actor=actor, now=now)}"


def same_values(table: str, stored: str, staged: str) -> str:
    """A join condition: the row ``stored`` holds, in every column but the key, the values of the typed
    row ``staged`` (from ``typed_rows_sql``), NULL matching NULL."""
    return " AND ".join(f'{stored}."{name}" IS NOT DISTINCT FROM {staged}."{name}"'
                        for name in stored_columns(table) if name not in KEYS[table])
