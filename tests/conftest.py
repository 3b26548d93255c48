"""Fixture stores: a fresh DuckDB file per test, filled through the import path."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from kb.access import Actor
from kb.config import parse_config
from kb.db import connection
from kb.engine.asof import open_views
from kb.intake.importing import add_rows, staged_from_records
from kb.intake.validation import LAST_YEAR
from kb.navigation import navigation_only
from kb.timestamps import set_now

ADMIN = Actor("tests@example.com", "admin")


@pytest.fixture(autouse=True, scope="session")
def _navigation_only():
    """Keep AppTest out of Streamlit's legacy ``pages/`` mode (see ``kb.navigation.navigation_only``)."""
    with navigation_only():
        yield


@pytest.fixture(autouse=True)
def _the_clock():
    """A test that sets "now" (``--now``, ``set_now``) leaves the clock as it found it for the next."""
    yield
    set_now(None)


HKT = ZoneInfo("Asia/Hong_Kong")

# The SPEC's calendar, with 2026-11-27 added as an extra holiday as in its examples.
SPEC_TOML = """
[calendar]
timezone = "Asia/Hong_Kong"
business_hours = ["09:00", "18:00"]
weekend = ["Sat", "Sun"]
holidays_country = "HK"
extra_holidays = ["2026-11-27"]
"""
SPEC_CONFIG = parse_config(tomllib.loads(SPEC_TOML))


@pytest.fixture
def db_file(tmp_path):
    return tmp_path / "support.duckdb"


@pytest.fixture
def con(db_file):
    con = connection.connect(db_file)
    yield con
    con.close()


def add(con, config, table: str, *records: dict) -> None:
    """Insert rows through the same validation as an import; values as text. The rows are history: the
    clock rule takes "now" at the end of the years the calendar holds (it has tests of its own)."""
    rows = [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in records]
    add_rows(con, config, staged_from_records(table, rows), ADMIN, permission="import", source="tests",
             now=datetime(LAST_YEAR, 12, 31, tzinfo=UTC))


def views(con, config, as_of: datetime):
    """Open the as-of views and return the connection, for chained queries."""
    open_views(con, config, as_of)
    return con


def local(text: str, zone: ZoneInfo = HKT) -> datetime:
    """An aware datetime from local wall-clock text."""
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def shown(element) -> str:
    """The text a Markdown element shows: what someone typed is escaped by ``kb.ui.plain``."""
    return re.sub(r"\\(.)", r"\1", element.value)
