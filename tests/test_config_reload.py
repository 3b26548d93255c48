"""support.toml changes while the service runs: the service reloads it (by itself, or on "Reload configuration"),
validates it whole and keeps the rules in force when it cannot be used, records the rules' differences in the
audit trail in words (the actor is the file), and history computed before the change date does not move."""

from __future__ import annotations

import csv
import io
import json
import os
import time
import tomllib
from contextlib import contextmanager
from datetime import datetime

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from streamlit.testing.v1 import AppTest

from kb import opening
from kb.config import parse_config
from kb.config.effective import FIRST_RECORDED, differences, effective_rules, fingerprint
from kb.db import connection
from kb.engine.periods import months_of
from kb.reads import client as client_reads
from kb.reads import overview
from kb.service import jobs as service_jobs
from kb.service.app import MIDDLEWARE, ROUTES, lifespan
from kb.service.jobs import Jobs
from kb.service.tokens import create_token
from kb.statement.mailing import send_statements
from kb.store import Store
from tests.fixtures import ADMIN, ROOT, add, button, shown
from tests.servers import Inbox

NOW = "2026-11-30T17:30:00+08:00"  # Monday, the last business day of November: this month
END_OF_LAST_MONTH = "2026-10-31T23:59:59+08:00"
REPORTS = ("case-sla", "responses", "uptime", "refunds")
EMAILED = "statement ENT 2026-10, as e-mailed.pdf"

TOML = """
[calendar]
timezone = "Asia/Hong_Kong"
business_hours = ["09:00", "18:00"]
weekend = ["Sat", "Sun"]
holidays_country = "HK"
extra_holidays = ["2026-11-27"]

[backup]
every_hours = 0
"""
# From the first day of next month the team opens at 08:00, and next Thursday is closed.
EDITED = TOML.replace('extra_holidays = ["2026-11-27"]', 'extra_holidays = ["2026-11-27", "2026-12-03"]') + """
[[calendar.changes]]
from = "2026-12-01"
business_hours = ["08:00", "18:00"]
"""
CHANGES = ["calendar.extra_holidays: 2026-11-27 → 2026-11-27, 2026-12-03",
           "calendar: from 2026-12-01 business hours 08:00–18:00 (new change)"]


def write(path, text: str, *, settled: bool = True) -> None:
    """Replace the file at once, as an editor that saves through a new file does; ``settled``: written long
    enough ago for the service's check to read it."""
    draft = path.with_suffix(".draft")
    draft.write_text(text)
    os.replace(draft, path)
    if settled:
        past = time.time() - 60
        os.utime(path, (past, past))


