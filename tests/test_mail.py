"""Cases from email (rules §9): one message's record, threads, clients, first responses, once, never fatal; the
`mail import` command on mbox, Maildir and .eml; the generated mailbox; mail cases against CSV cases."""

from __future__ import annotations

import csv
import io
import json
import os
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

import kb.mail.archive
from kb.cli import main
from kb.config import ConfigError, load_config, parse_config
from kb.db import connection
from kb.intake.pauses import pause_case
from kb.mail.archive import import_paths
from kb.mail.messages import MailRecord, Skipped, client_id_for, parse_message, support_matcher
from kb.timestamps import set_now
from kb.tools.mbox import write_mbox
from tests.fixtures import ADMIN, SPEC_TOML, add

MAIL_TOML = SPEC_TOML + """
[mail]
support_addresses = ["support@knowru.example", "@Team.Knowru.example"]
"""
CONFIG = parse_config(tomllib.loads(MAIL_TOML))
NOW = datetime(2026, 12, 31, tzinfo=UTC)
IS_TEAM = support_matcher(CONFIG.mail.support_addresses)


def message(sender: str, subject: str = "Help", *, date: str | None = "Mon, 23 Nov 2026 10:00:00 +0800",
            mid: str | None = None, reply_to: str | None = None, refs: tuple[str, ...] = (),
            headers: tuple[tuple[str, str], ...] = (), body: str = "Hello", received: str | None = None) -> bytes:
    lines = []
    if received:
        lines.append(f"Received: from mx.example by mx.knowru.example; {received}")
    if sender is not None:
        lines.append(f"From: {sender}")
    lines += ["To: support@knowru.example", f"Subject: {subject}"]
    if date:
        lines.append(f"Date: {date}")
    if mid:
        lines.append(f"Message-ID: <{mid}>")
    if reply_to:
        lines.append(f"In-Reply-To: <{reply_to}>")
    if refs:
        lines.append("References: " + " ".join(f"<{r}>" for r in refs))
    lines += [f"{k}: {v}" for k, v in headers]
    lines += ["", body, ""]
    return "\n".join(lines).encode()


def mbox(path: Path, *messages: tuple[str, bytes]) -> Path:
    """An mbox file of (From-line date in asctime, message) pairs."""
    with open(path, "wb") as f:
        for when, data in messages:
            f.write(f"From someone@example {when}\n".encode() + data + b"\n")
    return path


def parse(data: bytes, **kwargs) -> MailRecord | Skipped:
    return parse_message(data, IS_TEAM, mailbox="test", folder="t", where="test", now=NOW, **kwargs)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "support.toml"
    path.write_text(MAIL_TOML)
    return path


def run(db, config_file, *args) -> int:
    return main(["--db", str(db), "--config", str(config_file), "--now", "2026-12-31T00:00:00+08:00", *args])


