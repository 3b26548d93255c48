"""The API tokens, for the API tokens page and ``python -m kb token list``: never their hashes."""

from __future__ import annotations

import pandas as pd


def token_rows(store_or_con) -> pd.DataFrame:
    """Every token, newest first: id, name, role, created (and by whom), last used, revoked."""
    sql = ("SELECT token_id, name, role, created_at, created_by, last_used_at, revoked_at "
           "FROM api_tokens ORDER BY created_at DESC, token_id")
    if hasattr(store_or_con, "query"):
        return store_or_con.query(sql)
    return store_or_con.execute(sql).fetchdf()
