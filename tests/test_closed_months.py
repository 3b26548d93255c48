"""Closed months (rules §13): closing November as of Wed 2026-12-02 freezes its uptime, credits and statements;
every way in refuses what would change it until an admin reopens it; a statement once sent is served as sent;
a final credit marked applied is no longer owed.

The store: one enterprise client on a dedicated environment whose contract takes the configuration's default
target and credit schedule, an hour of outage in November (uptime 99.86 %, a 10 % credit of USD 1,000), a case
answered in time in November and one received on its last evening and not answered."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import time
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from kb import kept, snapshot
from kb import store as store_module
from kb.access import Actor, PermissionDenied
from kb.cli import main
from kb.config import parse_config
from kb.db import connection
from kb.engine.asof import open_views
from kb.engine.closings import decided_as_of_sql
from kb.engine.periods import months_of
from kb.intake import corrections, pauses, writes
from kb.intake.closing import apply_credit, close_month, reopen_month
from kb.intake.importing import Problem, Rejected, add_rows, staged_from_csv, staged_from_records, update_row
from kb.mail.archive import import_paths
from kb.mail.quarantine import retry
from kb.reads import overview, performance
from kb.reads.exports import write_report
from kb.reads.met import every_target, met_shares, met_shares_on
from kb.reads.refunds import credit_stages
from kb.service import tokens
from kb.service.webhooks import ROUTES
from kb.snapshot import DECIDED_TARGETS, change_of, patched
from kb.statement.content import statement
from kb.statement.mailing import send_statements, sent_statement
from kb.store import Store
from kb.timestamps import set_now
from tests.fixtures import ADMIN, SPEC_TOML, add, local, open_page, shown, views
from tests.servers import Inbox

CLOSING = local("2026-12-02 10:00")  # Wednesday; Tue 2026-12-01 is the first business day after November
LATER = local("2026-12-03 10:00")
CLOSED = "2026-11 is closed: its uptime, credits and statements are final; an admin may reopen it with a reason"
LEAD = Actor("lee@support.example", "lead")
RULES = {"calendar": {"timezone": "Asia/Hong_Kong", "holidays_country": "HK", "extra_holidays": ["2026-11-27"]},
         "mail": {"support_addresses": ["support@knowru.example"]}}
CONFIG = parse_config(RULES)


def november(con, config=CONFIG) -> None:
    """The store of the module's docstring, and an outage on the shared environment still going since October."""
    add(con, config, "clients", dict(client_id="ENT", name="Enterprise Co", tier="enterprise",
                                     statement_recipients="cfo@ent.example"))
    add(con, config, "environments",
        dict(environment_id="E", name="Prod", kind="dedicated", deployment="on_premise", client_id="ENT",
             active_from="2026-01-01"),
        dict(environment_id="S", name="Shared", kind="shared", deployment="shared_cloud", active_from="2026-01-01"))
    add(con, config, "contracts", dict(contract_id="K", client_id="ENT", environment_id="E", monthly_fee="1000",
                                       currency="USD", starts_on="2026-01-01"))
    add(con, config, "incidents",
        dict(incident_id="I1", environment_id="E", impact="outage", started_at="2026-11-03 10:00",
             ended_at="2026-11-03 11:00"),
        dict(incident_id="GOING", environment_id="S", impact="degraded", started_at="2026-10-20 10:00"))
    add(con, config, "cases",
        dict(case_id="CS-NOV", client_id="ENT", received_at="2026-11-20 15:00", category="platform_issue",
             subject="Slow API", first_response_at="2026-11-23 10:00"),
        dict(case_id="CS-LATE", client_id="ENT", received_at="2026-11-30 17:00", category="platform_issue",
             subject="Down again"),
        dict(case_id="CS-DEC", client_id="ENT", received_at="2026-12-01 10:00", category="api_help",
             subject="Keys"))


@pytest.fixture
def closed(con):
    """The store with November closed at CLOSING, "now" a day later."""
    november(con)
    close_month(con, CONFIG, LEAD, "2026-11", CLOSING)
    set_now(LATER)
    return con


def rows(con, sql: str, params=()) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


def november_lines(con, config, report: str, folder: Path, as_of=LATER) -> list[str]:
    """The lines of ``report`` as ``python -m kb export`` writes it, for November."""
    out = folder / f"{report}.csv"
    write_report(con, config, report, as_of, out)
    return [line for line in out.read_text().splitlines() if ",2026-11," in line]


def imported(con, table: str, data: bytes) -> int:
    """``data`` imported into ``table`` by the lead, as ``python -m kb import`` does."""
    return add_rows(con, CONFIG, staged_from_csv(table, data), LEAD, permission="import", source=f"{table}.csv")


def refused(action, *args, **kwargs) -> list[Problem]:
    with pytest.raises(Rejected) as caught:
        action(*args, **kwargs)
    return caught.value.problems


# --- Closing ------------------------------------------------------------------------------------------------

def test_closing_november_freezes_its_rows_and_is_audited(closed):
    con = closed
    assert rows(con, "SELECT month, version, closed_at, closed_by, reopened_at FROM month_closings") == [
        ("2026-11", 1, CLOSING, "lee@support.example", None)]
    assert rows(con, "SELECT environment_id, downtime_minutes, round(uptime_pct, 6), target_pct, status "
                     "FROM closed_uptime WHERE month = '2026-11' ORDER BY environment_id") == [
        ("E", 60.0, 99.861111, 99.9, "final"), ("S", 0.0, 100.0, None, "final")]
    assert rows(con, "SELECT contract_id, credit_pct, refund_amount, currency FROM closed_refunds") == [
        ("K", 10, 100.0, "USD")]
    assert rows(con, "SELECT case_id, sla_state FROM closed_cases ORDER BY case_id") == [
        ("CS-LATE", "breached"), ("CS-NOV", "met")]
    # the targets due in November: CS-LATE's first response was due on Tue 1 December
    assert rows(con, "SELECT metric, case_id, started_at, due, stopped_at, state FROM closed_targets") == [
        ("first_response", "CS-NOV", local("2026-11-20 15:00"), local("2026-11-23 15:00"), local("2026-11-23 10:00"),
         "met")]
    assert rows(con, "SELECT actor, action, table_name, row_id, after->>'version', after->>'cases', "
                     "after->>'targets' FROM audit_log WHERE action = 'close_month'") == [
        ("lee@support.example", "close_month", "month_closings", "2026-11", "1", "2", "1")]


