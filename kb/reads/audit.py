"""The audit trail, filtered by who, table and action, for the Audit trail page."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from kb.db.sqltext import where_in
from kb.store import Store


def filter_choices(store: Store) -> dict[str, list[str]]:
    """The values each filter offers: the actors, tables and actions recorded so far."""
    frame = store.query("SELECT coalesce(list(DISTINCT actor ORDER BY actor), []) AS actors, "
                        "coalesce(list(DISTINCT table_name ORDER BY table_name), []) AS tables, "
                        "coalesce(list(DISTINCT action ORDER BY action), []) AS actions FROM audit_log")
    return {name: list(frame.iloc[0][name]) for name in ("actors", "tables", "actions")}


def audit_rows(store: Store, actors: Sequence[str] = (), tables: Sequence[str] = (), actions: Sequence[str] = (),
               limit: int = 1000) -> pd.DataFrame:
    """The latest ``limit`` writes by any of ``actors``, on any of ``tables``, of any of ``actions``
    (an empty filter lets every value through)."""
    where, params = where_in({"actor": actors, "table_name": tables, "action": actions})
    return store.query(f"SELECT audit_id, logged_at, actor, action, table_name, row_id, before, after "
                       f"FROM audit_log WHERE {where} ORDER BY audit_id DESC LIMIT {int(limit)}", params)
