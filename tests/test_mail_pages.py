"""Cases from email on the pages (rules §9): the Queue's source and thread, the Mail clients page and its merge,
the mail polling job of the service and the mailboxes on the Configuration page."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import threading
import tomllib
from datetime import timedelta

import pytest

from kb.access import Actor, PermissionDenied
from kb.config import load_config, parse_config
from kb.intake import corrections
from kb.intake.importing import Rejected
from kb.mail import quarantine
from kb.mail.intake import take
from kb.mail.messages import parse_message, support_matcher
from kb.reads import configuration
from kb.service.jobs import Jobs, jobs_table, scheduled_jobs
from kb.store import Store
from kb.timestamps import parse_timestamp
from tests.fixtures import ADMIN, AS_OF, HKT, SPEC_TOML, add, button, local, open_page, query, shown

LEAD = Actor("lee@support.example", "lead")
STAFF = Actor("sam@support.example", "staff")
IS_TEAM = support_matcher(("support@knowru.example",))


def _store():
    from kb import ui

    return ui._open_app(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store


def _message(sender: str, subject: str, date: str, mid: str, reply_to: str | None = None,
             headers: tuple[str, ...] = ()) -> bytes:
    lines = [f"From: {sender}", "To: support@knowru.example", f"Subject: {subject}", f"Date: {date}",
             f"Message-ID: <{mid}>", *([f"In-Reply-To: <{reply_to}>"] if reply_to else []), *headers, "", "Hello", ""]
    return "\n".join(lines).encode()


def _mail(store, *messages: tuple[str, bytes], folder: str = "INBOX") -> None:
    """Take messages (each with its INTERNALDATE, local text) as the IMAP poll would from ``folder``, as of
    AS_OF; the "Sent" folder is the team's own."""
    now = parse_timestamp(AS_OF, HKT)
    records = [parse_message(raw, IS_TEAM, mailbox="support", folder=folder, where="test", vouched=folder == "Sent",
                             internaldate=local(when), now=now) for when, raw in messages]
    store.write(take, store.config, records, ADMIN, source="tests", now=now)


def _export() -> dict[str, dict]:
    from kb.reads.exports import write_report

    store = _store()
    out = os.environ["SUPPORT_DB"] + ".case-sla.csv"
    with store.reader() as cur:
        write_report(cur, store.config, "case-sla", parse_timestamp(AS_OF, HKT), out)
    with open(out, newline="") as f:
        return {r["case_id"]: r for r in csv.DictReader(io.StringIO(f.read()))}


KIM = _message("Kim Lee <kim@acme.example>", "Login fails", "Wed, 25 Nov 2026 10:00:00 +0800", "kim-1@acme")


# --- The Queue ---------------------------------------------------------------------------------------------

def test_the_queue_shows_where_a_mail_case_came_from_and_its_thread(app):
    at, _ = app
    _mail(_store(),
          ("2026-11-25 10:00", KIM),
          ("2026-11-25 10:01", _message("support@knowru.example", "Re: Login fails", "Wed, 25 Nov 2026 10:01:00 +0800",
                                        "ack@k", reply_to="kim-1@acme", headers=("Auto-Submitted: auto-replied",))),
          ("2026-11-25 10:02", _message("Support <support@knowru.example>", "Re: Login fails",
                                        "Wed, 25 Nov 2026 10:02:00 +0800", "forged@evil", reply_to="kim-1@acme")))
    _mail(_store(), ("2026-11-25 11:30", _message("Support <support@knowru.example>", "Re: Login fails",
                                                  "Wed, 25 Nov 2026 11:30:00 +0800", "r-1@k", reply_to="kim-1@acme")),
          folder="Sent")
    [case_id] = query("SELECT case_id FROM cases WHERE source = 'mail'").case_id
    open_page(at, "queue")
    at.text_input(key="case_lookup").input(case_id).run()
    assert not at.exception, [e.message for e in at.exception]
    facts = "\n".join(shown(m) for m in at.markdown)
    assert "**Source:** mail: mailbox support, folder INBOX" in facts
    assert "**Requester:** kim@acme.example" in facts
    thread = next(d.value for d in at.dataframe if "role" in d.value.columns)
    assert thread.to_dict("list") == {
        "time": ["Wed 2026-11-25 10:00 HKT (UTC+08:00)", "Wed 2026-11-25 10:01 HKT (UTC+08:00)",
                 "Wed 2026-11-25 10:02 HKT (UTC+08:00)", "Wed 2026-11-25 11:30 HKT (UTC+08:00)"],
        "sender": ["Kim Lee <kim@acme.example>", "support@knowru.example", "Support <support@knowru.example>",
                   "Support <support@knowru.example>"],
        "side": ["client", "team (unverified)", "team (unverified)", "team"],  # nothing vouches for the Inbox ones
        "subject": ["Login fails", "Re: Login fails", "Re: Login fails", "Re: Login fails"],
        "automatic": ["no", thread.automatic[1], "no", "no"],
        "role": ["opened the case", "", "", "first response"],
    }
    assert thread.automatic[1].startswith("yes (")

    at.text_input(key="case_lookup").input("MET").run()  # a case logged otherwise: no thread
    assert "**Source:** import" in "\n".join(shown(m) for m in at.markdown)
    assert not any("role" in d.value.columns for d in at.dataframe)