def build(folder):
    """Last month and this month of an enterprise, a custom and a free client, with an outage each month."""
    config_file = folder / "support.toml"
    write(config_file, TOML)
    config = parse_config(tomllib.loads(TOML))
    db = folder / "support.duckdb"
    con = connection.connect(db)
    add(con, config, "clients", dict(client_id="ENT", name="Enterprise Co", tier="enterprise",
                                     statement_recipients="cfo@ent.example"),
        dict(client_id="CUS", name="Custom Co", tier="custom"), dict(client_id="FREE", name="Free User", tier="free"),
        dict(client_id="SLOW", name="Slow Co", tier="enterprise"))
    add(con, config, "environments",
        dict(environment_id="E1", name="Enterprise prod", kind="dedicated", deployment="on_premise", client_id="ENT",
             active_from="2026-01-01"),
        dict(environment_id="E3", name="Slow prod", kind="dedicated", deployment="on_premise", client_id="SLOW",
             active_from="2026-01-01"))
    add(con, config, "contracts", dict(contract_id="K1", client_id="ENT", environment_id="E1", uptime_target_pct="99.9",
                                       monthly_fee="1000", currency="USD", starts_on="2026-01-01"),
        dict(contract_id="K3", client_id="SLOW", environment_id="E3", response_business_days="3", monthly_fee="500",
             currency="USD", starts_on="2026-01-01"))
    add(con, config, "cases", *[
        dict(case_id=case_id, client_id=client, received_at=received, category="platform_issue",
             subject=f"Subject of {case_id}", first_response_at=response)
        for case_id, client, received, response in [
            ("OCT-MET", "ENT", "2026-10-05 10:00", "2026-10-06 09:30"),
            ("OCT-LATE", "ENT", "2026-10-30 17:00", "2026-11-02 17:30"),  # due Mon 2026-11-02 17:00
            ("OCT-NONE", "CUS", "2026-10-20 11:00", ""),
            ("OCT-FREE", "FREE", "2026-10-29 15:00", "2026-10-30 12:00"),
            ("NOV-MET", "ENT", "2026-11-10 10:00", "2026-11-10 15:00"),
            ("NOV-HOLIDAY", "CUS", "2026-11-26 16:00", ""),  # due Mon 2026-11-30 16:00, over the closed Friday
            ("LAST-DAY", "ENT", "2026-11-30 17:00", ""),  # the last business day before next month
            ("THREE-DAYS", "SLOW", "2026-11-30 17:00", ""),  # due on Thursday, which next week is closed
        ]])
    add(con, config, "messages", dict(case_id="NOV-MET", at="2026-11-11 10:00", direction="client"),
        dict(case_id="NOV-MET", at="2026-11-11 11:00", direction="team"))
    add(con, config, "incidents",
        dict(incident_id="I1", environment_id="E1", impact="outage", started_at="2026-10-10 10:00",
             ended_at="2026-10-10 11:00", summary="October outage"),
        dict(incident_id="I2", environment_id="E1", impact="outage", started_at="2026-11-20 10:00",
             ended_at="2026-11-20 10:10", summary="November blip"))
    inbox = Inbox().start()
    try:  # October's statement, e-mailed on the first business day of November
        mailing = parse_config({**tomllib.loads(TOML), "alerts": {"smtp_url": f"smtp://127.0.0.1:{inbox.port}",
                                                                  "sender": "sla@support.example"}})
        assert send_statements(con, mailing, datetime.fromisoformat("2026-11-02T10:00:00+08:00")).sent == \
            ["ENT 2026-10"]
        (_, message), = inbox.messages
        (attachment,) = message.iter_attachments()
        (folder / EMAILED).write_bytes(attachment.get_content())  # the PDF as the client received it
    finally:
        inbox.stop()
    con.close()
    return db, config_file


@contextmanager
def serving(monkeypatch, db, config_file):
    """The service as ``streamlit run dashboard.py`` starts it (its own lifespan and routes), in this process,
    on ``db`` and ``config_file`` with the clock at NOW; yields its client and store."""
    monkeypatch.setenv("SUPPORT_DB", str(db))
    monkeypatch.setenv("SUPPORT_CONFIG", str(config_file))
    monkeypatch.setenv("SUPPORT_NOW", NOW)
    try:
        with TestClient(Starlette(routes=ROUTES, middleware=MIDDLEWARE, lifespan=lifespan)) as client:
            yield client, opening.running().store
    finally:
        from kb import ui

        ui._open_app.clear()


@pytest.fixture
def service(tmp_path, monkeypatch):
    db, config_file = build(tmp_path)
    with serving(monkeypatch, db, config_file) as (client, store):
        token = store.write(create_token, ADMIN, name="exports", role="admin").token
        yield client, store, config_file, {"Authorization": f"Bearer {token}"}


def exports(client, auth: dict) -> dict[tuple[str, str], bytes]:
    """Each report at NOW and at the end of last month, as the API sends it."""
    found = {}
    for report in REPORTS:
        for as_of in (NOW, END_OF_LAST_MONTH):
            response = client.get(f"/api/v1/export/{report}", params={"as_of": as_of}, headers=auth)
            assert response.status_code == 200, response.text
            found[report, as_of] = response.content
    return found


def rows_of(data: bytes) -> dict[str, dict]:
    return {row["case_id"]: row for row in csv.DictReader(io.StringIO(data.decode()))}