def rows(db, sql, params=()):
    con = connection.connect(db, read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def export(db, config_file, capsys, as_of="2026-12-01T00:00:00+08:00") -> list[dict]:
    capsys.readouterr()
    assert run(db, config_file, "export", "case-sla", "--as-of", as_of) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


# --- one message ------------------------------------------------------------------------------------------


def test_team_is_an_address_or_a_domain_case_insensitive():
    assert parse(message("Support <SUPPORT@knowru.example>")).is_team
    assert parse(message("agent7@team.knowru.EXAMPLE")).is_team
    assert not parse(message("someone@knowru.example")).is_team  # not the exact address, nor the @domain
    assert not parse(message("x@sub.team.knowru.example")).is_team  # the domain after @, exactly


@pytest.mark.parametrize("header", [
    ("Auto-Submitted", "auto-replied"), ("Auto-Submitted", "auto-generated; foo"), ("Precedence", "bulk"),
    ("Precedence", "JUNK"), ("Precedence", "list"), ("Precedence", "auto_reply"), ("X-Autoreply", "yes"),
    ("X-Autorespond", "1"), ("List-Id", "<dev.lists.example>"),
    ("Content-Type", 'multipart/report; report-type=delivery-status; boundary="b"'),
])
def test_automatic_messages(header):
    record = parse(message("client@acme.example", headers=(header,), body="--b\n\nx\n--b--"))
    assert record.is_automatic and record.automatic_reason


def test_auto_submitted_no_is_not_automatic_and_system_senders_are():
    assert not parse(message("c@acme.example", headers=(("Auto-Submitted", "no"),))).is_automatic
    assert parse(message("MAILER-DAEMON@mx.example")).is_automatic
    assert parse(message("Mail Delivery System <postmaster@mx.example>")).is_automatic
    assert parse(message("MAILER-DAEMON")).is_automatic  # no address at all: still automatic, not skipped


def test_the_instant_of_receipt_in_order_of_precedence():
    data = message("c@acme.example", date="Mon, 23 Nov 2026 10:00:00 +0800",
                   received="Mon, 23 Nov 2026 03:00:00 +0000")
    internal = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
    assert parse(data, internaldate=internal).instant == internal
    assert parse(data, from_line=b"From x@y Mon Nov 23 05:00:00 2026").instant == datetime(2026, 11, 23, 5, tzinfo=UTC)
    assert parse(data).instant == datetime(2026, 11, 23, 3, tzinfo=UTC)  # the topmost Received
    assert parse(message("c@acme.example")).instant == datetime(2026, 11, 23, 2, tzinfo=UTC)  # Date
    assert parse(data, from_line=b"From x@y Mon Nov 23 05:00:00 +0800 2026").instant == \
        datetime(2026, 11, 22, 21, tzinfo=UTC)
    # A team message's instant is its Date, whatever the server says.
    team = message("support@knowru.example", date="Mon, 23 Nov 2026 11:00:00 +0800")
    assert parse(team, internaldate=internal).instant == datetime(2026, 11, 23, 3, tzinfo=UTC)


def test_unusable_messages_are_skipped_with_their_reason():
    assert "no sender" in parse(message("undisclosed-recipients:;")).reason
    assert "no date" in parse(message("c@acme.example", date=None)).reason
    assert "no date" in parse(message("support@knowru.example", date="yesterday-ish"),
                              internaldate=datetime(2026, 11, 1, tzinfo=UTC)).reason
    broken = message("c@acme.example", headers=(("Content-Type", "multipart/mixed"),))
    assert "broken MIME" in parse(broken).reason
    missing = message("c@acme.example", headers=(("Content-Type", 'multipart/mixed; boundary="zz"'),))
    assert "broken MIME" in parse(missing).reason
    assert "future" in parse(message("c@acme.example", date="Mon, 23 Nov 2099 10:00:00 +0800")).reason
    assert "empty" in parse(b"").reason


def test_threads_tags_keys_and_encoded_headers():
    record = parse(message("=?iso-8859-1?q?Ren=E9_Dupr=E9?= <Rene@Acme.example>",
                           subject="=?utf-8?b?UmU6IOmDqOe9suWksei0pQ==?= [CS-00042]", mid="a@b",
                           reply_to="x@y", refs=("w@y", "x@y")))
    assert (record.from_address, record.from_name) == ("rene@acme.example", "René Dupré")
    assert record.subject == "Re: 部署失败 [CS-00042]" and record.case_tag == "CS-00042"
    assert record.key == "a@b" and record.links == ("x@y", "w@y")
    unnamed = parse(message("c@acme.example"))
    assert unnamed.key.startswith("sha256:") and unnamed.key == parse(message("c@acme.example").replace(b"\n", b"\r\n"),
                                                                   internaldate=NOW).key


def test_client_ids_made_from_addresses_follow_the_id_rule():
    assert client_id_for("Jane.Doe+x@Acme.example") == "jane.doe+x@acme.example"
    assert client_id_for("o'brien@acme.example") == "o:27brien@acme.example"
    assert client_id_for("josé@acme.example") == "jos:c3:a9@acme.example"
    long = client_id_for("a" * 80 + "@acme.example")
    assert len(long) == 64 and long != client_id_for("a" * 81 + "@acme.example")


# --- threads, cases, responses ----------------------------------------------------------------------------


def test_a_thread_opens_one_case_and_the_first_human_reply_is_the_response(tmp_path, config_file, capsys):
    db = tmp_path / "s.duckdb"
    con = connection.connect(db)
    add(con, CONFIG, "clients", {"client_id": "acme", "name": "Acme", "tier": "enterprise",
                                 "email_domain": "ACME.example"})
    con.close()
    path = mbox(
        tmp_path / "in.mbox",
        ("Fri Nov 20 07:00:00 2026", message("Ann <ann@acme.example>", "API down", mid="c1@acme")),
        ("Fri Nov 20 07:00:30 2026", message("support@knowru.example", "Re: API down", mid="ack@k", reply_to="c1@acme",
                                             date="Fri, 20 Nov 2026 15:00:30 +0800",
                                             headers=(("Auto-Submitted", "auto-replied"),))),
        ("Fri Nov 20 08:00:00 2026", message("Ann <ann@acme.example>", "Re: API down", mid="c2@acme",
                                             reply_to="ack@k", refs=("c1@acme", "ack@k"))),
        ("Mon Nov 23 09:00:00 2026", message("agent@team.knowru.example", "Re: API down", mid="r1@k",
                                             reply_to="c2@acme", refs=("c1@acme", "c2@acme"),
                                             date="Mon, 23 Nov 2026 16:00:00 +0800")),
        ("Mon Nov 23 10:00:00 2026", message("support@knowru.example", "Re: API down [CS-00001]", mid="r2@k",
                                             date="Mon, 23 Nov 2026 17:00:00 +0800")),
        ("Tue Nov 24 01:00:00 2026", message("bob@newco.example", "Other problem", mid="c3@newco")),
        ("Tue Nov 24 02:00:00 2026", message("lists@lists.example", "digest", mid="l1@lists",
                                             headers=(("List-Id", "<x.lists.example>"),))),
    )
    assert run(db, config_file, "mail", "import", "--trust-team", str(path)) == 0
    out = capsys.readouterr().out
    assert "7 messages read: 2 cases opened, 1 response recorded, 1 new free client" in out
    cases = {r["case_id"]: r for r in export(db, config_file, capsys)}
    one = cases["CS-00001"]
    assert one["client_id"] == "acme" and one["tier"] == "enterprise" and one["category"] == "platform_issue"
    assert one["received_at"] == "2026-11-20T15:00:00+08:00"
    assert one["first_response_due"] == "2026-11-23T15:00:00+08:00"  # the rules' worked example
    assert one["first_response_at"] == "2026-11-23T16:00:00+08:00" and one["sla_state"] == "breached"
    assert (one["requester"], one["subject"], one["message_id"]) == ("ann@acme.example", "API down", "c1@acme")
    two = cases["CS-00002"]
    assert two["client_id"] == "bob@newco.example" and two["tier"] == "free" and two["first_response_at"] == ""
    assert one["priority"] == two["priority"] == "normal"  # mail opens every case at normal
    assert rows(db, "SELECT name, tier, source FROM clients WHERE client_id = 'bob@newco.example'") == \
        [("bob@newco.example", "free", "mail")]  # no display name: the address
    threads = dict(rows(db, "SELECT message_key, case_id FROM messages"))
    assert threads == {"c1@acme": "CS-00001", "ack@k": "CS-00001", "c2@acme": "CS-00001", "r1@k": "CS-00001",
                       "r2@k": "CS-00001", "c3@newco": "CS-00002", "l1@lists": None}
    actions = rows(db, "SELECT action, table_name FROM audit_log ORDER BY audit_id")
    assert ("import", "cases") in actions and ("mail", "messages") in actions


def test_a_reply_read_before_the_message_it_answers_becomes_the_response(tmp_path, config_file, capsys):
    db = tmp_path / "s.duckdb"
    sent = mbox(tmp_path / "sent.mbox", ("Mon Nov 23 03:00:00 2026", message(
        "support@knowru.example", "Re: hi", mid="r@k", reply_to="c@x", date="Mon, 23 Nov 2026 11:00:00 +0800")))
    inbox = mbox(tmp_path / "inbox.mbox", ("Mon Nov 23 02:00:00 2026", message("c@x.example", "hi", mid="c@x")))
    assert run(db, config_file, "mail", "import", "--trust-team", str(sent)) == 0
    assert rows(db, "SELECT count(*) FROM cases") == [(0,)]
    assert run(db, config_file, "mail", "import", str(inbox)) == 0
    assert "1 case opened, 1 response recorded" in capsys.readouterr().out
    assert rows(db, "SELECT case_id FROM messages WHERE message_key = 'r@k'") == [("CS-00001",)]
    [case] = export(db, config_file, capsys)
    assert case["first_response_at"] == "2026-11-23T11:00:00+08:00"


def test_a_later_mail_reply_moves_nothing_an_earlier_one_does(tmp_path, config_file, capsys):
    db = tmp_path / "s.duckdb"
    first = mbox(tmp_path / "a.mbox",
                 ("Mon Nov 23 02:00:00 2026", message("c@x.example", "hi", mid="c@x")),
                 ("Mon Nov 23 05:00:00 2026", message("support@knowru.example", "Re", mid="r2@k", reply_to="c@x",
                                                      date="Mon, 23 Nov 2026 13:00:00 +0800")))
    assert run(db, config_file, "mail", "import", "--trust-team", str(first)) == 0
    late = mbox(tmp_path / "b.mbox", ("Mon Nov 23 09:00:00 2026", message(
        "support@knowru.example", "Re", mid="r3@k", reply_to="c@x", date="Mon, 23 Nov 2026 17:00:00 +0800")))
    early = mbox(tmp_path / "c.mbox", ("Mon Nov 23 03:00:00 2026", message(
        "support@knowru.example", "Re", mid="r1@k", reply_to="c@x", date="Mon, 23 Nov 2026 11:00:00 +0800")))
    assert run(db, config_file, "mail", "import", "--trust-team", str(late)) == 0
    assert rows(db, "SELECT strftime(first_response_at, '%H') FROM cases") == [("05",)]
    assert run(db, config_file, "mail", "import", "--trust-team", str(early)) == 0
    assert rows(db, "SELECT strftime(first_response_at, '%H') FROM cases") == [("03",)]
    assert rows(db, "SELECT count(*) FROM audit_log WHERE action = 'record_response'") == [(1,)]


def test_a_clients_message_resumes_the_case_it_joins_when_it_waits_on_the_client(tmp_path, config_file, capsys):
    db = tmp_path / "s.duckdb"
    opened = mbox(tmp_path / "a.mbox",
                  ("Mon Nov 23 02:00:00 2026", message("ann@acme.example", "Export fails", mid="c1@acme")),
                  ("Mon Nov 23 02:30:00 2026", message("bob@acme.example", "Login fails", mid="b1@acme")))
    assert run(db, config_file, "mail", "import", str(opened)) == 0
    con = connection.connect(db)
    set_now(NOW)
    pause_case(con, CONFIG, ADMIN, "CS-00001", datetime(2026, 11, 23, 6, tzinfo=UTC), "asked for the logs")
    pause_case(con, CONFIG, ADMIN, "CS-00002", datetime(2026, 11, 24, 2, tzinfo=UTC))
    con.close()
    replies = mbox(
        tmp_path / "b.mbox",
        ("Mon Nov 23 07:00:00 2026", message("support@knowru.example", "Re: Export fails", mid="r1@k",
                                             reply_to="c1@acme", date="Mon, 23 Nov 2026 15:00:00 +0800")),
        ("Mon Nov 23 08:00:00 2026", message("ann@acme.example", "auto", mid="ooo@acme", reply_to="r1@k",
                                             headers=(("Auto-Submitted", "auto-replied"),))),
        ("Tue Nov 24 01:00:00 2026", message("ann@acme.example", "Re: Export fails", mid="c2@acme", reply_to="r1@k")),
        ("Tue Nov 24 03:00:00 2026", message("ann@acme.example", "Re: Re: Export fails", mid="c3@acme",
                                             reply_to="c2@acme")),
        ("Tue Nov 24 01:30:00 2026", message("bob@acme.example", "Re: Login fails [CS-00002]", mid="b2@acme")),
        ("Tue Nov 24 04:00:00 2026", message("cy@acme.example", "New problem", mid="n1@acme")),
    )
    capsys.readouterr()
    assert run(db, config_file, "mail", "import", "--trust-team", str(replies)) == 0
    assert "6 messages read: 1 case opened, 1 response recorded, 1 paused case resumed by the client, 1 new free " \
        "client, 0 already taken" in capsys.readouterr().out
    # resumed at the client's first message after the pause (not the team's, not an automatic reply); the message
    # that came before its pause (Bob's) resumes nothing, nor does the one that opened a case
    assert rows(db, "SELECT case_id, paused_at, resumed_at, resumed_by FROM pauses ORDER BY case_id") == [
        ("CS-00001", datetime(2026, 11, 23, 6, tzinfo=UTC), datetime(2026, 11, 24, 1, tzinfo=UTC), "mail"),
        ("CS-00002", datetime(2026, 11, 24, 2, tzinfo=UTC), None, None)]
    [(actor, before, after)] = rows(db, "SELECT actor, before, after FROM audit_log WHERE action = 'resume' "
                                        "AND table_name = 'pauses' AND row_id = 'CS-00001'")
    after = json.loads(after)
    assert actor.startswith("cli:") and json.loads(before)["resumed_at"] is None
    assert datetime.fromisoformat(after.pop("resumed_at")) == datetime(2026, 11, 24, 1, tzinfo=UTC)
    assert datetime.fromisoformat(after.pop("paused_at")) == datetime(2026, 11, 23, 6, tzinfo=UTC)
    assert after == {"resumed_by": "mail", "message": "c2@acme"}
    # every message of a thread carries its case, the team's and the automatic ones too
    assert dict(rows(db, "SELECT message_key, case_id FROM messages WHERE source = 'mail'")) == {
        "c1@acme": "CS-00001", "b1@acme": "CS-00002", "r1@k": "CS-00001", "ooo@acme": "CS-00001",
        "c2@acme": "CS-00001", "c3@acme": "CS-00001", "b2@acme": "CS-00002", "n1@acme": "CS-00003"}
    capsys.readouterr()
    assert run(db, config_file, "mail", "import", str(replies)) == 0  # once: nothing resumes twice
    assert "0 cases opened, 0 responses recorded, 0 new free clients, 6 already taken" in capsys.readouterr().out


def test_a_client_found_by_its_id_and_an_odd_address_gets_a_valid_id(tmp_path, config_file):
    db = tmp_path / "s.duckdb"
    con = connection.connect(db)
    add(con, CONFIG, "clients", {"client_id": "pat@gmail.example", "name": "Pat", "tier": "custom"})
    con.close()
    path = mbox(tmp_path / "m.mbox",
                ("Mon Nov 23 02:00:00 2026", message("Pat <PAT@gmail.example>", "a", mid="1@x")),
                ("Mon Nov 23 02:00:00 2026", message("\"O'Brien, Sean\" <o'brien@odd.example>", "b", mid="2@x")))
    assert run(db, config_file, "mail", "import", str(path)) == 0
    assert rows(db, "SELECT client_id FROM cases ORDER BY case_id") == [("pat@gmail.example",),
                                                                        ("o:27brien@odd.example",)]
    assert rows(db, "SELECT name FROM clients WHERE client_id = 'o:27brien@odd.example'") == [("O'Brien, Sean",)]


# --- once, never fatal ------------------------------------------------------------------------------------


def test_a_mixed_mbox_imported_twice_gives_the_cases_of_once(tmp_path, config_file, capsys):
    path = tmp_path / "gen.mbox"
    counts = write_mbox(path, CONFIG, messages=1500, seed=7, until=datetime(2026, 11, 25, 4, tzinfo=UTC))
    assert sum(counts.values()) == 1500
    assert {"team reply", "acknowledgement", "bounce", "mailing list", "out of office"} <= set(counts)
    again = tmp_path / "gen2.mbox"
    write_mbox(again, CONFIG, messages=1500, seed=7, until=datetime(2026, 11, 25, 4, tzinfo=UTC))
    assert again.read_bytes() == path.read_bytes()  # deterministic for a seed
    once, twice = tmp_path / "once.duckdb", tmp_path / "twice.duckdb"
    assert run(once, config_file, "mail", "import", str(path)) == 0
    assert run(twice, config_file, "mail", "import", str(path)) == 0
    capsys.readouterr()
    assert run(twice, config_file, "mail", "import", str(path), str(again)) == 0
    assert "3,000 messages read: 0 cases opened, 0 responses recorded, 0 new free clients, 3,000 already taken" \
        in capsys.readouterr().out
    assert export(once, config_file, capsys) == export(twice, config_file, capsys)
    assert rows(once, "SELECT count(*) FROM messages") == [(1500,)]


def test_mail_cases_have_the_deadlines_and_states_of_the_same_cases_imported_by_csv(tmp_path, config_file, capsys):
    mail_db, csv_db = tmp_path / "mail.duckdb", tmp_path / "csv.duckdb"
    clients = tmp_path / "clients.csv"
    clients.write_text("client_id,name,tier,email_domain\nacme,Acme,enterprise,acme.example\n"
                       "cus,Cus,custom,cus.example\n")
    for db in (mail_db, csv_db):
        assert run(db, config_file, "import", "clients", str(clients)) == 0
    path = tmp_path / "gen.mbox"
    write_mbox(path, CONFIG, messages=400, seed=3, until=datetime(2026, 11, 28, 4, tzinfo=UTC), days=20)
    extra = mbox(tmp_path / "x.mbox",
                 ("Fri Nov 20 07:00:00 2026", message("a@acme.example", "ent", mid="e1@a")),
                 ("Tue Nov 24 11:00:00 2026", message("b@cus.example", "cus", mid="e2@a")),
                 ("Thu Nov 26 06:00:00 2026", message("support@knowru.example", "Re", mid="e3@a", reply_to="e2@a",
                                                      date="Thu, 26 Nov 2026 14:00:00 +0800")))
    assert run(mail_db, config_file, "mail", "import", "--trust-team", str(path), str(extra)) == 0
    mail_rows = export(mail_db, config_file, capsys)
    # The same cases, as CSV: the free clients mail made, then the cases.
    made = rows(mail_db, "SELECT client_id, name, tier FROM clients WHERE source = 'mail' ORDER BY client_id")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["client_id", "name", "tier"])
    writer.writerows(made)
    (tmp_path / "free.csv").write_text(buffer.getvalue())
    assert run(csv_db, config_file, "import", "clients", str(tmp_path / "free.csv")) == 0
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    fields = ["case_id", "client_id", "received_at", "category", "subject", "requester", "first_response_at"]
    writer.writerow(fields)
    writer.writerows([r[f] for f in fields] for r in mail_rows)
    (tmp_path / "cases.csv").write_text(buffer.getvalue())
    assert run(csv_db, config_file, "import", "cases", str(tmp_path / "cases.csv")) == 0
    csv_rows = export(csv_db, config_file, capsys)
    keep = ["case_id", "client_id", "tier", "received_at", "first_response_due", "first_response_at", "sla_state"]
    assert [{k: r[k] for k in keep} for r in mail_rows] == [{k: r[k] for k in keep} for r in csv_rows]
    states = {r["sla_state"] for r in mail_rows}
    assert {"met", "breached"} <= states and {r["tier"] for r in mail_rows} == {"enterprise", "custom", "free"}


