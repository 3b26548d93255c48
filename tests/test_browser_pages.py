"""The read pages on demo data in a real Chromium at 1440×900: a viewport screenshot of each for
``docs/pages.md`` (``artifacts/screenshots/docs_<page>.png``), and the incident timeline drawn at the
support zone's times whatever zone the browser is in."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.servers import SCREENSHOTS, dashboard_server, wait_idle

pytestmark = pytest.mark.browser

AS_OF = "2026-11-26T12:00:00+08:00"  # the demo data is laid out around this day
DOC_PAGES = ["overview", "performance", "uptime", "refunds", "queue", "clients", "audit", "configuration"]


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    db = folder / "demo.duckdb"
    subprocess.run([sys.executable, "-m", "kb", "--db", str(db), "--now", AS_OF, "demo"], check=True,
                   capture_output=True)
    with dashboard_server({"SUPPORT_DB": str(db), "SUPPORT_AS_OF": AS_OF}, log=folder / "server.log") as base:
        yield base


def open_page(page, base: str, name: str) -> None:
    page.goto(f"{base}/{'' if name == 'overview' else name}")
    wait_idle(page)
    assert page.locator("[data-testid=stException]").count() == 0, f"{name}: an exception is shown"
    page.wait_for_timeout(500)  # let the charts draw


def test_screenshots_of_every_read_page(demo_server, browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="Asia/Hong_Kong")
    page = context.new_page()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name in DOC_PAGES:
        open_page(page, demo_server, name)
        assert page.locator("h1").first.inner_text()
        page.screenshot(path=str(SCREENSHOTS / f"docs_{name}.png"), full_page=False)
    context.close()


def timeline_image(browser, base: str, zone: str) -> bytes:
    """The incident timeline on the Uptime page as a browser in ``zone`` draws it (PNG)."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id=zone)
    page = context.new_page()
    open_page(page, base, "uptime")
    chart = page.locator("[data-testid=stVegaLiteChart]").nth(1)
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    image = chart.screenshot()
    if zone == "Asia/Hong_Kong":
        chart.screenshot(path=str(SCREENSHOTS / "docs_uptime_timeline.png"))
    context.close()
    return image


def test_incident_timeline_does_not_move_with_the_browser_zone(demo_server, browser):
    # Drawn from support-zone wall-clock times on a UTC scale: the same picture in Hong Kong and in New York.
    assert timeline_image(browser, demo_server, "Asia/Hong_Kong") \
        == timeline_image(browser, demo_server, "America/New_York")


def test_overview_verdicts_and_credits_match_the_exports(tmp_path, browser):
    import csv
    import io
    import math
    from collections import defaultdict

    from kb.db import connection

    db = tmp_path / "demo.duckdb"
    subprocess.run([sys.executable, "-m", "kb", "--db", str(db), "--now", AS_OF, "demo"], check=True,
                   capture_output=True)

    def export(report: str) -> list[dict]:
        out = subprocess.run([sys.executable, "-m", "kb", "export", report, "--db", str(db), "--as-of", AS_OF,
                              "--now", AS_OF], check=True, capture_output=True, text=True)
        return list(csv.DictReader(io.StringIO(out.stdout)))

    decided = defaultdict(lambda: [0, 0])  # tier -> [met, decided] for cases due in November
    for row in export("case-sla"):
        if row["first_response_due"][:7] == "2026-11" and row["sla_state"] in ("met", "breached"):
            decided[row["tier"]][0] += row["sla_state"] == "met"
            decided[row["tier"]][1] += 1
    owed = defaultdict(float)  # (month, client, currency) -> credit
    for row in export("refunds"):
        if row["month"] in ("2026-10", "2026-11") and float(row["refund_amount"]) > 0:
            owed[row["month"], row["client_id"], row["currency"]] += float(row["refund_amount"])
    con = connection.connect(db, read_only=True)
    names = dict(con.execute("SELECT client_id, name FROM clients").fetchall())
    con.close()
    assert owed and decided

    with dashboard_server({"SUPPORT_DB": str(db), "SUPPORT_AS_OF": AS_OF}, log=tmp_path / "server.log") as base:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        open_page(page, base, "overview")
        words = {"enterprise": "Enterprise", "custom": "Custom program", "free": "Free"}
        for tier, (met, count) in decided.items():
            card = page.locator("[data-testid=stMetric]").filter(has_text=f"{words[tier]}: met this month")
            pct = 100 * met / count
            shown = math.floor(round(pct, 9) * 100) / 100  # two decimals, rounded down
            assert card.locator("[data-testid=stMetricValue]").inner_text().strip() == f"{shown:.2f} %"
            verdict = "Met so far" if pct >= 95 else "Missed so far"
            assert card.locator("[data-testid=stMetricDelta]").inner_text().strip() == \
                f"{verdict}: {met} of {count} cases"
        grid = page.locator("[data-testid=stDataFrame]").filter(
            has=page.locator("[role=columnheader]", has_text="Service credits owed"))
        grid.scroll_into_view_if_needed()
        rows = [" | ".join(c.strip() for c in row.locator("[role=gridcell]").all_text_contents())
                for row in grid.locator("[role=row]").all()[1:]]
        for (month, client, currency), amount in owed.items():
            money = f"{currency} {amount:,.2f}"
            month_name = "Oct 2026" if month == "2026-10" else "Nov 2026"
            assert any(month_name in r and names[client] in r and money in r for r in rows), (month, client, rows)
        assert len(rows) == len(owed)
        page.close()
