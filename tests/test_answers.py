"""Which team message answers each client message (``messages.answered_at``, kb/db/answers.py): every write
of messages keeps it, so that what is stored is what a window over every message finds, and an old store gets
it on opening."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from kb.db import connection
from kb.db.answers import answered_sql
from kb.db.schema import MIGRATIONS, SCHEMA_VERSION
from kb.intake import writes
from kb.intake.importing import staged_from_records
from kb.store import Store
from kb.timestamps import set_now
from tests.fixtures import ADMIN, SPEC_CONFIG, add, local
from tests.test_mail import config_file, mbox, message, run  # noqa: F401 (a fixture)


def answers(con) -> dict[str, datetime | None]:
    return dict(con.execute("SELECT message_key, answered_at FROM messages").fetchall())


def stale(con) -> int:
    """How many messages' stored answer differs from the one found anew over every message."""
    return con.execute(answered_sql("")).fetchall()[0][0]


def two_cases(con) -> None:
    add(con, SPEC_CONFIG, "clients", {"client_id": "acme", "name": "Acme", "tier": "enterprise"})
    add(con, SPEC_CONFIG, "cases", *({"case_id": case_id, "client_id": "acme", "received_at": "2026-11-23 09:00",
                                      "category": "platform_issue", "subject": "Down",
                                      "first_response_at": "2026-11-23 10:00"} for case_id in ("A", "B")))


def test_an_import_answers_each_question_with_the_first_team_message_at_or_after_it(tmp_path):
    con = connection.connect(tmp_path / "s.duckdb")
    two_cases(con)
    add(con, SPEC_CONFIG, "messages",
        {"case_id": "A", "at": "2026-11-23 11:00", "direction": "client", "message_id": "q1"},
        {"case_id": "A", "at": "2026-11-23 11:30", "direction": "client", "message_id": "q2"},
        {"case_id": "A", "at": "2026-11-23 12:00", "direction": "team", "message_id": "r1"},
        {"case_id": "A", "at": "2026-11-23 13:00", "direction": "client", "message_id": "q3"},
        {"case_id": "A", "at": "2026-11-23 13:00", "direction": "team", "message_id": "r2"},  # the same second
        {"case_id": "B", "at": "2026-11-23 11:00", "direction": "client", "message_id": "b1"},
        {"case_id": "B", "at": "2026-11-23 14:00", "direction": "team", "message_id": "b2"})
    assert answers(con) == {"q1": local("2026-11-23 12:00"), "q2": local("2026-11-23 12:00"), "r1": None,
                            "q3": local("2026-11-23 13:00"), "r2": None,
                            "b1": local("2026-11-23 14:00"), "b2": None}
    add(con, SPEC_CONFIG, "messages",  # a later import: an earlier reply answers first, the other case untouched
        {"case_id": "A", "at": "2026-11-23 11:15", "direction": "team", "message_id": "r0"},
        {"case_id": "A", "at": "2026-11-23 15:00", "direction": "client", "message_id": "q4"})
    got = answers(con)
    assert (got["q1"], got["q2"], got["q4"]) == (local("2026-11-23 11:15"), local("2026-11-23 12:00"), None)
    assert stale(con) == 0
    con.close()


def test_a_reply_recorded_on_the_queue_answers_the_open_question(tmp_path):
    con = connection.connect(tmp_path / "s.duckdb")
    two_cases(con)
    add(con, SPEC_CONFIG, "messages", {"case_id": "B", "at": "2026-11-23 11:00", "direction": "client",
                                       "message_id": "b1"})
    set_now(datetime(2026, 11, 30, tzinfo=UTC))
    try:
        writes.record_response(con, SPEC_CONFIG, ADMIN, "B", local("2026-11-23 16:45"))
    finally:
        set_now(None)
    assert answers(con)["b1"] == local("2026-11-23 16:45")
    assert stale(con) == 0
    con.close()


