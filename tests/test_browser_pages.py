"""Every page on demo data in a real Chromium, on a desktop (1440×900) and on a phone (390×844): nothing
wider than the window, no toolbar over a heading or a label, and a screenshot of each at both sizes
(``artifacts/screenshots/docs_<page>.png`` and ``docs_<page>-phone.png``; with ``KB_SCREENSHOTS=docs/screenshots``
they are written there too, for ``docs/pages.md``: ``scripts/screenshots``); and the incident timeline drawn at
the support zone's times whatever zone the browser is in."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from kb.navigation import page_names
from tests.servers import ROOT, SCREENSHOTS, dashboard_server, wait_idle

pytestmark = pytest.mark.browser

AS_OF = "2026-11-26T12:00:00+08:00"  # the demo data is laid out around this day
SIZES = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}
# KB_SCREENSHOTS=docs/screenshots: the documentation's screenshots are written there as well.
DOCS_SCREENSHOTS = ROOT / os.environ["KB_SCREENSHOTS"] if os.environ.get("KB_SCREENSHOTS") else None


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


# What spills past the window, measured in the page once it has drawn: the document, the main block, and any
# element of the main block wider than it (a grid or a chart scrolls inside itself, so its own content is not).
OVERFLOW = """() => {
    const main = document.querySelector('[data-testid=stMain]');
    const block = document.querySelector('[data-testid=stMainBlockContainer]');
    const right = main.getBoundingClientRect().right + 1;
    const wide = [...block.querySelectorAll('[data-testid=stElementContainer], h1, h2, h3, p, label')]
        .filter(e => e.getBoundingClientRect().width > 0 && e.getBoundingClientRect().right > right)
        .map(e => (e.getAttribute('data-testid') || e.tagName) + ': ' + (e.innerText || '').slice(0, 60));
    return {document: document.documentElement.scrollWidth, window: window.innerWidth,
            main: main.scrollWidth, mainWidth: main.clientWidth, block: block.scrollWidth,
            blockWidth: block.clientWidth, wide: wide.slice(0, 5)};
}"""

# Text a grid's or a chart's toolbar (shown where there is no hover to reveal it) would cover: the lines of
# headings, widget labels, captions and paragraphs (their text, not their padding), and the inputs themselves.
COVERED = """() => {
    const shown = e => e.checkVisibility({checkOpacity: true, checkVisibilityCSS: true});  // not in a closed expander
    const boxes = [...document.querySelectorAll('[data-testid=stElementToolbar]')].filter(shown)
        .map(t => t.getBoundingClientRect());
    const main = '[data-testid=stMainBlockContainer] ';
    const texts = [...document.querySelectorAll(main + ':is(h1, h2, h3, [data-testid=stWidgetLabel], '
        + '[data-testid=stCaptionContainer], [data-testid=stMarkdownContainer] p)')].filter(shown);
    const inputs = [...document.querySelectorAll(main + ':is(input, button, [data-baseweb=select])')]
        .filter(e => shown(e) && !e.closest('[data-testid=stElementToolbar]'));
    const hit = [];
    const overlaps = (r, label) => {
        for (const b of boxes) {
            if (r.width && b.left < r.right - 1 && r.left < b.right - 1
                    && b.top < r.bottom - 1 && r.top < b.bottom - 1) {
                hit.push(label.slice(0, 60));
            }
        }
    };
    for (const text of texts) {
        const range = document.createRange();
        range.selectNodeContents(text);
        for (const line of range.getClientRects()) overlaps(line, text.innerText);
    }
    for (const input of inputs) {
        overlaps(input.getBoundingClientRect(), input.getAttribute('aria-label') || input.tagName);
    }
    return [...new Set(hit)];
}"""


def shoot(page, name: str, size: str) -> None:
    """The window as shown; on a phone, the page down to two windows' height (the page scrolls inside, so the
    window is made that tall for the picture), so that its first tables and charts show."""
    file = f"{name}.png" if size == "desktop" else f"{name}-{size}.png"
    window = SIZES[size]
    if size != "desktop":
        height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
        page.set_viewport_size({"width": window["width"], "height": min(height, 2 * window["height"])})
        page.wait_for_timeout(500)
    for folder, path in ((SCREENSHOTS, f"docs_{file}"), (DOCS_SCREENSHOTS, file)):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / path))
    page.set_viewport_size(window)


@pytest.mark.parametrize("size", list(SIZES))
def test_every_page_fits_the_window(demo_server, browser, size):
    context = browser.new_context(viewport=SIZES[size], timezone_id="Asia/Hong_Kong",
                                  is_mobile=size == "phone", has_touch=size == "phone",
                                  device_scale_factor=1)
    page = context.new_page()
    problems = {}
    for name in page_names():
        open_page(page, demo_server, name)
        assert page.locator("h1").first.inner_text(), name
        page.wait_for_timeout(500)  # the grids and charts take their width
        sizes = page.evaluate(OVERFLOW)
        if (sizes["document"] > sizes["window"] or sizes["main"] > sizes["mainWidth"]
                or sizes["block"] > sizes["blockWidth"] or sizes["wide"]):
            problems[name] = sizes
        covered = page.evaluate(COVERED)
        if covered:
            problems.setdefault(name, {})["covered by a toolbar"] = covered
        shoot(page, name, size)
    context.close()
    assert not problems, "\n".join(f"{name}: {found}" for name, found in problems.items())


@pytest.mark.parametrize("first", ["overview", "queue"])
def test_the_home_page_answers_at_its_own_name_too(demo_server, page, first):
    """Opened by its name, first or after another page, the Overview shows, at "/" (no "Page not found")."""
    open_page(page, demo_server, first)
    page.goto(f"{demo_server}/overview")
    wait_idle(page)
    expect(page.locator("h1").first).to_have_text("Overview")
    page.wait_for_timeout(2000)
    assert page.get_by_text("Page not found").count() == 0
    assert page.url.split("?")[0] == f"{demo_server}/"


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
        for folder, file in ((SCREENSHOTS, "docs_uptime_timeline.png"), (DOCS_SCREENSHOTS, "uptime_timeline.png")):
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                chart.screenshot(path=str(folder / file))
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
    subprocess.run([sys.executable, "-m", "kb", "--db", str(db), "--now", "2026-11-02T10:00:00+08:00", "close-month",
                    "2026-10"], check=True, capture_output=True)  # the credits owed are those of closed months

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
        if row["month"] == "2026-10" and float(row["refund_amount"]) > 0:
            owed[row["month"], row["client_id"], row["currency"]] += float(row["refund_amount"])
    con = connection.connect(db, read_only=True)
    names = dict(con.execute("SELECT client_id, name FROM clients").fetchall())
    con.close()
    assert owed and decided

    with dashboard_server({"SUPPORT_DB": str(db), "SUPPORT_AS_OF": AS_OF}, log=tmp_path / "server.log") as base:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        open_page(page, base, "overview")
        words = {"enterprise": "Enterprise", "custom": "Custom program", "free": "Free"}
        by_tier = page.locator("[data-testid=stDataFrame]").filter(
            has=page.locator("[role=columnheader]", has_text="First response (target")).first  # by tier, then priority
        by_tier.scroll_into_view_if_needed()
        tiers = [" | ".join(c.strip() for c in row.locator("[role=gridcell]").all_text_contents())
                 for row in by_tier.locator("[role=row]").all()[1:]]
        for tier, (met, count) in decided.items():
            pct = 100 * met / count
            shown = math.floor(round(pct, 9) * 100) / 100  # two decimals, rounded down
            side = "meets" if pct >= 95 else "below"
            said = f"{shown:.2f} % · {met} of {count} met · {side} target"
            assert any(r.startswith(words[tier]) and said in r for r in tiers), (tier, said, tiers)
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
