"""Service credits: owed by month and client, the terms behind them, and who is closest to the next tier."""

from __future__ import annotations

import pandas as pd

from kb.store import Snapshot, Store


def refunds_by_month(store: Store, snap: Snapshot, since_month: str) -> pd.DataFrame:
    """Per month, client and currency: credits owed, final or projected."""
    return store.query(
        """
        SELECT r.month, r.client_id, c.name AS client_name, r.currency, r.status,
               sum(r.refund_amount) AS refund_amount
        FROM contract_refunds r JOIN clients c USING (client_id)
        WHERE r.month >= ?
        GROUP BY ALL HAVING sum(r.refund_amount) > 0
        ORDER BY r.month, c.name
        """,
        [since_month],
        snap,
    )


def refund_lines(store: Store, snap: Snapshot, since_month: str) -> pd.DataFrame:
    """Every contract-month with a credit, and the contract terms that produced it."""
    return store.query(
        """
        SELECT r.month, r.contract_id, c.name AS client_name, r.environment_id, e.name AS environment_name,
               r.uptime_pct, r.downtime_minutes, r.credit_pct, r.refund_amount, r.currency, r.status, r.monthly_fee,
               r.credit_schedule, r.uptime_target_pct
        FROM contract_refunds r JOIN clients c ON c.client_id = r.client_id
        JOIN environments e ON e.environment_id = r.environment_id
        WHERE r.month >= ? AND r.refund_amount > 0
        ORDER BY r.month DESC, r.refund_amount DESC
        """,
        [since_month],
        snap,
    )


def closest_to_next_tier(store: Store, snap: Snapshot, month: str, limit: int = 10) -> pd.DataFrame:
    """This month's contracts ranked by the downtime still to go before the next credit tier."""
    return store.query(
        """
        SELECT r.contract_id, c.name AS client_name, r.environment_id, e.name AS environment_name, r.uptime_pct,
               r.downtime_minutes, r.credit_pct, r.next_credit_pct, r.minutes_to_next_tier,
               r.monthly_fee * (r.next_credit_pct - r.credit_pct) / 100 AS extra_refund, r.currency
        FROM contract_refunds r JOIN clients c ON c.client_id = r.client_id
        JOIN environments e ON e.environment_id = r.environment_id
        WHERE r.month = ? AND r.minutes_to_next_tier IS NOT NULL
        ORDER BY r.minutes_to_next_tier LIMIT ?
        """,
        [month, limit],
        snap,
    )
