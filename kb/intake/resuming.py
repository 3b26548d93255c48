"""A client's message resumes a paused case (rules §12), however it arrives: by mail, or in an import of
``messages``. The open pause of the case ends at the earliest client message at or after its start, resumed by
``mail`` or ``import``, in the transaction that stores the messages, with one audit row per case.

Ending a wait changes the case's clocks from that instant on, so a message dated before a closed month (an
import of old mail, a reply whose date lies in the past) would change that month's numbers: the wait then ends
when the last closed month ends, and the audit row names that month (rules §13: a closed month stays as it was
frozen; the message itself is stored as dated)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from kb.access import Actor
from kb.config import Config
from kb.db import audit
from kb.db.connection import registered
from kb.intake.closed_months import closed_months

BY_MAIL = "mail"  # resumed_by when a client's mail resumed the case
BY_IMPORT = "import"  # … a client's message imported


def resume_on_client_messages(con, config: Config, actor: Actor, messages: pa.Table, by: str = BY_MAIL) -> int:
    """End the open pause of each case a client's message of ``messages`` (``case_id``, ``received_at``,
    ``message_key``) joins at or after the pause began: resumed at the earliest such message (or, when that
    lies before the end of the last closed month, at that end), by ``by``, with one audit row per case (by
    ``actor``). Voided cases are left as they are. How many cases were resumed."""
    with registered(con, client_messages=messages):
        resumed = con.sql("""
            SELECT p.case_id, p.paused_at, min(m.received_at) AS resumed_at,
                   arg_min(m.message_key, m.received_at) AS message_key
            FROM pauses p JOIN cases c ON c.case_id = p.case_id AND c.voided_at IS NULL
                 JOIN client_messages m ON m.case_id = p.case_id AND m.received_at >= p.paused_at
            WHERE p.resumed_at IS NULL
            GROUP BY ALL ORDER BY p.case_id""").to_arrow_table()
    if not resumed.num_rows:
        return 0
    closed = closed_months(con, config)
    held = [False] * resumed.num_rows  # for each row: resumed when the last closed month ends
    if closed:
        at = resumed["resumed_at"]
        end = pa.scalar(closed.ends[-1], at.type)
        before = pc.less(at, end)
        resumed = resumed.set_column(resumed.schema.get_field_index("resumed_at"), "resumed_at",
                                     pc.if_else(before, end, at))
        held = before.to_pylist()
    with registered(con, resumed_pauses=resumed):
        con.execute("""UPDATE pauses SET resumed_at = r.resumed_at, resumed_by = ? FROM resumed_pauses r
                        WHERE pauses.case_id = r.case_id AND pauses.paused_at = r.paused_at""", [by])
    audit.record_rows(con, actor, "resume", "pauses", [
        (row["case_id"], {"paused_at": row["paused_at"], "resumed_at": None, "resumed_by": None},
         {"paused_at": row["paused_at"], "resumed_at": row["resumed_at"], "resumed_by": by,
          "message": row["message_key"], **({"after_closed_month": closed.months[-1]} if was_held else {})})
        for row, was_held in zip(resumed.to_pylist(), held, strict=True)])
    return resumed.num_rows


def resume_on_imported_messages(con, config: Config, actor: Actor, rows: pa.Table) -> int:
    """``resume_on_client_messages`` for the rows of ``messages`` an import stores (typed as stored), by
    ``import``."""
    clients = rows.filter(pc.invert(rows["is_team"])).select(["case_id", "received_at", "message_key"])
    return resume_on_client_messages(con, config, actor, clients, by=BY_IMPORT) if clients.num_rows else 0