def test_later_changes_leave_novembers_export_lines_byte_identical(closed, tmp_path):
    con = closed
    before = {report: november_lines(con, CONFIG, report, tmp_path) for report in ("uptime", "refunds")}
    assert before["refunds"] == ["K,ENT,E,2026-11,99.861111,10.0000,100.00,USD,final"]

    # the rules change: a lower default target and a harsher default schedule
    stricter = parse_config({**{"calendar": {"timezone": "Asia/Hong_Kong", "holidays_country": "HK"}},
                             "sla": {"default_uptime_target_pct": 99.0, "default_credit_schedule": "99.95:25"}})
    # and an outage in November is written straight into the table, past every check
    con.execute("INSERT INTO incidents (incident_id, environment_id, impact, started_at, ended_at) VALUES "
                "('SQL', 'E', 'outage', TIMESTAMPTZ '2026-11-10 02:00:00+00', TIMESTAMPTZ '2026-11-10 08:00:00+00')")
    for config in (CONFIG, stricter):
        assert {report: november_lines(con, config, report, tmp_path) for report in ("uptime", "refunds")} == before
    open_views(con, stricter, LATER)
    computed = rows(con, "SELECT downtime_minutes, target_pct FROM env_uptime_live "
                         "WHERE month = '2026-11' AND environment_id = 'E'")
    assert computed == [(420.0, 99.0)]  # what November would read had it not been closed
    assert rows(con, "SELECT credit_pct FROM contract_refunds_live WHERE month = '2026-11'") == [(25,)]
    assert rows(con, "SELECT downtime_minutes FROM env_uptime WHERE month = '2026-11' AND environment_id = 'E'") \
        == [(60.0,)]


def test_reading_as_of_before_the_closing_computes_the_month(closed):
    con = closed
    con.execute("INSERT INTO incidents (incident_id, environment_id, impact, started_at, ended_at) VALUES "
                "('SQL', 'E', 'outage', TIMESTAMPTZ '2026-11-10 02:00:00+00', TIMESTAMPTZ '2026-11-10 03:00:00+00')")
    open_views(con, CONFIG, local("2026-12-01 12:00"))
    assert rows(con, "SELECT downtime_minutes FROM env_uptime WHERE month = '2026-11' AND environment_id = 'E'") \
        == [(120.0,)]


def test_closing_reads_every_case_from_the_rows_the_dashboard_kept(tmp_path, monkeypatch):
    store = Store(tmp_path / "kept.duckdb", CONFIG)
    with store.transaction() as con:
        november(con)
    set_now(local("2026-12-02 09:00"))
    store.ready(store.snapshot())  # the dashboard computes every case, and keeps the rows beside the database
    for thread in store._keeping:
        thread.join()
    store.write(corrections.correct_case, CONFIG, LEAD, "CS-NOV", {"first_response_at": local("2026-11-20 16:00")})
    monkeypatch.setattr(snapshot, "MOST_MOVING", 1.0)  # (of three cases two move with time: kept all the same)
    monkeypatch.setattr(kept, "every_case_rows", None)  # computing every case is not needed: it would fail
    store.write(close_month, CONFIG, LEAD, "2026-11", CLOSING, case_tables=kept.every_case)
    assert store.query("SELECT case_id, stopped_at, state FROM closed_targets").values.tolist() == [
        ["CS-NOV", local("2026-11-20 16:00"), "met"]]
    store.close()


def test_a_month_is_closed_from_the_first_business_day_after_it(con):
    november(con)
    assert refused(close_month, con, CONFIG, LEAD, "2026-11", local("2026-11-30 18:00")) == [
        Problem(None, "month", "2026-11 cannot be closed before Tue 2026-12-01, the first business day after it")]
    # New Year's Day is a holiday and 2 and 3 January a weekend: December closes from Monday 4 January.
    assert refused(close_month, con, CONFIG, LEAD, "2026-12", local("2027-01-02 10:00"))[0].reason == (
        "2026-12 cannot be closed before Mon 2027-01-04, the first business day after it")
    assert refused(close_month, con, CONFIG, LEAD, "2026-13", CLOSING)[0].reason == (
        "'2026-13' is not a month like 2026-11")
    with pytest.raises(PermissionDenied):
        close_month(con, CONFIG, Actor("sam@support.example", "staff"), "2026-11", CLOSING)
    close_month(con, CONFIG, LEAD, "2026-11", local("2026-12-01 09:00"))
    assert refused(close_month, con, CONFIG, LEAD, "2026-11", CLOSING)[0].reason.startswith(
        "2026-11 is closed already (version 1, on Tue 2026-12-01 09:00 HKT (UTC+08:00) by lee@support.example)")