ODD = {
    "encoded.eml": message("=?koi8-r?b?8NLJ18XU?= <ivan@ru.example>", "=?koi8-r?b?8NLJ18XU?= =?shift_jis?b?g26DjYFb?=",
                           mid="odd1@x"),
    "unknown-charset.eml": message("=?x-unknown?q?Who?= <who@x.example>", "=?x-unknown?q?caf=E9?=", mid="odd2@x"),
    "raw-8bit.eml": "From: Jürgen <j@de.example>\nSubject: Grüße\nDate: Mon, 23 Nov 2026 10:00:00 +0100\n\nx\n"
                    .encode("latin-1"),
    "no-date.eml": message("c@x.example", date=None, mid="odd3@x"),
    "lying-date.eml": message("c@x.example", date="Mon, 23 Nov 2126 10:00:00 +0800", mid="odd4@x"),
    "bad-date.eml": message("c@x.example", date="32 Foo 20x6", mid="odd5@x",
                            received="Mon, 23 Nov 2026 01:00:00 +0000"),
    "html-only.eml": message("c@x.example", mid="odd6@x", headers=(("Content-Type", "text/html"),),
                             body="<html><body><p>It broke</p></body></html>"),
    "attachment.eml": message("c@x.example", mid="odd7@x", headers=(
        ("Content-Type", 'multipart/mixed; boundary="B"'),),
        body="--B\nContent-Type: text/plain\n\nsee file\n--B\nContent-Type: application/octet-stream\n"
             "Content-Transfer-Encoding: base64\n\n" + ("QUJD" * 19 + "\n") * 60_000 + "--B--"),
    "broken-mime.eml": message("c@x.example", mid="odd8@x", headers=(("Content-Type", "multipart/mixed"),)),
    "duplicate-id.eml": message("d@x.example", "another", mid="odd1@x"),
    "forwarded.eml": message("c@x.example", "Fwd: API down", mid="odd9@x", headers=(
        ("Content-Type", 'multipart/mixed; boundary="F"'),),
        body="--F\nContent-Type: message/rfc822\n\nFrom: z@y.example\nSubject: API down\n\nhi\n--F--"),
    "out-of-office.eml": message("c@x.example", "Out of office", mid="odd10@x",
                                 headers=(("Auto-Submitted", "auto-replied"), ("X-Autoreply", "yes"))),
    "bounce.eml": message("Mail Delivery System <MAILER-DAEMON@mx.example>", "Undelivered", mid="odd11@x", headers=(
        ("Content-Type", 'multipart/report; report-type=delivery-status; boundary="R"'),), body="--R\n\nx\n--R--"),
    "list.eml": message("owner@lists.example", "[dev] digest", mid="odd12@x", headers=(("List-Id", "<dev>"),)),
    "no-sender.eml": message(None, mid="odd13@x"),
    "garbage.eml": bytes(range(256)) * 4,
    "header-only.eml": b"From: h@x.example\nDate: Mon, 23 Nov 2026 10:00:00 +0800",
    "nul.eml": message("nul@x.example", "nul \x00 inside", mid="odd14@x"),
    "huge-header.eml": message("c@x.example", "x" * 100_000, mid="odd15@x", refs=tuple(f"r{i}@x" for i in range(5000))),
}


