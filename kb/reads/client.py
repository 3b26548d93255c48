"""Everything about one client, for the Client page: open cases and what is due next on each, % met of every
target by month, its environments' uptime, credits by month, contracts and the policy its cases are measured by
(its monthly statement: ``kb.statement``, and the one e-mailed, as sent)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd

from kb.db.schema import PRIORITIES
from kb.db.sqltext import quote
from kb.engine.periods import day_bounds, month_days
from kb.engine.policies import policy_ctes
from kb.engine.targets import TARGETS
from kb.engine.uptime import contract_target_sql
from kb.reads.met import every_target, met_shares
from kb.statement.mailing import SentStatement
from kb.statement.mailing import sent_statement as stored_statement
from kb.store import Snapshot, Store
from kb.timestamps import now_utc


def open_cases(store: Store, snap: Snapshot, client_id: str) -> pd.DataFrame:
    """The client's unresolved cases with the next thing due on each (``next_due_metric``, ``next_due``,
    ``next_due_state``: whichever target's clock runs out first; ``paused`` while it waits on the client with
    no other clock running, as the Queue and the Overview say it), the soonest first; a case with no clock
    running (answered, no resolution target) last."""
    return store.snapshot_query(
        """SELECT case_id, priority, subject, next_due_metric, next_due,
                  coalesce(next_due_state, CASE WHEN waiting_on_client THEN 'paused' END) AS next_due_state,
                  received_at, assignee
           FROM open_case_sla WHERE client_id = $client
           ORDER BY next_due NULLS LAST, received_at, case_id""",
        {"client": client_id}, snap)


def met_by_month(store: Store, snap: Snapshot, client_id: str, months: list[str]) -> pd.DataFrame:
    """Per target and local month of the deadline over ``months`` ('YYYY-MM', latest first, the latest
    holding T): ``metric``, ``month``, ``met``, ``breached``, ``decided`` and ``pct_met`` (``met_shares``)."""
    calendar = store.config.calendar
    start, end = day_bounds(calendar, date.fromisoformat(f"{months[-1]}-01"), month_days(calendar, snap.as_of)[1])
    shares = met_shares(store, snap, start, end, grain="month", clients=(client_id,))
    return shares.assign(month=[f"{period:%Y-%m}" for period in shares.period]).drop(columns="period")


def met_in_month(by_month: pd.DataFrame, month: str) -> pd.DataFrame:
    """One month of ``met_by_month``, a row for every target (0 of 0 where nothing was decided)."""
    return every_target(by_month[by_month.month == month])


def environments_this_month(store: Store, snap: Snapshot, client_id: str, month: str) -> pd.DataFrame:
    """Uptime and error budget this month of each environment the client runs on or has a contract for."""
    return store.snapshot_query(
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
    return store.snapshot_query(
        """SELECT month, currency, status, sum(refund_amount) AS refund_amount
           FROM contract_refunds WHERE client_id = $client AND month >= $since
           GROUP BY ALL ORDER BY month DESC, currency""",
        {"client": client_id, "since": since_month}, snap)


def contracts(store: Store, snap: Snapshot, client_id: str) -> pd.DataFrame:
    """The client's contracts, with the name of the environment each covers and its uptime target (the
    default in force today when it sets none)."""
    today = now_utc().astimezone(store.config.calendar.zone).date()
    return store.snapshot_query(
        f"""SELECT k.contract_id, e.name AS environment_name,
                  {contract_target_sql(store.config, f"DATE '{today.isoformat()}'")} AS uptime_target_pct,
                  k.response_business_days, k.policy_id,
                  k.monthly_fee, k.currency, k.credit_schedule, k.starts_on, k.ends_on
           FROM contracts k JOIN environments e USING (environment_id)
           WHERE k.client_id = $client ORDER BY k.starts_on, k.contract_id""",
        {"client": client_id}, snap)


@dataclass(frozen=True)
class Policy:
    """The policy a client's cases are measured by on a day, as the engine chooses it."""

    policy_id: str
    named: bool  # a contract in force names it; else it is the client's tier's
    stored: bool  # its rows were imported; a tier policy without any holds what [sla] says
    rows: pd.DataFrame  # metric, priority, kind, amount, calendar, valid_from (None: from the start), by_contract
    tier: str  # the client's, which the engine reads whatever the policy (a free case in general coding)