def test_mail_answers_a_question_whose_reply_was_read_first_and_never_by_a_forged_reply(
        tmp_path, config_file, capsys):  # noqa: F811 (the fixture imported above)
    db = tmp_path / "s.duckdb"
    sent = mbox(tmp_path / "sent.mbox",
                ("Mon Nov 23 03:00:00 2026", message("support@knowru.example", "Re: hi", mid="r1@k", reply_to="c1@x",
                                                     date="Mon, 23 Nov 2026 11:00:00 +0800")),
                ("Mon Nov 23 06:00:00 2026", message("support@knowru.example", "Re: hi", mid="r2@k", reply_to="c2@x",
                                                     date="Mon, 23 Nov 2026 14:00:00 +0800")))
    inbox = mbox(tmp_path / "inbox.mbox",
                 ("Mon Nov 23 02:00:00 2026", message("c@x.example", "hi", mid="c1@x")),
                 ("Mon Nov 23 04:00:00 2026", message("c@x.example", "Re: hi", mid="c2@x", reply_to="r1@k",
                                                      date="Mon, 23 Nov 2026 12:00:00 +0800")))
    forged = mbox(tmp_path / "forged.mbox", ("Mon Nov 23 05:00:00 2026", message(
        "Support <support@knowru.example>", "Re: hi", mid="forged@evil", reply_to="c2@x",
        date="Mon, 23 Nov 2026 13:00:00 +0800")))
    assert run(db, config_file, "mail", "import", "--trust-team", str(sent)) == 0
    assert run(db, config_file, "mail", "import", str(inbox)) == 0
    assert run(db, config_file, "mail", "import", str(forged)) == 0
    con = connection.connect(db)
    got = answers(con)
    assert got["c2@x"] == datetime(2026, 11, 23, 6, tzinfo=UTC)  # r2, not the forged reply of 05:00
    assert got["c1@x"] == datetime(2026, 11, 23, 3, tzinfo=UTC) and got["forged@evil"] is None
    assert stale(con) == 0
    con.close()


def test_an_import_the_dashboard_commits_answers_its_questions_after_the_commit(tmp_path):
    """The dashboard's imports (its page, the API, a handed-off ``import``) commit outside the write lock; the
    answers are found after, as a write of their own, so a message another write added meanwhile is seen."""
    db = tmp_path / "s.duckdb"
    con = connection.connect(db)
    two_cases(con)
    con.close()
    store = Store(db, SPEC_CONFIG)
    try:
        store.write(lambda cur: add(cur, SPEC_CONFIG, "messages", {"case_id": "A", "at": "2026-11-23 11:00",
                                                                   "direction": "client", "message_id": "q1"}))
        store.import_rows(staged_from_records("messages", [
            {"case_id": "A", "at": "2026-11-23 12:30", "direction": "team", "message_id": "r1"},
            {"case_id": "B", "at": "2026-11-23 13:00", "direction": "client", "message_id": "b1"}]),
            ADMIN, source="tests")
        with store.reader() as cur:
            assert answers(cur) == {"q1": local("2026-11-23 12:30"), "r1": None, "b1": None}
            assert stale(cur) == 0
    finally:
        store.close()


def test_a_store_from_before_finds_every_answer_when_it_is_opened(tmp_path):
    db = tmp_path / "old.duckdb"
    old = duckdb.connect(str(db))
    old.execute("SET TimeZone = 'UTC'")
    old.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
    answering = next(n for n, sql in enumerate(MIGRATIONS) if "ADD COLUMN answered_at" in sql)
    for number, sql in enumerate(MIGRATIONS[:answering], start=1):
        old.execute(sql)
        old.execute("INSERT INTO schema_version VALUES (?, now())", [number])
    old.execute("INSERT INTO messages (message_key, case_id, is_team, is_automatic, received_at, taken_at, source) "
                "VALUES ('q', 'A', false, false, '2026-11-23 03:00Z', now(), 'import'), "
                "('r', 'A', true, false, '2026-11-23 04:00Z', now(), 'import')")
    old.close()
    con = connection.connect(db)
    assert connection.schema_version(con) == SCHEMA_VERSION
    assert answers(con) == {"q": datetime(2026, 11, 23, 4, tzinfo=UTC), "r": None}
    con.close()