def test_a_corpus_of_odd_messages_imports_without_a_traceback(tmp_path, config_file, capsys):
    folder = tmp_path / "odd"
    folder.mkdir()
    for name, data in ODD.items():
        (folder / name).write_bytes(data)
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.host").write_bytes(message("m@x.example", "from a maildir", mid="md1@x"))
    (maildir / "cur" / "2.host:2,S").write_bytes(ODD["bounce.eml"])
    paths = [folder, maildir]
    try:
        import test.test_email as cpython_email  # CPython's own odd messages, when this Python ships them

        data = Path(os.path.dirname(cpython_email.__file__)) / "data"
        if data.is_dir():
            paths.append(data)
    except ImportError:
        pass
    db = tmp_path / "odd.duckdb"
    assert run(db, config_file, "mail", "import", *map(str, paths), str(tmp_path / "missing.mbox")) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert "cannot read" in captured.err and "missing.mbox" in captured.err
    out = captured.out
    for reason in ("no sender", "no date", "broken MIME", "dated in the future"):
        assert reason in out, reason
    assert rows(db, "SELECT count(*) FROM messages WHERE message_key = 'odd1@x'") == [(1,)]  # duplicate id: once
    subjects = {s for (s,) in rows(db, "SELECT subject FROM cases")}
    assert "Grüße" in subjects and "from a maildir" in subjects and "nul inside" in subjects  # NUL removed
    assert rows(db, "SELECT count(*) FROM cases WHERE subject = 'Out of office' OR subject = 'Undelivered'") == [(0,)]
    # And the same again: nothing new, the same reasons.
    assert run(db, config_file, "mail", "import", *map(str, paths)) == 0
    assert " 0 cases opened" in capsys.readouterr().out


