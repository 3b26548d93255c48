"""SPEC 8, rule by rule, through the CSV import (``python -m kb import``) and through the forms (AppTest): ids,
numbers, timestamps (offsets, 24:00, words, zone names, a daylight-saving gap, a repeated hour) and the
pickers of the Log case and Log incident pages. A refusal names the line and the field, writes nothing, and
never shows a traceback."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from streamlit.testing.v1 import AppTest

from kb.cli import main
from kb.db import connection
from kb.intake.validation import TABLES, read_instant
from tests.fixtures import AS_OF, HKT, ROOT, build_fixture, button, fill_case, open_page, query, shown, table_counts

# A zone with daylight saving: 2026-03-29 01:00–02:00 does not exist, 2026-10-25 01:00–02:00 happens twice.
LONDON_TOML = """
[calendar]
timezone = "Europe/London"
holidays_country = "GB"
"""
LONDON = ZoneInfo("Europe/London")
FIRST_0130 = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 01:30 BST, the first of the two 01:30s

BASE = {
    "clients": "client_id,name,tier\nENT,Enterprise Co,enterprise\n",
    "environments": "environment_id,name,kind,deployment,client_id,active_from\n"
                    "E1,Prod,dedicated,on_premise,ENT,2026-01-01\n",
    "contracts": "contract_id,client_id,environment_id,monthly_fee,currency,starts_on\nK1,ENT,E1,1000,USD,2026-01-01\n",
    "cases": "case_id,client_id,received_at,category,subject\nC0,ENT,2026-11-20 15:00,api_help,Earlier\n",
    "incidents": "incident_id,environment_id,impact,started_at,ended_at\n"
                 "I0,E1,outage,2026-11-03 10:00,2026-11-03 10:30\n",
}
NEW_ROW = {
    "clients": {"client_id": "NEW", "name": "New Co", "tier": "free"},
    "environments": {"environment_id": "NEW", "name": "New env", "kind": "shared", "deployment": "shared_cloud",
                     "active_from": "2026-01-01"},
    "contracts": {"contract_id": "NEW", "client_id": "ENT", "environment_id": "E1", "monthly_fee": "100",
                  "currency": "USD", "starts_on": "2026-01-01"},
    "cases": {"case_id": "NEW", "client_id": "ENT", "received_at": "2026-11-20 15:00", "category": "api_help",
              "subject": "Fine"},
    "incidents": {"incident_id": "NEW", "environment_id": "E1", "impact": "outage",
                  "started_at": "2026-11-20 15:00", "ended_at": "2026-11-20 16:00"},
    "policies": {"policy_id": "NEW", "metric": "first_response", "priority": "*", "within": "4h"},
    "pauses": {"case_id": "C0", "paused_at": "2026-11-21 10:00", "resumed_at": "2026-11-21 12:00"},
    "messages": {"case_id": "C0", "at": "2026-11-21 10:00", "direction": "client"},
}


def csv_of(row: dict) -> str:
    return ",".join(row) + "\n" + ",".join(f'"{v}"' for v in row.values()) + "\n"


@pytest.fixture(scope="module")
def london_db(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rules")
    (folder / "support.toml").write_text(LONDON_TOML)
    for table, text in BASE.items():
        (folder / f"{table}.csv").write_text(text)
        assert main(["import", table, str(folder / f"{table}.csv"), "--db", str(folder / "base.duckdb"),
                     "--config", str(folder / "support.toml")]) == 0
    return folder / "base.duckdb"


@pytest.fixture
def imported(london_db, tmp_path, capsys):
    """Import one row of ``table`` (NEW_ROW with ``cells``) into a copy of the base store: (code, stderr, row
    stored or None, counts before, counts after)."""
    db = tmp_path / "s.duckdb"
    shutil.copy(london_db, db)
    (tmp_path / "support.toml").write_text(LONDON_TOML)

    def run(table: str, **cells):
        path = tmp_path / "input.csv"
        path.write_text(csv_of({**NEW_ROW[table], **cells}), encoding="utf-8")
        before = table_counts(db)
        capsys.readouterr()
        code = main(["import", table, str(path), "--db", str(db), "--config", str(tmp_path / "support.toml"),
                     "--now", "2026-11-26T12:00:00Z"])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        after = table_counts(db)
        row = None
        if code == 0:
            con = connection.connect(db, read_only=True)
            try:
                key = TABLES[table][0].name
                cursor = con.execute(f"SELECT * FROM {table} WHERE {key} = ?",
                                     [{**NEW_ROW[table], **cells}[key].strip()])
                row = dict(zip([d[0] for d in cursor.description], cursor.fetchall()[0], strict=True))
            finally:
                con.close()
        return code, err, row, before, after

    return run


def refused(result, message: str) -> None:
    code, err, _, before, after = result
    assert code == 1, err
    assert message in err, f"{message!r} not in:\n{err}"
    assert "nothing was written" in err
    assert after == before


def stored(result, column: str, value) -> None:
    code, err, row, before, after = result
    assert code == 0, err
    assert row[column] == value
    assert after[next(t for t in TABLES if after[t] != before[t])] >= 1


# --- Timestamps: the import reads them as parse_timestamp does (as the forms do) ----------------------------

TIMESTAMPS = {
    "offset beyond 14:00": ("2026-11-20T10:00:00+99:00",
                            "line 2, received_at: '2026-11-20T10:00:00+99:00' has the offset +99:00, which no place"),
    "offset 14:01": ("2026-11-20T10:00:00+14:01", "line 2, received_at: '2026-11-20T10:00:00+14:01' has the offset"),
    "24:00": ("2026-11-20T24:00:00", "line 2, received_at: '2026-11-20T24:00:00' is not an ISO 8601 timestamp"),
    "epoch": ("epoch", "line 2, received_at: 'epoch' is not an ISO 8601 timestamp"),
    "now": ("now", "line 2, received_at: 'now' is not an ISO 8601 timestamp"),
    "zone name": ("2026-11-20 10:00 Europe/Paris",
                  "line 2, received_at: '2026-11-20 10:00 Europe/Paris' is not an ISO 8601 timestamp"),
    "full-width digits": ("２０２６-11-20 10:00", "line 2, received_at: '２０２６-11-20 10:00' is not an ISO 8601"),
    "daylight-saving gap": ("2026-03-29 01:30", "line 2, received_at: '2026-03-29 01:30' does not exist in "
                                                "Europe/London: the clocks skip it that night (daylight saving, "
                                                "UTC+00:00 to UTC+01:00)"),
}


@pytest.mark.parametrize(("text", "message"), TIMESTAMPS.values(), ids=TIMESTAMPS.keys())
def test_the_import_refuses_what_parse_timestamp_refuses(imported, text, message):
    refused(imported("cases", received_at=text), message)


def test_a_repeated_hour_is_its_first_occurrence_in_an_import(imported):
    stored(imported("cases", received_at="2026-10-25 01:30"), "received_at", FIRST_0130)


def test_an_offset_of_14_hours_is_a_real_one(imported):
    stored(imported("cases", received_at="2026-11-20T10:00:00+14:00"), "received_at",
           datetime(2026, 11, 19, 20, 0, tzinfo=UTC))


def test_a_gap_in_an_incident_end_names_that_column(imported):
    refused(imported("incidents", started_at="2026-03-29 00:30", ended_at="2026-03-29 01:15"),
            "line 2, ended_at: '2026-03-29 01:15' does not exist in Europe/London")


def test_read_instant_reads_each_text_as_parse_timestamp_does():
    assert read_instant(" 2026-10-25 01:30 ", LONDON) == (FIRST_0130.isoformat(), None)
    assert read_instant("", LONDON) == (None, None)
    text, problem = read_instant("x\x1b[2J" * 30, LONDON)
    assert text is None and "\x1b" not in problem and problem.startswith("'x\ufffd[2J") and "...'" in problem
    assert read_instant("0001-01-01 00:00", ZoneInfo("Asia/Tokyo")) == (None, "'0001-01-01 00:00' is outside 1970–2200")


# --- Ids: 1–64 characters of A–Z a–z 0–9 . _ - @ + : ----------------------------------------------------------

BAD_IDS = {
    "full-width": ("ＥＮＴ", "is not an id (it contains U+FF25)"),
    "zero-width space": ("ENT\u200b", "is not an id (it contains U+200B)"),
    "right-to-left override": ("\u202eENT", "is not an id (it contains U+202E)"),
    "space inside": ("E NT", "is not an id (it contains a space)"),
    "65 characters": ("x" * 65, "is not an id (65 characters)"),
    "slash": ("a/b", "is not an id (it contains '/')"),
}
KEY_COLUMNS = [(table, columns[0].name) for table, columns in TABLES.items()]


@pytest.mark.parametrize(("value", "message"), BAD_IDS.values(), ids=BAD_IDS.keys())
@pytest.mark.parametrize(("table", "column"), KEY_COLUMNS, ids=[c for _, c in KEY_COLUMNS])
def test_every_id_column_refuses_what_is_not_an_id(imported, table, column, value, message):
    result = imported(table, **{column: value})
    refused(result, f"line 2, {column}: ")
    refused(result, message)
    refused(result, "an id is 1–64 characters, each a letter A–Z or a–z, a digit 0–9 or one of . _ - @ + :")


def test_an_id_of_64_allowed_characters_is_stored_as_typed(imported):
    value = "Az09._-@+:" * 6 + "abcd"
    assert len(value) == 64
    code, err, _, before, after = imported("clients", client_id=value)
    assert code == 0, err
    assert after["clients"] == before["clients"] + 1


@pytest.mark.parametrize(("table", "column", "value", "message"), [
    ("cases", "client_id", "ＥＮＴ", "line 2, client_id: no client 'ＥＮＴ'; it is not an id (it contains U+FF25)"),
    ("incidents", "environment_id", "E1\u200b", "line 2, environment_id: no environment 'E1\u200b'; it is not an id"),
    ("contracts", "client_id", "ENT ", None),  # trimmed: the client ENT
])
def test_a_reference_that_is_not_an_id_says_so(imported, table, column, value, message):
    result = imported(table, **{column: value})
    if message:
        refused(result, message)
    else:
        stored(result, column, "ENT")


# --- Numbers: ASCII digits, finite, exact -----------------------------------------------------------------

FEE = "is not an amount of at least 0 with at most 2 decimals, in ASCII digits"
PCT = "is not a percentage in (0, 100] with at most 4 decimals, in ASCII digits"
DAYS = "is not a whole number of business days from 1 to 60, in ASCII digits"
NUMBERS = [
    *[("monthly_fee", value, FEE) for value in ["１０", "١٠", "NaN", "inf", "Infinity", "1e3", "10.005", "-1", "+5",
                                                   ".5", "10.", "1_000", "1,000", "0x10", "-0"]],
    *[("uptime_target_pct", value, PCT) for value in ["0", "0.0000", "0.00001", "100.00001", "100.0001", "99.99995",
                                                         "NaN", "inf", "١٠", "１０", "1e2", "-5", "99.9%"]],
    *[("response_business_days", value, DAYS) for value in ["0", "61", "1.5", "0x10", "１", "1e1", "NaN", "-1",
                                                               "100"]],
]


@pytest.mark.parametrize(("column", "value", "message"), NUMBERS, ids=[f"{c}={v}" for c, v, _ in NUMBERS])
def test_numbers_are_refused_unless_plain_ascii_and_exact(imported, column, value, message):
    refused(imported("contracts", **{column: value}), f"line 2, {column}: '{value}' {message}")


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("monthly_fee", " 10 ", Decimal("10.00")),
    ("monthly_fee", "0", Decimal("0.00")),
    ("monthly_fee", "1250.5", Decimal("1250.50")),
    ("monthly_fee", "9999999999999999.99", Decimal("9999999999999999.99")),
    ("uptime_target_pct", "100", Decimal("100.0000")),
    ("uptime_target_pct", "0.0001", Decimal("0.0001")),
    ("uptime_target_pct", "99.9999", Decimal("99.9999")),
    ("response_business_days", "60", 60),
    ("response_business_days", "01", 1),
])
def test_numbers_that_pass_are_stored_exactly(imported, column, value, expected):
    stored(imported("contracts", **{column: value}), column, expected)


@pytest.mark.parametrize("value", ["epoch", "2026/01/01", "2026-1-1", "2026-01-01 10:00", "infinity", "２０２６-01-01"])
def test_dates_are_iso(imported, value):
    refused(imported("environments", active_from=value), f"line 2, active_from: '{value}' is not an ISO date")


# --- The forms ----------------------------------------------------------------------------------------------

@pytest.fixture
def london_app(tmp_path, monkeypatch):
    """The page tests' store under a calendar with daylight saving (Europe/London), frozen at AS_OF."""
    db, config_file = build_fixture(tmp_path)
    config_file.write_text(LONDON_TOML)
    monkeypatch.setenv("SUPPORT_DB", str(db))
    monkeypatch.setenv("SUPPORT_CONFIG", str(config_file))
    monkeypatch.setenv("SUPPORT_AS_OF", AS_OF)
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
    yield at
    from kb import ui

    ui._open_app.clear()