def last_month_overview(store: Store) -> dict[str, str]:
    """What the Overview reads of last month at NOW, as CSV text."""
    snap = store.snapshot(datetime.fromisoformat(NOW))
    months = months_of(store.config.calendar, snap.as_of)
    performance = overview.response_performance(store, snap, months)
    below = overview.environments_below_target(store, snap, months)
    refunds = overview.refund_exposure(store, snap, months)
    read = {"performance": performance[performance.month == months.last],
            "below target": below[below.month == months.last],
            "refund exposure": refunds[refunds.month == months.last]}
    assert all(len(frame) for frame in read.values())
    return {name: frame.to_csv(index=False) for name, frame in read.items()}


def rules_rows(store: Store):
    return store.query("SELECT actor, table_name, row_id, before, after FROM audit_log WHERE action = 'rules' "
                       "ORDER BY audit_id")


def configuration_page() -> AppTest:
    """The Configuration page of the running service (AppTest shares its store), in local mode as admin."""
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
    at.switch_page("pages/configuration.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


# --- The service reloads a changed file ----------------------------------------------------------------------

def test_a_reload_moves_next_months_deadlines_and_nothing_before_it(service, monkeypatch):
    client, store, config_file, auth = service
    [first] = rules_rows(store).to_dict("records")
    assert (first["actor"], first["table_name"], first["before"]) == ("support.toml", "support.toml", None)
    assert json.loads(first["after"])["changes"] == [FIRST_RECORDED]
    before, overview_before = exports(client, auth), last_month_overview(store)
    snapshot_before = store.snapshot(datetime.fromisoformat(NOW))
    emailed = (config_file.parent / EMAILED).read_bytes()
    assert client_reads.sent_statement(store, "ENT", "2026-10").pdf == emailed and emailed.startswith(b"%PDF")

    write(config_file, EDITED)
    at = configuration_page()
    button(at, "Reload configuration").click().run()
    assert not at.exception and not at.error, [shown(e) for e in at.error]
    assert shown(at.success[0]) == "Reloaded: " + "; ".join(CHANGES)
    page = " ".join(m.value for m in at.markdown)
    assert "- from 2026-12-01: 08:00–18:00" in page and "- Thu 2026-12-03: extra closed day (support.toml)" in page

    after = exports(client, auth)
    for report in ("uptime", "refunds"):
        assert after[report, NOW] == before[report, NOW] and after[report, END_OF_LAST_MONTH] == \
            before[report, END_OF_LAST_MONTH], report
    assert after["case-sla", END_OF_LAST_MONTH] == before["case-sla", END_OF_LAST_MONTH]
    old, new = rows_of(before["case-sla", NOW]), rows_of(after["case-sla", NOW])
    moved = {case_id for case_id in old if old[case_id] != new[case_id]}
    assert moved == {"LAST-DAY", "THREE-DAYS"}  # every row of last month, and the rest of this one, the same
    assert old["LAST-DAY"]["first_response_due"] == "2026-12-01T17:00:00+08:00"  # 1 h Monday, 8 h from 09:00
    assert new["LAST-DAY"]["first_response_due"] == "2026-12-01T16:00:00+08:00"  # 1 h Monday, 8 h from 08:00
    # three days of Monday's nine hours: 1 h Monday, then 9 h a day, or 10 h from 08:00, and Thursday closed
    assert old["THREE-DAYS"]["first_response_due"] == "2026-12-03T17:00:00+08:00"
    assert new["THREE-DAYS"]["first_response_due"] == "2026-12-04T14:00:00+08:00"
    assert after["responses", NOW] == before["responses", NOW] and len(rows_of(after["responses", NOW])) == 1
    assert last_month_overview(store) == overview_before
    assert client_reads.sent_statement(store, "ENT", "2026-10").pdf == emailed  # as e-mailed, byte for byte

    fresh = store.snapshot(datetime.fromisoformat(NOW))  # the pages' snapshot is computed again, with the new rules
    assert fresh is not snapshot_before and fresh.version > snapshot_before.version
    due = store.query("SELECT * FROM case_sla", snapshot=fresh).set_index("case_id").first_response_due
    assert due["LAST-DAY"].tz_convert("Asia/Hong_Kong").isoformat() == "2026-12-01T16:00:00+08:00"

    record = rules_rows(store).iloc[-1]
    written = json.loads(record.after)
    assert (record.actor, record.table_name) == ("support.toml", "support.toml")
    assert written["changes"] == CHANGES and written["noticed"] == "Reload configuration by local admin"
    assert written["sha256"] == fingerprint(effective_rules(store.config))
    assert json.loads(record.before) == {"sha256": json.loads(first["after"])["sha256"]}
    assert client.get("/healthz").json().get("attention") is None


def test_a_restart_with_the_same_rules_records_nothing(tmp_path, monkeypatch):
    db, config_file = build(tmp_path)
    with serving(monkeypatch, db, config_file) as (_, store):
        assert len(rules_rows(store)) == 1
    write(config_file, "# the team's calendar\n" + TOML)  # a comment: the same rules
    with serving(monkeypatch, db, config_file) as (_, store):
        assert len(rules_rows(store)) == 1
    write(config_file, EDITED)
    with serving(monkeypatch, db, config_file) as (_, store):
        rows = rules_rows(store)
        assert len(rows) == 2 and json.loads(rows.after.iloc[-1])["changes"] == CHANGES
        assert json.loads(rows.after.iloc[-1])["noticed"] == "service start"


def test_a_bad_file_keeps_the_rules_and_says_why_until_it_is_fixed(service):
    client, store, config_file, _ = service
    jobs, config, version = service_jobs.running(), store.config, store.version
    write(config_file, TOML.replace('["09:00", "18:00"]', '["18:00", "09:00"]'))
    refused = jobs.check_config()
    assert refused.outcome == "refused" and "close 09:00 is not after open 18:00" in refused.problem
    assert store.config is config and store.version == version and len(rules_rows(store)) == 1

    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    [attention] = health.json()["attention"]
    assert attention["what"] == "configuration" and attention["file"] == str(config_file.resolve())
    assert "close 09:00 is not after open 18:00" in attention["error"]
    at = configuration_page()
    assert any("support.toml as it is now cannot be used" in shown(e) and "close 09:00" in shown(e)
               for e in at.error)

    write(config_file, TOML)  # the edit undone
    assert jobs.check_config().outcome == "unchanged"
    assert client.get("/healthz").json().get("attention") is None and not configuration_page().error


def test_the_service_notices_a_changed_file_by_itself(tmp_path):
    db, config_file = build(tmp_path)
    store = Store(db, opening.load_watched(config_file))
    jobs = Jobs(store, [], config_file=config_file, config_every=0.05)
    jobs.start()
    try:
        write(config_file, EDITED, settled=False)
        time.sleep(0.5)
        assert jobs.check_config() is None  # just written: perhaps half-saved, read at a later check
        assert store.config.calendars[0].versions.versions[1:] == ()
        past = time.time() - 60
        os.utime(config_file, (past, past))
        deadline = time.monotonic() + 10
        while len(store.config.calendars[0].versions.versions) == 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [since.isoformat() for since, _ in store.config.calendars[0].versions.versions] == \
            ["1970-01-01", "2026-12-01"]
        record = rules_rows(store).iloc[-1]
        assert json.loads(record.after)["changes"] == ["first recorded"]  # no start recorded the old ones
        assert json.loads(record.after)["noticed"] == "file check"
    finally:
        jobs.stop()
        store.close()


def test_a_calendar_a_stored_policy_uses_cannot_go(tmp_path):
    db, config_file = build(tmp_path)
    london = TOML + '\n[calendars.london]\ntimezone = "Europe/London"\nholidays_country = "GB"\n'
    write(config_file, london)
    store = Store(db, opening.load_watched(config_file))
    try:
        with store.transaction() as cur:
            cur.execute("INSERT INTO policies (policy_id, metric, priority, within, calendar) "
                        "VALUES ('uk', 'first_response', '*', '1d', 'london')")
        write(config_file, TOML)
        refused = opening.reload_config(store, config_file, noticed="file check")
        assert refused.outcome == "refused"
        assert refused.problem.startswith("stored policy rows run on the calendar london, which the file no longer "
                                          "has: keep [calendars.london]")
        assert [c.name for c in store.config.calendars] == ["support", "london"]
    finally:
        store.close()


def test_a_file_whose_rules_are_the_same_is_taken_and_records_nothing(tmp_path):
    db, config_file = build(tmp_path)
    store = Store(db, opening.load_watched(config_file))
    try:
        assert opening.record_rules(store, noticed="service start") == [FIRST_RECORDED]
        assert opening.record_rules(store, noticed="service start") is None
        write(config_file, TOML.replace("[backup]\nevery_hours = 0", "[backup]\nevery_hours = 6"))
        taken = opening.reload_config(store, config_file, noticed="file check")
        assert (taken.outcome, taken.changes) == ("reloaded", ())
        assert store.config.backup.every_hours == 6 and len(rules_rows(store)) == 1
        assert opening.reload_config(store, config_file, noticed="file check").outcome == "unchanged"
    finally:
        store.close()


# --- The differences in words --------------------------------------------------------------------------------

def rules(text: str) -> dict:
    return effective_rules(parse_config(tomllib.loads(text)))


BASE = """
[calendar]
business_hours = ["09:00", "18:00"]
[sla]
enterprise_response_business_days = 1
default_uptime_target_pct = 99.9
"""


@pytest.mark.parametrize(("edited", "words"), [
    (BASE.replace("enterprise_response_business_days = 1", "enterprise_response_business_days = 2"),
     ["sla.enterprise_response_business_days: 1 → 2"]),
    (BASE + '[[calendar.changes]]\nfrom = "2027-01-01"\nbusiness_hours = ["08:00", "18:00"]\n',
     ["calendar: from 2027-01-01 business hours 08:00–18:00 (new change)"]),
    (BASE + '[[sla.changes]]\nfrom = "2026-12-01"\nenterprise_response_business_days = 2\n',
     ["sla: from 2026-12-01 enterprise response business days 2 (new change)"]),
    (BASE.replace('["09:00", "18:00"]', '["09:00", "17:30"]\nweekend = ["Fri", "Sat"]'),
     ["calendar.business_hours: 09:00–18:00 → 09:00–17:30", "calendar.weekend: Sat, Sun → Fri, Sat"]),
    (BASE + '[calendars.london]\ntimezone = "Europe/London"\nholidays_country = "GB"\n',
     ["calendars.london: new calendar in Europe/London, always business hours 09:00–18:00, weekend Sat, Sun, "
      "holidays country GB, holidays subdivision none, extra holidays none, working days none"]),
    (BASE + '[monitoring]\nstale_after_days = 14\n[roles]\nlead = ["lee@example.com"]\n',
     ["monitoring.stale_after_days: 7 → 14", "roles.lee@example.com: none → lead"]),
    (BASE.replace("99.9", "99.90") + "# a comment\n", []),
])
def test_differences_in_words(edited, words):
    assert differences(rules(BASE), rules(edited)) == words


def test_a_dated_change_altered_or_removed_is_said_so():
    dated = BASE + '[[calendar.changes]]\nfrom = "2027-01-01"\nbusiness_hours = ["08:00", "18:00"]\n'
    assert differences(rules(dated), rules(dated.replace('"08:00"', '"07:30"'))) == [
        "calendar: the change from 2027-01-01 now sets business hours 07:30–18:00 (it set business hours "
        "08:00–18:00)"]
    assert differences(rules(dated), rules(BASE)) == [
        "calendar: the change from 2027-01-01 removed (it set business hours 08:00–18:00)"]


def test_the_fingerprint_is_of_the_rules_not_of_the_text():
    assert fingerprint(rules(BASE)) == fingerprint(rules("# same\n" + BASE.replace("99.9", "99.90")))
    assert fingerprint(rules(BASE)) != fingerprint(rules(BASE.replace("= 1", "= 2")))
    mail = BASE + '[[mail.mailboxes]]\nname = "support"\nurl = "imaps://imap.example.com"\nuser = "u"\n' \
                  'password_env = "PASSWORD"\n'
    assert fingerprint(rules(BASE)) == fingerprint(rules(mail))  # how the service polls is not a rule