def test_import_exits_1_when_nothing_could_be_read(tmp_path, config_file, capsys):
    db = tmp_path / "s.duckdb"
    assert run(db, config_file, "mail", "import", str(tmp_path / "nope.mbox")) == 1
    (tmp_path / "bad.eml").write_bytes(message(None))
    assert run(db, config_file, "mail", "import", str(tmp_path / "bad.eml")) == 1
    assert "no sender" in capsys.readouterr().out


def test_mail_needs_the_teams_addresses(tmp_path, capsys):
    config = tmp_path / "plain.toml"
    config.write_text(SPEC_TOML)
    assert run(tmp_path / "s.duckdb", config, "mail", "import", str(tmp_path)) == 1
    assert "support_addresses" in capsys.readouterr().err


def assert_refused(tmp_path, section: str, message_part: str) -> None:
    """The spec's configuration with ``section`` added does not load, and the message names ``message_part``."""
    path = tmp_path / "c.toml"
    path.write_text(SPEC_TOML + section)
    with pytest.raises(ConfigError, match=message_part):
        load_config(path)


@pytest.mark.parametrize("section, message_part", [
    ('[mail]\nsupport_addresses = ["not an address"]', "neither an address"),
    ('[mail]\npoll_seconds = 0', "poll_seconds"),
    ('[[mail.mailboxes]]\nname = "a"\nurl = "pop3://x"\nuser = "u"\npassword_env = "P"', "imap://"),
    ('[[mail.mailboxes]]\nname = "a"\nurl = "imap://x"\nuser = "u"\npassword = "hunter2"', "does not belong"),
    ('[[mail.mailboxes]]\nname = "a"\nurl = "imap://x"\nuser = "u"\npassword_env = "no good"', "password_env"),
    ('[[mail.mailboxes]]\nname = "a b"\nurl = "imap://x"\nuser = "u"\npassword_env = "P"', "name"),
    ('[[mail.mailboxes]]\nname = "a"\nurl = "imaps://u:p@x"\nuser = "u"\npassword_env = "P"', "no user or password"),
    ('[[mail.mailboxes]]\nname = "a"\nurl = "imap://x"\nuser = "u"\npassword_env = "P"\nfolders = []', "folders"),
])
def test_the_mail_section_is_validated(tmp_path, section, message_part):
    assert_refused(tmp_path, section, message_part)


def test_a_mailbox_section_reads_its_parts():
    config = parse_config(tomllib.loads(MAIL_TOML + '[[mail.mailboxes]]\nname = "support"\n'
                                        'url = "imaps://imap.example.com"\nuser = "s@x"\npassword_env = "PW"\n'))
    [box] = config.mail.mailboxes
    assert (box.host, box.port, box.tls, box.folders) == ("imap.example.com", 993, True, ("INBOX",))
    assert config.mail.support_addresses == ("support@knowru.example", "@team.knowru.example")


def test_import_paths_reports_batches_in_one_transaction_each(tmp_path):
    path = tmp_path / "gen.mbox"
    write_mbox(path, CONFIG, messages=300, seed=5, until=datetime(2026, 11, 25, 4, tzinfo=UTC))
    con = connection.connect(tmp_path / "s.duckdb")
    try:
        outcome, failed = import_paths(con, CONFIG, [path], ADMIN, batch=50, now=NOW)
        assert not failed and outcome.read == 300 and not outcome.skipped
        assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'mail'").fetchall() == [(6,)]
        # the threads crossed the batches: every team reply that answers a case found it
        assert con.execute("SELECT count(*) FROM messages WHERE is_team AND NOT is_automatic AND case_id IS NULL "
                           "AND len(links) > 0").fetchall() == [(0,)]
    finally:
        con.close()


