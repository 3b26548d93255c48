"""Literals for SQL text that this package writes itself (never user input)."""

from __future__ import annotations

from datetime import UTC, datetime


def quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def instant(moment: datetime) -> str:
    """A TIMESTAMPTZ literal for an aware datetime, in UTC to the microsecond."""
    if moment.tzinfo is None:
        raise ValueError("an instant needs a time zone")
    return "TIMESTAMPTZ " + quote(moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00"))
