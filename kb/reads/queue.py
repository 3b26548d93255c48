"""The support lead's queue: open cases, the next thing due first, with filters and age buckets.

"Next due": of every target still running on a case (first response, the earliest unanswered follow-up
question, resolution), the one with the earliest deadline (``case_sla.next_due``; an overdue one is earlier
than any still to come). Cases are ordered by it, then by priority (urgent first); cases with nothing running
(answered and waiting on the client, say) after them. Cases without any target are in their own lane,
oldest first.

The ``state`` the queue shows and filters on is that of the next thing due; with nothing running, "paused"
while the case waits on the client, else the most urgent state (``STATES``' order) of its targets, so an
answered case still reads met or breached.

Reads the snapshot's ``open_case_sla`` (the unresolved rows of ``case_sla``, see ``kb/store.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from kb.db.schema import PRIORITIES
from kb.db.sqltext import instant, quote, where_in
from kb.engine.policies import target_in_words
from kb.engine.targets import STATES, TARGETS
from kb.intake import writes
from kb.reads.exports import spreadsheet_safe_sql
from kb.reads.paging import limit_offset
from kb.store import Snapshot, Store

AGE_BUCKETS = ("< 4 h", "4–24 h", "1–3 days", "3–7 days", "> 7 days")
PAGE_SIZE = 200
LANES = ("sla", "deprioritized")
PRIORITY_RANK_SQL = f"list_position([{', '.join(quote(p) for p in PRIORITIES)}], priority)"
# The order of both lanes: the deprioritized lane has nothing due, so it falls through to the oldest first.
LANE_ORDER = f"next_due IS NULL, next_due, {PRIORITY_RANK_SQL}, received_at, case_id"
_TARGET_STATES = ", ".join(t.col("state") for t in TARGETS)  # next_response_state: the latest question's
_MOST_URGENT_STATE_SQL = "CASE " + " ".join(f"WHEN '{s}' IN ({_TARGET_STATES}) THEN '{s}'" for s in STATES) + " END"
STATE_SQL = (f"coalesce(next_due_state, CASE WHEN waiting_on_client THEN 'paused' END, "
             f"{_MOST_URGENT_STATE_SQL})")
# A case without a target of any kind (free-tier general coding, or a priority its policy sets nothing for).
LANE_SQL = ("CASE WHEN " + " AND ".join(f"coalesce({t.col('state')}, 'no_sla') = 'no_sla'" for t in TARGETS)
            + " THEN 'deprioritized' ELSE 'sla' END")


@dataclass(frozen=True)
class QueueFilter:
    tiers: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    states: tuple[str, ...] = ()  # of STATES: the state the queue shows (see the module's docstring)
    clients: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    assignees: tuple[str, ...] = ()  # "" stands for unassigned

    def where(self) -> tuple[str, list]:
        """SQL conditions for the open cases (of ``_open_cases``) that pass, and their parameters."""
        chosen, params = where_in({"tier": self.tiers, "priority": self.priorities, "state": self.states,
                                   "client_id": self.clients, "category": self.categories,
                                   "coalesce(assignee, '')": self.assignees})
        return f"resolved_at IS NULL AND {chosen}", params


AGE_BUCKET_SQL = """
    CASE WHEN age_hours < 4 THEN '< 4 h' WHEN age_hours < 24 THEN '4–24 h'
         WHEN age_hours < 72 THEN '1–3 days' WHEN age_hours < 168 THEN '3–7 days' ELSE '> 7 days' END
"""


def _open_cases(snap: Snapshot) -> str:
    """The open cases with what the queue adds to each: ``age_hours``, the ``state`` it shows and its ``lane``."""
    return f"""
        (SELECT *, (epoch({instant(snap.as_of)}) - epoch(received_at)) / 3600 AS age_hours,
                {STATE_SQL} AS state, {LANE_SQL} AS lane
         FROM open_case_sla)
    """


def _lane_sql(snap: Snapshot, flt: QueueFilter, lane: str, columns: str) -> tuple[str, list]:
    """The SELECT of ``columns`` for the open cases of ``lane`` that pass the filter, in the lane's order."""
    if lane not in LANES:
        raise ValueError(f"lane must be one of {LANES}")
    where, params = flt.where()
    return (f"SELECT {columns} FROM {_open_cases(snap)} WHERE {where} AND lane = ? ORDER BY {LANE_ORDER}",
            [*params, lane])