def test_an_import_checkpoints_past_a_larger_log_and_leaves_the_threshold_as_it_was(tmp_path, monkeypatch):
    """While an import takes its batches, DuckDB checkpoints only past ``DEFERRED_CHECKPOINT`` of write-ahead
    log (a checkpoint in the middle of an import held more memory than any batch): with a threshold of a
    kilobyte before, the log still holds the import's batches at its end. After, and after an import that
    failed, the threshold is the one it was."""
    path = tmp_path / "gen.mbox"
    write_mbox(path, CONFIG, messages=120, seed=8, until=datetime(2026, 11, 25, 4, tzinfo=UTC))
    db = tmp_path / "s.duckdb"
    con = connection.connect(db)
    try:
        con.execute("CHECKPOINT")
        con.execute("SET checkpoint_threshold = '1KiB'")
        seen = []
        real = kb.mail.archive.take
        monkeypatch.setattr(kb.mail.archive, "take", lambda con, *a, **k: seen.append(
            con.execute("SELECT current_setting('checkpoint_threshold')").fetchall()[0][0]) or real(con, *a, **k))
        outcome, failed = import_paths(con, CONFIG, [path], ADMIN, batch=50, now=NOW)
        assert not failed and outcome.read == 120 and seen == ["256.0 MiB"] * 3
        assert db.with_name("s.duckdb.wal").stat().st_size > 10_000  # the batches, not yet checkpointed
        assert con.execute("SELECT current_setting('checkpoint_threshold')").fetchall() == [("1.0 KiB",)]
        assert con.execute("SELECT count(*) FROM messages").fetchall()[0][0] == 120 - len(outcome.skipped)

        def refused(*args, **kwargs):
            raise RuntimeError("the store refused the batch")
        monkeypatch.setattr(kb.mail.archive, "take", refused)
        with pytest.raises(RuntimeError, match="refused the batch"):
            import_paths(con, CONFIG, [path], ADMIN, batch=50, now=NOW)
        assert con.execute("SELECT current_setting('checkpoint_threshold')").fetchall() == [("1.0 KiB",)]
    finally:
        con.close()


def test_parser_processes_store_what_one_process_would(tmp_path, monkeypatch):
    path = tmp_path / "gen.mbox"
    write_mbox(path, CONFIG, messages=300, seed=6, until=datetime(2026, 11, 25, 4, tzinfo=UTC))
    stored = []
    for chunk in (10_000, 7):  # one chunk, read here; 43 chunks, read by the parser processes
        monkeypatch.setattr(kb.mail.archive, "CHUNK", chunk)
        con = connection.connect(tmp_path / f"s{chunk}.duckdb")
        try:
            outcome, failed = import_paths(con, CONFIG, [path, tmp_path / "missing.mbox"], ADMIN, batch=50, now=NOW)
            assert outcome.read == 300 and [f.path for f in failed] == [str(tmp_path / "missing.mbox")]
            stored.append([con.execute(f"SELECT * EXCLUDE ({stamp}) FROM {table} ORDER BY ALL").fetchall()
                           for table, stamp in (("messages", "taken_at"), ("cases", "voided_at"))])
        finally:
            con.close()
    assert stored[0] == stored[1] and len(stored[0][0]) == 300


def test_the_reads_for_the_thread_and_the_clients_mail_made(tmp_path, config_file):
    from kb.reads.mail import case_thread, mail_clients, mailbox_state
    from kb.store import Store

    db = tmp_path / "s.duckdb"
    path = mbox(tmp_path / "m.mbox",
                ("Mon Nov 23 02:00:00 2026", message("Kim <kim@new.example>", "hi", mid="c@x")),
                ("Mon Nov 23 03:00:00 2026", message("support@knowru.example", "Re: hi", mid="r@k", reply_to="c@x",
                                                     date="Mon, 23 Nov 2026 11:00:00 +0800")))
    assert run(db, config_file, "mail", "import", str(path)) == 0
    store = Store(db, CONFIG)
    try:
        thread = case_thread(store, "CS-00001")
        assert list(thread.from_address) == ["kim@new.example", "support@knowru.example"]
        assert list(thread.opened_case) == [True, False] and list(thread.is_team) == [False, True]
        clients = mail_clients(store)
        assert list(clients.client_id) == ["kim@new.example"] and list(clients.name) == ["Kim"]
        assert list(clients.cases) == [1]
        assert mailbox_state(store).empty
    finally:
        store.close()


# --- hostile messages: set aside alone, never the batch ------------------------------------------------------

INVISIBLE_SUBJECTS = ["=?utf-8?q?=E2=80=8B?=", "=?utf-8?q?=E2=80=8B=E2=80=8C=E2=81=A0?=", "=?utf-8?b?IOKAjiDvu78g?=",
                      "=?utf-8?q?=00=01?=", ""]


@pytest.mark.parametrize("subject", INVISIBLE_SUBJECTS)
def test_an_empty_or_invisible_subject_reads_no_subject(subject):
    assert parse(message("c@acme.example", subject)).subject == "(no subject)"


def test_control_characters_never_reach_a_records_text():
    record = parse(message("=?utf-8?q?Ev=00e_=01Smith?= <e\x00ve@Evil.example>", "=?utf-8?q?a=00b=07c?=",
                           mid="id\x01@x", reply_to="r\x00@x"))
    assert (record.from_name, record.from_address, record.subject) == ("Eve Smith", "eve@evil.example", "abc")
    assert (record.key, record.links) == ("id@x", ("r@x",))
    assert parse(message("eve\x01@evil.example")).from_address == "eve@evil.example"
    assert parse(message("=?utf-8?q?=E2=80=8B?= <z@x.example>")).from_name is None  # invisible: no name


def test_six_hostile_messages_and_a_refused_one_import_alone_and_the_rest_become_cases(tmp_path, config_file, capsys):
    db = tmp_path / "s.duckdb"
    con = connection.connect(db)
    add(con, CONFIG, "clients", {"client_id": "OLD", "name": "Old", "tier": "free"})
    add(con, CONFIG, "cases", {"case_id": "OLD-1", "client_id": "OLD", "received_at": "2026-01-05T09:00:00+08:00",
                               "category": "platform_issue", "subject": "Refused"})
    con.execute("CREATE UNIQUE INDEX cases_one_subject ON cases (subject)")  # the store refuses a 2nd "Refused"
    con.close()
    senders = ["eve\x00@evil.example", "=?utf-8?q?Eve_=00?= <e\x00ve@evil.example>",
               "=?utf-8?q?Ev=00e?= <eve\x01@evil.example>"]
    chain = [("Eve <eve@evil.example>", s) for s in INVISIBLE_SUBJECTS[:3]] + [(s, "Re: hi") for s in senders]
    path = mbox(tmp_path / "in.mbox", *[
        (f"Mon Nov 23 0{n}:00:00 2026", message(sender, subject, mid=f"h{n}@evil",
                                                reply_to=f"h{n - 1}@evil" if n else None))
        for n, (sender, subject) in enumerate(chain)],
        ("Mon Nov 23 07:00:00 2026", message("Pat <pat@client.example>", "Refused", mid="refused@client")),
        ("Mon Nov 23 08:00:00 2026", message("Ann <ann@acme.example>", "Real problem", mid="real@acme")))
    assert run(db, config_file, "mail", "import", str(path)) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert f"held {path} message 7 <refused@client>: held in quarantine: Constraint Error: Duplicate key" \
        in captured.out
    assert "8 messages read: 2 cases opened, 0 responses recorded, 2 new free clients, 0 already taken, " \
           "0 skipped, 1 held in quarantine" in captured.out
    assert rows(db, "SELECT subject, requester FROM cases WHERE source = 'mail' ORDER BY case_id") == [
        ("(no subject)", "eve@evil.example"), ("Real problem", "ann@acme.example")]
    assert rows(db, "SELECT message_key, mailbox, folder, uid, status FROM mail_quarantine") == [
        ("refused@client", "import", str(path), None, "held")]
    assert rows(db, "SELECT count(*) FROM messages WHERE regexp_matches(from_address || coalesce(from_name, '') "
                    "|| subject, '[\\x00-\\x1f]')") == [(0,)]
    # The same file again: the held message is tried again (and held again), the rest is taken already.
    assert run(db, config_file, "mail", "import", str(path)) == 0
    assert "7 already taken, 0 skipped, 1 held in quarantine" in capsys.readouterr().out
    assert rows(db, "SELECT count(*) FROM mail_quarantine") == [(1,)]


