"""The CSV reports of the data contract (rules §7): case-sla, responses, uptime, refunds, and the audit trail."""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kb.config import Config
from kb.db.sqltext import quote
from kb.engine.asof import open_views

log = logging.getLogger(__name__)


def report_sql(report: str, config: Config, *, ordered: bool = True) -> str:
    """The SELECT behind a report, against the as-of views, timestamps in the support zone. The rows of a report
    ordered by its rows' instants (``ORDERED_BY``) are put in order before their timestamps are written as
    text, which the outer SELECT keeps (DuckDB keeps the order of a single subquery's rows): sorted after, a
    million cases' rows held their text while sorted, 250 MB more. Not ``ordered``, those rows come in the
    order of their source (``in_order`` registers it so)."""
    tz = quote(config.calendar.timezone)
    sla, questions = (_in_its_order(name) if ordered else SOURCES[name] for name in ("case-sla", "responses"))
    queries = {
        "case-sla": f"""
            SELECT case_id, client_id, tier, category,
                   iso_local(received_at, {tz}) AS received_at,
                   iso_local(first_response_due, {tz}) AS first_response_due,
                   iso_local(first_response_at, {tz}) AS first_response_at,
                   sla_state,
                   iso_local(resolved_at, {tz}) AS resolved_at,
                   CAST(round(business_hours_left, 2) AS DECIMAL(18, 2)) AS business_hours_left,
                   requester, subject, message_id, priority, policy_id,
                   iso_local(next_response_due, {tz}) AS next_response_due, next_response_state,
                   iso_local(resolution_due, {tz}) AS resolution_due, resolution_state
            FROM {sla}""",
        "responses": f"""
            SELECT case_id, iso_local(asked_at, {tz}) AS asked_at, iso_local(next_response_due, {tz}) AS due,
                   iso_local(responded_at, {tz}) AS responded_at, next_response_state AS state,
                   client_id, tier, priority
            FROM {questions}""",
        "uptime": """
            SELECT environment_id, month,
                   CAST(downtime_minutes AS DECIMAL(18, 2)) AS downtime_minutes,
                   CAST(uptime_pct AS DECIMAL(10, 6)) AS uptime_pct,
                   CAST(budget_left_minutes AS DECIMAL(18, 2)) AS budget_left_minutes,
                   status,
                   CAST(target_pct AS DECIMAL(7, 4)) AS target_pct,
                   target_met
            FROM env_uptime ORDER BY environment_id, month""",
        "refunds": """
            SELECT contract_id, client_id, environment_id, month,
                   CAST(uptime_pct AS DECIMAL(10, 6)) AS uptime_pct,
                   CAST(credit_pct AS DECIMAL(7, 4)) AS credit_pct,
                   CAST(refund_amount AS DECIMAL(18, 2)) AS refund_amount,
                   currency, status
            FROM contract_refunds ORDER BY contract_id, month""",
        "audit": f"""
            SELECT audit_id, iso_local(logged_at, {tz}) AS logged_at, actor, action, table_name, row_id,
                   before, after
            FROM audit_log ORDER BY audit_id""",
    }
    if report not in queries:
        raise ValueError(f"unknown report {report!r} (one of {', '.join(queries)})")
    return queries[report]


def _in_its_order(report: str) -> str:
    """The source of ``report`` (one of ``ORDERED_BY``), its rows in the report's order."""
    return f"(SELECT * FROM {SOURCES[report]} ORDER BY {', '.join(ORDERED_BY[report])})"


REPORTS = ("case-sla", "responses", "uptime", "refunds", "audit")
SOURCES = {"case-sla": "case_sla", "responses": "case_questions", "uptime": "env_uptime",
           "refunds": "contract_refunds", "audit": "audit_log"}  # a report is one row per row of its source
PIECE_ROWS = 50_000
VECTOR_ROWS = 2_048  # DuckDB's vector size
ORDERED_BY = {"case-sla": ("received_at", "case_id"), "responses": ("asked_at", "case_id")}  # as ``report_sql`` sorts


TEXT_TYPES = ("VARCHAR", "JSON")


def export_sql(con, report: str, config: Config, *, ordered: bool = True) -> str:
    """``report_sql`` made safe for spreadsheets (``spreadsheet_safe_sql``)."""
    return spreadsheet_safe_sql(con, report_sql(report, config, ordered=ordered))


def spreadsheet_safe_sql(con, sql: str, params=()) -> str:
    """``sql`` with every text cell made safe for spreadsheets: one that starts with ``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return gets a leading ``'`` (rules §8). Numbers, which may well be
    negative, stay numbers. Reads the column types on ``con``, where the query's tables must be."""
    columns = con.execute(f"DESCRIBE {sql}", list(params)).fetchall()
    cells = ", ".join(f'spreadsheet_safe("{name}"::VARCHAR) AS "{name}"' if kind in TEXT_TYPES else f'"{name}"'
                      for name, kind, *_ in columns)
    return f"SELECT {cells} FROM ({sql})"