def queue_page(store: Store, snap: Snapshot, flt: QueueFilter, *, lane: str, page: int = 0) -> pd.DataFrame:
    """Page ``page`` (from 0, ``PAGE_SIZE`` rows) of open cases. ``lane``: 'sla' (cases with a target, the
    next thing due first: see the module's docstring) or 'deprioritized' (oldest first)."""
    sql, params = _lane_sql(snap, flt, lane, """
        case_id, client_id, client_name, tier, priority, category, subject, requester, assignee, received_at,
        age_hours, state, next_due_metric, next_due, next_due_hours_left, waiting_on_client, first_response_at,
        sla_state, breach_reason""")
    return store.snapshot_query(f"{sql} {limit_offset(page, PAGE_SIZE)}", params, snap)


def queue_csv(store: Store, snap: Snapshot, flt: QueueFilter, *, lane: str) -> bytes:
    """Every open case of ``lane`` that passes the filter, in the lane's order, as CSV for a spreadsheet:
    times in the support zone with their offset, text cells safe from formulas (rules §8). Hours left are
    business hours of the calendar of the target they count to (clock hours for a 24x7 one)."""
    tz = quote(store.config.calendar.timezone)
    sql, params = _lane_sql(snap, flt, lane, f"""
        case_id, client_id, client_name, tier, priority, category, subject, requester, assignee,
        iso_local(received_at, {tz}) AS received_at, CAST(round(age_hours, 2) AS DECIMAL(18, 2)) AS age_hours,
        next_due_metric, iso_local(next_due, {tz}) AS next_due,
        CAST(round(next_due_hours_left, 2) AS DECIMAL(18, 2)) AS next_due_hours_left, next_due_state,
        waiting_on_client, iso_local(first_response_due, {tz}) AS first_response_due,
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
    frame = store.snapshot_query(
        f"""
        SELECT lane, shown, (row_number() OVER (PARTITION BY lane, shown ORDER BY {LANE_ORDER}) - 1) // {PAGE_SIZE}
                   AS page, case_id
        FROM (SELECT *, coalesce({where}, FALSE) AS shown FROM {_open_cases(snap)})
        QUALIFY case_id = ?
        """,
        [*params, case_id], snap)
    return None if frame.empty else Whereabouts(frame.lane[0], bool(frame.shown[0]), int(frame.page[0]))


def queue_counts(store: Store, snap: Snapshot, flt: QueueFilter) -> dict[str, int]:
    """Open cases passing the filter, per lane."""
    where, params = flt.where()
    frame = store.snapshot_query(
        f"""SELECT {', '.join(f"count(*) FILTER (WHERE lane = '{lane}') AS {lane}" for lane in LANES)}
            FROM {_open_cases(snap)} WHERE {where}""",
        params, snap)
    return {k: int(v) for k, v in frame.iloc[0].items()}


def age_buckets(store: Store, snap: Snapshot, flt: QueueFilter) -> pd.DataFrame:
    """Open cases per age bucket and tier, for the stacked chart."""
    where, params = flt.where()
    return store.snapshot_query(
        f"""
        SELECT {AGE_BUCKET_SQL} AS age_bucket, tier, count(*) AS cases
        FROM {_open_cases(snap)} WHERE {where}
        GROUP BY ALL ORDER BY age_bucket, tier
        """,
        params,
        snap,
    )


def filter_choices(store: Store, snap: Snapshot) -> dict:
    """The values each filter offers: those present among open cases. Clients (``client_labels``) are ids, in
    the order of their names, each with how to show it."""
    frame = store.snapshot_query(
        """SELECT coalesce(list(DISTINCT coalesce(assignee, '') ORDER BY coalesce(assignee, '')), []) AS assignees
           FROM open_case_sla WHERE resolved_at IS NULL""",
        None, snap)
    return {"client_labels": client_labels(store, snap), "assignees": list(frame.iloc[0]["assignees"])}


def client_labels(store: Store, snap: Snapshot) -> dict[str, str]:
    """Client id → how the client filter shows it: the name, with the id when another client with open
    cases has the same name; in the order of the labels."""
    frame = store.snapshot_query(
        """SELECT client_id, CASE WHEN count(*) OVER (PARTITION BY lower(client_name)) > 1
                                  THEN client_name || ' (' || client_id || ')' ELSE client_name END AS label
           FROM (SELECT DISTINCT client_id, client_name FROM open_case_sla WHERE resolved_at IS NULL)
           ORDER BY lower(label), client_id""",
        None, snap)
    return dict(zip(frame.client_id.tolist(), frame.label.tolist(), strict=True))


def case_waits(store: Store, snap: Snapshot, case_id: str) -> pd.DataFrame:
    """Every wait on the client of the case, resumed or not, the first first: ``paused_at``, ``resumed_at``
    (null: still waiting), ``reason``, ``paused_by`` and ``resumed_by``."""
    return store.snapshot_query("""SELECT paused_at, resumed_at, reason, paused_by, resumed_by FROM pauses
                                   WHERE case_id = $case ORDER BY paused_at""", {"case": case_id}, snap)


def case_id_typed(store: Store, typed: str) -> str:
    """The id of the case someone typed: as typed when a case has it, else the one case whose id it is in
    another case of letters (``cs-00042`` for ``CS-00042``), else as typed."""
    found = store.query("SELECT case_id FROM cases WHERE lower(case_id) = lower($typed) LIMIT 2",
                        {"typed": typed}).case_id.tolist()
    return found[0] if len(found) == 1 else typed  # (two: the one typed exactly is one of them, or none is)


def case_detail(store: Store, snap: Snapshot, case_id: str) -> dict | None:
    """Every column of one stored case (resolved or not, voided or not), with its client's name; when it
    counts as of the snapshot, its first-response state and ``target`` (which one applies and why, in words)
    and which target is due next (``next_due_metric``); and while it waits on the client, its open pause
    (``paused_at``, ``pause_reason``, ``paused_by``; else empty). None when there is no such case."""
    frame = store.query(
        """SELECT c.*, cl.name AS client_name, cl.tier, s.sla_state, s.first_response_due, s.business_hours_left,
                  s.first_response_kind, s.first_response_amount, s.first_response_calendar,
                  s.first_response_by_contract, s.policy_id, s.next_due_metric,
                  p.paused_at, p.reason AS pause_reason, p.paused_by
           FROM cases c JOIN clients cl USING (client_id) LEFT JOIN case_sla s USING (case_id)
                LEFT JOIN pauses p ON p.case_id = c.case_id AND p.resumed_at IS NULL
           WHERE c.case_id = ?
           ORDER BY p.paused_at DESC LIMIT 1""",
        [case_id], snap, cases=[case_id])
    if frame.empty:
        return None
    case = frame.iloc[0].to_dict()
    counted = isinstance(case["sla_state"], str)
    case["target"] = target_in_words(
        case["first_response_kind"], case["first_response_amount"], case["first_response_calendar"],
        case["first_response_by_contract"], case["tier"], case["client_name"], case["policy_id"],
        case["category"]) if counted else None
    return case


def case_targets(store: Store, snap: Snapshot, case_id: str) -> pd.DataFrame:
    """Every target of a case as of the snapshot, in ``TARGETS``' order: ``metric``, ``due``, ``state``,
    ``hours_left`` (while its clock runs) and the ``calendar`` they count on; a per-case target's rule
    (``kind``, ``amount``) and, when a pause stops it, ``hours_paused``; the follow-up target's questions
    (``questions``, ``questions_open``) and the one shown, ``asked_at``: the earliest due of those open, else
    the latest. No row for the follow-up target before the client's first question, nor for a case that does
    not count as of the snapshot."""
    parts = []
    for position, target in enumerate(TARGETS):
        due, state, left, calendar = (target.col(c) for c in ("due", "state", "hours_left", "calendar"))
        if target.per == "case":
            paused = target.col("hours_paused") if target.pausable else "NULL"
            parts.append(f"""
                SELECT {position} AS position, '{target.metric}' AS metric, {due} AS due, {state} AS state,
                       {left} AS hours_left, {calendar} AS calendar, {target.col('kind')} AS kind,
                       {target.col('amount')} AS amount, {paused} AS hours_paused, NULL AS questions,
                       NULL AS questions_open, NULL AS asked_at
                FROM case_sla WHERE case_id = $case""")
        else:
            parts.append(f"""
                SELECT {position}, '{target.metric}', {due}, {state}, {left}, {calendar}, NULL, NULL, NULL,
                       count(*) OVER (), count(*) FILTER (WHERE {target.stops} IS NULL) OVER (), {target.starts}
                FROM case_questions WHERE case_id = $case
                QUALIFY row_number() OVER (ORDER BY {target.stops} IS NOT NULL,
                                                    CASE WHEN {target.stops} IS NULL THEN {due} END,
                                                    {target.starts} DESC) = 1""")
    return store.query(" UNION ALL ".join(f"({part})" for part in parts) + " ORDER BY position",
                       {"case": case_id}, snap, cases=[case_id])


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