def document_order(node, out=None) -> list:
    """Every element of the page, depth first, as it is laid out."""
    out = [] if out is None else out
    children = getattr(node, "children", None)
    if children is None:
        out.append(node)
    else:
        for key in sorted(children):
            document_order(children[key], out)
    return out


def field_of(at: AppTest, text: str) -> str:
    """The key of the input under which the error saying ``text`` is shown (the last keyed widget above it)."""
    elements, errors = document_order(at.main), {id(e) for e in at.error}
    for i, element in enumerate(elements):
        if id(element) in errors and text in shown(element):
            field, named, reason = shown(element).partition(": ")
            assert not (named and reason.startswith(f"{field}")), shown(element)  # the field named once
            return next(e.key for e in reversed(elements[:i]) if getattr(e, "key", None))
    raise AssertionError(f"no error saying {text!r}: {[shown(e) for e in at.error]}")


def nothing_written(cases: int = 6, incidents: int = 2) -> None:
    assert query("SELECT count(*) AS n FROM cases").n[0] == cases
    assert query("SELECT count(*) AS n FROM incidents").n[0] == incidents
    assert query("SELECT count(*) AS n FROM monitoring_checks").n[0] == 0
    assert query("SELECT count(*) AS n FROM audit_log WHERE actor <> 'tests@example.com'").n[0] == 0


