"""SLA health at a glance, for the Overview page: this month against last month.

Every function reads a ``Snapshot`` (see ``kb/store.py``) and aggregates in SQL; the months are
``kb.engine.periods.months_of``. The shares of targets met are ``kb.reads.met``'s, as on every page.
"""

from __future__ import annotations

import pandas as pd

from kb.db.schema import PRIORITIES, TIERS
from kb.db.sqltext import instant
from kb.engine.closings import closings_sql
from kb.engine.periods import Months, month_bounds
from kb.engine.targets import FIRST_RESPONSE, STATES, TARGETS
from kb.reads import met
from kb.reads.met import met_shares
from kb.store import Snapshot, Store

GROUP_VALUES = {"tier": TIERS, "priority": PRIORITIES}
# What the next thing due on an open case can be: every state but met and no deadline.
DUE_STATES = tuple(state for state in STATES if state not in ("met", "no_sla"))


def met_by_month(store: Store, snap: Snapshot, months: Months,
                 groupings: tuple[tuple[str, ...], ...] = ((),)) -> list[pd.DataFrame]:
    """For each of ``groupings`` (each a tuple of ``tier`` and ``priority``, every value of them listed): per
    metric (in ``TARGETS`` order), per value of each of its groups and month (this and last, 'YYYY-MM'), the
    targets due in the month that were met, breached and decided, and % met (NaN where none was decided),
    as ``kb.reads.met.met_shares`` counts them. One query by tier and priority, summed for each grouping;
    remembered by the snapshot."""
    return snap.remembered(("met_by_month", months, groupings), lambda: _met_by_month(store, snap, months, groupings),
                           reads=met.READS)


def _met_by_month(store: Store, snap: Snapshot, months: Months,
                  groupings: tuple[tuple[str, ...], ...]) -> list[pd.DataFrame]:
    finest = tuple(group for group in GROUP_VALUES if any(group in by for by in groupings))
    shares = met_shares(store, snap, *month_bounds(store.config.calendar, months), by=finest, grain="month")
    shares = shares.assign(month=pd.to_datetime(shares.period).dt.strftime("%Y-%m")).drop(columns="period")
    counts = ["met", "breached", "decided"]
    frames = []
    for by in groupings:
        every = pd.MultiIndex.from_product(
            [[t.metric for t in TARGETS], *(GROUP_VALUES[group] for group in by), [months.last, months.this]],
            names=["metric", *by, "month"])
        summed = shares.groupby(every.names)[counts].sum().reindex(every).fillna(0).astype(int)
        decided = summed.decided.where(summed.decided > 0)
        frames.append(summed.assign(pct_met=100.0 * summed.met / decided).reset_index())
    return frames


def response_performance(store: Store, snap: Snapshot, months: Months) -> pd.DataFrame:
    """Per tier and month (this, last): the first responses due that were met, breached and decided, and % met
    (what ``/metrics`` reports)."""
    (shares,) = met_by_month(store, snap, months, (("tier",),))
    return shares[shares.metric == FIRST_RESPONSE.metric].drop(columns="metric").reset_index(drop=True)


def open_case_counts(store: Store, snap: Snapshot) -> dict[str, int]:
    """Open (unresolved) cases now by the state of the next thing due on them (``DUE_STATES``: a first
    response, a follow-up or the resolution; ``paused`` when it waits on the client with nothing else running),
    those with nothing due (``nothing_due``: answered with no resolution target, or without any deadline), and
    all of them (``open``)."""
    counts = ", ".join(f"count(*) FILTER (WHERE state = '{state}') AS {state}" for state in DUE_STATES)
    frame = store.snapshot_query(
        f"""
        SELECT {counts}, count(*) FILTER (WHERE state IS NULL) AS nothing_due, count(*) AS open
        FROM (SELECT coalesce(next_due_state, CASE WHEN waiting_on_client THEN 'paused' END) AS state
              FROM open_case_sla)
        """,
        [], snap,
    )
    return {k: int(v) for k, v in frame.iloc[0].items()}


