"""The support lead's queue: open cases, the next to breach first, with filters and age buckets.

"Next to breach": unanswered cases by business time left to their first-response deadline (negative
once breached, so the longest overdue comes first), then the answered ones still open, by deadline;
cases without a deadline in their own lane, oldest first.

Reads the snapshot's ``open_case_sla`` (the unresolved rows of ``case_sla``, see ``kb/store.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from kb.db.sqltext import instant, quote, where_in
from kb.engine.policies import target_in_words
from kb.intake import writes
from kb.reads.exports import spreadsheet_safe_sql
from kb.reads.paging import limit_offset
from kb.store import Snapshot, Store

AGE_BUCKETS = ("< 4 h", "4–24 h", "1–3 days", "3–7 days", "> 7 days")
PAGE_SIZE = 200
LANES = ("sla", "deprioritized")
# The order of both lanes: the deprioritized lane has no deadline, so it falls through to the oldest first.
LANE_ORDER = "business_hours_left IS NULL, business_hours_left, first_response_due, received_at, case_id"
LANE_SQL = "CASE WHEN sla_state = 'no_sla' THEN 'deprioritized' ELSE 'sla' END"


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


def _lane_sql(snap: Snapshot, flt: QueueFilter, lane: str, columns: str) -> tuple[str, list]:
    """The SELECT of ``columns`` for the open cases of ``lane`` that pass the filter, in the lane's order."""
    if lane not in LANES:
        raise ValueError(f"lane must be one of {LANES}")
    where, params = flt.where()
    return (f"SELECT {columns} FROM {_open_cases(snap)} WHERE {where} AND {LANE_SQL} = ? ORDER BY {LANE_ORDER}",
            [*params, lane])


def queue_page(store: Store, snap: Snapshot, flt: QueueFilter, *, lane: str, page: int = 0) -> pd.DataFrame:
    """Page ``page`` (from 0, ``PAGE_SIZE`` rows) of open cases. ``lane``: 'sla' (cases with a deadline, the
    least business time left first: see the module's docstring) or 'deprioritized' (oldest first)."""
    sql, params = _lane_sql(snap, flt, lane, """
        case_id, client_id, client_name, tier, category, subject, requester, assignee, received_at,
        age_hours, first_response_due, business_hours_left, first_response_at, sla_state, breach_reason""")
    return store.query(f"{sql} {limit_offset(page, PAGE_SIZE)}", params, snap)


def queue_csv(store: Store, snap: Snapshot, flt: QueueFilter, *, lane: str) -> bytes:
    """Every open case of ``lane`` that passes the filter, in the lane's order, as CSV for a spreadsheet:
    times in the support zone with their offset, text cells safe from formulas (rules §8)."""
    tz = quote(store.config.calendar.timezone)
    sql, params = _lane_sql(snap, flt, lane, f"""
        case_id, client_id, client_name, tier, category, subject, requester, assignee,
        iso_local(received_at, {tz}) AS received_at, CAST(round(age_hours, 2) AS DECIMAL(18, 2)) AS age_hours,
        iso_local(first_response_due, {tz}) AS first_response_due,
        CAST(round(business_hours_left, 2) AS DECIMAL(18, 2)) AS business_hours_left,
        iso_local(first_response_at, {tz}) AS first_response_at, sla_state, breach_reason""")
    with store.reader(snap) as cur:
        frame = cur.execute(spreadsheet_safe_sql(cur, sql, params), params).fetchdf()
    return frame.to_csv(index=False).encode()


@dataclass(frozen=True)
class Whereabouts:
    """Where an open case is in the queue: its lane, whether the filter lets it through, and the page of
    that lane (from 0) it is on when it does."""

    lane: str
    shown: bool
    page: int


def whereabouts(store: Store, snap: Snapshot, flt: QueueFilter, case_id: str) -> Whereabouts | None:
    """Where the open case ``case_id`` is in the queue; None when it is not open (resolved, voided, not
    received yet as of the snapshot, or no such case)."""
    where, params = flt.where()
    frame = store.query(
        f"""
        SELECT lane, shown, (row_number() OVER (PARTITION BY lane, shown ORDER BY {LANE_ORDER}) - 1) // {PAGE_SIZE}
                   AS page, case_id
        FROM (SELECT *, {LANE_SQL} AS lane, coalesce({where}, FALSE) AS shown FROM open_case_sla)
        QUALIFY case_id = ?
        """,
        [*params, case_id], snap)
    return None if frame.empty else Whereabouts(frame.lane[0], bool(frame.shown[0]), int(frame.page[0]))


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
    """The values each filter offers: those present among open cases. Clients are ids, in the order of
    their names; ``client_labels`` says how to show each."""
    frame = store.query(
        """SELECT coalesce(list(DISTINCT coalesce(assignee, '') ORDER BY coalesce(assignee, '')), []) AS assignees
           FROM open_case_sla WHERE resolved_at IS NULL""",
        snapshot=snap)
    return {"clients": list(client_labels(store, snap)), "assignees": list(frame.iloc[0]["assignees"])}


