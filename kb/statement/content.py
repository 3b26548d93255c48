"""What a client's statement for a month holds, read from the as-of views.

Every target of ``TARGETS`` is reported as the other pages report it: the targets whose deadline falls in the
month, each with its state, and the share met from ``kb.reads.met`` (first responses and resolutions count
cases, follow-ups the client's questions). They are read from the views the ``case-sla`` and ``responses``
exports read, so a line of the statement is a row of those exports. Uptime and credits are the ``uptime``
and ``refunds`` reports for that client and month, read through the same SQL
(``kb.reads.exports.report_sql``): every environment the client runs on or has a contract for, and its
contracts' credits. The daily downtime chart reuses the uptime query with days in place of months, so a
day's downtime is the union of its outages exactly as a month's is.

A month closed as of T (rules §13) reads as it was closed: the statement is as of the closing, and its cases
received, targets, uptime and credits are the rows the closing kept (``kb.intake.closing``), so neither a
rule edited later nor a client's tier changed moves it; writes into the month are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pandas as pd

from kb.config import Config
from kb.db import connection
from kb.db.sqltext import instant, quote
from kb.engine.asof import open_views
from kb.engine.calendar import local_instant
from kb.engine.closings import closings_sql, dated_as_of_sql
from kb.engine.targets import DECIDED, STATES, TARGETS, Target, dated_sql
from kb.engine.uptime import env_uptime_sql
from kb.reads.exports import report_sql
from kb.reads.met import every_target, met_shares_on
from kb.store import Snapshot, Store


@dataclass(frozen=True)
class Statement:
    client_id: str
    client_name: str
    tier: str
    month: str  # 'YYYY-MM'
    as_of: datetime  # the closing's instant for a closed month
    targets: dict[str, pd.DataFrame]  # per metric, its targets due in the month (``due_targets``)
    met: pd.DataFrame  # per metric, met, breached, decided and pct_met over the month (``kb.reads.met``)
    uptime: pd.DataFrame  # the uptime export's rows, plus the environment's name
    daily: pd.DataFrame  # environment_id, day, downtime_minutes
    incidents: pd.DataFrame  # the month's incidents on those environments, maintenance included
    credits: pd.DataFrame  # the refunds export's rows, plus the environment's name and the contract terms
    totals: dict  # cases received, environments below target, credits by currency


# The states of a target that has a deadline, so a month it is due in (every state but no_sla).
DUE_STATES = tuple(state for state in STATES if state != "no_sla")


class UnknownClient(LookupError):
    """No client with that id."""


def month_days(month: str) -> tuple[date, date]:
    """The first and last local date of 'YYYY-MM'; ValueError for anything else."""
    first = datetime.strptime(month, "%Y-%m").date()
    following = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return first, following - timedelta(days=1)


def statement(con, config: Config, client_id: str, month: str, as_of: datetime) -> Statement:
    """The statement of ``client_id`` for ``month`` as of ``as_of``; ``con`` has the as-of views open at it. A
    month closed at ``as_of`` is stated as of its closing, on views opened at that instant."""
    closing = con.execute(f"""SELECT k.closed_at, k.version, m.targets_kept FROM ({closings_sql(instant(as_of))}) k
                              JOIN month_closings m USING (month, version) WHERE k.month = ?""", [month]).fetchall()
    if closing and closing[0][0] != as_of:
        cur = connection.cursor(con)
        try:
            open_views(cur, config, closing[0][0])
            return statement(cur, config, client_id, month, closing[0][0])
        finally:
            cur.close()
    first, last = month_days(month)
    client = con.execute("SELECT client_id, name, tier FROM clients WHERE client_id = ?", [client_id]).fetchall()
    if closing:  # named as its closing found it (a client added since, or a closing older than that: as now)
        client = con.execute("SELECT client_id, name, tier FROM closed_clients WHERE month = ? AND version = ? "
                             "AND client_id = ?", [month, closing[0][1], client_id]).fetchall() or client
    if not client:
        raise UnknownClient(f"no client {client_id!r}")
    params = {"client": client_id, "month": month}
    environments = """(SELECT environment_id FROM environments WHERE client_id = $client
                       UNION SELECT environment_id FROM contracts WHERE client_id = $client)"""
    start, end = (local_instant(config.calendar, day, time(0)) for day in (first, last + timedelta(days=1)))
    if closing and closing[0][2]:  # its cases and targets as the closing kept them
        kept = f"month = {quote(month)} AND version = {int(closing[0][1])}"
        received = con.execute(f"SELECT count(*) FROM closed_cases WHERE {kept} AND client_id = ?",
                               [client_id]).fetchall()[0][0]
        dated = f"SELECT * EXCLUDE (month, version) FROM closed_targets WHERE {kept}"
    else:
        received = con.execute("SELECT count(*) FROM case_sla WHERE client_id = ? AND received_at >= ? "
                               "AND received_at < ?", [client_id, start, end]).fetchall()[0][0]
        dated = dated_as_of_sql(con, config, as_of) or dated_sql()  # (a target a closing kept is listed there)
    targets = {target.metric: due_targets(con, dated, target, client_id, start, end) for target in TARGETS}
    met = every_target(met_shares_on(con, config, start, end, clients=(client_id,),
                                     decided=f"SELECT * FROM ({dated}) WHERE state IN {DECIDED}"))
    uptime = con.execute(
        f"""SELECT r.*, e.name AS environment_name FROM ({report_sql('uptime', config)}) r
            JOIN environments e USING (environment_id)
            WHERE r.environment_id IN {environments} AND r.month = $month ORDER BY r.environment_id""",
        params).fetchdf()
    credits = con.execute(
        f"""SELECT r.*, e.name AS environment_name, k.monthly_fee,
                   cr.credit_schedule, cr.uptime_target_pct
            FROM ({report_sql('refunds', config)}) r JOIN contracts k USING (contract_id)
            JOIN contract_refunds cr ON cr.contract_id = r.contract_id AND cr.month = r.month
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
        {"client": client_id, "start": start, "end": end, "as_of": as_of}).fetchdf()
    daily = _daily_downtime(con, config, first, last, as_of, uptime.environment_id.tolist())
    totals = {
        "cases": received,
        "credits": {currency: f"{amount:.2f}" for currency, amount in
                    credits.groupby("currency").refund_amount.sum().items()},
        "environments_missed": int((~uptime.target_met.fillna(True).astype(bool)).sum()),
    }
    name, tier = client[0][1], client[0][2]
    return Statement(client_id, name, tier, month, as_of.astimezone(zone), targets, met, uptime, daily, incidents,
                     credits, totals)


def due_targets(con, dated: str, target: Target, client_id: str, start: datetime, end: datetime) -> pd.DataFrame:
    """The client's ``target`` clocks (cases, or questions for a per-question target) due in [``start``,
    ``end``) among the rows of ``dated`` (``kb.engine.targets.dated_sql``, or those a closing kept):
    ``case_id``, ``subject``, ``started_at``, ``due``, ``stopped_at`` (null: not yet) and ``state``, by
    deadline."""
    return con.execute(
        f"""SELECT case_id, subject, started_at, due, stopped_at, state
            FROM ({dated}) WHERE metric = ? AND client_id = ? AND due >= ? AND due < ?
            ORDER BY due, started_at, case_id""",
        [target.metric, client_id, start, end]).fetchdf()


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

