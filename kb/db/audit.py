"""The append-only audit trail: every write records who, when, what, before and after."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

from kb.access import Actor


def record(con, actor: Actor, action: str, table: str, row_id: str | None, before: dict | None,
           after: dict | None) -> None:
    """Append one audit row; call inside the transaction of the write it describes."""
    con.execute(
        "INSERT INTO audit_log (logged_at, actor, action, table_name, row_id, before, after) "
        "VALUES (now(), ?, ?, ?, ?, ?, ?)",
        [actor.email, action, table, row_id, _json(before), _json(after)],
    )


def _json(values: dict | None) -> str | None:
    if values is None:
        return None
    return json.dumps(values, default=_plain, ensure_ascii=False, sort_keys=True)


def _plain(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (date, Decimal)):
        return str(value)
    raise TypeError(f"cannot record {type(value).__name__} in the audit trail")
