"""Performance guards that count rather than time, so that they hold on any machine, however busy:

* on the bench's 100 000-case data set, no chart or table of any page sends the browser more than
  ``ROWS_SENT_LIMIT`` rows (``kb.tools.page_rows``);
* a page's cold render issues as many SQL statements on ten times the data: pages aggregate in SQL, they
  never query once per case, client or environment.

The statements are counted by DuckDB's own query log (``CALL enable_logging('QueryLog')``), which records
every statement of every connection to a database. The test holds a connection of its own to the file, so the
store the page opens shares its database and its log; the test's own statements are left out by its
connection id. Nothing in the product is hooked.

Every page is rendered as the local admin (no sign-in configured), who may see every page, and each test
checks that the page shown is the one asked for.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kb import navigation, ui
from kb.config import load_config
from kb.db import connection
from kb.engine.asof import case_rows
from kb.engine.calendar import clock_index, engine_calendars
from kb.engine.case_sla import case_sla_sql, deadlines_sql
from kb.engine.questions import case_questions_sql
from kb.timestamps import set_now
from kb.tools.generate import generate
from kb.tools.page_rows import ROWS_SENT_LIMIT, rows_sent
from tests.fixtures import ADMIN, PAGES, ROOT

CONFIG_FILE = ROOT / "support.toml"  # the bench's configuration
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)  # where every data set here ends, and the pages' "now" and as-of
TITLES = {page.name: page.title for pages in navigation.PAGES.values() for page in pages}


def generated(folder: Path, *, cases: int, environments: int) -> Path:
    """A store of ``cases`` generated cases on ``environments`` environments, three years up to NOW."""
    db = folder / f"generated-{cases}.duckdb"
    con = connection.connect(db)
    try:
        generate(con, load_config(CONFIG_FILE), ADMIN, cases=cases, environments=environments, years=3, seed=1,
                 until=NOW)
    finally:
        con.close()
    return db


@pytest.fixture(autouse=True)
def _now():
    """Now is NOW in every test (``tests/conftest.py`` puts the clock back after each)."""
    set_now(NOW)


def point_at(db: Path, monkeypatch) -> None:
    """Point the dashboard at ``db``, with the bench's configuration, frozen at NOW."""
    monkeypatch.setenv("SUPPORT_DB", str(db))
    monkeypatch.setenv("SUPPORT_CONFIG", str(CONFIG_FILE))
    monkeypatch.setenv("SUPPORT_AS_OF", NOW.isoformat())


def dashboard_on(db: Path) -> AppTest:
    """The dashboard's AppTest on ``db``, run once (a page can be switched to only after a first run). Each test
    points the dashboard at ``db`` again (``point_at``): the AppTest outlives the test's environment."""
    set_now(NOW)
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_at(db, monkeypatch)
        return AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=300).run()