# --- who speaks for the team ------------------------------------------------------------------------------

AUTH_TOML = MAIL_TOML + 'trusted_authserv_ids = ["mx.knowru.example"]\n'


def test_a_forged_team_reply_never_erases_a_breach(tmp_path, config_file, capsys):
    db = tmp_path / "s.duckdb"
    archive = mbox(tmp_path / "archive.mbox",
                   ("Fri Nov 20 07:00:00 2026", message("ann@acme.example", "API down", mid="c1@acme")),
                   ("Tue Nov 24 02:00:00 2026", message("support@knowru.example", "Re: API down", mid="late@k",
                                                        reply_to="c1@acme", date="Tue, 24 Nov 2026 10:00:00 +0800")))
    assert run(db, config_file, "mail", "import", "--trust-team", str(archive)) == 0
    [case] = export(db, config_file, capsys)
    assert case["sla_state"] == "breached" and case["first_response_at"] == "2026-11-24T10:00:00+08:00"
    forged = mbox(tmp_path / "forged.mbox", ("Fri Nov 20 07:00:01 2026", message(
        "Support <support@knowru.example>", "Re: API down [CS-00001]", mid="forged@evil",
        date="Fri, 20 Nov 2026 15:00:01 +0800")))
    assert run(db, config_file, "mail", "import", str(forged)) == 0
    assert "0 responses recorded" in capsys.readouterr().out
    [case] = export(db, config_file, capsys)
    assert case["sla_state"] == "breached" and case["first_response_at"] == "2026-11-24T10:00:00+08:00"
    assert rows(db, "SELECT case_id, is_team, unverified FROM messages WHERE message_key = 'forged@evil'") == [
        ("CS-00001", True, True)]
    assert rows(db, "SELECT count(*) FROM audit_log WHERE action = 'record_response'") == [(0,)]


def authenticated(*results: str, sender: str = "support@knowru.example") -> bytes:
    return message(sender, "Re: hi", mid="r@k", reply_to="c@x", date="Mon, 23 Nov 2026 11:00:00 +0800",
                   headers=tuple(("Authentication-Results", r) for r in results))


@pytest.mark.parametrize("results, trusted", [
    (["mx.knowru.example; dkim=pass header.d=knowru.example header.s=s1"], True),
    (["MX.Knowru.example 1; spf=pass smtp.mailfrom=bounce@KNOWRU.example"], True),
    (["mx.knowru.example;\n dkim=fail header.d=knowru.example;\n spf=pass smtp.mailfrom=knowru.example"], True),
    (['mx.knowru.example; dkim=pass (good signature) header.d="knowru.example" header.from=knowru.example'], True),
    (["mx.evil.example; dkim=pass header.d=knowru.example"], False),  # not a trusted authserv-id
    (["mx.knowru.example; dkim=pass header.d=evil.example"], False),  # a pass, for another domain
    (["mx.knowru.example; dkim=pass header.d=evil.example header.from=knowru.example"], False),
    (["mx.knowru.example; spf=pass smtp.mailfrom=knowru.example.evil.example"], False),
    (["mx.knowru.example; dkim=fail (dkim=pass header.d=knowru.example) header.d=knowru.example"], False),
    (['mx.knowru.example; dkim=fail reason="dkim=pass header.d=knowru.example" header.d=knowru.example'], False),
    (["mx.knowru.example; dmarc=pass header.from=knowru.example"], False),  # neither DKIM nor SPF
    (["mx.knowru.example; none"], False),
    (["(dkim=pass) mx.evil.example; dkim=pass header.d=knowru.example"], False),
    (["mx.evil.example; dkim=pass header.d=knowru.example",
      "mx.knowru.example; spf=pass smtp.mailfrom=knowru.example"], True),
    (["mx.knowru.example; dkim=pass header.d=evil.example header.d=knowru.example"], False),  # a repeated property
    (["mx.knowru.example; dkim=pass header.d=knowru.example HEADER.D=evil.example"], False),
    (["mx.knowru.example; spf=pass smtp.mailfrom=evil.example smtp.mailfrom=knowru.example"], False),
    (["mx.knowru.example; dkim=pass header.d=knowru.example header.from=evil.example header.from=knowru.example"],
     False),
])
def test_a_team_message_is_trusted_by_a_pass_from_a_trusted_server_for_the_teams_domain(results, trusted):
    config = parse_config(tomllib.loads(AUTH_TOML))
    team = support_matcher(config.mail.support_addresses, config.mail.trusted_authserv_ids)
    record = parse_message(authenticated(*results), team, mailbox="test", folder="INBOX", where="test", now=NOW)
    assert record.is_team and record.unverified is not trusted


def test_a_vouched_source_trusts_the_team_and_a_client_is_never_unverified():
    assert not parse(authenticated(), vouched=True).unverified
    assert parse(authenticated()).unverified
    assert not parse(message("c@acme.example")).unverified


@pytest.mark.parametrize("section, message_part", [
    ('[mail]\ntrusted_authserv_ids = "mx.example"', "trusted_authserv_ids must be a list"),
    ('[mail]\ntrusted_authserv_ids = ["mx example"]', "trusted_authserv_ids: 'mx example' is not"),
    ('[mail]\ntrusted_authserv_ids = ["mx.exampl\u0435"]', "ASCII"),
    ('[[mail.mailboxes]]\nname = "a"\nurl = "imap://x"\nuser = "u"\npassword_env = "P"\nsent_folders = "Sent"',
     "sent_folders must be a list"),
    ('[[mail.mailboxes]]\nname = "a"\nurl = "imap://x"\nuser = "u"\npassword_env = "P"\nsent_folders = ["S\u200bent"]',
     "sent_folders"),
])
def test_the_trust_settings_are_validated(tmp_path, section, message_part):
    assert_refused(tmp_path, section, message_part)


