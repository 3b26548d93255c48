"""One case's deadline and state now, for the confirmation after logging it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kb.engine.asof import open_views
from kb.store import Store
from kb.timestamps import now_utc


@dataclass(frozen=True)
class CaseDeadline:
    case_id: str
    first_response_due: datetime | None
    sla_state: str


def case_deadline(store: Store, case_id: str) -> CaseDeadline:
    """As of now, or as of its receipt if it was logged ahead of time."""
    with store.reader() as cur:
        received = cur.execute("SELECT received_at FROM cases WHERE case_id = ?", [case_id]).fetchall()
        if not received:
            raise LookupError(f"no case {case_id!r}")
        open_views(cur, store.config, max(now_utc(), received[0][0]))
        rows = cur.execute("SELECT case_id, first_response_due, sla_state FROM case_sla WHERE case_id = ?",
                           [case_id]).fetchall()
    return CaseDeadline(*rows[0])