def client_labels(store: Store, snap: Snapshot) -> dict[str, str]:
    """Client id → how the client filter shows it: the name, with the id when another client with open
    cases has the same name; in the order of the labels."""
    frame = store.query(
        """SELECT client_id, CASE WHEN count(*) OVER (PARTITION BY lower(client_name)) > 1
                                  THEN client_name || ' (' || client_id || ')' ELSE client_name END AS label
           FROM (SELECT DISTINCT client_id, client_name FROM open_case_sla WHERE resolved_at IS NULL)
           ORDER BY lower(label), client_id""",
        snapshot=snap)
    return dict(zip(frame.client_id, frame.label, strict=True))


def case_detail(store: Store, snap: Snapshot, case_id: str) -> dict | None:
    """Every column of one stored case (resolved or not, voided or not), with its client's name; when it
    counts as of the snapshot, its SLA state and ``target`` (which one applies and why, in words); and while
    it waits on the client, its open pause (``paused_at``, ``pause_reason``, ``paused_by``; else empty). None
    when there is no such case."""
    frame = store.query(
        """SELECT c.*, cl.name AS client_name, cl.tier, s.sla_state, s.first_response_due, s.business_hours_left,
                  s.first_response_kind, s.first_response_amount, s.first_response_calendar,
                  s.first_response_by_contract, s.policy_id,
                  p.paused_at, p.reason AS pause_reason, p.paused_by
           FROM cases c JOIN clients cl USING (client_id) LEFT JOIN case_sla s USING (case_id)
                LEFT JOIN pauses p ON p.case_id = c.case_id AND p.resumed_at IS NULL
           WHERE c.case_id = ?
           ORDER BY p.paused_at DESC LIMIT 1""",
        [case_id], snap)
    if frame.empty:
        return None
    case = frame.iloc[0].to_dict()
    counted = isinstance(case["sla_state"], str)
    case["target"] = target_in_words(
        case["first_response_kind"], case["first_response_amount"], case["first_response_calendar"],
        case["first_response_by_contract"], case["tier"], case["client_name"], case["policy_id"],
        case["category"]) if counted else None
    return case


def case_origin(store: Store, case_id: str) -> str:
    """Where a case came from: 'mail: mailbox support, folder INBOX' (or 'mail: imported from <file>') for a case
    mail opened (``cases.source``), 'form' for one logged on a form (its ``add`` audit row), else 'import'."""
    frame = store.query(
        """SELECT c.source, m.mailbox, m.folder,
                  EXISTS (SELECT 1 FROM audit_log a WHERE a.action = 'add' AND a.table_name = 'cases'
                                                      AND a.row_id = c.case_id) AS by_form
           FROM cases c LEFT JOIN messages m ON m.message_key = c.message_id
           WHERE c.case_id = ?""",
        [case_id])
    if frame.empty:
        return ""
    row = frame.iloc[0]
    if row.source == "mail":
        if not isinstance(row.mailbox, str):
            return "mail"
        if row.mailbox == "import":
            return f"mail: imported from {row.folder}"
        return f"mail: mailbox {row.mailbox}, folder {row.folder}"
    if isinstance(row.source, str) and row.source:
        return row.source
    return "form" if bool(row.by_form) else "import"


def team(store: Store) -> list[str]:
    """Who a case may be assigned to (``kb.intake.writes.team``)."""
    with store.reader() as cur:
        return writes.team(cur, store.config)


def client_options(store: Store) -> dict[str, str]:
    """Every client id → 'name (id)', for moving a case to another client."""
    frame = store.query("SELECT client_id, name FROM clients ORDER BY lower(name), client_id")
    return {cid: f"{name} ({cid})" for cid, name in zip(frame.client_id, frame.name, strict=True)}

