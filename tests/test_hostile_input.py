"""Hostile and careless input, table by table: every value is either stored verbatim or refused with a
message naming the line and field, and a refusal writes nothing. Then files that are not what they
should be, as the database or the configuration: a clear message at start, never a traceback, never a
changed file."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import sqlite3
import string
import subprocess
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from kb.cli import main
from kb.db import connection
from kb.intake.importing import Rejected
from kb.intake.validation import TABLES
from kb.intake.writes import close_incident, log_case, log_incident, record_response, resolve_case
from kb.timestamps import set_now
from kb.ui import plain
from tests.fixtures import (
    ADMIN,
    AS_OF,
    ROOT,
    SPEC_CONFIG,
    add,
    button,
    fill_case,
    open_page,
    query,
    shown,
    table_counts,
    table_with,
)

TOML = """
[calendar]
timezone = "Asia/Hong_Kong"
holidays_country = "HK"
extra_holidays = ["2026-11-27"]
"""

HKT_15 = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)  # 2026-11-20 15:00 in Hong Kong

HOSTILE_TEXT = {
    "sql": "'; DROP TABLE cases; --",
    "sql-2": "Robert'); DELETE FROM clients WHERE ('1'='1",
    "script": "<script>alert(1)</script>",
    "img": "<img src=x onerror=alert(1)>",
    "markdown": "![x](https://tracker.example/p.png) [click](javascript:alert(1)) **bold** :red[x] $x^2$ # h",
    "rtl": "\u202eexe.pdf\u202c and \u200fright-to-left mark",
    "emoji": "🔥🚀 中文 עברית 👨‍👩‍👧 e\u0301",
    "controls": "bell\x07 esc\x1b[31m tab\t vt\x0b ff\x0c del\x7f",
    "newlines": "line one\r\nline two\nline three",
    "spaces": "  leading and trailing  ",
    "quotes": 'He said "it\'s", then, left',
    "100k": "x" * 99_990 + "<b>end</b>",
}

# A new row for each table: its key is NEW, every required cell valid.
NEW_ROW = {
    "cases": {"case_id": "NEW", "client_id": "ENT", "received_at": "2026-11-20 15:00", "category": "api_help",
              "subject": "Fine"},
    "incidents": {"incident_id": "NEW", "environment_id": "E1", "impact": "outage",
                  "started_at": "2026-11-20 15:00", "ended_at": "2026-11-20 16:00"},
    "clients": {"client_id": "NEW", "name": "New Co", "tier": "free"},
    "environments": {"environment_id": "NEW", "name": "New env", "kind": "shared", "deployment": "shared_cloud",
                     "active_from": "2026-01-01"},
    "contracts": {"contract_id": "NEW", "client_id": "ENT", "environment_id": "E1", "monthly_fee": "100",
                  "currency": "USD", "starts_on": "2026-01-01"},
}
TEXT_FIELDS = [(table, c.name) for table in NEW_ROW for c in TABLES[table] if c.kind == "text"]
KEYS = {table: columns[0].name for table, columns in TABLES.items()}


def csv_text(*rows: dict) -> str:
    names = list(dict.fromkeys(name for row in rows for name in row))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    writer.writerows([row.get(name, "") for name in names] for row in rows)
    return out.getvalue()


def new(table: str, **cells) -> str:
    return csv_text({**NEW_ROW[table], **cells})


@pytest.fixture(scope="module")
def base_db(tmp_path_factory) -> Path:
    """Clients, environments, a contract, a case and an incident, to refer to and collide with."""
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "support.toml").write_text(TOML)
    for table, text in [
        ("clients", "client_id,name,tier\nENT,Enterprise Co,enterprise\nFREE,Free User,free\n"),
        ("environments", "environment_id,name,kind,deployment,client_id,active_from\n"
                         "E1,Prod,dedicated,on_premise,ENT,2026-01-01\nS1,Shared,shared,shared_cloud,,2026-01-01\n"),
        ("contracts", "contract_id,client_id,environment_id,monthly_fee,currency,starts_on\n"
                      "K1,ENT,E1,1000,USD,2026-01-01\n"),
        ("cases", "case_id,client_id,received_at,category,subject\nC0,ENT,2026-11-20 15:00,api_help,Earlier\n"),
        ("incidents", "incident_id,environment_id,impact,started_at,ended_at\n"
                      "I0,E1,outage,2026-11-03 10:00,2026-11-03 10:30\n"),
    ]:
        (folder / f"{table}.csv").write_text(text)
        assert main(["import", table, str(folder / f"{table}.csv"), "--db", str(folder / "base.duckdb"),
                     "--config", str(folder / "support.toml")]) == 0
    return folder / "base.duckdb"


@pytest.fixture
def cli(base_db, tmp_path, capsys):
    """Import a file into a fresh copy of the base store: (exit code, stderr, counts before, counts after)."""
    db = tmp_path / "s.duckdb"
    shutil.copy(base_db, db)
    (tmp_path / "support.toml").write_text(TOML)

    def run(table: str, data: str | bytes):
        path = tmp_path / "input.csv"
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        before = table_counts(db)
        capsys.readouterr()
        code = main(["import", table, str(path), "--db", str(db), "--config", str(tmp_path / "support.toml")])
        err = capsys.readouterr().err
        return code, err, before, table_counts(db)

    run.db = db
    return run


def stored(db: Path, table: str, key: str) -> dict:
    con = connection.connect(db, read_only=True)
    try:
        cursor = con.execute(f"SELECT * FROM {table} WHERE {KEYS[table]} = ?", [key])
        rows = cursor.fetchall()
        assert len(rows) == 1, f"{table} {key!r}: {len(rows)} rows"
        return dict(zip([d[0] for d in cursor.description], rows[0], strict=True))
    finally:
        con.close()


def assert_rejected(result, *messages: str) -> None:
    code, err, before, after = result
    assert code == 1, err
    for message in messages:
        assert message in err, f"{message!r} not in:\n{err}"
    assert "nothing was written" in err
    assert "Traceback" not in err
    assert after == before


# --- Free text through the CSV import: every text field of every table, verbatim -------------------------

@pytest.mark.parametrize("value", HOSTILE_TEXT.values(), ids=HOSTILE_TEXT.keys())
@pytest.mark.parametrize(("table", "column"), TEXT_FIELDS, ids=[f"{t}.{c}" for t, c in TEXT_FIELDS])
def test_free_text_is_stored_verbatim(cli, table, column, value):
    code, err, before, after = cli(table, new(table, **{column: value}))
    assert code == 0, err
    assert stored(cli.db, table, "NEW")[column] == value
    assert after[table] == before[table] + 1


ONE_LINE = {name: value for name, value in HOSTILE_TEXT.items() if "\n" not in value}


@pytest.mark.parametrize("value", ONE_LINE.values(), ids=ONE_LINE.keys())
def test_hostile_ids_are_refused(cli, value):
    """SPEC 8: an id is 1–64 characters of A–Z a–z 0–9 . _ - @ + : — hostile text never becomes one."""
    assert_rejected(cli("clients", csv_text({"client_id": value, "name": "Odd id", "tier": "free"})),
                    "line 2, client_id: ", "is not an id", "an id is 1–64 characters")
    assert_rejected(cli("cases", new("cases", case_id=value)), "line 2, case_id: ", "is not an id")


# --- Everything else through the CSV import: (table, file, expected) ------------------------------------

def Stored(key: str = "NEW", **columns):  # noqa: N802 (reads as a table cell)
    return ("stored", key, columns)


def Refused(*messages: str):  # noqa: N802
    return ("refused", messages)


CSV_CASES = {
    # empty and blank
    "empty subject": ("cases", new("cases", subject=""), Refused("line 2, subject: is empty")),
    "blank subject": ("cases", new("cases", subject=" \t "), Refused("line 2, subject: is empty")),
    "unicode-blank subject": ("cases", new("cases", subject="\u00a0\u3000\u200b\ufeff\u202e"),
                              Refused("line 2, subject: is empty")),
    "blank requester is no requester": ("cases", new("cases", requester="   "), Stored(requester=None)),
    "empty client": ("cases", new("cases", client_id=" "), Refused("line 2, client_id: is empty")),
    "empty key": ("clients", csv_text({"client_id": "", "name": "x", "tier": "free"}),
                  Refused("line 2, client_id: is empty")),
    "NUL in subject": ("cases", new("cases", subject="a\x00b"),
                       Refused("line 2, subject: contains a NUL character")),
    "NUL in id": ("clients", csv_text({"client_id": "A\x00", "name": "x", "tier": "free"}),
                  Refused("line 2, client_id: contains a NUL character")),
    "NUL in timestamp": ("cases", new("cases", received_at="2026-11-20\x00"),
                         Refused("line 2, received_at: contains a NUL character")),
    # instants and dates
    "local time": ("cases", new("cases", received_at="2026-11-20 15:00"), Stored(received_at=HKT_15)),
    "UTC": ("cases", new("cases", received_at="2026-11-20T07:00:00Z"), Stored(received_at=HKT_15)),
    "another zone": ("cases", new("cases", received_at="2026-11-20T16:00:00+09:00"), Stored(received_at=HKT_15)),
    "a date for an instant": ("cases", new("cases", received_at="2026-11-20"),
                              Stored(received_at=datetime(2026, 11, 19, 16, 0, tzinfo=UTC))),
    "far past": ("cases", new("cases", received_at="1900-01-01 00:00"),
                 Refused("line 2, received_at: '1900-01-01 00:00' is outside 1970–2200")),
    "far future": ("cases", new("cases", received_at="9999-12-31 23:59"),
                   Refused("line 2, received_at: '9999-12-31 23:59' is outside 1970–2200")),
    "infinity": ("incidents", new("incidents", ended_at="infinity"),
                 Refused("line 2, ended_at: 'infinity' is not an ISO 8601 timestamp")),
    "far future end": ("incidents", new("incidents", ended_at="2300-01-01 00:00"),
                       Refused("line 2, ended_at: '2300-01-01 00:00' is outside 1970–2200")),
    "far past date": ("environments", new("environments", active_from="0001-01-01"),
                      Refused("line 2, active_from: '0001-01-01' is outside 1970–2200")),
    "far future date": ("contracts", new("contracts", ends_on="9999-12-01"),
                        Refused("line 2, ends_on: '9999-12-01' is outside 1970–2200")),
    # the clock: nothing that happened can be dated after now; only maintenance is scheduled ahead
    "received in the future": ("cases", new("cases", received_at="2199-01-01 10:00"),
                               Refused("line 2, received_at: is in the future (Tue 2199-01-01 10:00:00 (UTC+08:00)"
                                   "; now is")),
    "answered in the future": ("cases", new("cases", first_response_at="2199-01-01 10:00"),
                               Refused("line 2, first_response_at: is in the future")),
    "resolved in the future": ("cases", new("cases", resolved_at="2199-01-01 10:00"),
                               Refused("line 2, resolved_at: is in the future")),
    "outage in the future": ("incidents", new("incidents", started_at="2199-01-01 10:00", ended_at=""),
                             Refused("line 2, started_at: is in the future")),
    "outage ending in the future": ("incidents", new("incidents", ended_at="2199-01-01 10:00"),
                                    Refused("line 2, ended_at: is in the future")),
    "maintenance scheduled ahead": ("incidents", new("incidents", impact="maintenance", started_at="2199-01-01 02:00",
                                                     ended_at="2199-01-01 04:00"),
                                    Stored(started_at=datetime(2198, 12, 31, 18, 0, tzinfo=UTC))),
    "not a timestamp": ("cases", new("cases", received_at="20/11/2026 3pm"),
                        Refused("line 2, received_at: '20/11/2026 3pm' is not an ISO 8601 timestamp")),
    "no such day": ("cases", new("cases", received_at="2026-02-30 10:00"),
                    Refused("line 2, received_at: '2026-02-30 10:00' is not a real date and time")),
    "not a date": ("environments", new("environments", active_from="next week"), Refused("is not an ISO date")),
    "incident ends before it starts": ("incidents", new("incidents", ended_at="2026-11-20 14:59"),
                                       Refused("line 2, ended_at: is before the incident started")),
    "answered before received": ("cases", new("cases", first_response_at="2026-11-20T06:59:59Z"),
                                 Refused("line 2, first_response_at: is before the case was received")),
    "resolved before received": ("cases", new("cases", resolved_at="2026-11-19 15:00"),
                                 Refused("line 2, resolved_at: is before the case was received")),
    "contract ends before it starts": ("contracts", new("contracts", starts_on="2026-03-01", ends_on="2026-02-01"),
                                       Refused("line 2, ends_on: is before the contract starts")),
    # ids and enums
    "unknown client": ("cases", new("cases", client_id="NOPE"), Refused("line 2, client_id: no client 'NOPE'")),
    "unknown environment": ("incidents", new("incidents", environment_id="E9"),
                            Refused("line 2, environment_id: no environment 'E9'")),
    "id differing only in case": ("cases", new("cases", client_id="ent"), Refused("no client 'ent'")),
    "wrong category": ("cases", new("cases", category="Platform_Issue"),
                       Refused("line 2, category: 'Platform_Issue' is not one of platform_issue, api_help")),
    "wrong impact": ("incidents", new("incidents", impact="down"), Refused("line 2, impact: 'down' is not one of")),
    "wrong tier": ("clients", new("clients", tier="<b>gold</b>"), Refused("line 2, tier: '<b>gold</b>' is not one of")),
    "wrong kind": ("environments", new("environments", kind="DROP TABLE"), Refused("kind: 'DROP TABLE' is not one")),
    "enum with control characters": ("cases", new("cases", category="api_help\x1b[2J"),
                                     Refused("line 2, category: 'api_help\ufffd[2J' is not one of")),
    "existing id": ("cases", new("cases", case_id="C0"), Refused("line 2, case_id: 'C0' already exists")),
    "existing id with spaces": ("cases", new("cases", case_id="  C0 "), Refused("line 2, case_id: 'C0' already")),
    "duplicate ids": ("cases", csv_text({**NEW_ROW["cases"]}, {**NEW_ROW["cases"], "subject": "again"}),
                      Refused("line 2, case_id: 'NEW' appears more than once", "line 3, case_id: 'NEW' appears")),
    "one bad row of three": ("cases", csv_text({**NEW_ROW["cases"], "case_id": "A"},
                                               {**NEW_ROW["cases"], "case_id": "B", "client_id": "NOPE"},
                                               {**NEW_ROW["cases"], "case_id": "C"}),
                             Refused("line 3, client_id: no client 'NOPE'")),
    "negative fee": ("contracts", new("contracts", monthly_fee="-1"), Refused("monthly_fee: '-1' is not an amount")),
    "currency as SQL": ("contracts", new("contracts", currency="'; --"), Refused("currency: ''; --' is not a three")),
    # the file itself
    "missing column": ("cases", "case_id,client_id,received_at,category\nNEW,ENT,2026-11-20 15:00,api_help\n",
                       Refused("line 1, subject: missing column")),
    "extra column": ("cases", new("cases").replace("subject\n", "subject,colour\n").replace("Fine\n", "Fine,red\n"),
                     Refused("line 1, colour: unknown column")),
    "column twice": ("clients", "client_id,name,name,tier\nX,a,b,free\n",
                     Refused("line 1, name: column appears twice")),
    "short row": ("clients", "client_id,name,tier\nX,Only two\n", Refused("line 2: has 2 cells, the header has 3")),
    "long row": ("clients", "client_id,name,tier\nX,a,free,extra\n", Refused("line 2: has 4 cells")),
    "unclosed quote": ("clients", 'client_id,name,tier\nX,"open,free\nY,b,free\n', Refused("line 2")),
    "empty file": ("clients", "", Refused("the file is empty")),
    "header only": ("clients", "client_id,name,tier\n", Refused("there are no rows to add")),
    "BOM": ("clients", "\ufeffclient_id,name,tier\nNEW,Café,free\n", Stored(name="Café")),
    "Windows line endings": ("clients", "client_id,name,tier\r\nNEW,Crème,free\r\n", Stored(name="Crème")),
    "BOM and CRLF and a quoted CRLF": ("clients", '\ufeffclient_id,name,tier\r\nNEW,"two\r\nlines",free\r\n',
                                       Stored(name="two\r\nlines")),
    "blank lines between rows": ("clients", "client_id,name,tier\n\nNEW,n,free\n\n", Stored(name="n")),
    "latin-1": ("clients", "client_id,name,tier\nX,Plain,free\nNEW,Café Crème,free\n".encode("latin-1"),
                Refused("line 3: is not UTF-8 text (byte 0xe9)")),
    "UTF-16": ("clients", "client_id,name,tier\nNEW,n,free\n".encode("utf-16"), Refused("line 1: is not UTF-8 text")),
    "binary": ("clients", bytes(range(256)) * 4, Refused("is not UTF-8 text")),
    "subject over the CSV field limit": ("cases", new("cases", subject="y" * 200_000),
                                         Refused("line 2: is not valid CSV: field larger than field limit")),
}


@pytest.mark.parametrize(("table", "data", "expected"), CSV_CASES.values(), ids=CSV_CASES.keys())
def test_csv_import(cli, table, data, expected):
    result = cli(table, data)
    if expected[0] == "refused":
        assert_rejected(result, *expected[1])
    else:
        code, err, before, after = result
        assert code == 0, err
        _, key, columns = expected
        row = stored(cli.db, table, key)
        assert {c: row[c] for c in columns} == columns
        assert after[table] == before[table] + 1


def test_a_problem_is_quoted_without_control_or_direction_characters(cli):
    code, err, _, _ = cli("cases", new("cases", category="\u202ex\x1b]0;pwned\x07\n"))
    assert code == 1
    assert "category: '\ufffdx\ufffd]0;pwned\ufffd' is not one of" in err
    assert not any(c in err for c in "\x1b\x07\u202e")


# --- The forms ----------------------------------------------------------------------------------------

WIDGET_REFUSES = "the date picker keeps to ten years either side of today"
FORM_TEXT = {name: HOSTILE_TEXT[name] for name in ("sql", "script", "img", "markdown", "rtl", "emoji", "controls",
                                                   "spaces", "100k")}
CASE_FORM = [
    *[("case_subject", "subject", value, None) for value in FORM_TEXT.values()],
    ("case_requester", "requester", HOSTILE_TEXT["sql-2"], None),
    ("case_subject", "subject", "", "is empty"),
    ("case_subject", "subject", " \t ", "is empty"),
    ("case_subject", "subject", "\u00a0\u200b", "is empty"),
    ("case_subject", "subject", "bad\x00byte", "contains a NUL character"),
    ("case_requester", "requester", "\x00", "contains a NUL character"),
    ("case_received_day", "received_at", date(1900, 1, 1), WIDGET_REFUSES),
    ("case_received_day", "received_at", date(9999, 12, 31), WIDGET_REFUSES),
    ("case_response_day", "first_response_at", date(2026, 11, 24), "is before the case was received"),
]


@pytest.mark.parametrize(("key", "column", "value", "message"), CASE_FORM,
                         ids=[f"{k}-{i}" for i, (k, *_) in enumerate(CASE_FORM)])
def test_log_case_form(app, key, column, value, message):
    at, _ = app
    open_page(at, "log_case")
    fill_case(at, "A subject")
    if key == "case_response_day":
        at.checkbox(key="case_responded").check()
    if isinstance(value, date):
        at.date_input(key=key).set_value(value)
    else:
        at.text_input(key=key).input(value)
    button(at, "Log case").click().run()
    assert not at.exception, [e.message for e in at.exception]
    if message == WIDGET_REFUSES:
        assert at.date_input(key=key).value != value
        assert query(f"SELECT count(*) AS n FROM cases WHERE year({column}) = {value.year}").n[0] == 0
    elif message:
        assert any(message in shown(e) for e in at.error), [shown(e) for e in at.error]
        assert not at.success
        assert query("SELECT count(*) AS n FROM cases").n[0] == 6
        assert query("SELECT count(*) AS n FROM audit_log WHERE table_name = 'cases'").n[0] == 1  # the fixture's
    else:
        assert at.success, [shown(e) for e in at.error]
        assert query(f"SELECT {column} FROM cases WHERE case_id = 'CS-00001'").iloc[0, 0] == value


@pytest.mark.parametrize("name", [HOSTILE_TEXT["img"], HOSTILE_TEXT["sql-2"], "Zed Typo"],
                         ids=["img", "sql-2", "typo"])
def test_log_case_assigns_only_to_the_team(app, name):
    """The Assignee is picked from the team, as on the Queue; a name not on it (hostile, or a typo) is refused
    by the write behind the form, stores nothing, and never joins the team."""
    at, _ = app
    open_page(at, "log_case")
    box = at.selectbox(key="case_assignee")
    assert box.options == ["(unassigned)", "amy"] and box.value == ""  # the fixture's team: whoever has a case
    fill_case(at, "A subject")
    box.select("amy")
    button(at, "Log case").click().run()
    assert query("SELECT assignee FROM cases WHERE case_id = 'CS-00001'").assignee[0] == "amy"
    from kb import ui

    store = ui._open_app(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store
    fields = {"client_id": "ENT", "category": "api_help", "subject": "Typed a name", "assignee": name,
              "received_at": "2026-11-25 11:00"}
    with pytest.raises(Rejected, match=r"assignee: .* is not on the team"):
        store.write(log_case, store.config, ADMIN, fields)
    assert query("SELECT count(*) AS n FROM cases").n[0] == 7
    assert query("SELECT count(*) AS n FROM cases WHERE assignee NOT IN ('amy')").n[0] == 0
    open_page(at, "log_case")
    assert at.selectbox(key="case_assignee").options == ["(unassigned)", "amy"]


INCIDENT_FORM = [
    *[("inc_summary", value, None) for value in FORM_TEXT.values()],
    ("inc_summary", "\x00", "contains a NUL character"),
    ("inc_start_day", date(1969, 12, 31), WIDGET_REFUSES),
    ("inc_end_day", date(2201, 1, 1), WIDGET_REFUSES),
    ("inc_end_day", date(2026, 11, 24), "is before the incident started"),
]


@pytest.mark.parametrize(("key", "value", "message"), INCIDENT_FORM,
                         ids=[f"{k}-{i}" for i, (k, *_) in enumerate(INCIDENT_FORM)])
def test_log_incident_form(app, key, value, message):
    at, _ = app
    open_page(at, "log_incident")
    at.selectbox(key="inc_environment").select("E1")
    at.date_input(key="inc_start_day").set_value(date(2026, 11, 25))
    at.time_input(key="inc_start_time").set_value(time(15, 0))
    if key == "inc_end_day":
        at.checkbox(key="inc_ongoing").uncheck().run()  # the end shows once it is not ongoing
        at.time_input(key="inc_end_time").set_value(time(16, 0))
    if isinstance(value, date):
        at.date_input(key=key).set_value(value)
    else:
        at.text_area(key=key).input(value)
    button(at, "Log incident").click().run()
    assert not at.exception, [e.message for e in at.exception]
    if message == WIDGET_REFUSES:
        assert at.date_input(key=key).value != value
        assert query(f"SELECT count(*) AS n FROM incidents WHERE year(started_at) = {value.year} "
                     f"OR year(ended_at) = {value.year}").n[0] == 0
    elif message:
        assert any(message in shown(e) for e in at.error), [shown(e) for e in at.error]
        assert query("SELECT count(*) AS n FROM incidents").n[0] == 2
    else:
        assert at.success, [shown(e) for e in at.error]
        summary = query("SELECT summary FROM incidents WHERE incident_id = 'INC-00001'").summary[0]
        assert summary == (value if value.strip() else None)


@pytest.mark.parametrize(("write", "fields", "column"), [
    (log_case, {"received_at": "1900-01-01T11:00:00+08:00"}, "received_at"),
    (log_case, {"received_at": "9999-12-31T11:00:00+08:00"}, "received_at"),
    (log_case, {"first_response_at": "2300-01-01T00:00:00+08:00"}, "first_response_at"),
    (log_incident, {"started_at": "1969-12-31T23:59:00+08:00"}, "started_at"),
    (log_incident, {"ended_at": "2201-01-01T00:00:00+08:00"}, "ended_at"),
])
def test_what_the_forms_write_refuses_far_dates(con, write, fields, column):
    """The date pickers stop far dates; the writes behind them refuse them as well, once (a date
    outside the calendar's years is not also reported as being in the future)."""
    add(con, SPEC_CONFIG, "clients", dict(client_id="ENT", name="Ent", tier="enterprise"))
    add(con, SPEC_CONFIG, "environments", dict(environment_id="E1", name="Prod", kind="dedicated",
                                               deployment="on_premise", client_id="ENT", active_from="2026-01-01"))
    base = ({"client_id": "ENT", "category": "api_help", "subject": "s", "received_at": "2026-11-20T15:00:00+08:00"}
            if write is log_case else
            {"environment_id": "E1", "impact": "outage", "started_at": "2026-11-20T15:00:00+08:00"})
    with pytest.raises(Rejected) as refused:
        write(con, SPEC_CONFIG, ADMIN, {**base, **fields})
    expected = "is outside 1970–2200"
    assert [(p.column, expected in p.reason) for p in refused.value.problems] == [(column, True)]
    assert con.execute("SELECT (SELECT count(*) FROM cases) + (SELECT count(*) FROM incidents)").fetchall() == [(0,)]


def test_the_clock_is_one_rule_for_forms_imports_and_updates(con):
    """"Now" comes from ``kb.timestamps.now_utc`` (``--now``, ``$SUPPORT_NOW``), with 5 minutes' grace;
    only maintenance may be scheduled ahead, and closed ahead."""
    set_now(datetime(2026, 11, 25, 8, 30, tzinfo=UTC))  # 16:30 in Hong Kong
    add(con, SPEC_CONFIG, "clients", dict(client_id="ENT", name="Ent", tier="enterprise"))
    add(con, SPEC_CONFIG, "environments", dict(environment_id="E1", name="Prod", kind="dedicated",
                                               deployment="on_premise", client_id="ENT", active_from="2026-01-01"))
    case = {"client_id": "ENT", "category": "api_help", "subject": "s"}
    with pytest.raises(Rejected, match=r"received_at: is in the future \(Wed 2026-11-25 16:36:00 \(UTC\+08:00\)"
        r"; now is "):
        log_case(con, SPEC_CONFIG, ADMIN, {**case, "received_at": "2026-11-25 16:36"})
    case_id = log_case(con, SPEC_CONFIG, ADMIN, {**case, "received_at": "2026-11-25 16:34"}).row_id  # within the grace
    with pytest.raises(Rejected, match="first_response_at: is in the future"):
        record_response(con, SPEC_CONFIG, ADMIN, case_id, datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    with pytest.raises(Rejected, match="resolved_at: is in the future"):
        resolve_case(con, SPEC_CONFIG, ADMIN, case_id, datetime(2026, 11, 25, 9, 0, tzinfo=UTC))

    outage = {"environment_id": "E1", "impact": "outage", "started_at": "2026-11-25 16:00"}
    with pytest.raises(Rejected, match="started_at: is in the future"):
        log_incident(con, SPEC_CONFIG, ADMIN, {**outage, "started_at": "2026-11-26 16:00"})
    ongoing = log_incident(con, SPEC_CONFIG, ADMIN, outage).row_id
    with pytest.raises(Rejected, match="ended_at: is in the future"):
        close_incident(con, SPEC_CONFIG, ADMIN, ongoing, datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    close_incident(con, SPEC_CONFIG, ADMIN, ongoing, datetime(2026, 11, 25, 8, 30, tzinfo=UTC))
    planned = log_incident(con, SPEC_CONFIG, ADMIN, {"environment_id": "E1", "impact": "maintenance",
                                                     "started_at": "2026-11-28 02:00"}).row_id
    close_incident(con, SPEC_CONFIG, ADMIN, planned, datetime(2026, 11, 27, 20, 0, tzinfo=UTC))
    assert con.execute("SELECT count(*) FROM incidents WHERE ended_at IS NOT NULL").fetchall() == [(2,)]


# --- Markup is shown as text --------------------------------------------------------------------------

def test_no_page_lets_markup_through():
    sources = [ROOT / "dashboard.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "kb").glob("*.py")]
    for path in sources:
        text = path.read_text()
        for risky in ("unsafe_allow_html", "st.html(", "components.html", "components.v1"):
            assert risky not in text, f"{path.name} uses {risky}"


def test_the_queue_shows_a_subject_as_typed(app):
    at, _ = app
    subject = HOSTILE_TEXT["img"] + " " + HOSTILE_TEXT["markdown"]
    open_page(at, "log_case")
    fill_case(at, subject)
    button(at, "Log case").click().run()
    assert at.success
    open_page(at, "queue")
    assert subject in list(table_with(at, "subject").subject)


@pytest.mark.parametrize("value", HOSTILE_TEXT.values(), ids=HOSTILE_TEXT.keys())
def test_plain_escapes_every_markdown_mark(value):
    shown = plain(value)
    unescaped, i = [], 0
    while i < len(shown):
        if shown[i] == "\\":
            assert shown[i + 1] in string.punctuation
            unescaped.append(shown[i + 1])
            i += 2
        else:
            assert shown[i] not in string.punctuation, f"unescaped {shown[i]!r}"
            unescaped.append(shown[i])
            i += 1
    assert "".join(unescaped) == value


# --- A database or configuration that is not what it should be -----------------------------------------

def sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def make_sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE cases (case_id TEXT)")
    con.execute("INSERT INTO cases VALUES ('x')")
    con.commit()
    con.close()


def make_foreign(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE orders (order_id INTEGER, total DECIMAL(10, 2))")
    con.execute("INSERT INTO orders VALUES (1, 9.99)")
    con.close()


def make_newer(path: Path) -> None:
    con = connection.connect(path)
    con.execute("INSERT INTO schema_version VALUES (99, now())")
    con.close()


BAD_DATABASES = {
    "garbage": (lambda p: p.write_bytes(os.urandom(16384)), "it is not a DuckDB database file"),
    "empty file": (lambda p: p.write_bytes(b""), "it is an empty file"),
    "CSV text": (lambda p: p.write_text("client_id,name,tier\nX,y,free\n" * 100), "it is not a DuckDB database file"),
    "SQLite": (make_sqlite, "it is a SQLite database"),
    "foreign DuckDB": (make_foreign, "holds tables that are not a support database"),
    "newer schema": (make_newer, "has schema version 99, newer than this program's"),
    "truncated DuckDB": (lambda p: (make_foreign(p), p.write_bytes(p.read_bytes()[:5000])), "cannot be opened"),
    "a directory": (lambda p: p.mkdir(), "is a directory"),
}


def start_app(monkeypatch, db: Path, config: Path) -> AppTest:
    monkeypatch.setenv("SUPPORT_DB", str(db))
    monkeypatch.setenv("SUPPORT_CONFIG", str(config))
    monkeypatch.setenv("SUPPORT_AS_OF", AS_OF)
    return AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()


@pytest.fixture
def no_cached_store():
    yield
    from kb import ui

    ui._open_app.clear()


@pytest.mark.parametrize(("make", "message"), BAD_DATABASES.values(), ids=BAD_DATABASES.keys())
def test_a_database_that_is_not_ours_stops_with_a_message(tmp_path, monkeypatch, capsys, no_cached_store, make,
                                                          message):
    db, config = tmp_path / "support.duckdb", tmp_path / "support.toml"
    config.write_text(TOML)
    make(db)
    before, files = sha(db), sorted(p.name for p in tmp_path.iterdir())

    at = start_app(monkeypatch, db, config)
    assert not at.exception, [e.message for e in at.exception]
    assert [shown(e) for e in at.error if "The dashboard cannot start" in e.value and message in e.value]

    for command in (["export", "case-sla"], ["import", "clients", str(tmp_path / "c.csv")], ["backup",
                                                                                          str(tmp_path / "b.duckdb")]):
        (tmp_path / "c.csv").write_text("client_id,name,tier\nX,y,free\n")
        capsys.readouterr()
        assert main([*command, "--db", str(db), "--config", str(config)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, err
    (tmp_path / "c.csv").unlink()
    assert sha(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == files  # no write-ahead log, no backup, nothing new


def test_the_command_line_never_shows_a_traceback_for_a_bad_database(tmp_path):
    db = tmp_path / "support.duckdb"
    make_sqlite(db)
    result = subprocess.run([sys.executable, "-m", "kb", "export", "uptime", "--db", str(db)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "it is a SQLite database" in result.stderr and "Traceback" not in result.stderr


BAD_CONFIGS = {
    "not TOML": ("this is = = not toml", "is not valid TOML"),
    "not UTF-8": ("# caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
    "section not a table": ("calendar = 5", "calendar = 5 must be a table"),
    "unknown zone": ('[calendar]\ntimezone = "Mars/Olympus"', "calendar.timezone = 'Mars/Olympus' is not an IANA"),
    "zone localtime": ('[calendar]\ntimezone = "localtime"', "calendar.timezone = 'localtime' is not an IANA"),
    "zone posix/": ('[calendar]\ntimezone = "posix/Asia/Hong_Kong"', "'posix/Asia/Hong_Kong' is not an IANA"),
    "zone right/": ('[calendar]\ntimezone = "right/UTC"', "calendar.timezone = 'right/UTC' is not an IANA"),
    "zone as a number": ("[calendar]\ntimezone = 8", "calendar.timezone = 8 must be a string"),
    "hours reversed": ('[calendar]\nbusiness_hours = ["18:00", "09:00"]', "close 09:00 is not after open 18:00"),
    "hour 25": ('[calendar]\nbusiness_hours = ["09:00", "25:00"]', "'25:00' is not a time of day"),
    "every day weekend": ('[calendar]\nweekend = ["Mon","Tue","Wed","Thu","Fri","Sat","Sun"]', "no business days"),
    "unknown country": ('[calendar]\nholidays_country = "ZZ"', "'ZZ' is not a country code"),
    "holiday not a date": ('[calendar]\nextra_holidays = ["24/12/2026"]', "'24/12/2026' is not an ISO date"),
    "target NaN": ("[sla]\ndefault_uptime_target_pct = nan", "must be a finite number"),
    "target over 100": ("[sla]\ndefault_uptime_target_pct = 100.5", "must be a percentage in (0, 100]"),
    "at risk infinite": ("[sla]\nat_risk_business_hours = inf", "must be a finite number"),
    "response days huge": ("[sla]\nenterprise_response_business_days = 100000000", "must be at most 60"),
    "response days text": ('[sla]\ncustom_response_business_days = "1"', "must be a whole number"),
    "bad schedule": ('[sla]\ndefault_credit_schedule = "<script>"', "'<script>' is not 'uptime:credit'"),
    "stale zero": ("[monitoring]\nstale_after_days = 0", "must be a whole number of at least 1"),
    "stale huge": ("[monitoring]\nstale_after_days = 9223372036854775807", "must be at most 3650"),
    "roles not a list": ('[roles]\nadmin = "ada@example.com"', "roles.admin must be a list"),
    "unknown role": ('[roles]\nowner = ["ada@example.com"]', "roles.owner: unknown role"),
}


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_a_bad_configuration_stops_with_a_message(tmp_path, monkeypatch, capsys, base_db, no_cached_store, text,
                                                  message):
    db, config = tmp_path / "support.duckdb", tmp_path / "support.toml"
    shutil.copy(base_db, db)
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    before = sha(db), sha(config)

    at = start_app(monkeypatch, db, config)
    assert not at.exception, [e.message for e in at.exception]
    assert [shown(e) for e in at.error if "The dashboard cannot start" in e.value and message in e.value], \
        [shown(e) for e in at.error]

    capsys.readouterr()
    assert main(["export", "case-sla", "--db", str(db), "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert (sha(db), sha(config)) == before


@pytest.mark.parametrize("where", ["missing", "a directory"])
def test_a_configuration_file_that_cannot_be_read(tmp_path, monkeypatch, base_db, no_cached_store, where):
    db, config = tmp_path / "support.duckdb", tmp_path / "support.toml"
    shutil.copy(base_db, db)
    if where == "a directory":
        config.mkdir()
    at = start_app(monkeypatch, db, config)
    assert not at.exception
    assert [shown(e) for e in at.error if "The dashboard cannot start" in e.value and str(config) in e.value]



# --- SPEC 8 rule by rule (ids, numbers, timestamps, the pickers): tests/test_input_rules.py ------------------

@pytest.mark.parametrize(("table", "cells", "message"), [
    ("clients", {"client_id": "ＥＮＴ２"}, "line 2, client_id: 'ＥＮＴ２' is not an id (it contains U+FF25)"),
    ("contracts", {"monthly_fee": "10.005"}, "line 2, monthly_fee: '10.005' is not an amount of at least 0 with at"),
    ("contracts", {"uptime_target_pct": "0.00001"}, "line 2, uptime_target_pct: '0.00001' is not a percentage"),
    ("contracts", {"response_business_days": "١٠"}, "line 2, response_business_days: '١٠' is not a whole number"),
    ("cases", {"received_at": "2026-11-20T10:00:00+99:00"}, "line 2, received_at: '2026-11-20T10:00:00+99:00' has"),
    ("cases", {"received_at": "epoch"}, "line 2, received_at: 'epoch' is not an ISO 8601 timestamp"),
])
def test_spec_8_through_the_import(cli, table, cells, message):
    assert_rejected(cli(table, new(table, **cells)), message)
