"""Polling IMAP mailboxes (rules §9) against a real server: Debian's Dovecot (the ``dovecot`` fixture,
``tests.servers.dovecot_server``). Mailboxes are filled by IMAP APPEND, with their INTERNALDATE."""

from __future__ import annotations

import imaplib
import socket
import threading
import time
import tomllib
from dataclasses import replace
from datetime import UTC, datetime

import pytest

import kb.mail.imap as imap
from kb.cli import main
from kb.config import MailboxConfig, parse_config
from kb.db import connection
from kb.mail.imap import poll
from tests.fixtures import ADMIN, SPEC_TOML
from tests.servers import IMAP_PASSWORD, IMAP_USERS

USERS = IMAP_USERS
PASSWORD = IMAP_PASSWORD
NOW = datetime(2026, 12, 31, tzinfo=UTC)
MAIL_TOML = SPEC_TOML + '[mail]\nsupport_addresses = ["support@knowru.example", "@knowru.example"]\n'


_next_user = iter(USERS)


@pytest.fixture
def user(dovecot):
    return next(_next_user)


def append(port: int, user: str, folder: str, data: bytes, internaldate: datetime) -> None:
    client = imaplib.IMAP4("127.0.0.1", port)
    client.login(user, PASSWORD)
    if folder != "INBOX":
        client.create(folder)
    typ, _ = client.append(folder, None, imaplib.Time2Internaldate(internaldate), data.replace(b"\n", b"\r\n"))
    assert typ == "OK"
    client.logout()


def message(sender: str, subject: str, mid: str, *, date: str = "Fri, 20 Nov 2026 15:00:00 +0800",
            reply_to: str | None = None) -> bytes:
    lines = [f"From: {sender}", "To: support@knowru.example", f"Subject: {subject}", f"Date: {date}",
             f"Message-ID: <{mid}>"]
    if reply_to:
        lines += [f"In-Reply-To: <{reply_to}>", f"References: <{reply_to}>"]
    return ("\n".join(lines) + "\n\n" + "Hello, something is wrong.\n" * 20).encode()


def config_for(port: int, *boxes: tuple[str, str, tuple[str, ...]], env: str = "KB_TEST_IMAP_PASSWORD"):
    config = parse_config(tomllib.loads(MAIL_TOML))
    mailboxes = tuple(MailboxConfig(name, f"imap://127.0.0.1:{port}", user, env, folders)
                      for name, user, folders in boxes)
    return replace(config, mail=replace(config.mail, mailboxes=mailboxes))


@pytest.fixture
def password(monkeypatch):
    monkeypatch.setenv("KB_TEST_IMAP_PASSWORD", PASSWORD)


@pytest.fixture
def con(tmp_path):
    con = connection.connect(tmp_path / "s.duckdb")
    yield con
    con.close()


def count(con, sql: str):
    return con.execute(sql).fetchall()[0][0]


def test_two_mailboxes_carrying_the_same_message_make_one_case(dovecot, password, con):
    port, _ = dovecot
    first, second = next(_next_user), next(_next_user)
    data = message("Ann <ann@acme.example>", "API down", "same@acme")
    for who in (first, second):
        append(port, who, "INBOX", data, datetime(2026, 11, 20, 7, tzinfo=UTC))
    config = config_for(port, ("support", first, ("INBOX",)), ("sales", second, ("INBOX",)))
    report = poll(con, config, ADMIN, now=NOW)
    assert not report.errors
    assert report.outcome.cases_opened == 1 and report.outcome.already == 1
    assert count(con, "SELECT count(*) FROM cases") == 1
    assert con.execute("SELECT mailbox, folder, last_uid, last_error FROM imap_state ORDER BY mailbox").fetchall() == [
        ("sales", "INBOX", 1, None), ("support", "INBOX", 1, None)]
    # INTERNALDATE is the receipt (not the Date header, 15:00 +08:00 = 07:00 UTC here too, so shift it)
    assert con.execute("SELECT received_at FROM cases").fetchall()[0][0] == datetime(2026, 11, 20, 7, tzinfo=UTC)


