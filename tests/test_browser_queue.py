"""The Queue in a real Chromium: its first row is the case that breaches next, on the first screen; a click opens
a case; its lanes renew every minute on their own."""

from __future__ import annotations

import urllib.request

import pytest
from playwright.sync_api import expect

from kb.config import load_config
from kb.db import connection
from kb.engine.asof import open_views
from kb.service.tokens import create_token
from kb.store import Store
from kb.timestamps import now_utc
from tests.fixtures import ADMIN, build_fixture
from tests.servers import SCREENSHOTS, dashboard_server, wait_idle

pytestmark = pytest.mark.browser

HEADER_AND_ROW_PX = 2 * 35  # the grid's header row and its first data row (Streamlit's default row height)


def next_to_breach(db, config_file) -> str:
    """The open case with the least business time left, from the engine (before the server holds the file)."""
    con = connection.connect(db, read_only=True)
    try:
        open_views(con, load_config(config_file), now_utc())
        return con.execute("SELECT case_id FROM case_sla WHERE resolved_at IS NULL AND business_hours_left IS NOT "
                           "NULL ORDER BY business_hours_left, case_id LIMIT 1").fetchall()[0][0]
    finally:
        con.close()


@pytest.mark.parametrize(("width", "height"), [(1440, 900), (390, 844)])
def test_queue_first_row_is_next_to_breach_and_on_the_first_screen(tmp_path, browser, width, height):
    db, config_file = build_fixture(tmp_path)
    expected = next_to_breach(db, config_file)
    with dashboard_server({"SUPPORT_DB": str(db), "SUPPORT_CONFIG": str(config_file)},
                          log=tmp_path / "server.log") as base:
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.goto(f"{base}/queue")
        wait_idle(page)
        assert page.locator("[data-testid=stException]").count() == 0
        grid = page.locator("[data-testid=stDataFrame]").first
        # the grid's accessible table: row 1 is the header, row 2 the first case
        first = grid.locator("[role=row][aria-rowindex='2']")
        assert first.locator("[role=gridcell]").first.text_content().strip() == expected
        box = grid.bounding_box()
        assert page.evaluate("window.scrollY") == 0
        assert box["y"] + HEADER_AND_ROW_PX <= height, f"the first row ends at {box['y'] + HEADER_AND_ROW_PX} px"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"queue_first_screen_{width}x{height}.png"))  # the first screen only
        context.close()


def test_the_lanes_renew_every_minute_alone_and_a_click_opens_a_case(tmp_path, browser):
    db, config_file = build_fixture(tmp_path)
    store = Store(db, load_config(config_file))
    token = store.write(create_token, ADMIN, name="tests", role="lead").token
    store.close()
    with dashboard_server({"SUPPORT_DB": str(db), "SUPPORT_CONFIG": str(config_file)},
                          log=tmp_path / "server.log") as base:
        page = browser.new_page()
        page.goto(f"{base}/queue")
        wait_idle(page)
        grid = page.locator("[data-testid=stDataFrame]").first
        box = grid.bounding_box()
        page.mouse.click(box["x"] + 15, box["y"] + 35 + 17)  # the first case's row marker: tick it
        wait_idle(page)
        first = grid.locator("[role=row][aria-rowindex='2'] [role=gridcell]").first.text_content().strip()
        expect(page.get_by_text(f"{first} · ", exact=False).first).to_be_visible()  # its panel opened
        assert f"case={first}" in page.url
        page_as_of = page.get_by_text("As of ").first.text_content()

        request = urllib.request.Request(
            f"{base}/api/v1/import/cases", method="POST", headers={"Authorization": f"Bearer {token}"},
            data=b"case_id,client_id,received_at,category,subject\nNEWCOMER,ENT,2026-11-25 09:00,api_help,New\n")
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
        # no click, no reload: the lane's next minute shows the new case; the rest of the page did not run
        expect(grid.get_by_text("NEWCOMER")).to_have_count(1, timeout=80_000)
        assert page.get_by_text("As of ").first.text_content() == page_as_of
        expect(page.get_by_text(f"{first} · ", exact=False).first).to_be_visible()
