"""Long tables a page at a time: how many pages a count makes, and the LIMIT/OFFSET of one of them."""

from __future__ import annotations


def page_count(total: int, size: int) -> int:
    """Pages of ``size`` rows that ``total`` rows fill (at least one, for an empty table)."""
    return max(1, -(-int(total) // int(size)))


def limit_offset(page: int, size: int) -> str:
    """The SQL ``LIMIT … OFFSET …`` of page ``page`` (from 0) of ``size`` rows."""
    return f"LIMIT {int(size)} OFFSET {int(page) * int(size)}"