def environments_below_target(store: Store, snap: Snapshot, months: Months) -> pd.DataFrame:
    """Per month (this, last): environments that carry an uptime target (every dedicated one, and a shared
    one under a custom-programme contract), those missing it (with their names), and the lowest budget left."""
    return store.snapshot_query(
        """
        SELECT month, count(*) AS environments,
               count(*) FILTER (WHERE NOT target_met) AS below_target,
               coalesce(list(environment_name ORDER BY environment_name) FILTER (WHERE NOT target_met), [])
                   AS below_target_names,
               min(budget_left_minutes) AS lowest_budget_left_minutes,
               arg_min(environment_id, (budget_left_minutes, environment_id)) AS lowest_budget_environment,
               arg_min(environment_name, (budget_left_minutes, environment_id)) AS lowest_budget_environment_name
        FROM env_uptime WHERE target_pct IS NOT NULL AND month IN (?, ?)
        GROUP BY month
        """,
        [months.this, months.last],
        snap,
    )


def uptime_this_month(store: Store, snap: Snapshot, month: str) -> pd.DataFrame:
    """Every environment that carries an uptime target, this month so far: its name, client, uptime against
    its target and budget left; those below target first, then the lowest uptime."""
    return store.snapshot_query(
        """
        SELECT u.environment_name, k.name AS client_name, u.kind, u.uptime_pct, u.target_pct, u.target_met,
               u.budget_left_minutes, u.environment_id
        FROM env_uptime u
        JOIN environments e USING (environment_id) LEFT JOIN clients k ON k.client_id = e.client_id
        WHERE u.target_pct IS NOT NULL AND u.month = ?
        ORDER BY u.target_met, u.uptime_pct, u.environment_name, u.environment_id
        """,
        [month],
        snap,
    )


def ongoing_incidents(store: Store, snap: Snapshot) -> pd.DataFrame:
    """Incidents under way at T (started, not ended by then), the oldest first, with their environment's name."""
    return store.snapshot_query(
        """
        SELECT e.name AS environment_name, i.impact, i.started_at, coalesce(i.summary, '') AS summary,
               i.incident_id, i.environment_id
        FROM incidents i JOIN environments e USING (environment_id)
        WHERE i.started_at <= $as_of AND (i.ended_at IS NULL OR i.ended_at > $as_of) AND i.voided_at IS NULL
        ORDER BY i.started_at, i.incident_id
        """,
        {"as_of": snap.as_of},
        snap,
    )


def credits_owed(store: Store, snap: Snapshot, months: Months) -> pd.DataFrame:
    """The clients owed service credits, by name, per month and currency with the environments they are owed
    for and the credit's ``stage``: ``final`` for a month closed at T (rules §13) not marked applied yet,
    ``computed`` for last month while it is not closed, ``projected`` for this month; the latest month first,
    largest first within it."""
    return store.snapshot_query(
        f"""
        SELECT r.month, CASE WHEN k.month IS NOT NULL THEN 'final' WHEN r.status = 'projected' THEN 'projected'
                             ELSE 'computed' END AS stage,
               c.name AS client_name, r.client_id, r.currency, sum(r.refund_amount) AS refund_amount,
               string_agg(DISTINCT e.name, ', ' ORDER BY e.name) AS environments
        FROM contract_refunds r
        LEFT JOIN ({closings_sql(instant(snap.as_of))}) k USING (month)
        JOIN clients c ON c.client_id = r.client_id
        JOIN environments e ON e.environment_id = r.environment_id
        WHERE r.refund_amount > 0 AND CASE
            WHEN k.month IS NOT NULL THEN NOT EXISTS (
                SELECT 1 FROM credit_applications a
                WHERE a.contract_id = r.contract_id AND a.month = r.month AND a.applied_at <= $as_of)
            ELSE r.month IN ($last, $this) END
        GROUP BY ALL
        ORDER BY r.month DESC, refund_amount DESC, client_name, r.currency
        """,
        {"as_of": snap.as_of, "last": months.last, "this": months.this},
        snap,
    )


def refund_exposure(store: Store, snap: Snapshot, months: Months) -> pd.DataFrame:
    """Refunds per month (this = projected, last = final) and currency."""
    return store.snapshot_query(
        """
        SELECT month, currency, status, sum(refund_amount) AS refund_amount,
               count(*) FILTER (WHERE refund_amount > 0) AS contracts_credited,
               count(DISTINCT client_id) FILTER (WHERE refund_amount > 0) AS clients_credited
        FROM contract_refunds WHERE month IN (?, ?)
        GROUP BY month, currency, status ORDER BY month, currency
        """,
        [months.this, months.last],
        snap,
    )