def test_a_reply_in_the_sent_folder_is_the_first_response(dovecot, password, con):
    port, _ = dovecot
    who = next(_next_user)
    append(port, who, "INBOX", message("bob@client.example", "Help", "c1@client"),
           datetime(2026, 11, 24, 11, 0, tzinfo=UTC))  # Tue 19:00 local: the clock starts Wed 09:00
    append(port, who, "Sent", message("agent@knowru.example", "Re: Help", "r1@k", reply_to="c1@client",
                                      date="Wed, 25 Nov 2026 10:30:00 +0800"),
           datetime(2026, 11, 25, 9, 0, tzinfo=UTC))  # a Sent copy's INTERNALDATE is not the instant: Date is
    config = config_for(port, ("support", who, ("Sent", "INBOX")))  # Sent first: the reply waits for its case
    report = poll(con, config, ADMIN, now=NOW)
    assert not report.errors and report.outcome.cases_opened == 1 and report.outcome.responses == 1
    assert con.execute("SELECT received_at, first_response_at FROM cases").fetchall() == [
        (datetime(2026, 11, 24, 11, tzinfo=UTC), datetime(2026, 11, 25, 2, 30, tzinfo=UTC))]


def test_a_restart_mid_mailbox_keeps_its_state(dovecot, password, con, monkeypatch):
    port, _ = dovecot
    who = next(_next_user)
    for n in range(10):
        append(port, who, "INBOX", message(f"c{n}@client{n}.example", f"case {n}", f"m{n}@x"),
               datetime(2026, 11, 20, 1, n, tzinfo=UTC))
    config = config_for(port, ("support", who, ("INBOX",)))
    real_take, calls = imap.take, []

    def dies_on_the_third_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real_take(*args, **kwargs)

    monkeypatch.setattr(imap, "take", dies_on_the_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        poll(con, config, ADMIN, chunk=3, now=NOW)
    assert count(con, "SELECT last_uid FROM imap_state") == 6
    assert count(con, "SELECT count(*) FROM messages") == 6
    monkeypatch.setattr(imap, "take", real_take)
    report = poll(con, config, ADMIN, chunk=3, now=NOW)
    assert not report.errors and report.folders[0].fetched == 4  # nothing read again
    assert count(con, "SELECT count(*) FROM messages") == 10 and count(con, "SELECT count(*) FROM cases") == 10
    assert count(con, "SELECT last_uid FROM imap_state") == 10


class DroppingProxy:
    """A TCP proxy to the server that cuts every connection once it has passed ``limit`` bytes from the server."""

    def __init__(self, port: int, limit: int):
        self.target, self.limit = port, limit
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, self.limit), daemon=True).start()

    @staticmethod
    def _pipe(source, target, limit):
        passed = 0
        try:
            while True:
                data = source.recv(4096)
                if not data:
                    break
                if limit is not None and passed + len(data) > limit:
                    target.sendall(data[: limit - passed])
                    break
                target.sendall(data)
                passed += len(data)
        except OSError:
            pass
        for s in (source, target):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.listener.close()


def test_a_server_that_drops_the_connection_is_reported_and_the_next_poll_resumes(dovecot, password, con):
    port, _ = dovecot
    who = next(_next_user)
    for n in range(8):
        append(port, who, "INBOX", message(f"d{n}@client{n}.example", f"drop {n}", f"d{n}@x"),
               datetime(2026, 11, 20, 2, n, tzinfo=UTC))
    proxy = DroppingProxy(port, limit=4_500)  # the greeting, login, select and about two chunks of two
    try:
        config = config_for(proxy.port, ("support", who, ("INBOX",)))
        report = poll(con, config, ADMIN, chunk=2, now=NOW)
    finally:
        proxy.close()
    assert report.errors and "connection was lost" in report.errors[0]
    taken = count(con, "SELECT count(*) FROM messages")
    assert 0 < taken < 8
    assert count(con, "SELECT last_uid FROM imap_state") == taken
    assert "connection was lost" in count(con, "SELECT last_error FROM imap_state")
    assert "connection was lost" in count(con, "SELECT error FROM job_runs WHERE kind = 'mail'")
    report = poll(con, config_for(port, ("support", who, ("INBOX",))), ADMIN, chunk=2, now=NOW)
    assert not report.errors and report.folders[0].fetched == 8 - taken
    assert count(con, "SELECT count(*) FROM messages") == 8 and count(con, "SELECT count(*) FROM cases") == 8
    assert count(con, "SELECT last_error FROM imap_state") is None


