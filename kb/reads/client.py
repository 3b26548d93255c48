"""Everything about one client, for the Client page: open cases, % met by month, its environments' uptime,
credits by month and contracts (its monthly statement: ``kb.statement``, and the one e-mailed, as sent)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from kb.engine.periods import local_month
from kb.engine.uptime import contract_target_sql
from kb.statement.mailing import SentStatement
from kb.statement.mailing import sent_statement as stored_statement
from kb.store import Snapshot, Store


def clients(store: Store) -> pd.DataFrame:
    """Every client's id and name, by name."""
    return store.query("SELECT client_id, name, tier FROM clients ORDER BY name, client_id")


def open_cases(store: Store, snap: Snapshot, client_id: str) -> pd.DataFrame:
    """The client's unresolved cases, the next deadline first."""
    return store.query(
        """SELECT case_id, subject, sla_state, business_hours_left, first_response_due, received_at, assignee
           FROM open_case_sla WHERE client_id = $client
           ORDER BY first_response_due NULLS LAST, received_at""",
        {"client": client_id}, snap)


def pct_met_by_month(store: Store, snap: Snapshot, client_id: str, since_month: str) -> pd.DataFrame:
    """Per local month of the deadline since ``since_month``: met, breached and % met (rules §4)."""
    month = local_month(store.config.calendar, "first_response_due")
    return store.query(
        f"""SELECT {month} AS month, count(*) FILTER (WHERE sla_state = 'met') AS met,
                   count(*) FILTER (WHERE sla_state = 'breached') AS breached,
                   100.0 * count(*) FILTER (WHERE sla_state = 'met') / count(*) AS pct_met
            FROM case_sla WHERE client_id = $client AND sla_state IN ('met', 'breached') AND {month} >= $since
            GROUP BY ALL ORDER BY month""",
        {"client": client_id, "since": since_month}, snap)


def environments_this_month(store: Store, snap: Snapshot, client_id: str, month: str) -> pd.DataFrame:
    """Uptime and error budget this month of each environment the client runs on or has a contract for."""
    return store.query(
        """SELECT environment_id, environment_name, kind, uptime_pct, target_pct, downtime_minutes,
                  budget_minutes, budget_left_minutes, target_met, status
           FROM env_uptime
           WHERE month = $month AND environment_id IN (
               SELECT environment_id FROM environments WHERE client_id = $client
               UNION SELECT environment_id FROM contracts WHERE client_id = $client)
           ORDER BY environment_id""",
        {"client": client_id, "month": month}, snap)


def credits_by_month(store: Store, snap: Snapshot, client_id: str, since_month: str) -> pd.DataFrame:
    """Credits owed per month and currency, final or projected."""
    return store.query(
        """SELECT month, currency, status, sum(refund_amount) AS refund_amount
           FROM contract_refunds WHERE client_id = $client AND month >= $since
           GROUP BY ALL ORDER BY month DESC, currency""",
        {"client": client_id, "since": since_month}, snap)


def contracts(store: Store, client_id: str) -> pd.DataFrame:
    """The client's contracts, with the name of the environment each covers and its uptime target (the
    default when it sets none)."""
    return store.query(
        f"""SELECT k.contract_id, e.name AS environment_name,
                  {contract_target_sql(store.config)} AS uptime_target_pct, k.response_business_days,
                  k.monthly_fee, k.currency, k.credit_schedule, k.starts_on, k.ends_on
           FROM contracts k JOIN environments e USING (environment_id)
           WHERE k.client_id = $client ORDER BY k.starts_on, k.contract_id""",
        {"client": client_id})


def months_back(as_of: datetime, zone, count: int) -> list[str]:
    """'YYYY-MM' of the month holding ``as_of`` and the ``count`` - 1 before it, latest first."""
    local = as_of.astimezone(zone)
    year, month, months = local.year, local.month, []
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


def sent_statement(store: Store, client_id: str, month: str) -> SentStatement | None:
    """The client's statement for ``month`` as it was e-mailed; None when it was not sent."""
    with store.reader() as cur:
        return stored_statement(cur, client_id, month)
