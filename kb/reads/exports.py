"""The CSV reports of the data contract (rules §7): case-sla, responses, uptime, refunds, and the audit trail."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from datetime import datetime

from kb.config import Config
from kb.db.sqltext import quote
from kb.engine.asof import open_views


def report_sql(report: str, config: Config) -> str:
    """The SELECT behind a report, against the as-of views, timestamps in the support zone."""
    tz = quote(config.calendar.timezone)
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
            FROM case_sla ORDER BY case_sla.received_at, case_id""",
        "responses": f"""
            SELECT case_id, iso_local(asked_at, {tz}) AS asked_at, iso_local(next_response_due, {tz}) AS due,
                   iso_local(responded_at, {tz}) AS responded_at, next_response_state AS state,
                   client_id, tier, priority
            FROM case_questions ORDER BY case_questions.asked_at, case_id""",
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


REPORTS = ("case-sla", "responses", "uptime", "refunds", "audit")


TEXT_TYPES = ("VARCHAR", "JSON")


def export_sql(con, report: str, config: Config) -> str:
    """``report_sql`` made safe for spreadsheets (``spreadsheet_safe_sql``)."""
    return spreadsheet_safe_sql(con, report_sql(report, config))


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