def test_the_command_line_closes_refuses_and_reopens(tmp_path, capsys):
    db, config_file = tmp_path / "support.duckdb", tmp_path / "support.toml"
    config_file.write_text(SPEC_TOML)
    con = connection.connect(db)
    november(con)
    con.close()

    def kb(*args: str) -> int:
        return main(["--db", str(db), "--config", str(config_file), *args])

    assert kb("close-month", "2026-12", "--now", "2026-12-15T10:00:00+08:00") == 1
    assert "2026-12 cannot be closed before Mon 2027-01-04, the first business day after it" in capsys.readouterr().err
    assert kb("close-month", "2026-11", "--now", "2026-12-02T10:00:00+08:00") == 0
    assert capsys.readouterr().out.startswith("closed 2026-11 (version 1): the uptime of 2 environments, the "
                                              "credits of 1 contract, 2 cases received and 1 target due in it are "
                                              "final")
    assert kb("reopen-month", "2026-11", "--reason", " ", "--now", "2026-12-03T10:00:00+08:00") == 1
    assert "is empty: say why" in capsys.readouterr().err
    assert kb("reopen-month", "2026-11", "--reason", "late outage report", "--now", "2026-12-03T10:00:00+08:00") == 0
    assert kb("close-month", "2026-11", "--now", "2026-12-04T10:00:00+08:00") == 0
    assert "closed 2026-11 (version 2)" in capsys.readouterr().out
    con = connection.connect(db, read_only=True)
    assert rows(con, "SELECT version, reopen_reason FROM month_closings ORDER BY version") == [
        (1, "late outage report"), (2, None)]
    cli = f"cli:{getpass.getuser()}"
    assert rows(con, "SELECT action, actor FROM audit_log WHERE table_name = 'month_closings' ORDER BY audit_id") == [
        ("close_month", cli), ("reopen_month", cli), ("close_month", cli)]
    con.close()


def test_closing_a_month_of_thirty_thousand_cases_keeps_every_one_of_them(con):
    """How long it takes is the benchmark's (``python -m kb bench``: closing the last full month)."""
    november(con)
    con.execute("""INSERT INTO cases (case_id, client_id, received_at, category, subject, first_response_at)
                   SELECT 'G-' || i, 'ENT', TIMESTAMPTZ '2026-06-01 01:00:00+00' + to_minutes(i * 8),
                          'platform_issue', 'Case ' || i,
                          CASE WHEN i % 5 <> 0 THEN TIMESTAMPTZ '2026-06-01 06:00:00+00' + to_minutes(i * 8) END
                   FROM range(30000) t(i)""")
    done = close_month(con, CONFIG, LEAD, "2026-11", CLOSING)
    assert done.cases == rows(con, "SELECT count(*) FROM cases WHERE received_at >= ? AND received_at < ?",
                              [local("2026-11-01 00:00"), local("2026-12-01 00:00")])[0][0]


# --- Writes into a closed month -----------------------------------------------------------------------------

def test_forms_corrections_and_imports_into_november_are_refused_naming_it(closed):
    con = closed
    case = {"client_id": "ENT", "category": "platform_issue", "subject": "Late report"}
    assert refused(writes.log_case, con, CONFIG, LEAD, {**case, "received_at": "2026-11-28 10:00"}) == [
        Problem(2, "received_at", CLOSED)]
    assert refused(writes.log_incident, con, CONFIG, LEAD, {
        "environment_id": "E", "impact": "outage", "started_at": "2026-11-30 23:00",
        "ended_at": "2026-12-01 01:00"})[0].reason == CLOSED
    assert refused(corrections.correct_case, con, CONFIG, LEAD, "CS-NOV", {"category": "api_help"})[0].reason == CLOSED
    assert refused(corrections.correct_case, con, CONFIG, LEAD, "CS-DEC",
                   {"received_at": local("2026-11-30 10:00")})[0].reason == CLOSED
    assert refused(corrections.void_case, con, CONFIG, LEAD, "CS-NOV", "logged twice") == [
        Problem(None, "case_id", CLOSED)]
    assert refused(corrections.void_incident, con, CONFIG, LEAD, "I1", "a test") == [
        Problem(None, "incident_id", CLOSED)]
    assert refused(writes.record_response, con, CONFIG, LEAD, "CS-LATE", local("2026-11-30 17:30")) == [
        Problem(None, "first_response_at", CLOSED)]
    # ending the degraded service still going since October inside November would change November
    assert refused(writes.close_incident, con, CONFIG, LEAD, "GOING", local("2026-11-15 10:00")) == [
        Problem(None, "ended_at", CLOSED)]
    before = rows(con, "SELECT count(*) FROM cases")
    csv_file = (b"case_id,client_id,received_at,category,subject\n"
                b"CS-A,ENT,2026-12-02 09:00,platform_issue,Fine\n"
                b"CS-B,ENT,2026-11-29 09:00,platform_issue,Too late\n")
    assert refused(imported, con, "cases", csv_file) == [Problem(3, "received_at", CLOSED)]
    assert rows(con, "SELECT count(*) FROM cases") == before

    # what lies after November goes on: a response today to the case of November's last evening, ending the
    # degraded service now, a case of December
    writes.record_response(con, CONFIG, LEAD, "CS-LATE", local("2026-12-03 09:00"))
    writes.close_incident(con, CONFIG, LEAD, "GOING", local("2026-12-03 09:30"))
    assert writes.log_case(con, CONFIG, LEAD, {**case, "received_at": "2026-12-02 11:00"}).row_id == "CS-00001"


