"""Adding rows, all or nothing: from a CSV file (``python -m kb import``, the Import
page) or from a form (one row). Every problem is reported as ``line N``, column
and reason; when there is any, nothing is written.

Timestamps are read in Python, by the same ``kb.timestamps.parse_timestamp`` as
everything else (``kb.intake.validation.read_instants``, once per distinct
text), when the rows are staged; the SQL checks and the insert only cast the
canonical UTC text that reading gives.

``checked`` stages the rows, checks them (``kb.intake.validation``, and that none
falls in a closed month: ``kb.intake.closed_months``) and holds the transaction;
``write_checked`` writes them inside it. ``add_rows`` and ``update_row`` are the
two put together; a form (``kb.intake.writes``) adds its double-submit check
between them."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import pyarrow as pa

from kb.access import Actor, require
from kb.config import Config
from kb.db import audit
from kb.db.answers import answer
from kb.db.connection import local_zone, registered, transaction
from kb.intake.closed_months import Span, closed_month_hit, refusal, staged_problems
from kb.intake.resuming import resume_on_imported_messages
from kb.intake.validation import (
    KEYS,
    TABLES,
    Reading,
    bad_schedules,
    errors_sql,
    insert_sql,
    key_text,
    keys_sql,
    problem_column,
    read_instants,
    singular,
    typed_rows_sql,
    update_sql,
    utc_column,
)
from kb.timestamps import now_utc

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Problem:
    line: int | None
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = ", ".join(p for p in (f"line {self.line}" if self.line else "", self.column or "") if p)
        return f"{where}: {self.reason}" if where else self.reason


class Rejected(ValueError):
    """The rows were not written; ``problems`` says why, line by line."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class Staged:
    """Rows as text, with the file line each starts on."""

    table: str
    columns: dict[str, list[str | None]] = field(default_factory=dict)
    lines: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lines)


def staged_from_csv(table: str, data: bytes) -> Staged:
    """Read CSV bytes (UTF-8, BOM and Windows line endings welcome) into a Staged; raise Rejected."""
    expected = [c.name for c in _columns(table)]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise Rejected([Problem(line, None, f"is not UTF-8 text (byte 0x{data[e.start]:02x}); "
                                                  "save the file as CSV UTF-8")]) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise Rejected([Problem(1, None, "the file is empty; it needs a header line")]) from None
    header = [name.strip() for name in header]
    problems = [Problem(1, column.name, "missing column")
                for column in _columns(table) if column.required and column.name not in header]
    problems += [Problem(1, name or "(blank)", f"unknown column (expected: {', '.join(expected)})")
                 for name in header if name not in expected]
    problems += [Problem(1, name, "column appears twice") for name in sorted(set(header)) if header.count(name) > 1]
    if problems:
        raise Rejected(problems)

    staged = Staged(table, {name: [] for name in expected})
    positions = [(name, header.index(name) if name in header else None) for name in expected]
    previous_end = 1
    try:
        for cells in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            if len(cells) != len(header):
                problems.append(Problem(start, None, f"has {len(cells)} cells, the header has {len(header)}"))
                continue
            for name, position in positions:
                staged.columns[name].append(None if position is None else cells[position])
            staged.lines.append(start)
    except csv.Error as e:
        problems.append(Problem(reader.line_num, None, f"is not valid CSV: {e}"))
    if problems:
        raise Rejected(problems)
    return staged


def staged_from_records(table: str, records: list[dict[str, str | None]]) -> Staged:
    """Form input as a Staged; record i is reported as line i + 2, as if under a header."""
    names = [c.name for c in _columns(table)]
    unknown = sorted({key for record in records for key in record} - set(names))
    if unknown:
        raise ValueError(f"{table} has no column {', '.join(unknown)}")
    return Staged(
        table,
        {name: [record.get(name) for record in records] for name in names},
        list(range(2, len(records) + 2)),
    )


def add_rows(con, config: Config, staged: Staged, actor: Actor, *, permission: str, source: str,
             progress: Progress | None = None, now: datetime | None = None) -> int:
    """Validate every staged row and insert them all in one transaction; raise Rejected.

    ``permission`` is what the caller is doing: "import" for a file, "log_case"
    for a form. ``source`` names the file or form in the audit trail. ``now``:
    what the clock rule takes as now (default: ``kb.timestamps.now_utc()``).
    Returns the number of rows written.
    """
    require(actor, permission)
    report = progress or _silent
    with checked(con, config, staged, progress=report, now=now):
        write_checked(con, config, staged, actor, permission=permission, source=source)
    report(1.0, f"{len(staged):,} rows written")
    return len(staged)


def update_row(con, config: Config, staged: Staged, actor: Actor, *, permission: str) -> None:
    """Replace one existing row (same key) by the staged one, under the same rules as a new row."""
    if len(staged) != 1:
        raise ValueError("update_row takes exactly one row")
    require(actor, permission)
    with checked(con, config, staged, updating=True):
        write_checked(con, config, staged, actor, permission=permission, source="form", updating=True)


