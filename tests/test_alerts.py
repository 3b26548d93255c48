"""Alerts (rules §11): a real SMTP server (aiosmtpd) and a local webhook receiver read what arrived."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from zoneinfo import ZoneInfo

import pytest

from kb.access import Actor
from kb.alerts.deliver import send_due
from kb.cli import main
from kb.config import parse_config
from kb.db import connection
from kb.db.answers import answer
from kb.intake.importing import add_rows, staged_from_records
from tests.servers import Inbox, free_port

HKT = ZoneInfo("Asia/Hong_Kong")
ADMIN = Actor("tests@example.com", "admin")
# What a first-response alert of CS-1 (received Mon 09:00) says after its case and client.
AT_RISK = "first response at risk: due Mon 2026-11-23 18:00 HKT (UTC+08:00)"
BREACHED = "first response breached: due Mon 2026-11-23 18:00 HKT (UTC+08:00)"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=HKT)


class Hook(BaseHTTPRequestHandler):
    posts: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.posts.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def hook(monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), Hook)
    Hook.posts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("TEST_ALERT_WEBHOOK", f"http://127.0.0.1:{server.server_port}/hook")
    yield Hook.posts
    server.shutdown()


def settings(inbox_port: int, **alerts) -> dict:
    return {
        "calendar": {"timezone": "Asia/Hong_Kong", "holidays_country": "HK", "extra_holidays": ["2026-11-27"]},
        "alerts": {"smtp_url": f"smtp://127.0.0.1:{inbox_port}", "sender": "sla@support.example",
                   "recipients": {"lead": ["lee@support.example"], "admin": ["ada@support.example"]},
                   "webhook_url_env": "TEST_ALERT_WEBHOOK", "dashboard_url": "https://sla.example",
                   "digest_at": "23:59", **alerts},
    }


@pytest.fixture
def store(tmp_path):
    con = connection.connect(tmp_path / "alerts.duckdb")
    config = parse_config(settings(1))
    rows = {
        "clients": [{"client_id": "ENT", "name": "Enterprise Co", "tier": "enterprise"}],
        "environments": [{"environment_id": "ENV-1", "name": "Enterprise prod", "kind": "dedicated",
                          "deployment": "on_premise", "client_id": "ENT", "active_from": "2026-01-01"}],
        "contracts": [{"contract_id": "K-1", "client_id": "ENT", "environment_id": "ENV-1",
                       "uptime_target_pct": "99.9", "monthly_fee": "1000", "currency": "USD",
                       "starts_on": "2026-01-01"}],
        "cases": [{"case_id": "CS-1", "client_id": "ENT", "received_at": "2026-11-23 09:00",
                   "category": "platform_issue", "subject": "Gateway down", "assignee": "sam"}],
    }
    for table, records in rows.items():
        add_rows(con, config, staged_from_records(table, records), ADMIN, permission="import", source="test",
                 now=at("2026-11-23T09:00"))
    yield con
    try:
        con.close()
    except Exception:  # noqa: S110 (closed by the test already)
        pass


def outage(con, incident_id: str, start: str, end: str) -> None:
    config = parse_config(settings(1))
    add_rows(con, config, staged_from_records("incidents", [
        {"incident_id": incident_id, "environment_id": "ENV-1", "impact": "outage", "started_at": start,
         "ended_at": end}]), ADMIN, permission="import", source="test", now=at("2026-11-30T23:00"))


def test_a_case_walks_from_pending_to_at_risk_to_breached_and_speaks_up_twice(store, inbox, hook):
    config = parse_config(settings(inbox.port))
    assert send_due(store, config, at("2026-11-23T10:00")).sent == 0  # pending: 8 business hours left
    first = send_due(store, config, at("2026-11-23T16:30"))  # at risk: 1 h 30 min left
    assert (first.recorded, first.sent, first.failed) == (2, 2, [])
    assert send_due(store, config, at("2026-11-23T16:45")).sent == 0  # once
    second = send_due(store, config, at("2026-11-23T18:30"))  # breached at 18:00
    assert (second.recorded, second.sent) == (2, 2)
    path = store.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    store.close()
    restarted = connection.connect(path[0][0])  # what was sent is recorded: a restart sends nothing again
    try:
        assert send_due(restarted, config, at("2026-11-23T18:40")).sent == 0
        audited = restarted.execute("SELECT count(*) FROM audit_log WHERE action = 'alert'").fetchall()[0][0]
    finally:
        restarted.close()

    assert len(inbox.messages) == 2 and len(hook) == 2
    (to_1, risk), (to_2, breach) = inbox.messages
    assert to_1 == to_2 == ["lee@support.example"]
    assert risk["Subject"] == f"[SLA] Case CS-1 (Enterprise Co) {AT_RISK}"
    assert breach["Subject"] == f"[SLA] Case CS-1 (Enterprise Co) {BREACHED}"
    assert "https://sla.example/queue?case=CS-1" in risk.get_content()
    assert "First response due: Mon 2026-11-23 18:00 HKT (UTC+08:00)" in breach.get_content()
    assert hook[0]["text"].startswith("[SLA] Case CS-1 (Enterprise Co) first response at risk")
    assert "https://sla.example/queue?case=CS-1" in hook[1]["text"]
    assert audited == 4


def test_a_refused_alert_is_retried_and_then_sent_once(store, hook):
    port = free_port()  # nobody listens yet
    config = parse_config(settings(port))
    refused = send_due(store, config, at("2026-11-23T16:30"))
    assert refused.sent == 1 and len(refused.failed) == 1 and "did not take it" in refused.failed[0]
    row = store.execute("SELECT attempts, sent_at, last_error FROM alert_deliveries WHERE channel = 'email'"
                        ).fetchall()[0]
    assert row[0] == 1 and row[1] is None and "did not take it" in row[2]
    box = Inbox(port).start()
    try:
        retried = send_due(store, config, at("2026-11-23T16:35"))
    finally:
        box.stop()
    assert (retried.sent, retried.failed) == (1, []) and len(box.messages) == 1
    assert len(hook) == 1  # the webhook took it the first time and is not sent again


def test_an_outage_crossing_half_then_all_of_the_budget_gives_two_alerts(store, inbox, hook):
    config = parse_config(settings(inbox.port))
    store.execute("UPDATE cases SET first_response_at = received_at")  # no case alerts in this test
    # November 2026 has 30 days: the 99.9 % budget is 43.2 minutes.
    outage(store, "I-1", "2026-11-24 10:00", "2026-11-24 10:25")  # 25 min: past 50 %
    assert send_due(store, config, at("2026-11-24T11:00")).sent == 2
    outage(store, "I-2", "2026-11-25 10:00", "2026-11-25 10:25")  # 50 min: past 75 % and 100 % at once
    assert send_due(store, config, at("2026-11-25T11:00")).sent == 2
    assert send_due(store, config, at("2026-11-25T12:00")).sent == 0
    subjects = [message["Subject"].strip() for _, message in inbox.messages]  # a long one is folded
    assert subjects == ["[SLA] Enterprise prod (ENV-1) has used 50.00 % of its error budget for Nov 2026",
                        "[SLA] Enterprise prod (ENV-1) has used up its error budget for Nov 2026"]
    assert all(to == ["ada@support.example", "lee@support.example"] for to, _ in inbox.messages)


def test_quiet_hours_hold_a_warning_but_not_a_breach(store, inbox, hook):
    config = parse_config(settings(inbox.port, quiet_hours=["16:00", "17:00"]))
    assert send_due(store, config, at("2026-11-23T16:30")).sent == 0  # at risk, in quiet hours
    assert send_due(store, config, at("2026-11-23T17:05")).sent == 2  # still at risk once they end
    config = parse_config(settings(inbox.port, quiet_hours=["18:00", "08:00"]))
    assert send_due(store, config, at("2026-11-23T18:30")).sent == 2  # a breach goes in quiet hours
    assert [m["Subject"].strip().split(") ")[1] for _, m in inbox.messages] == [AT_RISK, BREACHED]
    assert "(Enterprise): first response at risk, 55 min left." in inbox.messages[0][1].get_content()


def test_the_morning_digest_on_business_days_once(store, inbox, hook):
    config = parse_config(settings(inbox.port, digest_at="09:00"))
    store.execute("UPDATE cases SET first_response_at = NULL")
    assert send_due(store, config, at("2026-11-28T09:30")).sent == 0  # a Saturday
    add_rows(store, config, staged_from_records("cases", [{
        "case_id": "CS-2", "client_id": "ENT", "received_at": "2026-11-26 10:00", "category": "api_help",
        "subject": "Keys", "assignee": "sam"}]), ADMIN, permission="import", source="test", now=at("2026-11-30T09:00"))
    sent = send_due(store, config, at("2026-11-30T09:30"))  # Monday: CS-1 is an open breach, CS-2 due at 10:00
    assert sent.sent == 4  # CS-2's alert and the digest, each by mail and by the webhook
    digest = inbox.messages[-1][1]
    assert digest["Subject"].strip() == "[SLA] 2026-11-30: 1 open breach, 1 case at risk"
    body = digest.get_content().replace("\r\n", "\n")
    assert ("sam:\n  CS-1 (Enterprise Co) breached, due Mon 2026-11-23 18:00 HKT (UTC+08:00)\n"
            "  CS-2 (Enterprise Co) at risk, due Mon 2026-11-30 10:00 HKT (UTC+08:00)") in body  # breaches first
    assert send_due(store, config, at("2026-11-30T10:30")).sent == 2  # CS-2's breach; no second digest
    assert [m["Subject"].strip() for _, m in inbox.messages].count(digest["Subject"].strip()) == 1


def test_alerts_send_on_the_command_line(tmp_path, inbox, hook):
    config_file = tmp_path / "support.toml"
    config_file.write_text(
        '[calendar]\ntimezone = "Asia/Hong_Kong"\nextra_holidays = ["2026-11-27"]\n'
        f'[alerts]\nsmtp_url = "smtp://127.0.0.1:{inbox.port}"\nsender = "sla@support.example"\n'
        'webhook_url_env = "TEST_ALERT_WEBHOOK"\ndigest_at = "23:59"\n'
        '[alerts.recipients]\nlead = ["lee@support.example"]\n')
    db = tmp_path / "cli.duckdb"
    (tmp_path / "clients.csv").write_text("client_id,name,tier\nENT,Enterprise Co,enterprise\n")
    (tmp_path / "cases.csv").write_text("case_id,client_id,received_at,category,subject\n"
                                        "CS-1,ENT,2026-11-23 09:00,platform_issue,Gateway down\n")
    common = ["--db", str(db), "--config", str(config_file)]
    assert main(["import", "clients", str(tmp_path / "clients.csv"), *common, "--now", "2026-11-23T09:00"]) == 0
    assert main(["import", "cases", str(tmp_path / "cases.csv"), *common, "--now", "2026-11-23T09:00"]) == 0
    assert main(["alerts", "send", *common, "--now", "2026-11-23T18:30"]) == 0
    assert [m["Subject"].strip() for _, m in inbox.messages] == [
        f"[SLA] Case CS-1 (Enterprise Co) {BREACHED}"]


def client_with_case(con, client_id: str, name: str, case_id: str) -> None:
    """One more enterprise client with one unanswered case, received as CS-1 was."""
    config = parse_config(settings(1))
    for table, records in {
        "clients": [{"client_id": client_id, "name": name, "tier": "enterprise"}],
        "cases": [{"case_id": case_id, "client_id": client_id, "received_at": "2026-11-23 09:00",
                   "category": "platform_issue", "subject": "Login fails"}],
    }.items():
        add_rows(con, config, staged_from_records(table, records), ADMIN, permission="import", source="test",
                 now=at("2026-11-23T09:00"))


def delivery(con, key: str, channel: str = "email") -> tuple:
    return con.execute("SELECT attempts, sent_at IS NOT NULL, withdrawn_at IS NOT NULL, last_error "
                       "FROM alert_deliveries WHERE alert_key = ? AND channel = ?", [key, channel]).fetchone()


def test_a_line_break_in_a_client_name_stays_in_its_subject_and_stops_no_alert(store, inbox, hook):
    client_with_case(store, "ACM", "Acme\nBcc: x@evil", "CS-2")
    report = send_due(store, parse_config(settings(inbox.port)), at("2026-11-23T16:30"))
    assert (report.recorded, report.sent, report.failed) == (4, 4, [])
    by_subject = {message["Subject"]: (to, message) for to, message in inbox.messages}
    assert set(by_subject) == {f"[SLA] Case CS-1 (Enterprise Co) {AT_RISK}",
                               f"[SLA] Case CS-2 (Acme Bcc: x@evil) {AT_RISK}"}
    to, message = by_subject[f"[SLA] Case CS-2 (Acme Bcc: x@evil) {AT_RISK}"]
    assert to == ["lee@support.example"] and message["Bcc"] is None
    assert "Case CS-2 of Acme Bcc: x@evil (Enterprise): first response at risk" in message.get_content()
    assert [post["text"].splitlines()[0] for post in hook] == sorted(by_subject)  # CS-1, then CS-2
    assert store.execute("SELECT subject FROM alert_deliveries WHERE alert_key = 'case_at_risk:CS-2' "
                         "AND channel = 'email'").fetchone() == (
        f"[SLA] Case CS-2 (Acme Bcc: x@evil) {AT_RISK}",)


class Refusing(Inbox):
    """The test SMTP server, refusing every recipient at refused.example as a real server refuses a mailbox
    it does not have."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd's)
        if address.endswith("@refused.example"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_a_recipient_the_server_refuses_fails_that_alert_alone(store, hook):
    box = Refusing().start()
    try:
        config = parse_config(settings(box.port, recipients={"lead": ["gone@refused.example"],
                                                              "admin": ["ada@support.example"]}))
        store.execute("UPDATE cases SET first_response_at = received_at")  # only the budget alert: lead and admin
        outage(store, "I-1", "2026-11-24 10:00", "2026-11-24 10:25")
        client_with_case(store, "ACM", "Acme", "CS-2")  # breached the day before: to the leads only, refused
        report = send_due(store, config, at("2026-11-24T16:30"))
    finally:
        box.stop()
    assert report.sent == 3 and len(report.failed) == 1  # both webhooks, and the budget alert's e-mail
    assert report.failed[0].startswith("case_breached:CS-2 (email): the mail server 127.0.0.1:")
    attempts, sent, withdrawn, error = delivery(store, "case_breached:CS-2")
    assert (attempts, sent, withdrawn) == (1, False, False) and "no such mailbox" in error
    assert delivery(store, "budget:ENV-1:2026-11:50")[:2] == (1, True)
    assert [to for to, _ in box.messages] == [["ada@support.example"]]


def test_an_at_risk_alert_held_up_by_a_mail_outage_is_withdrawn_once_the_case_is_answered(store):
    down = parse_config(settings(free_port()))  # no mail server; no webhook variable either
    client_with_case(store, "ACM", "Acme", "CS-2")
    assert send_due(store, down, at("2026-11-23T16:30")).failed  # both cases at risk, nothing taken
    store.execute("UPDATE cases SET first_response_at = TIMESTAMPTZ '2026-11-23 17:00+08' WHERE case_id = 'CS-2'")
    box = Inbox().start()
    try:
        config = parse_config(settings(box.port, recipients={"lead": ["lee@support.example"]}))
        store.execute("UPDATE cases SET resolved_at = TIMESTAMPTZ '2026-11-24 09:00+08' WHERE case_id = 'CS-1'")
        report = send_due(store, config, at("2026-11-24T10:00"))
    finally:
        box.stop()
    assert box.messages == [] and report.sent == 0
    for key in ("case_at_risk:CS-1", "case_at_risk:CS-2"):
        assert delivery(store, key)[1:3] == (False, True)
    withdrawn = store.execute("SELECT row_id FROM audit_log WHERE action = 'alert withdrawn' ORDER BY row_id"
                              ).fetchall()
    assert withdrawn == [("case_at_risk:CS-1 (email)",), ("case_at_risk:CS-1 (webhook)",),
                         ("case_at_risk:CS-2 (email)",), ("case_at_risk:CS-2 (webhook)",)]


def test_after_a_mail_outage_a_breach_still_holding_goes_and_the_warning_before_it_does_not(store):
    down = parse_config(settings(free_port(), recipients={"lead": ["lee@support.example"]}))
    send_due(store, down, at("2026-11-23T16:30"))  # at risk
    send_due(store, down, at("2026-11-23T18:30"))  # breached at 18:00
    box = Inbox().start()
    try:
        config = parse_config(settings(box.port, recipients={"lead": ["lee@support.example"]}))
        report = send_due(store, config, at("2026-11-25T10:00"))  # two days on, still unanswered
    finally:
        box.stop()
    assert [m["Subject"] for _, m in box.messages] == [
        f"[SLA] Case CS-1 (Enterprise Co) {BREACHED}"]
    assert report.sent == 1
    assert delivery(store, "case_at_risk:CS-1")[1:3] == (False, True)
    assert delivery(store, "case_breached:CS-1")[1:3] == (True, False)


def test_a_right_to_left_override_in_a_name_cannot_reverse_an_alert(store, inbox, hook):
    client_with_case(store, "RTL", "Acme\u202e Evil", "CS-2")
    send_due(store, parse_config(settings(inbox.port)), at("2026-11-23T16:30"))
    subjects = sorted(message["Subject"] for _, message in inbox.messages)
    assert subjects[1] == f"[SLA] Case CS-2 (Acme\ufffd Evil) {AT_RISK}"
    body = [m for _, m in inbox.messages if "CS-2" in m["Subject"]][0].get_content()
    assert "Case CS-2 of Acme\ufffd Evil (Enterprise)" in body and "\u202e" not in body
    assert all("\u202e" not in post["text"] for post in hook)


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"])
def test_one_line_folds_every_line_separator(separator):
    from kb.alerts.text import one_line

    assert one_line(f"Acme{separator}Corp") == "Acme Corp"
    assert one_line(f"Acme{separator}Corp").splitlines() == ["Acme Corp"]


def test_a_line_separator_in_a_client_name_stops_no_alert(store, inbox, hook):
    client_with_case(store, "ACM", "Acme\u2028Corp", "CS-2")
    report = send_due(store, parse_config(settings(inbox.port)), at("2026-11-23T16:30"))
    assert (report.recorded, report.sent, report.failed) == (4, 4, [])
    assert sorted(message["Subject"] for _, message in inbox.messages) == [
        f"[SLA] Case CS-1 (Enterprise Co) {AT_RISK}",
        f"[SLA] Case CS-2 (Acme Corp) {AT_RISK}"]
    assert [post["text"].splitlines()[0] for post in hook] == [
        f"[SLA] Case CS-1 (Enterprise Co) {AT_RISK}",
        f"[SLA] Case CS-2 (Acme Corp) {AT_RISK}"]


def test_a_delivery_recorded_with_a_line_separator_in_its_subject_goes_on_one_line(store, inbox, hook):
    """A delivery recorded before its subject was folded (a line separator in it) is still sent, its subject
    on one line, and the run goes on to the other alerts."""
    store.execute("INSERT INTO alert_deliveries (alert_key, channel, kind, breach, roles, subject, body, created_at) "
                  "VALUES ('budget:ENV-0:2026-11:50', 'email', 'budget', FALSE, ['lead'], 'Acme\u2028Corp', "
                  "'body', TIMESTAMPTZ '2026-11-23 08:00+08')")
    report = send_due(store, parse_config(settings(inbox.port)), at("2026-11-23T16:30"))
    assert (report.sent, report.failed) == (3, [])
    assert delivery(store, "budget:ENV-0:2026-11:50")[:2] == (1, True)
    assert [message["Subject"] for _, message in inbox.messages] == [
        "Acme Corp", f"[SLA] Case CS-1 (Enterprise Co) {AT_RISK}"]


def test_only_text_that_can_move_other_text_is_isolated():
    from kb.alerts.text import isolated

    assert isolated("Acme Logistics") == "Acme Logistics"
    assert isolated("Acme\nLogistics") == "Acme Logistics"
    assert isolated("שלום Acme") == "\u2068שלום Acme\u2069"  # right-to-left letters
    assert isolated("مرحبا") == "\u2068مرحبا\u2069"
    assert isolated("Acme\u202e Evil") == "\u2068Acme\ufffd Evil\u2069"  # a direction control, shown as U+FFFD
    assert isolated("Acme\u2066x") == "\u2068Acme\ufffdx\u2069"


# --- Every target speaks up: resolution and each follow-up question, as the first response does ------------------

GOLD = [("gold", "first_response", "*", "1d", "support"), ("gold", "resolution", "*", "2d", "support"),
        ("gold", "next_response", "*", "1d", "support")]


def on_gold(con) -> None:
    """ENT's contract names the policy ``gold``; CS-1 (received Mon 09:00) was answered at 10:00, so its first
    response says nothing more, and its resolution is due Tue 18:00 (two business days of 9 h)."""
    con.executemany("INSERT INTO policies (policy_id, metric, priority, within, calendar) VALUES (?, ?, ?, ?, ?)",
                    GOLD)
    con.execute("UPDATE contracts SET policy_id = 'gold'")
    con.execute("UPDATE cases SET first_response_at = ? WHERE case_id = 'CS-1'", [at("2026-11-23T10:00")])


def message(con, moment: str, direction: str) -> None:
    con.execute("INSERT INTO messages (message_key, case_id, is_team, is_automatic, received_at, taken_at, source) "
                "VALUES (?, 'CS-1', ?, false, ?, now(), 'import')",
                [f"CS-1:{moment}:{direction}", direction == "team", at(moment)])
    answer(con, ["CS-1"])


def recorded(con) -> list[tuple]:
    return con.execute("SELECT alert_key, kind, subject, body FROM alert_deliveries WHERE channel = 'email' "
                       "ORDER BY created_at, alert_key").fetchall()


def test_a_follow_up_breach_and_a_resolution_at_risk_are_each_told_once_and_named(store, inbox, hook):
    config = parse_config(settings(inbox.port))
    on_gold(store)
    message(store, "2026-11-23T09:00", "client")
    message(store, "2026-11-23T10:00", "team")
    message(store, "2026-11-23T11:00", "client")  # a question of its own: due Tue 11:00, never answered
    assert send_due(store, config, at("2026-11-24T11:30")).recorded == 2  # its breach, by e-mail and webhook
    assert send_due(store, config, at("2026-11-24T16:30")).recorded == 2  # the resolution at risk: 1 h 30 min left
    assert send_due(store, config, at("2026-11-24T16:45")).recorded == 0  # each once
    (breach_key, breach_kind, breach_subject, breach_body), (risk_key, risk_kind, risk_subject, risk_body) = \
        recorded(store)
    assert (breach_key, breach_kind) == ("case_breached:next_response:CS-1:2026-11-23T03:00:00+00:00",
                                         "case_breached")
    assert breach_subject == ("[SLA] Case CS-1 (Enterprise Co) follow-up response breached: due Tue 2026-11-24 "
                              "11:00 HKT (UTC+08:00)")
    assert "Question asked: Mon 2026-11-23 11:00 HKT (UTC+08:00)\n" in breach_body
    assert "Follow-up response due: Tue 2026-11-24 11:00 HKT (UTC+08:00)" in breach_body
    assert (risk_key, risk_kind) == ("case_at_risk:resolution:CS-1", "case_at_risk")
    assert risk_subject == ("[SLA] Case CS-1 (Enterprise Co) resolution at risk: due Tue 2026-11-24 18:00 HKT "
                            "(UTC+08:00)")
    assert risk_body.startswith("Case CS-1 of Enterprise Co (Enterprise): resolution at risk, 1 h 30 min left.\n")
    assert [m["Subject"].split(") ", 1)[1] for _, m in inbox.messages] == [
        "follow-up response breached: due Tue 2026-11-24 11:00 HKT (UTC+08:00)",
        "resolution at risk: due Tue 2026-11-24 18:00 HKT (UTC+08:00)"]


def test_a_case_waiting_on_the_client_is_not_at_risk_of_its_resolution(store, inbox, hook):
    config = parse_config(settings(inbox.port))
    on_gold(store)
    store.execute("INSERT INTO pauses (case_id, paused_at) VALUES ('CS-1', ?)", [at("2026-11-23T12:00")])
    for moment in ("2026-11-24T16:30", "2026-11-25T10:00"):  # at risk, then breached, were it not paused
        assert send_due(store, config, at(moment)).recorded == 0
    assert recorded(store) == [] and inbox.messages == []


def test_a_resolution_warning_held_up_is_withdrawn_once_the_case_waits_on_the_client(store):
    on_gold(store)
    send_due(store, parse_config(settings(free_port())), at("2026-11-24T16:30"))  # at risk; no server takes it
    store.execute("INSERT INTO pauses (case_id, paused_at) VALUES ('CS-1', ?)", [at("2026-11-24T16:40")])
    box = Inbox().start()
    try:
        report = send_due(store, parse_config(settings(box.port)), at("2026-11-24T16:50"))
    finally:
        box.stop()
    assert report.sent == 0 and box.messages == []
    assert delivery(store, "case_at_risk:resolution:CS-1")[1:3] == (False, True)


def test_a_first_response_alert_sent_before_there_were_other_targets_is_not_sent_again(store, inbox, hook):
    """An at-risk alert recorded under the key first-response alerts always had is the one due now."""
    store.execute("INSERT INTO alert_deliveries (alert_key, channel, kind, breach, roles, subject, body, created_at, "
                  "sent_at) SELECT 'case_at_risk:CS-1', channel, 'case_at_risk', FALSE, ['lead'], 'sent', 'sent', "
                  "TIMESTAMPTZ '2026-11-23 16:20+08', TIMESTAMPTZ '2026-11-23 16:20+08' "
                  "FROM (VALUES ('email'), ('webhook')) c(channel)")
    report = send_due(store, parse_config(settings(inbox.port)), at("2026-11-23T16:30"))
    assert (report.recorded, report.sent) == (0, 0) and inbox.messages == [] and hook == []