def test_a_wrong_password_is_recorded_and_other_mailboxes_go_on(dovecot, password, con, monkeypatch):
    port, _ = dovecot
    good, bad = next(_next_user), next(_next_user)
    append(port, good, "INBOX", message("e@client.example", "fine", "good@x"), datetime(2026, 11, 20, 3, tzinfo=UTC))
    monkeypatch.setenv("KB_TEST_WRONG", "not-the-password")
    config = config_for(port, ("broken", bad, ("INBOX", "Sent")), env="KB_TEST_WRONG")
    config = replace(config, mail=replace(config.mail, mailboxes=config.mail.mailboxes + config_for(
        port, ("unset", bad, ("INBOX",)), env="KB_TEST_NOT_SET").mail.mailboxes + config_for(
        port, ("support", good, ("INBOX",))).mail.mailboxes))
    report = poll(con, config, ADMIN, now=NOW)
    assert len(report.errors) == 2
    assert "broken: login refused" in report.errors[0] and "KB_TEST_WRONG" in report.errors[0]
    assert "unset: the environment variable KB_TEST_NOT_SET" in report.errors[1]
    assert report.outcome.cases_opened == 1
    state = con.execute("SELECT mailbox, folder, last_error FROM imap_state").fetchall()
    errors = {(m, f): e for m, f, e in state}
    assert "login refused" in errors[("broken", "INBOX")] and "login refused" in errors[("broken", "Sent")]
    assert errors[("support", "INBOX")] is None


def test_poll_once_from_the_command_line_and_a_poll_with_nothing_new(dovecot, tmp_path, monkeypatch, capsys):
    port, _ = dovecot
    who = next(_next_user)
    append(port, who, "INBOX", message("f@client.example", "cli", "cli@x"), datetime(2026, 11, 20, 4, tzinfo=UTC))
    config = tmp_path / "support.toml"
    config.write_text(MAIL_TOML + f'[[mail.mailboxes]]\nname = "support"\nurl = "imap://127.0.0.1:{port}"\n'
                                  f'user = "{who}"\npassword_env = "KB_TEST_CLI_PASSWORD"\nfolders = ["INBOX"]\n')
    monkeypatch.setenv("KB_TEST_CLI_PASSWORD", PASSWORD)
    args = ["--db", str(tmp_path / "s.duckdb"), "--config", str(config), "--now", "2026-12-31T00:00:00+08:00",
            "mail", "poll", "--once"]
    assert main(args) == 0
    assert "1 case opened" in capsys.readouterr().out
    started = time.perf_counter()
    assert main(args) == 0
    seconds = time.perf_counter() - started
    out = capsys.readouterr().out
    assert "0 new on the server" in out
    with capsys.disabled():
        print(f"\na poll with nothing new, the whole command: {seconds:.2f} s; {out.strip()}")
    assert seconds < 2.0  # ≤ 1 s on a quiet machine (docs/performance.md); margin for a busy one
    monkeypatch.setenv("KB_TEST_CLI_PASSWORD", "wrong")
    assert main(args) == 1
    assert "login refused" in capsys.readouterr().err


def test_the_service_job_polls_through_the_store(dovecot, password, tmp_path):
    from kb.mail.imap import MailboxError, run_for_service
    from kb.store import Store
    from kb.timestamps import set_now

    set_now(NOW)  # the clock rule's "now" (the autouse fixture sets it back)
    port, _ = dovecot
    who = next(_next_user)
    append(port, who, "INBOX", message("g@client.example", "service", "svc@x"), datetime(2026, 11, 20, 5, tzinfo=UTC))
    store = Store(tmp_path / "s.duckdb", config_for(port, ("support", who, ("INBOX",))))
    try:
        detail = run_for_service(store, store.config)
        assert "1 case opened" in detail and store.version > 0
        version = store.version
        assert "0 new on the server" in run_for_service(store, store.config)
        assert store.version == version  # where the folder was read to is no page's business: pages stay warm
        broken = config_for(port, ("support", who, ("INBOX",)), env="KB_TEST_NOT_SET_EITHER")
        with pytest.raises(MailboxError, match="KB_TEST_NOT_SET_EITHER"):
            run_for_service(store, broken)
    finally:
        store.close()


# --- hostile messages: set aside alone, never the batch ------------------------------------------------------

HIDDEN = "[\x00-\x1f\x7f-\x9f]"  # control characters, NUL included: none may reach the store