def test_correcting_a_cases_category_moves_its_deadline_and_is_audited(app):
    at, _ = app
    assert _export()["CODING"]["first_response_due"] == ""  # free general coding: no deadline
    open_page(at, "queue")
    at.text_input(key="case_lookup").input("CODING").run()
    at.selectbox(key="correct_category_CODING").select("platform_issue")
    button(at, "Save correction").click().run()
    assert not at.error, [shown(e) for e in at.error]
    row = _export()["CODING"]
    assert row["first_response_due"] == "2026-11-23T18:00:00+08:00"  # end of the next business day (Fri → Mon)
    assert row["sla_state"] == "breached"
    trail = query("SELECT before, after FROM audit_log WHERE action = 'correct' AND row_id = 'CODING'")
    assert json.loads(trail.before[0]) == {"category": "general_coding"}
    assert json.loads(trail.after[0]) == {"category": "platform_issue"}


# --- Mail clients ------------------------------------------------------------------------------------------

def test_merging_a_mail_client_moves_its_cases_and_their_deadlines(app):
    at, _ = app
    store = _store()
    _mail(store, ("2026-11-25 10:00", KIM))
    [case_id] = query("SELECT case_id FROM cases WHERE client_id = 'kim@acme.example'").case_id
    assert _export()[case_id]["first_response_due"] == "2026-11-26T18:00:00+08:00"  # free: end of next day
    with store.transaction() as cur:  # the company becomes known after the case was opened
        cur.execute("UPDATE clients SET email_domain = 'acme.example' WHERE client_id = 'ENT'")

    open_page(at, "mail_clients")
    table = next(d.value for d in at.dataframe if "domain_taken" in d.value.columns)
    assert table.to_dict("records") == [{
        "client_id": "kim@acme.example", "name": "Kim Lee", "tier": "Free", "cases": 1,
        "first_case": "Wed 2026-11-25 10:00 HKT (UTC+08:00)", "last_case": "Wed 2026-11-25 10:00 HKT (UTC+08:00)",
        "domain_taken": "yes: Enterprise Co (ENT)"}]
    assert at.selectbox(key="merge_target_kim@acme.example").value == "ENT"  # the domain's client, offered
    button(at, "Merge").click().run()
    assert not at.exception and not at.error, [shown(e) for e in at.error]
    assert "kim@acme.example merged into ENT: 1 case moved" in shown(at.success[0])
    assert not any("domain_taken" in d.value.columns for d in at.dataframe)  # none left to review

    row = _export()[case_id]
    assert row["client_id"] == "ENT" and row["first_response_due"] == "2026-11-26T10:00:00+08:00"  # 1 business day
    assert query("SELECT count(*) AS n FROM clients WHERE client_id = 'kim@acme.example'").n[0] == 0
    trail = query("SELECT table_name, row_id, before, after FROM audit_log WHERE action = 'merge' ORDER BY audit_id")
    assert list(zip(trail.table_name, trail.row_id, strict=True)) == [("cases", case_id),
                                                                      ("clients", "kim@acme.example")]
    assert json.loads(trail.after[0]) == {"client_id": "ENT"}
    assert json.loads(trail.after[1])["merged_into"] == "ENT" and json.loads(trail.after[1])["cases"] == [case_id]
    assert json.loads(trail.before[1])["source"] == "mail"


