"""What a client's statement for a month holds, read from the as-of views.

Its numbers are the data contract's reports for that client and month, read through the same SQL
(``kb.reads.exports.report_sql``), so the statement and the ``case-sla``, ``uptime`` and ``refunds``
exports cannot disagree: the cases received in the month, every environment the client runs on or has a
contract for, and its contracts' credits. The daily downtime chart reuses the uptime query with days in
place of months, so a day's downtime is the union of its outages exactly as a month's is.

A month closed as of T (rules §13) reads as it was closed: its uptime and credits are the views' frozen rows,
its cases' first responses those frozen with them (``closed_cases``), and the statement is as of the closing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pandas as pd

from kb.config import Config
from kb.db import connection
from kb.db.sqltext import instant, quote
from kb.engine.calendar import local_instant
from kb.engine.closings import closings_sql
from kb.engine.uptime import env_uptime_sql
from kb.reads.exports import report_sql
from kb.store import Snapshot, Store


@dataclass(frozen=True)
class Statement:
    client_id: str
    client_name: str
    tier: str
    month: str  # 'YYYY-MM'
    as_of: datetime  # the closing's instant for a closed month
    cases: pd.DataFrame  # the case-sla export's rows and columns (of a closed month: those frozen), plus the subject
    uptime: pd.DataFrame  # the uptime export's rows, plus the environment's name
    daily: pd.DataFrame  # environment_id, day, downtime_minutes
    incidents: pd.DataFrame  # the month's incidents on those environments, maintenance included
    credits: pd.DataFrame  # the refunds export's rows, plus the environment's name and the contract terms
    totals: dict  # counts by state, % met, credits by currency


class UnknownClient(LookupError):
    """No client with that id."""


def month_days(month: str) -> tuple[date, date]:
    """The first and last local date of 'YYYY-MM'; ValueError for anything else."""
    first = datetime.strptime(month, "%Y-%m").date()
    following = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return first, following - timedelta(days=1)


def statement(con, config: Config, client_id: str, month: str, as_of: datetime) -> Statement:
    """The statement of ``client_id`` for ``month`` as of ``as_of``; ``con`` has the as-of views open at it."""
    first, last = month_days(month)
    client = con.execute("SELECT client_id, name, tier FROM clients WHERE client_id = ?", [client_id]).fetchall()
    if not client:
        raise UnknownClient(f"no client {client_id!r}")
    params = {"client": client_id, "month": month}
    environments = """(SELECT environment_id FROM environments WHERE client_id = $client
                       UNION SELECT environment_id FROM contracts WHERE client_id = $client)"""
    closing = con.execute(f"SELECT version, closed_at FROM ({closings_sql(instant(as_of))}) WHERE month = ?",
                          [month]).fetchall()
    if closing:
        version, as_of = closing[0]
        cases = con.execute(_frozen_cases_sql(config), {**params, "version": version}).fetchdf()
    else:
        cases = con.execute(
            f"""SELECT r.*, c.subject FROM ({report_sql('case-sla', config)}) r JOIN cases c USING (case_id)
                WHERE r.client_id = $client AND left(r.received_at, 7) = $month ORDER BY r.received_at, r.case_id""",
            params).fetchdf()
    uptime = con.execute(
        f"""SELECT r.*, e.name AS environment_name FROM ({report_sql('uptime', config)}) r
            JOIN environments e USING (environment_id)
            WHERE r.environment_id IN {environments} AND r.month = $month ORDER BY r.environment_id""",
        params).fetchdf()
    credits = con.execute(  # the terms as the credit was computed with them (frozen with a closed month)
        f"""SELECT r.*, e.name AS environment_name, t.monthly_fee, t.credit_schedule, t.uptime_target_pct
            FROM ({report_sql('refunds', config)}) r JOIN contract_refunds t USING (contract_id, month)
            JOIN environments e ON e.environment_id = r.environment_id
            WHERE r.client_id = $client AND r.month = $month ORDER BY r.contract_id""",
        params).fetchdf()
    zone = config.calendar.zone
    incidents = con.execute(
        f"""SELECT i.incident_id, i.environment_id, e.name AS environment_name, i.impact, i.started_at, i.ended_at,
                   CASE WHEN i.impact = 'outage' THEN 'yes' ELSE 'no' END AS counted,
                   coalesce(i.summary, '') AS summary
            FROM incidents i JOIN environments e USING (environment_id)
            WHERE i.environment_id IN {environments} AND i.started_at < $end
              AND coalesce(i.ended_at, $as_of) >= $start AND i.started_at <= $as_of AND i.voided_at IS NULL
            ORDER BY i.started_at, i.incident_id""",
        {"client": client_id, "start": local_instant(config.calendar, first, time(0)),
         "end": local_instant(config.calendar, last + timedelta(days=1), time(0)), "as_of": as_of}).fetchdf()
    daily = _daily_downtime(con, config, first, last, as_of, uptime.environment_id.tolist())
    decided = cases.sla_state.isin(["met", "breached"])
    totals = {
        "cases": len(cases),
        **{state: int((cases.sla_state == state).sum()) for state in ("met", "breached", "at_risk", "pending",
                                                                       "no_sla")},
        "pct_met": round(100 * float((cases.sla_state == "met").sum()) / int(decided.sum()), 2)
                   if decided.any() else None,
        "credits": {currency: f"{amount:.2f}" for currency, amount in
                    credits.groupby("currency").refund_amount.sum().items()},
        "environments_missed": int((~uptime.target_met.fillna(True).astype(bool)).sum()),
    }
    name, tier = client[0][1], client[0][2]
    return Statement(client_id, name, tier, month, as_of.astimezone(zone), cases, uptime, daily, incidents,
                     credits, totals)


def _frozen_cases_sql(config: Config) -> str:
    """The cases of ``$client`` received in ``$month`` as closing ``$version`` froze them, as the case-sla
    export writes them, with their subjects."""
    tz = quote(config.calendar.timezone)
    return f"""SELECT f.case_id, f.client_id, iso_local(f.received_at, {tz}) AS received_at,
                      iso_local(f.first_response_due, {tz}) AS first_response_due,
                      iso_local(f.first_response_at, {tz}) AS first_response_at, f.sla_state, c.subject
               FROM closed_cases f JOIN cases c USING (case_id)
               WHERE f.month = $month AND f.version = $version AND f.client_id = $client
               ORDER BY f.received_at, f.case_id"""


def statement_at(store: Store, snap: Snapshot, client_id: str, month: str) -> Statement:
    """The statement as of a snapshot's instant, read from its tables (the Client page)."""
    with store.reader(snap) as cur:
        return statement(cur, store.config, client_id, month, snap.as_of)


def _daily_downtime(con, config: Config, first: date, last: date, as_of: datetime,
                    environment_ids: list[str]) -> pd.DataFrame:
    """Downtime minutes per environment and local day: the uptime query over days instead of months."""
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    calendar = config.calendar
    cur = connection.cursor(con)  # a cursor of its own: its calendar of days must not replace the months
    cur.register("calendar_months", pd.DataFrame({
        "month": [d.isoformat() for d in days],
        "month_start": pd.to_datetime([local_instant(calendar, d, time(0)) for d in days], utc=True),
        "month_end": pd.to_datetime([local_instant(calendar, d + timedelta(days=1), time(0)) for d in days],
                                    utc=True),
        "first_day": days, "last_day": days,
    }))
    try:
        return cur.execute(
            f"""SELECT environment_id, month AS day, downtime_minutes
                FROM ({env_uptime_sql(config, instant(as_of))}) WHERE list_contains($ids, environment_id)
                ORDER BY environment_id, day""",
            {"ids": environment_ids}).fetchdf()
    finally:
        cur.close()