def submit(at: AppTest, label: str) -> AppTest:
    button(at, label).click().run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_the_client_picker_starts_empty_and_is_required(app):
    at, _ = app
    open_page(at, "log_case")
    assert at.selectbox(key="case_client").value is None
    at.text_input(key="case_subject").input("No client chosen")
    at.date_input(key="case_received_day").set_value(date(2026, 11, 25))
    submit(at, "Log case")
    assert field_of(at, "Client: choose a client") == "case_client"
    assert not at.success
    nothing_written()


@pytest.mark.parametrize("day", [None, date(1969, 12, 31), date(9999, 1, 1), date(2201, 1, 1)])
def test_a_received_date_the_picker_cannot_hold_is_asked_for_not_replaced(app, day):
    at, _ = app
    open_page(at, "log_case")
    assert at.date_input(key="case_received_day").value == datetime.now(HKT).date()  # received now unless changed
    fill_case(at, "Typed an odd date")
    at.date_input(key="case_received_day").set_value(day)
    submit(at, "Log case")
    assert at.date_input(key="case_received_day").value is None
    assert field_of(at, "Received: pick a date") == "case_received_time"
    nothing_written()


def test_an_old_date_within_the_years_is_taken_as_typed(app):
    at, _ = app
    open_page(at, "log_case")
    fill_case(at, "From long ago", day=date(2015, 11, 20))
    submit(at, "Log case")
    assert at.success, [shown(e) for e in at.error]
    assert str(query("SELECT received_at FROM cases WHERE case_id = 'CS-00001'").iloc[0, 0]) \
        == "2015-11-20 03:00:00+00:00"


