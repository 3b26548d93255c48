"""The append-only audit trail: every write records who, when, what, before and after."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa

from kb.access import Actor


def record(con, actor: Actor, action: str, table: str, row_id: str | None, before: dict | None,
           after: dict | None) -> None:
    """Append one audit row; call inside the transaction of the write it describes."""
    con.execute(
        "INSERT INTO audit_log (logged_at, actor, action, table_name, row_id, before, after) "
        "VALUES (now(), ?, ?, ?, ?, ?, ?)",
        [actor.email, action, table, row_id, _json(before), _json(after)],
    )


def record_rows(con, actor: Actor, action: str, table: str, rows: list[tuple[str, dict | None, dict | None]]) -> None:
    """Append one audit row per ``(row_id, before, after)`` in one statement (a webhook's thousand incidents)."""
    if not rows:
        return
    values = pa.table({"actor": [actor.email] * len(rows), "action": [action] * len(rows),
                       "table_name": [table] * len(rows), "row_id": [row_id for row_id, _, _ in rows],
                       "before": pa.array([_json(before) for _, before, _ in rows], pa.string()),
                       "after": pa.array([_json(after) for _, _, after in rows], pa.string())})
    con.from_arrow(values).query("audited", "INSERT INTO audit_log (logged_at, actor, action, table_name, row_id, "
                                            "before, after) SELECT now(), * FROM audited")


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
