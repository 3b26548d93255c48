"""Fixture stores: a fresh DuckDB file per test, filled through the import path."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from kb import store
from kb.access import Actor
from kb.config import parse_config
from kb.importing import add_rows, staged_from_records
from kb.views import open_views

ADMIN = Actor("tests@example.com", "admin")
HKT = ZoneInfo("Asia/Hong_Kong")

# The SPEC's calendar, with 2026-11-27 added as an extra holiday as in its examples.
SPEC_CONFIG = parse_config({"calendar": {"extra_holidays": ["2026-11-27"]}})


@pytest.fixture
def db_file(tmp_path):
    return tmp_path / "support.duckdb"


@pytest.fixture
def con(db_file):
    connection = store.connect(db_file)
    yield connection
    connection.close()


def add(con, config, table: str, *records: dict) -> None:
    """Insert rows through the same validation as an import; values as text."""
    rows = [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in records]
    add_rows(con, config, staged_from_records(table, rows), ADMIN, permission="import", source="tests")


def views(con, config, as_of: datetime):
    """Open the as-of views and return the connection, for chained queries."""
    open_views(con, config, as_of)
    return con


def local(text: str, zone: ZoneInfo = HKT) -> datetime:
    """An aware datetime from local wall-clock text."""
    return datetime.fromisoformat(text).replace(tzinfo=zone)