def test_a_case_from_the_future_is_refused_at_its_field(app):
    at, _ = app
    open_page(at, "log_case")
    fill_case(at, "Tomorrow's problem", day=date(2199, 1, 1))
    submit(at, "Log case")
    assert field_of(at, "is in the future (Tue 2199-01-01 11:00:00 (UTC+08:00); now is") == "case_received_time"
    nothing_written()


def test_a_first_response_date_is_required_once_answered(app):
    at, _ = app
    open_page(at, "log_case")
    fill_case(at, "Answered")
    at.checkbox(key="case_responded").check()
    submit(at, "Log case")
    assert field_of(at, "First response: pick a date") == "case_response_time"
    nothing_written()


def test_the_log_case_form_refuses_a_time_the_clocks_skip(london_app):
    at = london_app
    open_page(at, "log_case")
    fill_case(at, "In the gap", day=date(2026, 3, 29), clock=time(1, 30))
    submit(at, "Log case")
    assert field_of(at, "'2026-03-29 01:30' does not exist in Europe/London: the clocks skip it that night") \
        == "case_received_time"
    nothing_written()


def test_the_log_case_form_takes_a_repeated_hour_at_its_first_occurrence(london_app):
    at = london_app
    open_page(at, "log_case")
    fill_case(at, "In the repeated hour", day=date(2026, 10, 25), clock=time(1, 30))
    submit(at, "Log case")
    assert at.success, [shown(e) for e in at.error]
    assert query("SELECT received_at FROM cases WHERE case_id = 'CS-00001'").iloc[0, 0] == FIRST_0130


def test_recording_a_response_needs_a_case_and_a_date_and_refuses_a_gap(london_app):
    at = london_app
    open_page(at, "log_case")
    assert at.selectbox(key="respond_case").value is None
    submit(at, "Record response")
    assert field_of(at, "Case: choose a case") == "respond_case"
    assert field_of(at, "Answered: pick a date") == "respond_time"
    at.selectbox(key="respond_case").select("OVERDUE")
    at.time_input(key="respond_time").set_value(time(1, 30))
    at.date_input(key="respond_day").set_value(date(2026, 3, 29))
    submit(at, "Record response")
    assert field_of(at, "'2026-03-29 01:30' does not exist in Europe/London") == "respond_time"
    assert query("SELECT first_response_at FROM cases WHERE case_id = 'OVERDUE'").first_response_at.isna().all()
    nothing_written()


