"""The schema version of the database in use, for the Configuration page."""

from __future__ import annotations

from kb.db.connection import schema_version as _schema_version
from kb.store import Store


def schema_version(store: Store) -> int:
    """The schema version the database file is at."""
    with store.reader() as cur:
        return _schema_version(cur)
