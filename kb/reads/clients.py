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


NAMES = {  # the names a table's rows refer to by id, shown beside them
    "clients": "",
    "environments": ", (SELECT name FROM clients c WHERE c.client_id = t.client_id) AS client_name",
    "contracts": ", (SELECT name FROM clients c WHERE c.client_id = t.client_id) AS client_name"
                 ", (SELECT name FROM environments e WHERE e.environment_id = t.environment_id) AS environment_name",
}


def rows_page(store: Store, table: str, page: int) -> pd.DataFrame:
    """Page ``page`` (from 0, ``PAGE_SIZE`` rows) of ``table`` in its order, every column, and the names of
    the client and environment a row refers to (``client_name``, ``environment_name``)."""
    return store.query(f"SELECT t.*{NAMES[_checked(table)]} FROM (SELECT * FROM {table} ORDER BY {ORDER[table]} "
                       f"{limit_offset(page, PAGE_SIZE)}) t ORDER BY {ORDER[table]}")


def _checked(table: str) -> str:
    if table not in ORDER:
        raise ValueError(f"unknown table {table!r} (one of {', '.join(ORDER)})")
    return table
