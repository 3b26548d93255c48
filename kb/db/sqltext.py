"""Literals and conditions for SQL text that this package writes itself (values go in as parameters)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime


def quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def one_of(sql: str, values: Sequence[str]) -> str:
    """``sql`` as a DuckDB ENUM of ``values`` (an error for any other value). Such a column reaches Arrow as a
    dictionary, a byte a row rather than the text: at a million cases the states, kinds, tiers, categories and
    priorities of ``case_sla`` take 12 MB so, 92 MB as text. Whoever reads it back through DuckDB sees VARCHAR."""
    return f"CAST({sql} AS ENUM({', '.join(quote(v) for v in values)}))"


def instant(moment: datetime) -> str:
    """A TIMESTAMPTZ literal for an aware datetime, in UTC to the microsecond."""
    if moment.tzinfo is None:
        raise ValueError("an instant needs a time zone")
    return "TIMESTAMPTZ " + quote(moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00"))


def where_in(filters: dict[str, Sequence]) -> tuple[str, list]:
    """``column IN (?, …)`` for each column with values, joined by AND, and their parameters, in order;
    ``TRUE`` when no column has any (an empty filter lets everything through). The column names are
    SQL this package writes; the values are parameters, never spliced into the text."""
    conditions, params = [], []
    for column, values in filters.items():
        if values:
            conditions.append(f"{column} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
    return " AND ".join(conditions) or "TRUE", params
