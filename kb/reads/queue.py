"""The support lead's queue: open cases, oldest first, with filters and age buckets.

Reads the snapshot's ``open_case_sla`` (the unresolved rows of ``case_sla``, see ``kb/store.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from kb.db.sqltext import instant, where_in
from kb.reads.paging import limit_offset
from kb.store import Snapshot, Store

AGE_BUCKETS = ("< 4 h", "4–24 h", "1–3 days", "3–7 days", "> 7 days")
PAGE_SIZE = 200


@dataclass(frozen=True)
class QueueFilter:
    tiers: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    clients: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    assignees: tuple[str, ...] = ()  # "" stands for unassigned

    def where(self) -> tuple[str, list]:
        """SQL conditions for the open cases that pass, and their parameters."""
        chosen, params = where_in({"tier": self.tiers, "sla_state": self.states, "client_id": self.clients,
                                   "category": self.categories, "coalesce(assignee, '')": self.assignees})
        return f"resolved_at IS NULL AND {chosen}", params


AGE_BUCKET_SQL = """
    CASE WHEN age_hours < 4 THEN '< 4 h' WHEN age_hours < 24 THEN '4–24 h'
         WHEN age_hours < 72 THEN '1–3 days' WHEN age_hours < 168 THEN '3–7 days' ELSE '> 7 days' END
"""


def _open_cases(snap: Snapshot) -> str:
    return f"""
        (SELECT *, (epoch({instant(snap.as_of)}) - epoch(received_at)) / 3600 AS age_hours FROM open_case_sla)
    """


def queue_page(store: Store, snap: Snapshot, flt: QueueFilter, *, lane: str, page: int = 0) -> pd.DataFrame:
    """Page ``page`` (from 0, ``PAGE_SIZE`` rows) of open cases, oldest first. ``lane``: 'sla' (cases with a
    deadline) or 'deprioritized'."""
    where, params = flt.where()
    lane_condition = "sla_state <> 'no_sla'" if lane == "sla" else "sla_state = 'no_sla'"
    return store.query(
        f"""
        SELECT case_id, client_name, tier, category, subject, assignee, received_at, age_hours,
               first_response_due, business_hours_left, first_response_at, sla_state
        FROM {_open_cases(snap)}
        WHERE {where} AND {lane_condition}
        ORDER BY received_at, case_id
        {limit_offset(page, PAGE_SIZE)}
        """,
        params,
        snap,
    )


def queue_counts(store: Store, snap: Snapshot, flt: QueueFilter) -> dict[str, int]:
    """Open cases passing the filter, per lane."""
    where, params = flt.where()
    frame = store.query(
        f"""SELECT count(*) FILTER (WHERE sla_state <> 'no_sla') AS sla,
                   count(*) FILTER (WHERE sla_state = 'no_sla') AS deprioritized
            FROM open_case_sla WHERE {where}""",
        params, snap)
    return {k: int(v) for k, v in frame.iloc[0].items()}


def age_buckets(store: Store, snap: Snapshot, flt: QueueFilter) -> pd.DataFrame:
    """Open cases per age bucket and tier, for the stacked chart."""
    where, params = flt.where()
    return store.query(
        f"""
        SELECT {AGE_BUCKET_SQL} AS age_bucket, tier, count(*) AS cases
        FROM {_open_cases(snap)} WHERE {where}
        GROUP BY ALL ORDER BY age_bucket, tier
        """,
        params,
        snap,
    )


def filter_choices(store: Store, snap: Snapshot) -> dict[str, list[str]]:
    """The values each filter offers: those present among open cases."""
    frame = store.query(
        """SELECT coalesce(list(DISTINCT client_id ORDER BY client_id), []) AS clients,
                  coalesce(list(DISTINCT coalesce(assignee, '') ORDER BY coalesce(assignee, '')), []) AS assignees
           FROM open_case_sla WHERE resolved_at IS NULL""",
        snapshot=snap)
    return {name: list(frame.iloc[0][name]) for name in ("clients", "assignees")}
