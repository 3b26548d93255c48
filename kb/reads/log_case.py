"""The clients to log a case for, the team to assign it to, the cases still unanswered, and one case's deadline,
for the Log case page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from kb.engine.policies import target_in_words
from kb.intake import writes
from kb.store import Store


@dataclass(frozen=True)
class CaseDeadline:
    case_id: str
    first_response_due: datetime | None
    sla_state: str
    target: str  # which target applies and why, as the engine decided it: "Enterprise default: 1 business day"


def clients(store: Store) -> pd.DataFrame:
    """Every client: id, name and tier, by name."""
    return store.query("SELECT client_id, name, tier FROM clients ORDER BY name")


def team(store: Store) -> list[str]:
    """Who a case may be assigned to (``kb.intake.writes.team``), as on the Queue."""
    with store.reader() as cur:
        return writes.team(cur, store.config)


def unanswered_cases(store: Store, limit: int = 500) -> pd.DataFrame:
    """The latest ``limit`` cases without a first response: id and subject."""
    return store.query("SELECT case_id, subject FROM cases WHERE first_response_at IS NULL AND voided_at IS NULL "
                       "ORDER BY case_id DESC LIMIT $limit", {"limit": limit})


def case_deadline(store: Store, case_id: str) -> CaseDeadline:
    """As of now (the store's current snapshot, rebuilt after the write that logged the case), or as of
    its receipt if it was logged ahead of time."""
    with store.reader() as cur:
        received = cur.execute("SELECT received_at FROM cases WHERE case_id = ?", [case_id]).fetchall()
    if not received:
        raise LookupError(f"no case {case_id!r}")
    snap = store.snapshot()
    if snap.as_of < received[0][0]:
        snap = store.snapshot(received[0][0])
    with store.reader(snap) as cur:
        rows = cur.execute("""SELECT case_id, first_response_due, sla_state, first_response_kind,
                                     first_response_amount, first_response_calendar, first_response_by_contract,
                                     tier, client_name, policy_id, category
                              FROM case_sla WHERE case_id = ?""", [case_id]).fetchall()
    if not rows:  # the snapshot was taken before the write
        raise LookupError(f"no case {case_id!r} in the snapshot as of {snap.as_of}")
    case_id, due, state, *target = rows[0]
    return CaseDeadline(case_id, due, state, target_in_words(*target))