def _kim_with_a_box_and_a_contract_on(environment_id: str):
    """The store with Kim's mail-made client, a dedicated environment KE of Kim's, and Kim's contract KK on
    ``environment_id``."""
    store = _store()
    _mail(store, ("2026-11-25 10:00", KIM))
    with store.transaction() as cur:
        add(cur, store.config, "environments",
            dict(environment_id="KE", name="Kim's box", kind="dedicated", deployment="on_premise",
                 client_id="kim@acme.example", active_from="2026-01-01"))
        add(cur, store.config, "contracts", dict(contract_id="KK", client_id="kim@acme.example",
                                                 environment_id=environment_id, monthly_fee="10", currency="USD",
                                                 starts_on="2026-01-01"))
    return store


def test_merging_moves_environments_and_contracts_too(app):
    store = _kim_with_a_box_and_a_contract_on("S1")
    moved = store.write(corrections.merge_client, store.config, LEAD, "kim@acme.example", "CUS")
    assert moved["environments"] == ["KE"] and moved["contracts"] == ["KK"] and len(moved["cases"]) == 1
    assert query("SELECT client_id FROM environments WHERE environment_id = 'KE'").client_id[0] == "CUS"
    assert query("SELECT client_id FROM contracts WHERE contract_id = 'KK'").client_id[0] == "CUS"
    assert query("SELECT count(*) AS n FROM clients WHERE client_id = 'kim@acme.example'").n[0] == 0


def test_an_environment_with_incidents_or_contracts_cannot_be_moved_and_nothing_is_merged(app):
    store = _kim_with_a_box_and_a_contract_on("KE")
    with pytest.raises(Rejected, match=r"has environments \(KE\).*Nothing was merged"):
        store.write(corrections.merge_client, store.config, LEAD, "kim@acme.example", "CUS")
    assert query("SELECT client_id FROM cases WHERE source = 'mail'").client_id.tolist() == ["kim@acme.example"]
    assert query("SELECT client_id FROM contracts WHERE contract_id = 'KK'").client_id[0] == "kim@acme.example"
    assert query("SELECT count(*) AS n FROM audit_log WHERE action = 'merge'").n[0] == 0


def test_merge_refusals_are_named_and_write_nothing(app):
    store = _store()
    _mail(store, ("2026-11-25 10:00", KIM))
    src = "kim@acme.example"
    with pytest.raises(PermissionDenied):
        store.write(corrections.merge_client, store.config, STAFF, src, "ENT")
    with pytest.raises(Rejected, match="into itself"):
        store.write(corrections.merge_client, store.config, LEAD, src, src)
    with pytest.raises(Rejected, match="no client 'NOPE'"):
        store.write(corrections.merge_client, store.config, LEAD, src, "NOPE")
    with pytest.raises(Rejected, match="no client 'nobody@x.example'"):
        store.write(corrections.merge_client, store.config, LEAD, "nobody@x.example", "ENT")
    with pytest.raises(Rejected, match="'CUS' was not made from mail"):
        store.write(corrections.merge_client, store.config, LEAD, "CUS", "ENT")
    assert query("SELECT count(*) AS n FROM audit_log WHERE action = 'merge'").n[0] == 0
    assert query("SELECT client_id FROM cases WHERE source = 'mail'").client_id.tolist() == [src]


def test_the_mail_clients_page_is_for_leads_in_the_data_section():
    from kb.navigation import pages_for

    lead = {p.name for p in pages_for(LEAD)["Data"]}
    assert "mail_clients" in lead
    assert "mail_clients" not in {p.name for pages in pages_for(STAFF).values() for p in pages}