def test_imported_waits_and_messages_dated_in_november_are_refused_naming_the_line(closed):
    con = closed
    before = rows(con, "SELECT (SELECT count(*) FROM pauses), (SELECT count(*) FROM messages)")
    pauses = (b"case_id,paused_at,resumed_at\n"
              b"CS-DEC,2026-12-02 09:00,2026-12-02 10:00\n"
              b"CS-NOV,2026-11-24 09:00,2026-11-24 12:00\n"
              b"CS-LATE,2026-11-30 18:00,2026-12-02 09:00\n")  # a wait across the month's end moves November too
    assert refused(imported, con, "pauses", pauses) == [Problem(3, "paused_at", CLOSED),
                                                        Problem(4, "paused_at", CLOSED)]
    messages = (b"case_id,at,direction\n"
                b"CS-DEC,2026-12-02 09:00,client\n"
                b"CS-NOV,2026-11-24 09:00,client\n")
    assert refused(imported, con, "messages", messages) == [Problem(3, "at", CLOSED)]
    assert rows(con, "SELECT (SELECT count(*) FROM pauses), (SELECT count(*) FROM messages)") == before

    imported(con, "pauses", b"\n".join(pauses.splitlines()[:2]))
    imported(con, "messages", b"\n".join(messages.splitlines()[:2]))
    assert rows(con, "SELECT case_id FROM pauses UNION ALL SELECT case_id FROM messages") == [("CS-DEC",), ("CS-DEC",)]


def test_a_message_dated_before_a_closed_month_ends_the_wait_when_that_month_ends(con):
    """A wait of October still open through closed November: a client's message of October imported now ends
    it when November ends, so November's numbers stay as frozen; the message is stored as dated."""
    november(con)
    add(con, CONFIG, "cases", dict(case_id="CS-OCT", client_id="ENT", received_at="2026-10-28 10:00",
                                   category="platform_issue", subject="Logs please",
                                   first_response_at="2026-10-28 11:00"))
    add(con, CONFIG, "pauses", dict(case_id="CS-OCT", paused_at="2026-10-30 10:00", reason="Waiting on logs"))
    close_month(con, CONFIG, LEAD, "2026-11", CLOSING)
    set_now(LATER)
    november_end = local("2026-11-30 23:00")
    clocks = "SELECT waiting_on_client, sla_state FROM case_sla WHERE case_id = 'CS-OCT'"
    before = views(con, CONFIG, november_end).execute(clocks).fetchall()
    imported(con, "messages", b"case_id,at,direction\nCS-OCT,2026-10-31 09:00,client\n")
    assert rows(con, "SELECT resumed_at, resumed_by FROM pauses WHERE case_id = 'CS-OCT'") == [
        (local("2026-12-01 00:00"), "import")]
    (after,), = rows(con, "SELECT after FROM audit_log WHERE action = 'resume' AND row_id = 'CS-OCT'")
    assert json.loads(after)["after_closed_month"] == "2026-11"
    assert rows(con, "SELECT received_at FROM messages WHERE case_id = 'CS-OCT'") == [(local("2026-10-31 09:00"),)]
    assert views(con, CONFIG, november_end).execute(clocks).fetchall() == before == [(True, "met")]  # unmoved


def test_a_month_closed_while_an_import_is_checked_refuses_its_lines(tmp_path, monkeypatch):
    """The service checks an import without the write lock and commits it under the lock: a month closed in
    between is seen at the commit, and the rows are checked again (and refused, naming the line)."""
    store = Store(tmp_path / "race.duckdb", CONFIG)
    with store.transaction() as con:
        november(con)
    set_now(LATER)
    check = store._checked_rows

    def closing_meanwhile(*args, **kwargs):
        rows = check(*args, **kwargs)
        if not store.query("SELECT * FROM month_closings").shape[0]:
            store.write(close_month, CONFIG, LEAD, "2026-11", CLOSING)
        return rows
    monkeypatch.setattr(store, "_checked_rows", closing_meanwhile)
    messages = b"case_id,at,direction\nCS-DEC,2026-12-02 09:00,client\nCS-NOV,2026-11-24 09:00,client\n"
    assert refused(store.import_rows, staged_from_csv("messages", messages), LEAD, source="messages.csv") == [
        Problem(3, "at", CLOSED)]
    assert store.query("SELECT count(*) AS n FROM messages").n[0] == 0
    store.close()


def test_an_import_whose_resume_meets_a_queue_write_is_checked_again_and_written(tmp_path, monkeypatch):
    """A client message imported while staff resume the same wait on the Queue: the import's update of the wait
    conflicts with the Queue's, and the import is checked again and written (the wait stays as staff ended it)."""
    store = Store(tmp_path / "resume.duckdb", CONFIG)
    with store.transaction() as con:
        november(con)
    set_now(LATER)
    store.write(pauses.pause_case, CONFIG, LEAD, "CS-DEC", local("2026-12-02 09:00"), "Waiting on logs")
    resume = store_module.resume_on_imported_messages
    calls = []

    def staff_first(cur, config, actor, rows):
        if not calls:  # the Queue's resume commits while the import's transaction is open
            store.write(pauses.resume_case, CONFIG, LEAD, "CS-DEC", local("2026-12-02 09:30"))
        calls.append(rows.num_rows)
        return resume(cur, config, actor, rows)
    monkeypatch.setattr(store_module, "resume_on_imported_messages", staff_first)
    messages = b"case_id,at,direction\nCS-DEC,2026-12-02 10:00,client\n"
    assert store.import_rows(staged_from_csv("messages", messages), LEAD, source="messages.csv") == 1
    assert len(calls) == 2  # checked and written again
    assert store.query("SELECT count(*) AS n FROM messages").n[0] == 1
    assert store.query("SELECT resumed_at, resumed_by FROM pauses").values.tolist() == [
        [local("2026-12-02 09:30"), LEAD.email]]
    store.close()