def write_report(con, config: Config, report: str, as_of: datetime, out: str | os.PathLike | None) -> int:
    """Write ``report`` as of ``as_of`` to ``out`` (stdout when None); returns the row count."""
    open_views(con, config, as_of)
    sql = export_sql(con, report, config)
    target = out
    if out is None:
        handle, target = tempfile.mkstemp(suffix=".csv")
        os.close(handle)
    try:
        rows = con.execute(f"COPY ({sql}) TO {quote(str(target))} (FORMAT csv, HEADER)").fetchall()[0][0]
        if out is None:
            sys.stdout.flush()
            with open(target, "rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer)
            sys.stdout.buffer.flush()
    finally:
        if out is None:
            os.unlink(target)
    return rows


def report_rows(con, report: str) -> int:
    """The rows ``report`` has on ``con`` (where its view or table is): those of its source, counted without
    computing the report."""
    return con.execute(f"SELECT count(*) FROM {SOURCES[report]}").fetchall()[0][0]


def snapshot_pieces(store, snapshot, report: str) -> Iterator:
    """The row count of ``report`` on ``snapshot`` (a ``kb.snapshot.Snapshot`` of ``store``), then its CSV in
    pieces (``csv_pieces``). Started, it holds two cursors of the store until the last piece is read or it is
    dropped (the client left), whichever comes first. A report of the snapshot's case rows is sorted a part at
    a time (``in_order``), in no transaction: one keeps every Arrow table it read until it ends. The others
    are read in one, so that their count and rows are of one state (the audit trail grows meanwhile)."""
    sorted_here = report in ORDERED_BY
    with store.reader(snapshot) as cur, store.reader() as scratch:
        if not sorted_here:
            cur.execute("BEGIN TRANSACTION")
        try:
            sql = export_sql(cur, report, store.config, ordered=not sorted_here)
            yield report_rows(cur, report)
            parts = in_order(cur, report, snapshot.tables[SOURCES[report]], sql) if sorted_here else (None,)
            try:
                yield from csv_pieces(cur, scratch, sql, parts=parts)
            except Exception:  # the status and headers are sent: the client sees the body cut short
                log.exception("the export of %s stopped part-way", report)
                raise
        finally:
            if not sorted_here:
                cur.execute("ROLLBACK")


def csv_pieces(con, scratch, sql: str, *, rows: int | None = None, parts: Iterable = (None,)) -> Iterator[bytes]:
    """The CSV that ``COPY (sql) TO … (FORMAT csv, HEADER)`` writes, byte for byte, in pieces: the header line
    at once, then ``rows`` (default ``PIECE_ROWS``) rows at a time as the query yields them, so that a reader
    has the start before the end is written and the file is never whole in memory. ``con`` runs the query;
    ``scratch``, another cursor of the same database, writes each piece with DuckDB's own CSV writer (through a
    temporary file). With ``parts`` (``in_order``), the query runs once per part, each part's rows following
    the last's."""
    handle, target = tempfile.mkstemp(prefix="kb-export-", suffix=".csv")
    os.close(handle)
    try:
        yield _csv_piece(scratch, con.sql(f"SELECT * FROM ({sql}) LIMIT 0").to_arrow_table(), target, header=True)
        for piece in _joined((batch for _ in parts for batch in con.sql(sql).to_arrow_reader(rows or PIECE_ROWS)),
                             rows or PIECE_ROWS):
            yield _csv_piece(scratch, piece, target, header=False)
    finally:
        os.unlink(target)


def _joined(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """``batches`` joined into tables of at least ``rows`` rows (the last one fewer): a piece costs a few
    milliseconds however few its rows, and a query reading small slices yields small batches."""
    held, count = [], 0
    for batch in batches:
        held.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(held)
            held, count = [], 0
    if held:
        yield pa.Table.from_batches(held)


def in_order(con, report: str, table: pa.Table, sql: str, rows: int | None = None) -> Iterator[None]:
    """Register on ``con``, in turn, the parts of ``table`` (the rows of ``report``'s source, a snapshot's
    ``case_sla`` say; ``report`` one of ``ORDERED_BY``) that hold the report's rows in its order, ``rows`` at a
    time (default ``PIECE_ROWS``), with the columns the query ``sql`` (``report_sql(…, ordered=False)``)
    names: a million rows sorted at once by DuckDB held 0.6 GB more. Each part is slices of DuckDB's vector
    size, which it reads on both cores and keeps in order."""
    keys, rows = ORDERED_BY[report], rows or PIECE_ROWS
    order = pc.sort_indices(table.select(list(keys)), sort_keys=[(key, "ascending") for key in keys])
    named = table.select([name for name in table.column_names if re.search(rf"\b{re.escape(name)}\b", sql)])
    batches = named.to_batches()
    starts = np.cumsum([0] + [batch.num_rows for batch in batches])
    order = order.to_numpy().astype(np.int64)
    for start in range(0, max(len(order), 1), rows):
        part = _taken(batches, starts, order[start:start + rows], named.schema)
        con.register(SOURCES[report], pa.Table.from_batches(part.to_batches(max_chunksize=VECTOR_ROWS), part.schema))
        yield


def _taken(batches: list[pa.RecordBatch], starts, indices, schema: pa.Schema) -> pa.Table:
    """The rows ``indices`` (positions in the table of ``batches``, which start at ``starts``) in that order,
    taken batch by batch (a take from the whole table of many chunks joins each column first: 0.25 s more over
    a million cases' report)."""
    which = np.searchsorted(starts, indices, side="right") - 1
    by_batch = np.argsort(which, kind="stable")
    grouped, their_batch = indices[by_batch], which[by_batch]
    cuts = np.flatnonzero(np.diff(their_batch)) + 1
    taken = [batches[batch[0]].take(pa.array(positions - starts[batch[0]]))
             for positions, batch in zip(np.split(grouped, cuts), np.split(their_batch, cuts), strict=True)
             if len(positions)]
    rows = pa.Table.from_batches(taken, schema).combine_chunks()
    return rows.take(pa.array(np.argsort(by_batch, kind="stable")))


def _csv_piece(con, rows, target: str, *, header: bool) -> bytes:
    con.register("csv_piece", rows)
    try:
        con.execute(f"COPY (SELECT * FROM csv_piece) TO {quote(target)} (FORMAT csv, HEADER {str(header).lower()})")
    finally:
        con.unregister("csv_piece")
    with open(target, "rb") as f:
        return f.read()