def policy(store: Store, snap: Snapshot, client_id: str, day: date) -> Policy:
    """The policy of the client's contract in force on local ``day``, else its tier's (``kb.engine.policies``),
    with its rows: per target in ``TARGETS`` order and priority (exact ones before ``*``), oldest first, and
    one row without a rule for a target it sets nothing for. A contract that names no policy but sets
    ``response_business_days`` replaces the N of the tier policy's business days (``by_contract``)."""
    calendars = ", ".join(f"({cal}, {quote(name)})" for cal, name in enumerate(store.config.calendar_names))
    targets = ", ".join(f"('{t.metric}', {rank}, {t.contract_days is not None})" for rank, t in enumerate(TARGETS))
    priorities = ", ".join(f"('{p}', {rank})" for rank, p in enumerate((*PRIORITIES, "*")))
    by_contract = "t.by_contract AND r.kind = 'days' AND c.contract_days IS NOT NULL"
    frame = store.snapshot_query(
        f"""WITH calendars AS (SELECT * FROM (VALUES {calendars}) c(cal, name)),
            {policy_ctes(store.config)},
            chosen AS (
                SELECT coalesce(k.policy_id, cl.tier) AS policy_id, k.policy_id IS NOT NULL AS named, cl.tier,
                       CASE WHEN k.policy_id IS NULL THEN k.days END AS contract_days
                FROM clients cl LEFT JOIN contract_terms k
                  ON k.client_id = cl.client_id AND $day BETWEEN k.starts_on AND k.ends_on
                WHERE cl.client_id = $client
            )
            SELECT c.policy_id, c.named, c.tier, c.policy_id IN (SELECT policy_id FROM policies) AS stored,
                   t.metric, r.priority, r.kind,
                   CASE WHEN {by_contract} THEN c.contract_days ELSE r.amount END AS amount,
                   coalesce({by_contract}, FALSE) AS by_contract, cal.name AS calendar,
                   nullif(r.valid_from, DATE '1970-01-01') AS valid_from  -- a row valid from the start
            FROM chosen c CROSS JOIN (VALUES {targets}) t(metric, rank, by_contract)
            LEFT JOIN policy_rows r ON r.policy_id = c.policy_id AND r.metric = t.metric
            LEFT JOIN calendars cal ON cal.cal = r.cal
            LEFT JOIN (VALUES {priorities}) p(priority, rank) ON p.priority = r.priority
            ORDER BY t.rank, p.rank, r.valid_from""",
        {"client": client_id, "day": day}, snap)
    first = frame.iloc[0]
    return Policy(first.policy_id, bool(first.named), bool(first.stored),
                  frame.drop(columns=["policy_id", "named", "stored", "tier"]), first.tier)


def months_back(as_of: datetime, zone, count: int) -> list[str]:
    """'YYYY-MM' of the month holding ``as_of`` and the ``count`` - 1 before it, latest first."""
    local = as_of.astimezone(zone)
    year, month, months = local.year, local.month, []
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


def months_of_client(store: Store, snap: Snapshot, client_id: str, months: list[str]) -> list[str]:
    """Of ``months`` ('YYYY-MM', latest first), those from the client's first on: the local month of its first
    case received, contract started or environment in service by T, whichever is earliest; only the latest (the
    month holding T) for a client with none of them yet."""
    first = store.snapshot_query(
        f"""SELECT least(
                (SELECT strftime(timezone({quote(store.config.calendar.timezone)}, min(received_at)), '%Y-%m')
                 FROM case_sla WHERE client_id = $client),
                (SELECT strftime(min(starts_on), '%Y-%m') FROM contracts
                 WHERE client_id = $client AND strftime(starts_on, '%Y-%m') <= $now),
                (SELECT strftime(min(active_from), '%Y-%m') FROM environments
                 WHERE client_id = $client AND strftime(active_from, '%Y-%m') <= $now)) AS first""",
        {"client": client_id, "now": months[0]}, snap).iloc[0, 0]
    return [month for month in months if month >= first] if isinstance(first, str) else months[:1]


def sent_statement(store: Store, client_id: str, month: str) -> SentStatement | None:
    """The client's statement for ``month`` as it was e-mailed; None when it was not sent."""
    with store.reader() as cur:
        return stored_statement(cur, client_id, month)