def test_after_reopening_the_writes_go_and_closing_again_is_version_2(closed, tmp_path):
    con = closed
    with pytest.raises(PermissionDenied):
        reopen_month(con, CONFIG, LEAD, "2026-11", "a late report")
    assert refused(reopen_month, con, CONFIG, ADMIN, "2026-11", "   ") == [Problem(None, "reason", "is empty: say why")]
    assert refused(reopen_month, con, CONFIG, ADMIN, "2026-10", "why not") == [
        Problem(None, "month", "2026-10 is not closed")]
    assert reopen_month(con, CONFIG, ADMIN, "2026-11", "the customer reported a second outage late") == 1
    add(con, CONFIG, "incidents", dict(incident_id="I2", environment_id="E", impact="outage",
                                       started_at="2026-11-10 10:00", ended_at="2026-11-10 17:00"))
    assert close_month(con, CONFIG, LEAD, "2026-11", local("2026-12-04 10:00")).version == 2
    assert rows(con, "SELECT version, reopened_by, reopen_reason FROM month_closings ORDER BY version") == [
        (1, ADMIN.email, "the customer reported a second outage late"), (2, None, None)]
    assert rows(con, "SELECT version, credit_pct FROM closed_refunds ORDER BY version") == [(1, 10), (2, 30)]
    assert november_lines(con, CONFIG, "refunds", tmp_path, local("2026-12-05 10:00")) == [
        "K,ENT,E,2026-11,98.888889,30.0000,300.00,USD,final"]
    # as of a moment the first version was in force, November still reads as it did then
    assert november_lines(con, CONFIG, "refunds", tmp_path, local("2026-12-02 18:00")) == [
        "K,ENT,E,2026-11,99.861111,10.0000,100.00,USD,final"]
    assert rows(con, "SELECT action, row_id, after->>'reopen_reason' FROM audit_log WHERE action = 'reopen_month'") == [
        ("reopen_month", "2026-11", "the customer reported a second outage late")]


# --- Webhooks and mail --------------------------------------------------------------------------------------

def webhooks(tmp_path) -> tuple[Store, str]:
    """A store holding the module's data with November closed, and a staff token for its webhooks."""
    store = Store(tmp_path / "hooks.duckdb", CONFIG)
    with store.transaction() as con:
        november(con)
    store.write(close_month, CONFIG, LEAD, "2026-11", CLOSING)
    return store, store.write(tokens.create_token, ADMIN, name="monitoring", role="staff").token


def webhook_app(store: Store) -> Starlette:
    @asynccontextmanager
    async def lifespan(app):
        yield {"store": store}

    return Starlette(routes=ROUTES, lifespan=lifespan)


