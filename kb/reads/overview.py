"""SLA health at a glance, for the Overview page: this month against last month.

Every function reads a ``Snapshot`` (see ``kb/store.py``) and aggregates in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from kb.db.sqltext import quote
from kb.store import Snapshot, Store


@dataclass(frozen=True)
class Months:
    """The month holding T, the one before, and the same month a year before (where twelve-month
    views start), as 'YYYY-MM' in the support zone."""

    this: str
    last: str
    year_ago: str


def months_of(store: Store, snap: Snapshot) -> Months:
    local = snap.as_of.astimezone(store.config.calendar.zone)
    last_year, last_month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return Months(f"{local.year:04d}-{local.month:02d}", f"{last_year:04d}-{last_month:02d}",
                  f"{local.year - 1:04d}-{local.month:02d}")


def local_month(store: Store, column: str) -> str:
    """SQL for the support-zone month ('YYYY-MM') of a TIMESTAMPTZ column."""
    return f"strftime(timezone({quote(store.config.calendar.timezone)}, {column}), '%Y-%m')"


def month_bounds(store: Store, months: Months) -> tuple[datetime, datetime]:
    """The first instant of last month and the first instant after this month, in the support zone."""
    zone = store.config.calendar.zone
    year, month = (int(part) for part in months.last.split("-"))
    start = datetime(year, month, 1, tzinfo=zone)
    year, month = (int(part) for part in months.this.split("-"))
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def response_performance(store: Store, snap: Snapshot, months: Months) -> pd.DataFrame:
    """Per tier and month (this, last): met, breached and % met over cases due in the month."""
    month = local_month(store, "first_response_due")
    start, end = month_bounds(store, months)
    return store.query(
        f"""
        WITH decided AS (  -- the instant range first: cheap, and it spares the month text of every other case
            SELECT tier, {month} AS month, sla_state FROM case_sla
            WHERE sla_state IN ('met', 'breached') AND first_response_due >= ? AND first_response_due < ?
              AND {month} IN (?, ?)
        )
        SELECT t.tier, m.month,
               count(d.sla_state) FILTER (WHERE d.sla_state = 'met') AS met,
               count(d.sla_state) FILTER (WHERE d.sla_state = 'breached') AS breached,
               100.0 * count(d.sla_state) FILTER (WHERE d.sla_state = 'met') / nullif(count(d.sla_state), 0) AS pct_met
        FROM (VALUES ('enterprise', 1), ('custom', 2), ('free', 3)) t(tier, rank)
        CROSS JOIN (VALUES (?), (?)) m(month)
        LEFT JOIN decided d ON d.tier = t.tier AND d.month = m.month
        GROUP BY t.tier, t.rank, m.month ORDER BY t.rank, m.month
        """,
        [start, end, months.this, months.last, months.this, months.last],
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