def test_the_environment_picker_starts_empty_and_is_required(app):
    at, _ = app
    open_page(at, "log_incident")
    assert at.selectbox(key="inc_environment").value is None
    at.date_input(key="inc_start_day").set_value(date(2026, 11, 25))
    submit(at, "Log incident")
    assert field_of(at, "Environment: choose an environment") == "inc_environment"
    nothing_written()


@pytest.mark.parametrize("day", [None, date(1969, 12, 31), date(9999, 1, 1)])
def test_an_incident_start_the_picker_cannot_hold_is_asked_for(app, day):
    at, _ = app
    open_page(at, "log_incident")
    at.selectbox(key="inc_environment").select("E1")
    at.date_input(key="inc_start_day").set_value(day)
    at.checkbox(key="inc_ongoing").uncheck()
    submit(at, "Log incident")
    assert field_of(at, "Started: pick a date") == "inc_start_time"
    assert field_of(at, "Ended: pick a date") == "inc_end_time"
    nothing_written()


def test_an_outage_from_the_future_is_refused_but_maintenance_may_be_planned(app):
    at, _ = app
    open_page(at, "log_incident")
    at.selectbox(key="inc_environment").select("E1")
    at.radio(key="inc_impact").set_value("outage")
    at.date_input(key="inc_start_day").set_value(date(2199, 1, 1))
    at.time_input(key="inc_start_time").set_value(time(2, 0))
    submit(at, "Log incident")
    assert field_of(at, "is in the future (Tue 2199-01-01 02:00:00 (UTC+08:00); now is") == "inc_start_time"
    nothing_written()
    at.radio(key="inc_impact").set_value("maintenance")
    submit(at, "Log incident")
    assert at.success, [shown(e) for e in at.error]
    assert query("SELECT impact FROM incidents WHERE incident_id = 'INC-00001'").impact[0] == "maintenance"


def test_closing_an_incident_and_recording_a_check_need_a_choice(app):
    at, _ = app
    open_page(at, "log_incident")
    at.selectbox(key="inc_environment").select("E1")
    at.date_input(key="inc_start_day").set_value(date(2026, 11, 25))
    submit(at, "Log incident")
    assert at.selectbox(key="close_incident").value is None
    submit(at, "Close incident")
    assert field_of(at, "Incident: choose an incident") == "close_incident"
    assert field_of(at, "Ended: pick a date") == "close_time"
    assert query("SELECT ended_at FROM incidents WHERE incident_id = 'INC-00001'").ended_at.isna().all()
    assert at.selectbox(key="check_env").value is None
    submit(at, "Record check")
    assert field_of(at, "Environment: choose an environment") == "check_note"
    assert query("SELECT count(*) AS n FROM monitoring_checks").n[0] == 0


# --- Ids and numbers through a form: Clients and contracts ---------------------------------------------------

@pytest.mark.parametrize(("field", "value", "message"), [
    ("contract_id", "ＫＸ", "'ＫＸ' is not an id (it contains U+FF2B): an id is 1–64 characters"),
    ("contract_id", "K\u200b2", "'K\u200b2' is not an id (it contains U+200B)"),
    ("client_id", "ENT\u202e", "no client 'ENT\ufffd'; it is not an id (it contains U+202E)"),
    ("monthly_fee", "１０", f"'１０' {FEE}"),
    ("monthly_fee", "10.005", f"'10.005' {FEE}"),
    ("monthly_fee", "NaN", f"'NaN' {FEE}"),
    ("uptime_target_pct", "0.00001", f"'0.00001' {PCT}"),
    ("uptime_target_pct", "inf", f"'inf' {PCT}"),
    ("response_business_days", "١", f"'١' {DAYS}"),
])
def test_the_contract_form_applies_the_same_rules(app, field, value, message):
    at, _ = app
    open_page(at, "clients")
    at.selectbox(key="contracts_choice").select("(new)").run()
    row = dict(contract_id="K2", client_id="ENT", environment_id="E1", monthly_fee="500", currency="USD",
               starts_on="2026-11-01")
    for name, text in {**row, field: value}.items():
        at.text_input(key=f"contracts_add_{name}").input(text)
    at.button(key="contracts_submit").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert field_of(at, message) == f"contracts_add_{field}"
    assert query("SELECT count(*) AS n FROM contracts").n[0] == 1