def am_alert(fingerprint: str, starts: str) -> dict:
    return {"status": "firing", "labels": {"alertname": "ApiDown", "environment": "E", "severity": "critical"},
            "annotations": {}, "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fingerprint}


def am_payload(*alerts: dict) -> dict:
    return {"version": "4", "status": "firing", "receiver": "support", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "alerts": list(alerts)}


def test_a_webhook_alert_in_november_is_set_aside_alone_and_taken_after_reopening(tmp_path):
    set_now(LATER)
    store, staff = webhooks(tmp_path)
    headers = {"Authorization": f"Bearer {staff}"}
    late, today = am_alert("late", "2026-11-29T02:00:00Z"), am_alert("today", "2026-12-03T01:00:00Z")
    with TestClient(webhook_app(store)) as client:
        response = client.post("/api/v1/webhooks/alertmanager", json=am_payload(late, today), headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["opened"] == ["INC-00001"]
        assert response.json()["closed_months"] == [{"alert": "late@2026-11-29T02:00:00+00:00", "reason": CLOSED}]
        assert store.query("SELECT outcome FROM webhook_events ORDER BY event_key").outcome.tolist() == [
            f"closed month: {CLOSED}", "opened"]

        alone = client.post("/api/v1/webhooks/alertmanager", json=am_payload(late), headers=headers)
        assert alone.status_code == 422 and CLOSED in alone.json()["error"]

        kuma = {"heartbeat": {"monitorID": 7, "status": 0, "time": "2026-11-30 15:00:00", "msg": "timeout"},
                "monitor": {"id": 7, "name": "E"}}
        down = client.post("/api/v1/webhooks/uptime-kuma", json=kuma, headers=headers)
        assert down.status_code == 422 and f"heartbeat.time: {CLOSED}" in down.json()["error"]

        store.write(reopen_month, CONFIG, ADMIN, "2026-11", "the November alerts came in late")
        again = client.post("/api/v1/webhooks/alertmanager", json=am_payload(late, today), headers=headers)
        assert again.json()["opened"] == ["INC-00002"] and again.json()["closed_months"] == []
    store.close()


def eml(folder: Path, name: str, date: str) -> None:
    (folder / f"{name}.eml").write_bytes(
        f"From: Ops <ops@ent.example>\nTo: support@knowru.example\nSubject: {name}\nDate: {date}\n"
        f"Message-ID: <{name}@ent.example>\n\nIt is down.\n".encode())


def test_mail_dated_in_november_is_held_with_the_reason_and_taken_after_reopening(closed, tmp_path):
    con = closed
    folder = tmp_path / "mail"
    folder.mkdir()
    eml(folder, "late", "Fri, 27 Nov 2026 10:00:00 +0800")
    eml(folder, "today", "Thu, 03 Dec 2026 09:00:00 +0800")
    outcome, _ = import_paths(con, CONFIG, [folder], ADMIN, now=LATER)
    assert outcome.cases_opened == 1 and len(outcome.held) == 1
    assert rows(con, "SELECT message_key, reason FROM mail_quarantine") == [("late@ent.example", f"its date: {CLOSED}")]

    reopen_month(con, CONFIG, ADMIN, "2026-11", "late mail")
    assert retry(con, CONFIG, ADMIN, "late@ent.example", now=LATER).startswith("taken: 1 case opened")


# --- Statements and credits ---------------------------------------------------------------------------------

def test_a_closed_months_statement_is_as_of_its_closing(closed):
    con = closed
    writes.record_response(con, CONFIG, LEAD, "CS-LATE", local("2026-12-01 16:00"))  # recorded late
    open_views(con, CONFIG, LATER)
    assert rows(con, "SELECT sla_state FROM case_sla WHERE case_id = 'CS-LATE'") == [("met",)]
    frozen = statement(con, CONFIG, "ENT", "2026-11", LATER)
    responses = frozen.targets["first_response"]  # due in November; CS-LATE's was due in December
    assert dict(zip(responses.case_id, responses.state, strict=True)) == {"CS-NOV": "met"}
    assert frozen.as_of == CLOSING and frozen.totals["credits"] == {"USD": "100.00"}


def test_a_closed_months_statement_names_the_client_as_its_closing_found_it(closed):
    con = closed
    update_row(con, CONFIG, staged_from_records("clients", [dict(client_id="ENT", name="Renamed Co", tier="custom",
                                                                 statement_recipients="cfo@ent.example")]),
               LEAD, permission="import")
    open_views(con, CONFIG, LATER)
    november_statement = statement(con, CONFIG, "ENT", "2026-11", LATER)
    assert (november_statement.client_name, november_statement.tier) == ("Enterprise Co", "enterprise")
    december = statement(con, CONFIG, "ENT", "2026-12", LATER)  # an open month: as the client is now
    assert (december.client_name, december.tier) == ("Renamed Co", "custom")
    assert rows(con, "SELECT month, version, client_id, name, tier FROM closed_clients") == [
        ("2026-11", 1, "ENT", "Enterprise Co", "enterprise")]


def test_a_closed_months_statement_keeps_its_targets_when_a_rule_is_edited_in_place(closed):
    con = closed
    kept = statement(con, CONFIG, "ENT", "2026-11", LATER)
    edited = parse_config({**RULES, "sla": {"enterprise_response_business_days": 2}})  # no dated change: in place
    open_views(con, edited, CLOSING)
    assert rows(con, "SELECT first_response_due FROM case_sla WHERE case_id = 'CS-NOV'") == [
        (local("2026-11-24 15:00"),)]  # what computing it again says now
    again = statement(con, edited, "ENT", "2026-11", LATER)
    assert again.targets["first_response"].to_dict("records") == kept.targets["first_response"].to_dict("records")
    assert kept.targets["first_response"].due.tolist() == [local("2026-11-23 15:00")]
    pd.testing.assert_frame_equal(again.met, kept.met)
    assert kept.met.set_index("metric").loc["first_response", ["met", "decided"]].tolist() == [1, 1]
    assert again.totals == kept.totals and again.totals["cases"] == 2


def test_every_page_counts_a_closed_months_targets_as_its_closing_kept_them(tmp_path):
    store = Store(tmp_path / "kept.duckdb", CONFIG)
    with store.transaction() as con:
        november(con)
    store.write(close_month, CONFIG, LEAD, "2026-11", CLOSING)
    set_now(LATER)
    november_shares = (local("2026-11-01 00:00"), local("2026-12-01 00:00"))
    assert every_target(met_shares(store, store.snapshot(), *november_shares)).loc[0, ["met", "decided"]].tolist() \
        == [1, 1]
    store.close()
    # the business day edited in place to half an hour: computed again, CS-NOV's first response was late
    edited = parse_config({**RULES, "calendar": {**RULES["calendar"], "business_hours": ["09:00", "09:30"]}})
    store = Store(tmp_path / "kept.duckdb", edited)
    snap = store.snapshot()
    with store.reader(snap, ("case_sla",)) as cur:
        assert cur.execute("SELECT sla_state FROM case_sla WHERE case_id = 'CS-NOV'").fetchall() == [("breached",)]
    shares = every_target(met_shares(store, snap, *november_shares))
    assert shares.loc[0, ["metric", "met", "breached", "decided"]].tolist() == ["first_response", 1, 0, 1]
    # Response performance lists no breach the closing did not keep, and counts no reason for one
    november_days = (date(2026, 11, 1), date(2026, 11, 30))
    assert performance.breached(store, snap, "first_response", "month", *november_days, ()).empty
    assert performance.breach_reasons(store, snap, *november_days, ()).empty
    store.close()


def shares(con, config, as_of, start: str, end: str) -> list[tuple]:
    """(metric, met, breached) of the targets due in [start, end) as every page counts them as of ``as_of``."""
    views(con, config, as_of)
    counted = met_shares_on(con, config, local(start), local(end), decided=decided_as_of_sql(con, config, as_of))
    return [tuple(row) for row in counted[["metric", "met", "breached"]].itertuples(index=False)]


def test_a_target_kept_by_its_closing_is_not_counted_again_where_a_rule_edited_in_place_moves_it(con):
    november(con)
    add(con, CONFIG, "cases", dict(case_id="CS-EDGE", client_id="ENT", received_at="2026-11-30 09:00",
                                   category="platform_issue", subject="Edge", first_response_at="2026-11-30 10:00"))
    close_month(con, CONFIG, LEAD, "2026-11", CLOSING)
    edited = parse_config({**RULES, "sla": {"enterprise_response_business_days": 2}})  # CS-EDGE now due in December
    views(con, edited, LATER)
    assert rows(con, "SELECT first_response_due FROM case_sla WHERE case_id = 'CS-EDGE'") == [
        (local("2026-12-01 18:00"),)]
    # November keeps CS-NOV and CS-EDGE, met; December counts CS-LATE alone (breached), not CS-EDGE again
    assert shares(con, edited, LATER, "2026-11-01 00:00", "2026-12-01 00:00") == [("first_response", 2, 0)]
    assert shares(con, edited, LATER, "2026-12-01 00:00", "2027-01-01 00:00") == [("first_response", 0, 1)]
    # and December's statement does not list CS-EDGE: it is November's, as its closing kept it
    assert statement(con, edited, "ENT", "2026-12", LATER).targets["first_response"].case_id.tolist() == [
        "CS-LATE", "CS-DEC"]


def test_response_performance_lists_a_kept_breach_in_its_closed_month_alone(tmp_path):
    """CS-EDGE, never answered, was breached in November when it closed; a rule edited in place since moves its
    deadline into December. November's list keeps it, December's does not list it again."""
    store = Store(tmp_path / "edge.duckdb", CONFIG)
    with store.transaction() as con:
        november(con)
        add(con, CONFIG, "cases", dict(case_id="CS-EDGE", client_id="ENT", received_at="2026-11-30 09:00",
                                       category="platform_issue", subject="Edge"))
    store.write(close_month, CONFIG, LEAD, "2026-11", CLOSING)
    store.close()
    set_now(LATER)
    edited = parse_config({**RULES, "sla": {"enterprise_response_business_days": 2}})
    store = Store(tmp_path / "edge.duckdb", edited)
    snap = store.snapshot()
    with store.reader(snap, ("case_sla",)) as cur:
        assert cur.execute("SELECT first_response_due FROM case_sla WHERE case_id = 'CS-EDGE'").fetchall() == [
            (local("2026-12-01 18:00"),)]
    listed = {month: performance.breached(store, snap, "first_response", "month", *days, ()).case_id.tolist()
              for month, days in (("nov", (date(2026, 11, 1), date(2026, 11, 30))),
                                  ("dec", (date(2026, 12, 1), date(2026, 12, 31))))}
    assert listed == {"nov": ["CS-EDGE"], "dec": ["CS-LATE"]}
    december = performance.breach_reasons(store, snap, date(2026, 12, 1), date(2026, 12, 31), ())
    assert december.cases.tolist() == [1]
    store.close()


def test_a_month_whose_client_asked_twice_in_one_second_closes(con):
    november(con)
    con.execute("INSERT INTO policies (policy_id, metric, priority, within) VALUES "
                "('enterprise', 'first_response', '*', '1d'), ('enterprise', 'next_response', '*', '1d')")
    add(con, CONFIG, "messages", dict(case_id="CS-NOV", at="2026-11-24 10:00", direction="client", message_id="<a@x>"),
        dict(case_id="CS-NOV", at="2026-11-24 10:00", direction="client", message_id="<b@x>"))
    assert close_month(con, CONFIG, LEAD, "2026-11", CLOSING).targets == 3  # a first response, two questions
    assert rows(con, "SELECT metric, count(*) FROM closed_targets GROUP BY ALL ORDER BY 1") == [
        ("first_response", 1), ("next_response", 2)]


def test_a_month_closed_before_closings_kept_targets_is_counted_as_computed(con):
    november(con)
    close_month(con, CONFIG, LEAD, "2026-11", CLOSING)
    con.execute("DELETE FROM closed_targets")  # as a closing made before kept none
    con.execute("UPDATE month_closings SET targets_kept = FALSE")
    assert shares(con, CONFIG, LATER, "2026-11-01 00:00", "2026-12-01 00:00") == [("first_response", 1, 0)]
    kept = statement(con, CONFIG, "ENT", "2026-11", LATER)
    assert kept.targets["first_response"].case_id.tolist() == ["CS-NOV"] and kept.totals["cases"] == 2


def test_closing_or_reopening_a_month_changes_what_percent_met_counts():
    for action in ("close_month", "reopen_month"):
        change = change_of([("month_closings", "2026-11", None, json.dumps({"version": 1, "action": action}))])
        assert change.closings and change.uptime and not change.everything
        changed = set()
        assert patched(None, CONFIG, {}, change, LATER, changed) == {}
        assert DECIDED_TARGETS in changed
    changed = set()
    patched(None, CONFIG, {}, change_of([("incidents", "I1", None, "{}")]), LATER, changed)
    assert DECIDED_TARGETS not in changed  # an incident changes uptime alone


def test_a_sent_statement_is_served_byte_for_byte(tmp_path, capsys):
    db, config_file = tmp_path / "support.duckdb", tmp_path / "support.toml"
    config_file.write_text(SPEC_TOML)
    inbox = Inbox().start()
    mailing = parse_config({"calendar": {"timezone": "Asia/Hong_Kong", "holidays_country": "HK"},
                            "alerts": {"smtp_url": f"smtp://127.0.0.1:{inbox.port}", "sender": "sla@support.example"}})
    con = connection.connect(db)
    try:
        november(con)
        assert send_statements(con, mailing, local("2026-12-01 10:00")).sent == ["ENT 2026-11"]
        (recipients, message), = inbox.messages
        (attachment,) = message.iter_attachments()
        kept = sent_statement(con, "ENT", "2026-11")
        assert kept.pdf == attachment.get_content() and kept.sent_at == local("2026-12-01 10:00")
        assert kept.sha256 == hashlib.sha256(kept.pdf).hexdigest()
        add(con, CONFIG, "incidents", dict(incident_id="I9", environment_id="E", impact="outage",
                                           started_at="2026-11-20 10:00", ended_at="2026-11-20 12:00"))
    finally:
        con.close()
        inbox.stop()
    out = tmp_path / "again.pdf"
    assert main(["--db", str(db), "--config", str(config_file), "statement", "--client", "ENT", "--month",
                 "2026-11", "--out", str(out)]) == 0
    assert out.read_bytes() == kept.pdf
    assert "as it was e-mailed on Tue 2026-12-01 10:00 HKT" in capsys.readouterr().out


def test_a_month_closed_on_the_page_is_final_at_once(tmp_path):
    store = Store(tmp_path / "credits.duckdb", CONFIG)
    with store.transaction() as con:
        november(con)
    set_now(CLOSING)
    shown = store.snapshot()
    assert credit_stages(store, shown, "2026-11").stage.tolist() == ["computed"]
    set_now(CLOSING + timedelta(seconds=30))  # the lead reads the page, then closes the month
    store.write(close_month, CONFIG, LEAD, "2026-11")
    after = store.snapshot()  # the same snapshot, brought up to date with the write: no minute's wait
    assert (after.as_of, after.rows_as_of) == (CLOSING + timedelta(seconds=30), CLOSING)
    assert credit_stages(store, after, "2026-11").stage.tolist() == ["final"]
    set_now(CLOSING + timedelta(seconds=70))  # its rows a minute old, though the write was 40 seconds ago
    store.snapshot()  # served as it is while they are moved on to now in the background
    for _ in range(100):
        if store.snapshot().rows_as_of == CLOSING + timedelta(seconds=70):
            break
        time.sleep(0.05)
    assert store.snapshot().as_of == store.snapshot().rows_as_of == CLOSING + timedelta(seconds=70)
    store.close()


def test_a_final_credit_marked_applied_is_no_longer_owed(tmp_path):
    store = Store(tmp_path / "credits.duckdb", CONFIG)
    with store.transaction() as con:
        november(con)
    before = store.snapshot(LATER)
    assert credit_stages(store, before, "2026-01").stage.tolist() == ["computed"]
    owed = overview.credits_owed(store, before, months_of(CONFIG.calendar, LATER))
    assert owed[["month", "stage", "refund_amount"]].values.tolist() == [["2026-11", "computed", 100.0]]  # not final
    assert refused(store.write, apply_credit, CONFIG, LEAD, "K", "2026-11", "INV-118")[0].reason.startswith(
        "2026-11 is not closed")

    store.write(close_month, CONFIG, LEAD, "2026-11", CLOSING)
    owed = overview.credits_owed(store, store.snapshot(LATER), months_of(CONFIG.calendar, LATER))
    assert owed[["month", "stage", "client_name", "refund_amount", "currency"]].values.tolist() == [
        ["2026-11", "final", "Enterprise Co", 100.0, "USD"]]
    with pytest.raises(PermissionDenied):
        store.write(apply_credit, CONFIG, Actor("sam@support.example", "staff"), "K", "2026-11", "INV-118")
    store.write(apply_credit, CONFIG, LEAD, "K", "2026-11", " INV-2026-118 ", LATER)
    assert store.query("SELECT contract_id, month, amount, currency, applied_by, reference "
                       "FROM credit_applications").values.tolist() == [
        ["K", "2026-11", 100.0, "USD", "lee@support.example", "INV-2026-118"]]
    after = store.snapshot(local("2026-12-03 11:00"))
    assert overview.credits_owed(store, after, months_of(CONFIG.calendar, LATER)).empty
    stages = credit_stages(store, after, "2026-01")
    assert stages[["stage", "reference"]].values.tolist() == [["applied", "INV-2026-118"]]
    assert refused(store.write, apply_credit, CONFIG, LEAD, "K", "2026-11", "INV-2")[0].reason.startswith(
        "the 2026-11 credit of contract K was applied already (INV-2026-118")
    store.close()


# --- The page -----------------------------------------------------------------------------------------------

def test_leads_close_and_admins_reopen_on_the_service_credits_page(signed_in, monkeypatch):
    monkeypatch.setenv("SUPPORT_AS_OF", "2026-12-02T12:00:00+08:00")
    set_now(CLOSING)
    at = open_page(signed_in("lee@support.example"), "refunds")
    assert at.selectbox(key="close_month_which").value == "2026-11"
    next(b for b in at.button if b.label == "Close month").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert [shown(s) for s in at.success] == [
        "Nov 2026 is closed (version 1): the uptime of 2 environments, the credits of 1 contract, 6 cases received "
        "and 5 targets due in it are final."]
    stages = next(d.value for d in at.dataframe if "stage" in d.value.columns)
    assert stages[["month", "stage"]].values.tolist() == [["Oct 2026", "Computed"]]  # November owes no credit
    assert "Reopen month" not in [b.label for b in at.button]  # leads do not reopen

    at = open_page(signed_in("ada@support.example"), "refunds")
    at.text_input(key="reopen_month_reason").input("a late outage report")
    next(b for b in at.button if b.label == "Reopen month").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert [shown(s) for s in at.success] == ["Nov 2026 is open again (version 1 is kept)."]
    closings = next(d.value for d in at.dataframe if "reopen_reason" in d.value.columns)
    assert closings.reopen_reason.tolist() == ["a late outage report"]


def test_the_client_page_serves_the_statement_as_sent(app):
    at, _ = app
    pdf = b"%PDF-1.7\nthe statement as it was e-mailed\n"
    from kb import ui

    store = ui._open_app(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store  # the one the app holds
    with store.transaction() as con:
        con.execute("INSERT INTO sent_statements VALUES ('ENT', '2026-10', ?, ?, ?)",
                    [local("2026-11-02 10:00"), pdf, hashlib.sha256(pdf).hexdigest()])
    open_page(at, "client")
    at.selectbox(key="client_page_client").select("ENT").run()
    assert at.selectbox(key="client_page_month:ENT").value == "2026-10"
    (download,) = at.get("download_button")
    assert download.proto.label == "Download statement as sent"
    assert "Prepare statement" not in [b.label for b in at.button]
    assert (f"E-mailed on Mon 2026-11-02 10:00 HKT (UTC+08:00): the PDF as sent (SHA-256 "
            f"{hashlib.sha256(pdf).hexdigest()}).") in [c.value for c in at.caption]