# --- The mail job and the Configuration page -----------------------------------------------------------------

def _mail_toml(port: int, env: str = "KB_TEST_MAIL_PASSWORD") -> str:
    return SPEC_TOML + f"""
[mail]
support_addresses = ["support@knowru.example"]
poll_seconds = 60
[[mail.mailboxes]]
name = "support"
url = "imap://127.0.0.1:{port}"
user = "support@knowru.example"
password_env = "{env}"
"""


def test_the_mail_job_is_scheduled_when_mailboxes_are_configured():
    jobs = {j.kind: j for j in scheduled_jobs(parse_config(tomllib.loads(_mail_toml(993))))}
    assert jobs["mail:support"].title == "Mail polling: support" and jobs["mail:support"].every == timedelta(seconds=60)
    assert "mail" not in jobs  # one job per mailbox
    no_boxes = SPEC_TOML + '[mail]\nsupport_addresses = ["support@knowru.example"]\n'
    assert {j.kind: j for j in scheduled_jobs(parse_config(tomllib.loads(no_boxes)))}["mail"].every is None
    assert {j.kind: j for j in scheduled_jobs(parse_config(tomllib.loads(SPEC_TOML)))}["mail"].every is None


class RefusingImap:
    """An IMAP server that refuses every login, as one does a wrong password."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as lines:
                conn.sendall(b"* OK IMAP4rev1 test server ready\r\n")
                for line in lines:
                    tag, _, rest = line.decode().strip().partition(" ")
                    command = rest.split(" ")[0].upper()
                    if command == "CAPABILITY":
                        conn.sendall(f"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n".encode())
                    elif command == "LOGIN":
                        conn.sendall(f"{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n".encode())
                    elif command == "LOGOUT":
                        conn.sendall(f"* BYE\r\n{tag} OK bye\r\n".encode())
                        break
                    else:
                        conn.sendall(f"{tag} BAD unknown\r\n".encode())

    def close(self):
        self.server.close()


def test_a_wrong_password_is_the_mail_jobs_last_error_and_the_rest_goes_on(tmp_path, monkeypatch):
    server = RefusingImap()
    config_file = tmp_path / "support.toml"
    config_file.write_text(_mail_toml(server.port) + "\n[backup]\nevery_hours = 6\n")
    monkeypatch.setenv("KB_TEST_MAIL_PASSWORD", "not-the-password")
    store = Store(tmp_path / "support.duckdb", load_config(config_file))
    try:
        jobs = Jobs(store, start_delay=0)
        assert jobs.run_now("mail:support") is False
        assert jobs.run_now("backup") is True  # the rest of the service is unaffected
        table, _ = jobs_table(store)
        mail = table.set_index("job").loc["Mail polling: support"]
        assert mail["every"] == "1 min" and mail["result"].startswith("failed: MailboxError: support: login refused")
        assert "login refused" in mail["last error"] and "KB_TEST_MAIL_PASSWORD" in mail["last error"]
        boxes = configuration.mailboxes(store).to_dict("records")
        assert len(boxes) == 1 and boxes[0]["mailbox"] == "support" and boxes[0]["folder"] == "INBOX"
        assert "login refused" in boxes[0]["last error"] and boxes[0]["configured"] == "yes"
    finally:
        store.close()
        server.close()


def test_the_configuration_page_shows_the_mailboxes(app):
    at, _ = app
    open_page(at, "configuration")
    assert "Mailboxes" in [h.value for h in at.subheader]
    assert any("No mailboxes" in c.value for c in at.caption)
    with _store().transaction() as cur:
        cur.execute("INSERT INTO imap_state VALUES ('support', 'INBOX', 7, 42, TIMESTAMPTZ '2026-11-25 01:00:00+00', "
                    "'login refused')")
    open_page(at, "configuration")
    frame = next(d.value for d in at.dataframe if "last UID" in d.value.columns)
    assert frame.to_dict("records") == [{"mailbox": "support", "folder": "INBOX", "configured": "no (removed)",
                                         "last UID": "42", "last poll": "Wed 2026-11-25 09:00 HKT (UTC+08:00)",
                                         "last error": "login refused", "held": 0}]


# --- The mail quarantine -----------------------------------------------------------------------------------

def _held_message(store) -> None:
    """One message the store refuses (a unique index on the cases' subjects, and a case with the subject), held
    in the quarantine by an intake from the support mailbox."""
    with store.transaction() as cur:
        cur.execute("CREATE UNIQUE INDEX cases_one_subject ON cases (subject)")
    subject = query("SELECT subject FROM cases ORDER BY case_id LIMIT 1").subject[0]
    _mail(store, ("2026-11-25 10:00", _message("Pat <pat@client.example>", subject, "Wed, 25 Nov 2026 10:00:00 +0800",
                                               "held-1@client")), ("2026-11-25 10:05", KIM))


def test_an_admin_sees_a_held_message_and_retries_it_after_the_fix(app):
    at, _ = app
    store = _store()
    _held_message(store)
    assert query("SELECT count(*) AS n FROM cases WHERE source = 'mail'").n[0] == 1  # Kim's: the batch went on
    open_page(at, "mail_quarantine")
    table = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    assert table.message.tolist() == ["held-1@client"] and table.sender.tolist() == ["pat@client.example"]
    assert table.reason[0].startswith("Constraint Error: Duplicate key")
    button(at, "Retry").click().run()
    assert "held-1@client: still held: Constraint Error" in shown(at.success[0])
    with store.transaction() as cur:
        cur.execute("DROP INDEX cases_one_subject")  # the fix
    button(at, "Retry").click().run()
    assert not at.exception and not at.error, [shown(e) for e in at.error]
    assert shown(at.success[0]) == "held-1@client: taken: 1 case opened, 0 responses recorded."
    assert any("No message is held" in shown(m) for m in [*at.markdown, *at.info, *at.caption])
    assert query("SELECT count(*) AS n FROM cases WHERE message_id = 'held-1@client'").n[0] == 1
    trail = query("SELECT actor, action FROM audit_log WHERE table_name = 'mail_quarantine' ORDER BY audit_id")
    assert trail.action.tolist() == ["hold", "retry", "retry"]


def test_without_a_mailbox_the_quarantine_says_intake_has_not_run(app):
    at, _ = app
    open_page(at, "mail_quarantine")
    assert [shown(i) for i in at.info] == ["No mailbox is configured: mail intake has not run."]


def test_discarding_a_held_message_is_audited_and_the_page_is_for_admins(app):
    from kb.navigation import pages_for

    at, _ = app
    _held_message(_store())
    open_page(at, "mail_quarantine")
    button(at, "Discard").click().run()
    assert "held-1@client discarded" in shown(at.success[0])
    decided = query("SELECT status, decided_by FROM mail_quarantine")
    assert decided.status.tolist() == ["discarded"]
    assert decided.decided_by.tolist() == query("SELECT actor FROM audit_log WHERE action = 'discard'").actor.tolist()
    assert "mail_quarantine" in {p.name for p in pages_for(Actor("a@x.example", "admin"))["Data"]}
    assert "mail_quarantine" not in {p.name for pages in pages_for(LEAD).values() for p in pages}
    with pytest.raises(PermissionDenied):
        _store().write(quarantine.discard, LEAD, "held-1@client")


def test_held_messages_show_on_the_configuration_page_and_in_metrics(app):
    from kb.service.metrics import mail_quarantine_lines

    at, _ = app
    store = _store()
    _held_message(store)
    open_page(at, "configuration")
    frame = next(d.value for d in at.dataframe if "last UID" in d.value.columns)
    assert frame.to_dict("records") == [{"mailbox": "support", "folder": "INBOX", "configured": "no (removed)",
                                         "last UID": "", "last poll": "never", "last error": "", "held": 1}]
    assert mail_quarantine_lines(store)[2:] == ['support_mail_quarantined_messages{mailbox="support"} 1']