@contextmanager
def checked(con, config: Config, staged: Staged, *, updating: bool = False,
            progress: Progress | None = None, now: datetime | None = None) -> Iterator[None]:
    """Inside: a transaction, the session in the support zone, and the staged rows registered as
    ``staging`` and found to pass every rule (else Rejected, and nothing written). The block writes
    them (``write_checked``); it may run further queries on ``staging`` first.

    ``updating``: the rows replace existing ones with the same key, rather than add new ones.
    ``now``: what the clock rule takes as now (default: ``kb.timestamps.now_utc()``).
    """
    report = progress or _silent
    if not staged.lines:
        raise Rejected([Problem(None, None, "there are no rows to add")])
    report(0.1, f"checking {len(staged):,} rows")
    schedule_problems = _schedule_problems(staged)
    with registered(con, staging=_arrow(staged, config.calendar.zone), bad_schedules=pa.table({
        "schedule": pa.array([s for s, _ in schedule_problems], pa.string()),
        "reason": pa.array([r for _, r in schedule_problems], pa.string()),
    })), local_zone(con, config.calendar.timezone), transaction(con):
        rules = {"calendars": config.calendar_names, "updating": updating, "now": now or now_utc()}
        rows = []
        if con.execute(errors_sql(staged.table, "staging", words=False, **rules) + " LIMIT 1").fetchall():
            rows = con.execute(errors_sql(staged.table, "staging", **rules)).fetchall()  # now in words
        rows += staged_problems(con, config, staged.table, "staging", updating=updating)
        problems = [Problem(*row) for row in sorted(rows, key=lambda row: (row[0], row[1]))]
        if problems:
            raise Rejected(problems)
        report(0.5, f"writing {len(staged):,} rows")
        yield


def write_checked(con, config: Config, staged: Staged, actor: Actor, *, permission: str, source: str,
                  updating: bool = False) -> None:
    """Insert (or, ``updating``, update) the rows ``checked`` let through, with their audit row. A form writes
    (and edits) one row of a table keyed by one column; an import, any number."""
    table = staged.table
    if updating:
        (key,) = KEYS[table]
        row_id = (staged.columns[key][0] or "").strip()
        before = row_of(con, table, key, row_id)
        con.execute(update_sql(table, "staging"))
        audit.record(con, actor, "edit", table, row_id, before, row_of(con, table, key, row_id))
        return
    now = now_utc()
    con.execute(insert_sql(table, "staging", actor=actor.email, now=now))
    if table == "messages":
        messages = con.sql(typed_rows_sql(table, "staging", actor=actor.email, now=now)).to_arrow_table()
        answer(con, messages.column("case_id").to_pylist())
        resume_on_imported_messages(con, config, actor, messages)
    if permission == "import":
        edges = con.execute(keys_sql(table, "staging", (staged.lines[0], staged.lines[-1]))).fetchall()
        audit.record(con, actor, "import", table, None, None, {"source": source, "rows": len(staged),
                                                               "first_id": key_text(edges[0]),
                                                               "last_id": key_text(edges[-1])})
    else:  # one row, named by the first column of its key (a policy row by its policy) and shown whole
        key, *more = KEYS[table]
        row_id = (staged.columns[key][0] or "").strip()
        after = {name: values[0] for name, values in staged.columns.items()} if more else \
            row_of(con, table, key, row_id)
        audit.record(con, actor, "add", table, row_id, None, after)


def refuse_closed(con, config: Config, column: str | None, *spans: Span) -> None:
    """Rejected naming ``column`` and the closed month when one of ``spans`` falls in one."""
    month = closed_month_hit(con, config, *spans)
    if month:
        raise Rejected([Problem(None, column, refusal(month))])


def row_of(con, table: str, key: str, value: str) -> dict:
    """One stored row as a dict of column to value; Rejected names the key when there is none."""
    cursor = con.execute(f"SELECT * FROM {table} WHERE {key} = ?", [value])
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    if not rows:
        raise Rejected([Problem(None, key, f"no {singular(table)} {value!r}")])
    return dict(zip(names, rows[0], strict=True))


def _silent(fraction: float, text: str) -> None:
    pass


def _columns(table: str):
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r} (one of {', '.join(TABLES)})")
    return TABLES[table]


def _arrow(staged: Staged, zone: ZoneInfo) -> pa.Table:
    """The staged text as the table ``staging``, with each timestamp column read (its canonical UTC text and
    its problem beside it: see ``kb.intake.validation``)."""
    arrays = {name: pa.array(values, pa.string()) for name, values in staged.columns.items()}
    arrays["line"] = pa.array(staged.lines, pa.int64())
    readings: dict[str | None, Reading] = {}
    for column in _columns(staged.table):
        if column.kind == "timestamp":
            utc, problems = read_instants(staged.columns[column.name], zone, readings)
            arrays[utc_column(column.name)] = pa.array(utc, pa.string())
            arrays[problem_column(column.name)] = pa.array(problems, pa.string())
    return pa.table(arrays)


def _schedule_problems(staged: Staged) -> list[tuple[str, str]]:
    values = staged.columns.get("credit_schedule")
    if not values:
        return []
    return bad_schedules({v.strip() for v in values if v and v.strip()})
