"""SLA health at a glance, for the Overview page: this month against last month.

Every function reads a ``Snapshot`` (see ``kb/store.py``) and aggregates in SQL; the months are
``kb.engine.periods.months_of``.
"""

from __future__ import annotations

import pandas as pd

from kb.engine.periods import Months, local_month, month_bounds
from kb.store import Snapshot, Store


def response_performance(store: Store, snap: Snapshot, months: Months) -> pd.DataFrame:
    """Per tier and month (this, last): met, breached and % met over cases due in the month."""
    month = local_month(store.config.calendar, "first_response_due")
    start, end = month_bounds(store.config.calendar, months)
    return store.query(
        f"""
        WITH decided AS (  -- the instant range first: cheap, and it spares the month text of every other case
            SELECT tier, {month} AS month, sla_state FROM case_sla
            WHERE sla_state IN ('met', 'breached') AND first_response_due >= $start AND first_response_due < $end
              AND {month} IN ($this, $last)
        )
        SELECT t.tier, m.month,
               count(d.sla_state) FILTER (WHERE d.sla_state = 'met') AS met,
               count(d.sla_state) FILTER (WHERE d.sla_state = 'breached') AS breached,
               100.0 * count(d.sla_state) FILTER (WHERE d.sla_state = 'met') / nullif(count(d.sla_state), 0) AS pct_met
        FROM (VALUES ('enterprise', 1), ('custom', 2), ('free', 3)) t(tier, rank)
        CROSS JOIN (VALUES ($this), ($last)) m(month)
        LEFT JOIN decided d ON d.tier = t.tier AND d.month = m.month
        GROUP BY t.tier, t.rank, m.month ORDER BY t.rank, m.month
        """,
        {"start": start, "end": end, "this": months.this, "last": months.last},
        snap,
    )


def open_case_counts(store: Store, snap: Snapshot) -> dict[str, int]:
    """Open (unresolved) cases now: unanswered ones by state, and all of them."""
    frame = store.query(
        """
        SELECT count(*) FILTER (WHERE sla_state = 'breached' AND first_response_at IS NULL) AS breached,
               count(*) FILTER (WHERE sla_state = 'at_risk') AS at_risk,
               count(*) FILTER (WHERE sla_state = 'pending') AS pending,
               count(*) AS open
        FROM case_sla WHERE resolved_at IS NULL
        """,
        snapshot=snap,
    )
    return {k: int(v) for k, v in frame.iloc[0].items()}


def environments_below_target(store: Store, snap: Snapshot, months: Months) -> pd.DataFrame:
    """Per month (this, last): dedicated environments measured, and those missing their target."""
    return store.query(
        """
        SELECT month, count(*) AS environments,
               count(*) FILTER (WHERE NOT target_met) AS below_target,
               min(budget_left_minutes) AS lowest_budget_left_minutes,
               arg_min(environment_id, budget_left_minutes) AS lowest_budget_environment
        FROM env_uptime WHERE kind = 'dedicated' AND month IN (?, ?)
        GROUP BY month
        """,
        [months.this, months.last],
        snap,
    )


def refund_exposure(store: Store, snap: Snapshot, months: Months) -> pd.DataFrame:
    """Refunds per month (this = projected, last = final) and currency."""
    return store.query(
        """
        SELECT month, currency, status, sum(refund_amount) AS refund_amount,
               count(*) FILTER (WHERE refund_amount > 0) AS contracts_credited
        FROM contract_refunds WHERE month IN (?, ?)
        GROUP BY month, currency, status ORDER BY currency, month
        """,
        [months.this, months.last],
        snap,
    )
