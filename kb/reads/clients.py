"""The clients, environments and contracts tables, a page at a time, for the Clients and contracts page."""

from __future__ import annotations

import pandas as pd

from kb.reads.paging import limit_offset
from kb.store import Store

PAGE_SIZE = 1000  # rows of a table sent to the browser at once
ORDER = {  # each table shown, in the order its rows are listed
    "clients": "tier, name, client_id",
    "environments": "kind, name, environment_id",
    "contracts": "client_id, starts_on, contract_id",
}


def row_count(store: Store, table: str) -> int:
    """How many rows ``table`` (one of ``ORDER``) holds."""
    return int(store.query(f"SELECT count(*) AS n FROM {_checked(table)}").n[0])


def rows_page(store: Store, table: str, page: int) -> pd.DataFrame:
    """Page ``page`` (from 0, ``PAGE_SIZE`` rows) of ``table`` in its order, every column."""
    return store.query(f"SELECT * FROM {_checked(table)} ORDER BY {ORDER[table]} {limit_offset(page, PAGE_SIZE)}")


def _checked(table: str) -> str:
    if table not in ORDER:
        raise ValueError(f"unknown table {table!r} (one of {', '.join(ORDER)})")
    return table