def hostile_chain(first: str) -> list[bytes]:
    """Six ordinary-looking messages chained by In-Reply-To: three whose subject decodes to invisible characters
    only, three with a control character in the From (an encoded NUL in the name, a raw one in the address)."""
    subjects = ["=?utf-8?q?=E2=80=8B?=", "=?utf-8?q?=E2=80=8B=E2=80=8C=E2=81=A0?=", "=?utf-8?b?IOKAjiDvu78g?="]
    senders = ["eve\x00@evil.example", "=?utf-8?q?Eve_=00?= <e\x00ve@evil.example>",
               "=?utf-8?q?Ev=00e?= <eve\x01@evil.example>"]
    chain, previous = [], None
    for n, (subject, sender) in enumerate([(s, "Eve <eve@evil.example>") for s in subjects]
                                          + [("Re: hello", s) for s in senders]):
        chain.append(message(sender, subject, f"{first}{n}@evil", reply_to=previous))
        previous = f"{first}{n}@evil"
    return chain


def test_six_hostile_messages_do_not_stop_the_poll_and_the_mail_behind_them_becomes_a_case(dovecot, password, con):
    port, _ = dovecot
    who = next(_next_user)
    for n, data in enumerate(hostile_chain("h")):
        append(port, who, "INBOX", data, datetime(2026, 11, 20, 1, n, tzinfo=UTC))
    append(port, who, "INBOX", message("Ann <ann@acme.example>", "Real problem", "real@acme"),
           datetime(2026, 11, 20, 2, tzinfo=UTC))
    config = config_for(port, ("support", who, ("INBOX",)))
    report = poll(con, config, ADMIN, now=NOW)
    assert not report.errors
    assert count(con, "SELECT last_uid FROM imap_state") == 7
    assert con.execute("SELECT subject, requester FROM cases ORDER BY received_at").fetchall() == [
        ("(no subject)", "eve@evil.example"), ("Real problem", "ann@acme.example")]
    assert count(con, "SELECT count(*) FROM messages") == 7
    assert count(con, "SELECT count(*) FROM messages WHERE case_id IS NULL") == 0  # the chain is one thread
    assert count(con, "SELECT count(DISTINCT from_address) FROM messages WHERE message_key LIKE 'h%'") == 1
    assert count(con, f"""SELECT count(*) FROM messages WHERE regexp_matches(message_key || from_address
                          || coalesce(from_name, '') || subject || array_to_string(links, ' '), '{HIDDEN}')""") == 0
    assert count(con, f"SELECT count(*) FROM clients WHERE regexp_matches(client_id || name, '{HIDDEN}')") == 0
    assert count(con, "SELECT count(*) FROM mail_quarantine") == 0  # nothing needed setting aside


def refuse_the_subject(con, subject: str) -> None:
    """Make the store itself refuse a case with this subject (a unique index, and a case that has it): a message
    that cannot be stored, whatever the reason."""
    con.execute("INSERT INTO clients (client_id, name, tier) VALUES ('OLD', 'Old', 'free')")
    con.execute("INSERT INTO cases (case_id, client_id, received_at, category, subject) VALUES "
                "('OLD-1', 'OLD', TIMESTAMPTZ '2026-01-05 01:00:00+00', 'platform_issue', ?)", [subject])
    con.execute("CREATE UNIQUE INDEX cases_one_subject ON cases (subject)")


def test_a_message_the_store_refuses_is_held_alone_and_an_admin_retries_or_discards_it(dovecot, password, con):
    from kb.mail import quarantine

    port, _ = dovecot
    who = next(_next_user)
    refuse_the_subject(con, "Refused")
    for n, (sender, subject) in enumerate([("a@one.example", "Fine"), ("b@two.example", "Refused"),
                                           ("c@three.example", "Refused"), ("d@four.example", "Also fine")]):
        append(port, who, "INBOX", message(sender, subject, f"q{n}@x"), datetime(2026, 11, 20, 3, n, tzinfo=UTC))
    config = config_for(port, ("support", who, ("INBOX",)))
    report = poll(con, config, ADMIN, now=NOW)
    assert not report.errors and count(con, "SELECT last_uid FROM imap_state") == 4
    assert [r[0] for r in con.execute("SELECT subject FROM cases WHERE source = 'mail' ORDER BY case_id").fetchall()] \
        == ["Fine", "Also fine"]
    held = con.execute("SELECT message_key, mailbox, folder, uid, status, reason, octet_length(raw) > 0 "
                       "FROM mail_quarantine ORDER BY uid").fetchall()
    assert [h[:5] for h in held] == [("q1@x", "support", "INBOX", 2, "held"), ("q2@x", "support", "INBOX", 3, "held")]
    assert all("Duplicate key" in h[5] and h[6] for h in held)
    assert [str(s) for s in report.outcome.held] == [
        f"support/INBOX UID {uid} <q{uid - 1}@x>: held in quarantine: {reason}" for uid, reason in
        ((2, held[0][5]), (3, held[1][5]))]

    # A poll with nothing new changes nothing; a retry before the fix keeps the message held, with its reason.
    assert poll(con, config, ADMIN, now=NOW).folders[0].fetched == 0
    assert "Duplicate key" in quarantine.retry(con, config, ADMIN, "q1@x", now=NOW)
    assert count(con, "SELECT status FROM mail_quarantine WHERE message_key = 'q1@x'") == "held"

    con.execute("DROP INDEX cases_one_subject")  # the fix
    assert quarantine.retry(con, config, ADMIN, "q1@x", now=NOW) == "taken: 1 case opened, 0 responses recorded"
    quarantine.discard(con, ADMIN, "q2@x")
    assert con.execute("SELECT message_key, status, decided_by FROM mail_quarantine ORDER BY message_key").fetchall() \
        == [("q1@x", "retried", ADMIN.email), ("q2@x", "discarded", ADMIN.email)]
    assert count(con, "SELECT count(*) FROM cases WHERE source = 'mail' AND subject = 'Refused'") == 1
    trail = con.execute("SELECT action, row_id FROM audit_log WHERE table_name = 'mail_quarantine' "
                        "ORDER BY audit_id").fetchall()
    assert trail == [("hold", None), ("retry", "q1@x"), ("retry", "q1@x"), ("discard", "q2@x")]
    with pytest.raises(quarantine.NotHeld, match="q2@x is discarded, not held"):
        quarantine.retry(con, config, ADMIN, "q2@x", now=NOW)


