"""Response performance over time: % met by tier per week or month, breaches, time to respond.

Cases count in the period their deadline falls in (SPEC 4); pending and at-risk
cases are not decided yet and count nowhere.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from kb.service import Snapshot, Store
from kb.sqltext import quote

GRAINS = ("week", "month")


def _decided(store: Store, grain: str) -> str:
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {GRAINS}")
    tz = quote(store.config.calendar.timezone)
    return f"""
        (SELECT *, CAST(date_trunc('{grain}', timezone({tz}, first_response_due)) AS DATE) AS period,
                CAST(timezone({tz}, first_response_due) AS DATE) AS due_day
         FROM case_sla WHERE sla_state IN ('met', 'breached'))
    """


def performance_by_period(store: Store, snap: Snapshot, grain: str, start: date, end: date) -> pd.DataFrame:
    """Per period and tier: met, breached, % met, median business hours to first response."""
    return store.query(
        f"""
        SELECT period, tier,
               count(*) FILTER (WHERE sla_state = 'met') AS met,
               count(*) FILTER (WHERE sla_state = 'breached') AS breached,
               100.0 * count(*) FILTER (WHERE sla_state = 'met') / count(*) AS pct_met,
               median(business_hours_to_response) AS median_business_hours
        FROM {_decided(store, grain)}
        WHERE due_day BETWEEN ? AND ?
        GROUP BY period, tier ORDER BY period, tier
        """,
        [start, end],
        snap,
    )


def breached_cases(store: Store, snap: Snapshot, grain: str, start: date, end: date,
                   tiers: tuple[str, ...] = (), limit: int = 1000) -> pd.DataFrame:
    """The breached cases behind the chart, latest deadline first."""
    tier_condition = f"AND tier IN ({', '.join('?' for _ in tiers)})" if tiers else ""
    return store.query(
        f"""
        SELECT period, case_id, client_name, tier, category, subject, assignee, received_at, first_response_due,
               first_response_at, business_hours_to_response
        FROM {_decided(store, grain)}
        WHERE sla_state = 'breached' AND due_day BETWEEN ? AND ? {tier_condition}
        ORDER BY first_response_due DESC LIMIT {int(limit)}
        """,
        [start, end, *tiers],
        snap,
    )
