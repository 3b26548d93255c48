"""One owner of writes: many sessions at once lose nothing, the CLI waits then says who holds the file."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from kb.access import Actor
from kb.config import load_config
from kb.db import connection
from kb.intake.writes import log_case, log_incident
from kb.store import Store
from tests.conftest import shown
from tests.test_pages import ROOT, app, build_fixture, button, open_page, query  # noqa: F401  (app is a fixture)

SESSIONS, CASES_EACH, INCIDENTS_EACH = 16, 10, 5


def test_sixteen_sessions_write_at_once_and_every_row_is_stored_once(tmp_path):
    db, config_file = build_fixture(tmp_path)
    config = load_config(config_file)
    shared = Store(db, config)
    start = threading.Barrier(SESSIONS)

    def session(n: int) -> list[str]:
        staff = Actor(f"staff{n}@support.example", "staff")
        start.wait()
        shared.snapshot()
        ids = []
        for i in range(CASES_EACH):
            ids.append(shared.write(log_case, config, staff, {
                "client_id": "ENT", "category": "api_help", "subject": f"session {n} case {i}",
                "received_at": "2026-11-25T10:00:00+08:00"}))
            shared.query("SELECT count(*) FROM cases")  # reads interleave with the writes
            if i < INCIDENTS_EACH:
                ids.append(shared.write(log_incident, config, staff, {
                    "environment_id": "E1", "impact": "degraded", "summary": f"session {n} incident {i}",
                    "started_at": "2026-11-25T10:00:00+08:00", "ended_at": "2026-11-25T10:05:00+08:00"}))
        return ids

    with ThreadPoolExecutor(SESSIONS) as pool:
        results = list(pool.map(session, range(SESSIONS)))

    ids = [i for r in results for i in r]
    assert len(ids) == len(set(ids)) == SESSIONS * (CASES_EACH + INCIDENTS_EACH)
    subjects = shared.query("SELECT subject FROM cases WHERE case_id LIKE 'CS-%'").subject
    assert sorted(subjects) == sorted(f"session {n} case {i}" for n in range(SESSIONS) for i in range(CASES_EACH))
    summaries = shared.query("SELECT summary FROM incidents WHERE incident_id LIKE 'INC-%'").summary
    assert len(summaries) == len(set(summaries)) == SESSIONS * INCIDENTS_EACH
    assert shared.query("SELECT count(*) AS n FROM audit_log WHERE action = 'add'").n[0] == len(ids)
    shared.close()


def test_the_cli_says_the_dashboard_holds_the_file_and_writes_nothing(tmp_path):
    db, config_file = build_fixture(tmp_path)
    csv_file = tmp_path / "clients.csv"
    csv_file.write_text("client_id,name,tier\nNEW,New Co,free\n")
    held = connection.connect(db)  # as the running dashboard does
    try:
        result = subprocess.run(
            [sys.executable, "-m", "kb", "import", "clients", str(csv_file), "--db", str(db),
             "--config", str(config_file)],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        held.close()
    assert result.returncode == 1
    assert "is held by another process (most likely the running dashboard)" in result.stderr
    assert "Import page" in result.stderr
    assert "Traceback" not in result.stderr
    con = connection.connect(db, read_only=True)
    assert con.execute("SELECT count(*) FROM clients").fetchall()[0][0] == 3
    con.close()


def test_a_double_clicked_submit_stores_one_case(app):  # noqa: F811  (the fixture)
    at, _ = app
    open_page(at, "log_case")
    at.text_input(key="case_subject").input("Clicked twice")
    button(at, "Log case").click().run()
    button(at, "Log case").click().run()
    assert "Case CS-00001 logged" in shown(at.success[0])
    assert query("SELECT count(*) AS n FROM cases WHERE subject = 'Clicked twice'").n[0] == 1


def test_a_double_submit_typed_differently_stores_one_case(tmp_path):
    """The double-submit check compares the values as they would be stored: spaces around a client id,
    a blank requester of invisible characters, the same instant written in another zone."""
    db, config_file = build_fixture(tmp_path)
    store = Store(db, load_config(config_file))
    staff = Actor("staff@support.example", "staff")
    first = store.write(log_case, store.config, staff, {
        "client_id": "ENT", "category": "api_help", "subject": "Spaced", "requester": "",
        "received_at": "2026-11-25 10:00"})
    again = store.write(log_case, store.config, staff, {
        "client_id": " ENT\t", "category": "api_help ", "subject": "Spaced", "requester": "\u00a0\u200b ",
        "received_at": "2026-11-25T02:00:00Z"})
    other = store.write(log_case, store.config, staff, {
        "client_id": "ENT", "category": "api_help", "subject": "Spaced ", "received_at": "2026-11-25 10:00"})
    assert again == first and other != first  # free text is stored as typed: a trailing space is another subject
    assert store.query("SELECT count(*) AS n FROM cases WHERE subject LIKE 'Spaced%'").n[0] == 2
    store.close()


def test_one_transaction_owner(tmp_path):
    db, config_file = build_fixture(tmp_path)
    store = Store(db, load_config(config_file))
    staff = Actor("staff@support.example", "staff")
    version = store.version
    fields = {"client_id": "ENT", "category": "api_help", "received_at": "2026-11-25 10:00"}
    with store.transaction() as cur:  # the writes inside join it
        log_case(cur, store.config, staff, {**fields, "subject": "one"})
        log_case(cur, store.config, staff, {**fields, "subject": "two"})
    assert store.version == version + 1
    try:
        with store.transaction() as cur:
            log_case(cur, store.config, staff, {**fields, "subject": "three"})
            raise RuntimeError("changed my mind")
    except RuntimeError:
        pass
    assert store.version == version + 1
    assert sorted(store.query("SELECT subject FROM cases WHERE case_id LIKE 'CS-%'").subject) == ["one", "two"]

    # When DuckDB has already ended the transaction, the error raised is the block's own.
    with store.reader() as cur:
        try:
            with connection.transaction(cur):
                cur.execute("COMMIT")
                raise LookupError("the original error")
        except LookupError as e:
            assert str(e) == "the original error"
    store.close()
