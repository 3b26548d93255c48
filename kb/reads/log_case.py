"""The clients to log a case for, the team to assign it to, the cases still unanswered, and one case's deadline,
for the Log case page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from kb import formats
from kb.engine.asof import deadlines
from kb.engine.policies import target_in_words
from kb.engine.targets import FIRST_RESPONSE, RESOLUTION
from kb.intake import writes
from kb.store import Store
from kb.timestamps import format_for_people, now_utc


@dataclass(frozen=True)
class Deadline:
    """One target of a case: its deadline (None: it has none), its state, and which rule applies and why, as the
    engine decided it ("Cobalt's policy gold: within 4 hours, around the clock", "Enterprise default: no
    target")."""

    label: str
    due: datetime | None
    state: str
    rule: str

    def in_words(self, zone) -> str:
        """"First response due Tue 2026-12-08 07:41 HKT (UTC+08:00), pending — Cobalt's policy gold: within 4
        hours, around the clock."; "Resolution — Enterprise default: no target." """
        if self.due is None:
            return f"{self.label} — {self.rule}."
        state = formats.word("state", self.state).lower()
        return f"{self.label} due {format_for_people(self.due, zone)}, {state} — {self.rule}."


@dataclass(frozen=True)
class CaseDeadline:
    case_id: str
    first_response: Deadline
    resolution: Deadline

    def in_words(self, zone) -> str:
        return f"{self.first_response.in_words(zone)} {self.resolution.in_words(zone)}"


def team(store: Store) -> list[str]:
    """Who a case may be assigned to (``kb.intake.writes.team``), as on the Queue."""
    with store.reader() as cur:
        return writes.team(cur, store.config)


def unanswered_cases(store: Store, limit: int = 500) -> pd.DataFrame:
    """The latest ``limit`` cases without a first response: id and subject."""
    return store.query("SELECT case_id, subject FROM cases WHERE first_response_at IS NULL AND voided_at IS NULL "
                       "ORDER BY case_id DESC LIMIT $limit", {"limit": limit})


def case_deadline(store: Store, case_id: str) -> CaseDeadline:
    """The first response's and the resolution's deadlines of the case, as of now, or as of its receipt if it
    was logged ahead of time: computed for this case alone, so the confirmation does not wait for the snapshot
    of every case."""
    with store.reader() as cur:
        received = cur.execute("SELECT received_at FROM cases WHERE case_id = ?", [case_id]).fetchall()
        if not received:
            raise LookupError(f"no case {case_id!r}")
        rows = deadlines(cur, store.config, max(now_utc(), received[0][0]), [case_id],
                         (FIRST_RESPONSE, RESOLUTION)).to_pylist()
    if not rows:  # voided
        raise LookupError(f"no case {case_id!r} as of now")
    row = rows[0]

    def deadline(target) -> Deadline:
        col = target.col
        return Deadline(target.label, row[col("due")], row[col("state")], target_in_words(
            row[col("kind")], row[col("amount")], row[col("calendar")], row[col("by_contract")], row["tier"],
            row["client_name"], row["policy_id"], row["category"]))
    return CaseDeadline(case_id, deadline(FIRST_RESPONSE), deadline(RESOLUTION))
