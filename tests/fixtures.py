"""Shared helpers and constants of the tests: the rules' calendar, the page-test store frozen at AS_OF, the
AppTest helpers, the roles. Test modules import from here (and ``tests.servers``), never from each other;
the pytest fixtures that use these live in ``tests/conftest.py``."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
from streamlit.testing.v1 import AppTest

from kb.access import Actor
from kb.config import load_config, parse_config
from kb.db import connection
from kb.db.answers import answer
from kb.engine.asof import open_views
from kb.intake.importing import add_rows, staged_from_records
from kb.intake.validation import LAST_YEAR, TABLES
from kb.navigation import page_names

ROOT = Path(__file__).resolve().parent.parent

ADMIN = Actor("tests@example.com", "admin")

HKT = ZoneInfo("Asia/Hong_Kong")

# The the rules' calendar, with 2026-11-27 added as an extra holiday as in its examples.
SPEC_TOML = """
[calendar]
timezone = "Asia/Hong_Kong"
business_hours = ["09:00", "18:00"]
weekend = ["Sat", "Sun"]
holidays_country = "HK"
extra_holidays = ["2026-11-27"]
"""
SPEC_CONFIG = parse_config(tomllib.loads(SPEC_TOML))


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


# --- The page tests' store, frozen at a known instant ---------------------------------------------------

AS_OF = "2026-11-25T16:30:00+08:00"  # Wednesday, in the rules' calendar
PAGES = page_names()  # every page of the navigation, so a new page is in every every-page test


def build_fixture(folder: Path) -> tuple[Path, Path]:
    """A small store whose every number on the pages is known at AS_OF."""
    config_file = folder / "support.toml"
    config_file.write_text(SPEC_TOML)
    config = load_config(config_file)
    db = folder / "pages.duckdb"
    con = connection.connect(db)
    add(con, config, "clients", dict(client_id="ENT", name="Enterprise Co", tier="enterprise"),
        dict(client_id="CUS", name="Custom Co", tier="custom"), dict(client_id="FREE", name="Free User", tier="free"))
    add(con, config, "environments",
        dict(environment_id="E1", name="Enterprise prod", kind="dedicated", deployment="on_premise", client_id="ENT",
             active_from="2026-01-01"),
        dict(environment_id="S1", name="Shared", kind="shared", deployment="shared_cloud", active_from="2026-01-01"))
    add(con, config, "contracts", dict(contract_id="K1", client_id="ENT", environment_id="E1", uptime_target_pct="99.9",
                                       monthly_fee="1000", currency="USD", starts_on="2026-01-01"))
    add(con, config, "cases", *[
        dict(case_id=cid, client_id=client, received_at=received, category=category, subject=f"Subject of {cid}",
             first_response_at=response, assignee="amy")
        for cid, client, received, category, response in [
            ("MET", "ENT", "2026-11-24 10:00", "platform_issue", "2026-11-25 10:00"),
            ("LATE", "ENT", "2026-11-24 10:00", "platform_issue", "2026-11-25 10:00:01"),
            ("OVERDUE", "ENT", "2026-11-24 10:00", "platform_issue", ""),
            ("RISK", "ENT", "2026-11-24 18:30", "api_help", ""),
            ("PENDING", "CUS", "2026-11-25 14:00", "platform_issue", ""),
            ("CODING", "FREE", "2026-11-20 10:00", "general_coding", ""),
        ]
    ])
    add(con, config, "incidents",
        dict(incident_id="I1", environment_id="E1", impact="outage", started_at="2026-10-10 10:00",
             ended_at="2026-10-10 11:00", summary="October outage"),
        dict(incident_id="I2", environment_id="E1", impact="outage", started_at="2026-11-20 10:00",
             ended_at="2026-11-20 10:10", summary="November blip"))
    con.close()
    return db, config_file


GOLD_POLICY = [("gold", "first_response", "urgent", "4h", "24x7"), ("gold", "first_response", "*", "1d", "support"),
               ("gold", "resolution", "*", "2d", "support"), ("gold", "next_response", "*", "1d", "support")]


def build_gold_fixture(folder: Path) -> tuple[Path, Path]:
    """The page tests' store with ENT's contract naming the policy ``gold`` (``GOLD_POLICY``: first response
    within 4 hours around the clock when urgent, else 1 business day; resolution within 2 business days;
    follow-ups within 1 business day) and, at AS_OF (Wed 2026-11-25 16:30):

    * first responses due in November: MET, FIXED and SLOW met; LATE and OVERDUE breached (3 of 5);
    * resolutions: FIXED (received Mon 11-02 10:00, due Wed 11-04 10:00) resolved Tue 11-03, met; SLOW resolved
      Fri 11-06, breached (1 of 2); the open cases' run to Thu 11-26 (pending), but RISK's, paused since Wed
      12:00 (waiting on the client);
    * follow-ups: FIXED's question of Mon 11-02 15:00 answered Tue 09:30, met; SLOW's of Mon 16:00 answered
      Wed 11-04 10:00, breached, and of Wed 11:00 answered Thu 11-05 10:00, met (2 of 3); MET's of Wed 11-25
      11:00 still open, due Thu 11:00;
    * URGENT, received Wed 15:00, its first response due Wed 19:00 around the clock (pending).
    """
    db, config_file = build_fixture(folder)
    config = load_config(config_file)
    con = connection.connect(db)
    con.executemany("INSERT INTO policies (policy_id, metric, priority, within, calendar) VALUES (?, ?, ?, ?, ?)",
                    GOLD_POLICY)
    con.execute("UPDATE contracts SET policy_id = 'gold' WHERE contract_id = 'K1'")
    add(con, config, "cases", *[
        dict(case_id=cid, client_id="ENT", received_at=received, category="platform_issue",
             subject=f"Subject of {cid}", first_response_at=response, resolved_at=resolved, assignee="amy")
        for cid, received, response, resolved in [
            ("FIXED", "2026-11-02 10:00", "2026-11-02 11:00", "2026-11-03 10:00"),
            ("SLOW", "2026-11-02 10:00", "2026-11-02 11:00", "2026-11-06 10:00"),
            ("URGENT", "2026-11-25 15:00", "", ""),
        ]
    ])
    con.execute("UPDATE cases SET priority = 'urgent' WHERE case_id = 'URGENT'")
    con.execute("INSERT INTO pauses (case_id, paused_at) VALUES ('RISK', ?)", [local("2026-11-25 12:00")])
    thread = [("FIXED", "2026-11-02 10:00", False), ("FIXED", "2026-11-02 11:00", True),
              ("FIXED", "2026-11-02 15:00", False), ("FIXED", "2026-11-03 09:30", True),
              ("SLOW", "2026-11-02 10:00", False), ("SLOW", "2026-11-02 11:00", True),
              ("SLOW", "2026-11-02 16:00", False), ("SLOW", "2026-11-04 10:00", True),
              ("SLOW", "2026-11-04 11:00", False), ("SLOW", "2026-11-05 10:00", True),
              ("MET", "2026-11-24 10:00", False), ("MET", "2026-11-25 10:00", True),
              ("MET", "2026-11-25 11:00", False)]
    con.executemany("INSERT INTO messages (message_key, case_id, is_team, is_automatic, received_at, taken_at, source) "
                    "VALUES (?, ?, ?, false, ?, now(), 'import')",
                    [(f"{case_id}:{at}", case_id, team, local(at)) for case_id, at, team in thread])
    answer(con)
    con.close()
    return db, config_file


def add_policy_targets(db: Path, config_file: Path) -> None:
    """To the page tests' store: the custom-programme client Gold Co on policy ``gold`` (first response and
    follow-ups within 1 business day, resolution within 2) with a resolution target of 50 % (``[sla]``), whose
    every target is known at AS_OF:

    * G1 (normal): received Mon 2026-11-16 10:00, answered 11:00, resolved Tue 10:00 (due Wed 10:00: met);
      client questions Mon 13:00 (answered 14:00: met) and Tue 09:30 (answered 10:00: met).
    * G2 (high): received Mon 10:00, answered 12:00, resolved Thu 12:00 (due Wed 10:00: breached); its
      question of Mon 13:00 answered Wed 15:00 (due Tue 13:00: breached).
    * G3 (normal): received Tue 2026-11-24 10:00, answered 11:00, waiting on the client since 12:00.

    With the fixture's cases, in November: first responses 4 of 6 met (3 of 3 for Gold Co, custom), follow-ups
    2 of 3, resolutions 1 of 2; open cases breached, at risk, pending and waiting on the client: one each."""
    config_file.write_text(config_file.read_text() + "\n[sla]\nresolution_target_pct = 50\n")
    config = load_config(config_file)
    con = connection.connect(db)
    add(con, config, "clients", dict(client_id="GOLD", name="Gold Co", tier="custom"))
    add(con, config, "environments", dict(environment_id="G1", name="Gold prod", kind="dedicated",
                                          deployment="dedicated_cloud", client_id="GOLD", active_from="2026-01-01"))
    con.executemany("INSERT INTO policies (policy_id, metric, priority, within) VALUES ('gold', ?, '*', ?)",
                    [("first_response", "1d"), ("next_response", "1d"), ("resolution", "2d")])
    con.execute("INSERT INTO contracts (contract_id, client_id, environment_id, monthly_fee, currency, starts_on, "
                "policy_id) VALUES ('KG', 'GOLD', 'G1', 100, 'USD', DATE '2026-01-01', 'gold')")
    add(con, config, "cases", *[
        dict(case_id=cid, client_id="GOLD", received_at=received, category="platform_issue", subject=cid,
             first_response_at=answered, resolved_at=resolved, assignee="bo")
        for cid, received, answered, resolved in [("G1", "2026-11-16 10:00", "2026-11-16 11:00", "2026-11-17 10:00"),
                                                  ("G2", "2026-11-16 10:00", "2026-11-16 12:00", "2026-11-19 12:00"),
                                                  ("G3", "2026-11-24 10:00", "2026-11-24 11:00", "")]])
    con.execute("UPDATE cases SET priority = 'high' WHERE case_id = 'G2'")
    messages = [("G1", "2026-11-16 13:00", False), ("G1", "2026-11-16 14:00", True), ("G1", "2026-11-17 09:30", False),
                ("G1", "2026-11-17 10:00", True), ("G2", "2026-11-16 13:00", False), ("G2", "2026-11-18 15:00", True)]
    con.executemany("INSERT INTO messages (message_key, case_id, is_team, is_automatic, received_at, taken_at, "
                    "source) VALUES (?, ?, ?, false, ?, now(), 'import')",
                    [(f"{cid}:{at}", cid, team, local(at)) for cid, at, team in messages])
    answer(con)
    con.execute("INSERT INTO pauses (case_id, paused_at) VALUES ('G3', ?)", [local("2026-11-24 12:00")])
    con.close()


# --- AppTest helpers ------------------------------------------------------------------------------------

@contextmanager
def app_on(db: Path, config_file: Path, monkeypatch) -> Iterator[AppTest]:
    """The dashboard as AppTest on ``db`` and ``config_file``, frozen at AS_OF; the store let go after."""
    monkeypatch.setenv("SUPPORT_DB", str(db))
    monkeypatch.setenv("SUPPORT_CONFIG", str(config_file))
    monkeypatch.setenv("SUPPORT_AS_OF", AS_OF)
    try:
        yield AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
    finally:
        from kb import ui

        ui._open_app.clear()


def open_page(at: AppTest, name: str) -> AppTest:
    at.switch_page(f"pages/{name}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def query(sql: str, params=None):
    """Rows from the store the app under test holds (one process may hold the file once)."""
    from kb import ui

    app = ui._open_app(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"])
    return app.store.query(sql, params)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def text_labels(spec: dict) -> list[str]:
    """The texts a layered chart writes on itself (a target line's label), without their white outlines."""
    return [layer["encoding"]["text"]["value"] for layer in spec["layer"]
            if "text" in layer.get("encoding", {}) and layer["mark"].get("stroke") != "white"]


def chart_rows(at: AppTest, index: int = 0) -> list[dict]:
    """The rows a chart was sent (Streamlit ships them beside the spec, as Arrow)."""
    chart = at.get("vega_lite_chart")[index]
    tables = [pa.ipc.open_stream(d.data.data).read_all() for d in chart.proto.datasets]
    return [row for table in tables for row in table.to_pylist()]


def table_with(at: AppTest, column: str):
    """The first dataframe on the page that has ``column``."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def fill_case(at: AppTest, subject: str, client: str = "ENT", day=date(2026, 11, 25), clock=time(11, 0)) -> None:
    at.selectbox(key="case_client").select(client)
    at.selectbox(key="case_category").select("platform_issue")
    at.text_input(key="case_subject").input(subject)
    at.date_input(key="case_received_day").set_value(day)
    at.time_input(key="case_received_time").set_value(clock)


# --- Sign-in and roles ----------------------------------------------------------------------------------

ROLES = """
[roles]
viewer = ["@board.example"]
staff = ["sam@support.example"]
lead = ["lee@support.example"]
admin = ["ada@support.example"]
"""

AUTH = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": "a-cookie-secret-for-these-tests-only-0123456789",
        "client_id": "support-sla", "client_secret": "secret",
        "server_metadata_url": "http://127.0.0.1:9400/.well-known/openid-configuration"}


def signed_in_as(email: str | None, *, auth: dict | None = AUTH, **claims) -> AppTest:
    """The dashboard's AppTest (not run yet) with sign-in configured, signed in as ``email`` (None: signed out);
    ``claims`` add to or change the user's; ``auth`` is the ``[auth]`` section it is given (None: none, the
    secrets files decide)."""
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
    if auth is not None:
        at.secrets["auth"] = auth
    issued = int(datetime.now(UTC).timestamp())
    at.user = {"is_logged_in": email is not None,
               **({"email": email, "email_verified": True, "iat": issued} if email else {}), **claims}
    return at


def table_counts(db: Path) -> dict[str, int]:
    """Rows per table of the data contract, and of the audit trail, in the database at ``db``."""
    con = connection.connect(db, read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in [*TABLES, "audit_log"]}
    finally:
        con.close()