def let_go_of_the_store() -> None:
    """Close the dashboard's open store and forget it: the next render opens it anew and builds its snapshot."""
    ui.app_for(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store.close()
    ui._open_app.clear()


def show(at: AppTest, page: str) -> AppTest:
    """Switch ``at`` to ``page`` and run it: no exception, and that page is the one shown."""
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, f"page {page} raised: {[e.message for e in at.exception]}"
    assert at.title and at.title[0].value == TITLES[page], f"page {page} was not shown (the local admin sees all)"
    return at


# --- rows sent per chart and table -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bench_set(tmp_path_factory) -> Iterator[tuple[Path, AppTest]]:
    """The bench's 100 000 cases on 500 environments over three years, and the dashboard on them."""
    db = generated(tmp_path_factory.mktemp("bench-set"), cases=100_000, environments=500)
    yield db, dashboard_on(db)
    ui._open_app.clear()  # release the file


@pytest.mark.parametrize("page", PAGES)
def test_no_chart_or_table_sends_more_than_the_limit_at_100_000_cases(bench_set, monkeypatch, page):
    db, at = bench_set
    point_at(db, monkeypatch)
    show(at, page)
    sent = rows_sent(at)
    assert sent <= ROWS_SENT_LIMIT, (f"page {page} sends {sent:,} rows in one chart or table at 100,000 cases "
                                     f"(at most {ROWS_SENT_LIMIT:,})")


# --- SQL statements per render -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_sizes(tmp_path_factory) -> list[tuple[Path, AppTest]]:
    """2 000 cases on 20 environments, and ten times both (so ten times the clients too), each with the
    dashboard on it, its store let go."""
    folder = tmp_path_factory.mktemp("two-sizes")
    sizes = []
    for cases, environments in ((2_000, 20), (20_000, 200)):
        db = generated(folder, cases=cases, environments=environments)
        sizes.append((db, dashboard_on(db)))
        with pytest.MonkeyPatch.context() as monkeypatch:
            point_at(db, monkeypatch)
            let_go_of_the_store()
    return sizes


@contextmanager
def statements_on(db: Path) -> Iterator[list[str]]:
    """The SQL statements every other connection to ``db`` issues inside the block, in order (filled when it
    ends), from DuckDB's query log."""
    observer = connection.connect(db)  # shares the database instance with the store's connection
    try:
        me = observer.execute("SELECT current_connection_id()").fetchall()[0][0]
        observer.execute("CALL truncate_duckdb_logs()")
        observer.execute("CALL enable_logging('QueryLog')")
        issued: list[str] = []
        try:
            yield issued
        finally:
            observer.execute("CALL disable_logging()")
        issued += [text for (text,) in observer.execute(
            "SELECT message FROM duckdb_logs WHERE type = 'QueryLog' AND connection_id <> ? ORDER BY timestamp",
            [me]).fetchall()]
    finally:
        observer.close()


def cold_statements(db: Path, at: AppTest, page: str, monkeypatch) -> list[str]:
    """The statements a cold render of ``page`` on ``db`` issues (opening the store, building its snapshot,
    the page's reads); the store is let go again after."""
    point_at(db, monkeypatch)
    try:
        with statements_on(db) as issued:
            show(at, page)
    finally:
        let_go_of_the_store()  # even when the page failed: the next render starts cold
    return issued


@pytest.mark.parametrize("page", PAGES)
def test_a_cold_render_issues_as_many_statements_on_ten_times_the_data(two_sizes, monkeypatch, page):
    """Left out of the count: ``attach_calendar``'s questions whether the calendars' lookup tables are in the
    catalog yet (``duckdb_schemas()``, ``kb/engine/calendar.py``). Each cold render opens the database anew, so
    the tables are made again, by whichever of the page's threads (its own, or the one computing uptime
    beside it) gets there first: a thread that finds them missing asks three times, one that finds them there
    once, so the count depends on the threads' timing, not on the data."""
    small, large = ([text for text in cold_statements(db, at, page, monkeypatch) if "duckdb_schemas()" not in text]
                    for db, at in two_sizes)
    assert small, f"page {page}: no statement was logged"
    if len(large) != len(small):
        pytest.fail(f"page {page} issues {len(small)} statements on 2,000 cases and {len(large)} on 20,000; "
                    f"the ones whose number differs:\n{differing(Counter(small), Counter(large))}")


def differing(small: Counter, large: Counter, most: int = 12) -> str:
    """The statements issued a different number of times on the two sets, one a line: '+180 × SELECT …' (more
    often on the larger), '-1 × …' (less often), the largest differences first."""
    changes = Counter({text: large[text] - small[text] for text in small | large if large[text] != small[text]})
    by_size = sorted(changes.items(), key=lambda item: -abs(item[1]))[:most]
    return "\n".join(f"{n:+} × {' '.join(text.split())[:160]}" for text, n in by_size)


def estimates(con, sql: str) -> list[tuple[int, str, str]]:
    """DuckDB's estimated rows of every operator of ``sql``'s plan, with the operator's name and the table it
    scans ('' for none)."""
    (_, plan), = con.execute("EXPLAIN (FORMAT json) " + sql).fetchall()

    def operators(node: dict) -> Iterator[dict]:
        yield node
        for child in node.get("children", []):
            yield from operators(child)
    return [(int(node["extra_info"]["Estimated Cardinality"]), node["name"], node["extra_info"].get("Table", ""))
            for root in json.loads(plan) for node in operators(root)
            if "Estimated Cardinality" in node.get("extra_info", {})]


def test_the_engine_plans_one_case_as_one_case(two_sizes):
    """After a write and for the confirmation, the engine's whole query runs for one case. DuckDB must see it as
    the few rows it is: when its estimate of a calendar lookup multiplies the case by a calendar's thousands of
    rows, it builds its hash joins on the lookup tables, not on the case (a third of the confirmation's time
    at a million cases). No operator's estimate may then exceed the largest scan of a stored table (the
    calendars' lookup tables, read whole, left out)."""
    db, _ = two_sizes[-1]
    config = load_config(CONFIG_FILE)
    lookups = {"business_days", "calendar_months", "calendars", *clock_index(engine_calendars(config), 2026, 2026)}
    con = connection.connect(db)
    try:
        cur = connection.cursor(con)
        (case_id,), = cur.execute("SELECT max(case_id) FROM cases").fetchall()
        case_rows(cur, config, NOW, [case_id])  # registers its case_questions, which case_sla reads
        for name, sql in (("case_questions", case_questions_sql), ("case_sla", case_sla_sql),
                          ("first response", deadlines_sql)):
            planned = estimates(cur, sql(config, NOW, [case_id]))
            stored = max(rows for rows, operator, table in planned
                         if operator.endswith("SCAN") and table and table.rpartition(".")[2] not in lookups)
            worst = max((rows, operator) for rows, operator, table in planned
                        if table.rpartition(".")[2] not in lookups)
            assert worst[0] <= stored, f"{name} of one case: {worst[1]} estimated at {worst[0]:,} rows"
    finally:
        con.close()