def test_a_forged_team_reply_in_the_inbox_counts_for_nothing_and_the_sent_folder_is_trusted(dovecot, password, con):
    port, _ = dovecot
    who = next(_next_user)
    append(port, who, "INBOX", message("bob@client.example", "Help", "f1@client"),
           datetime(2026, 11, 24, 11, 0, tzinfo=UTC))  # Tue 19:00 local: due Thu 09:00 local
    append(port, who, "INBOX", message("support@knowru.example", "Re: Help [CS-00001]", "forged@evil",
                                       date="Tue, 24 Nov 2026 19:00:01 +0800"),
           datetime(2026, 11, 24, 11, 0, 2, tzinfo=UTC))
    append(port, who, "Sent", message("agent@knowru.example", "Re: Help", "late@k", reply_to="f1@client",
                                      date="Fri, 27 Nov 2026 10:00:00 +0800"), datetime(2026, 11, 27, 2, tzinfo=UTC))
    config = config_for(port, ("support", who, ("INBOX", "Sent")))
    assert not poll(con, config, ADMIN, now=NOW).errors
    assert con.execute("SELECT first_response_at FROM cases").fetchall() == [(datetime(2026, 11, 27, 2, tzinfo=UTC),)]
    assert con.execute("SELECT message_key, case_id, unverified FROM messages WHERE is_team ORDER BY message_key"
                       ).fetchall() == [("forged@evil", "CS-00001", True), ("late@k", "CS-00001", False)]


def test_a_forged_copy_of_the_teams_reply_read_first_never_cancels_the_real_one(dovecot, password, con):
    port, _ = dovecot
    who = next(_next_user)
    append(port, who, "INBOX", message("bob@client.example", "Help", "q1@client"),
           datetime(2026, 11, 24, 11, 0, tzinfo=UTC))  # Tue 19:00 local: due Thu 09:00 local
    answered = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)
    append(port, who, "Sent", message("Agent <agent@knowru.example>", "Re: Help", "reply1@team", reply_to="q1@client",
                                      date="Wed, 25 Nov 2026 10:30:00 +0800"), answered)
    append(port, who, "INBOX", message("support@knowru.example", "Re: Help", "reply1@team", reply_to="q1@client",
                                       date="Mon, 30 Nov 2026 10:00:00 +0800"),
           datetime(2026, 11, 30, 2, tzinfo=UTC))  # the forged copy, read first (INBOX before Sent)
    config = config_for(port, ("support", who, ("INBOX", "Sent")))
    report = poll(con, config, ADMIN, now=NOW)
    assert not report.errors and report.outcome.responses == 1 and report.outcome.already == 0
    assert con.execute("SELECT first_response_at FROM cases").fetchall() == [(answered,)]
    assert con.execute("SELECT message_key, case_id, folder, from_address, from_name, received_at, unverified "
                       "FROM messages WHERE is_team").fetchall() == [
        ("reply1@team", "CS-00001", "Sent", "agent@knowru.example", "Agent", answered, False)]
