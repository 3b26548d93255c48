"""Service credits: owed by month and client, the terms behind them, who is closest to the next tier, and where
each credit stands: computed while its month is open, final once the month is closed, then applied (rules §13)."""

from __future__ import annotations

import pandas as pd

from kb.db.sqltext import instant
from kb.engine.closings import closings_sql
from kb.store import Snapshot, Store


def refunds_by_month(store: Store, snap: Snapshot, since_month: str) -> pd.DataFrame:
    """Per month, client and currency: credits owed, final or projected."""
    return store.snapshot_query(
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
    return store.snapshot_query(
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
    return store.snapshot_query(
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


def credit_stages(store: Store, snap: Snapshot, since_month: str) -> pd.DataFrame:
    """Every contract-month with a credit since ``since_month``, latest first: its stage (``computed`` while the
    month is open at T, ``final`` once it is closed, ``applied`` once marked so) and the application's
    reference, date and author."""
    return store.snapshot_query(
        f"""
        WITH closed AS ({closings_sql(instant(snap.as_of))})
        SELECT r.month, r.contract_id, c.name AS client_name, e.name AS environment_name, r.refund_amount,
               r.currency,
               CASE WHEN a.contract_id IS NOT NULL THEN 'applied' WHEN k.month IS NOT NULL THEN 'final'
                    ELSE 'computed' END AS stage,
               a.reference, a.applied_at, a.applied_by
        FROM contract_refunds r JOIN clients c ON c.client_id = r.client_id
        JOIN environments e ON e.environment_id = r.environment_id
        LEFT JOIN closed k ON k.month = r.month
        LEFT JOIN credit_applications a ON a.contract_id = r.contract_id AND a.month = r.month
                                        AND a.applied_at <= $as_of AND k.month IS NOT NULL
        WHERE r.month >= $since AND r.refund_amount > 0
        ORDER BY r.month DESC, r.refund_amount DESC, client_name, r.contract_id
        """,
        {"as_of": snap.as_of, "since": since_month},
        snap,
    )


def closings(store: Store, snap: Snapshot) -> pd.DataFrame:
    """Every closing of a month, the latest month and version first, reopened or not."""
    return store.snapshot_query("""SELECT month, version, closed_at, closed_by, reopened_at, reopened_by,
                                          reopen_reason
                                   FROM month_closings ORDER BY month DESC, version DESC""", None, snap)


def closed_now(store: Store, snap: Snapshot) -> list[str]:
    """The months closed now (their latest closing not reopened), latest first."""
    return store.snapshot_query("SELECT month FROM month_closings WHERE reopened_at IS NULL ORDER BY month DESC",
                                None, snap).month.tolist()