def test_the_trust_settings_are_read():
    config = parse_config(tomllib.loads(AUTH_TOML + '[[mail.mailboxes]]\nname = "s"\nurl = "imap://x"\nuser = "u"\n'
                                        'password_env = "P"\n[[mail.mailboxes]]\nname = "t"\nurl = "imap://x"\n'
                                        'user = "u"\npassword_env = "P"\nsent_folders = ["Sent Items", "Outbox"]\n'))
    assert config.mail.trusted_authserv_ids == ("mx.knowru.example",)
    assert [box.sent_folders for box in config.mail.mailboxes] == [("Sent",), ("Sent Items", "Outbox")]


@pytest.mark.parametrize("sender, address, name", [
    ("=?utf-8?q?ceo=40cobalt.example=2C?= <attacker@evil.example>", "attacker@evil.example", "ceo@cobalt.example,"),
    ("=?utf-8?q?Eve=0D=0ABcc=3A_x=40y?= <eve@evil.example>", "eve@evil.example", "Eve Bcc: x@y"),
    ('"=?utf-8?q?ceo=40cobalt.example?=" <attacker@evil.example>', "attacker@evil.example", "ceo@cobalt.example"),
])
def test_the_senders_address_is_never_read_from_an_encoded_display_name(sender, address, name):
    record = parse(message(sender))
    assert (record.from_address, record.from_name) == (address, name)


def test_an_address_only_inside_an_encoded_word_is_no_address(tmp_path, config_file, capsys):
    assert parse(message("=?utf-8?q?ceo=40cobalt.example?=")).reason == (
        "no sender: the From header holds no address")
    db = tmp_path / "s.duckdb"
    path = mbox(tmp_path / "in.mbox", ("Mon Nov 23 01:00:00 2026", message(
        "=?utf-8?q?Eve=0D=0ABcc=3A_x=40y?= <eve@evil.example>", "Help", mid="e1@evil")))
    assert run(db, config_file, "mail", "import", str(path)) == 0
    assert rows(db, "SELECT client_id FROM clients") == [("eve@evil.example",)]
    assert rows(db, "SELECT from_address, from_name FROM messages") == [("eve@evil.example", "Eve Bcc: x@y")]


def test_a_discarded_copy_nothing_vouched_for_never_blocks_the_teams_reply(tmp_path, config_file, capsys):
    """An admin discarded a held copy of the team's reply that nothing vouched for (a forgery carrying its
    Message-ID): the real reply, from the team's own archive, is still stored and counts."""
    db = tmp_path / "s.duckdb"
    inbox = mbox(tmp_path / "inbox.mbox",
                 ("Fri Nov 20 07:00:00 2026", message("ann@acme.example", "API down", mid="q1@acme")))
    assert run(db, config_file, "mail", "import", str(inbox)) == 0
    con = connection.connect(db)
    try:
        con.execute("INSERT INTO mail_quarantine VALUES ('reply1@team', 'reply1@team', 'import', 'inbox.mbox', NULL, "
                    "'inbox.mbox', 'support@knowru.example', 'Re: API down', TIMESTAMPTZ '2026-11-30 02:00:00+00', "
                    "false, 'x'::BLOB, 'refused', now(), 'discarded', 'ada@support.example', now())")
    finally:
        con.close()
    real = mbox(tmp_path / "sent.mbox", ("Fri Nov 20 08:00:00 2026", message(
        "Agent <agent@team.knowru.example>", "Re: API down", mid="reply1@team", reply_to="q1@acme",
        date="Fri, 20 Nov 2026 16:00:00 +0800")))
    capsys.readouterr()
    assert run(db, config_file, "mail", "import", "--trust-team", str(real)) == 0
    assert "1 response recorded, 0 new free clients, 0 already taken" in capsys.readouterr().out
    [case] = export(db, config_file, capsys)
    assert case["first_response_at"] == "2026-11-20T16:00:00+08:00"
    assert rows(db, "SELECT case_id, from_address, unverified FROM messages WHERE message_key = 'reply1@team'") == [
        ("CS-00001", "agent@team.knowru.example", False)]


def test_a_forged_copy_with_the_message_id_of_the_teams_reply_never_cancels_it(tmp_path, config_file, capsys):
    db = tmp_path / "s.duckdb"
    forged = mbox(tmp_path / "inbox.mbox",
                  ("Fri Nov 20 07:00:00 2026", message("ann@acme.example", "API down", mid="q1@acme")),
                  ("Mon Nov 30 02:00:00 2026", message("support@knowru.example", "Re: API down", mid="reply1@team",
                                                       reply_to="q1@acme", date="Mon, 30 Nov 2026 10:00:00 +0800")))
    assert run(db, config_file, "mail", "import", str(forged)) == 0
    real = mbox(tmp_path / "sent.mbox", ("Fri Nov 20 08:00:00 2026", message(
        "Agent <agent@team.knowru.example>", "Re: API down", mid="reply1@team", reply_to="q1@acme",
        date="Fri, 20 Nov 2026 16:00:00 +0800")))
    capsys.readouterr()
    assert run(db, config_file, "mail", "import", "--trust-team", str(real)) == 0
    assert "1 response recorded, 0 new free clients, 0 already taken" in capsys.readouterr().out
    [case] = export(db, config_file, capsys)
    assert case["first_response_at"] == "2026-11-20T16:00:00+08:00"
    assert rows(db, "SELECT case_id, folder, from_address, from_name, unverified FROM messages "
                    "WHERE message_key = 'reply1@team'") == [
        ("CS-00001", str(real), "agent@team.knowru.example", "Agent", False)]
    # A copy nothing vouches for, read after the real one, is taken already and changes nothing.
    assert run(db, config_file, "mail", "import", str(forged)) == 0
    assert "0 responses recorded, 0 new free clients, 2 already taken" in capsys.readouterr().out
    assert rows(db, "SELECT from_address, unverified FROM messages WHERE message_key = 'reply1@team'") == [
        ("agent@team.knowru.example", False)]
    [case] = export(db, config_file, capsys)
    assert case["first_response_at"] == "2026-11-20T16:00:00+08:00"
    assert rows(db, "SELECT count(*) FROM audit_log WHERE action = 'record_response'") == [(1,)]
