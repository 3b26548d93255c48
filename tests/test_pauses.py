"""Waiting on the client (rules §12): pausing, resuming and undoing a pause, with their rules and audit rows; the
Queue's responses recorded as team messages. Mail resuming a paused case is in tests/test_mail.py."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from kb.access import Actor, PermissionDenied
from kb.intake import corrections
from kb.intake.importing import Rejected, add_rows, staged_from_csv
from kb.intake.pauses import pause_case, resume_case, undo_pause
from kb.intake.writes import record_response, resolve_case
from kb.store import Store
from kb.timestamps import set_now
from tests.fixtures import ADMIN, SPEC_CONFIG, add, local

STAFF = Actor("sam@support.example", "staff")
OTHER = Actor("kim@support.example", "staff")
VIEWER = Actor("ceo@board.example", "viewer")
NOW = local("2026-11-25 16:30")


@pytest.fixture
def con(con):
    """The file's connection with two clients and the case OPEN, received Mon 2026-11-23 10:00 HKT, "now"
    Wed 16:30."""
    set_now(NOW)
    add(con, SPEC_CONFIG, "clients", dict(client_id="ENT", name="Enterprise Co", tier="enterprise"),
        dict(client_id="CUS", name="Custom Co", tier="custom"))
    add(con, SPEC_CONFIG, "cases", dict(case_id="OPEN", client_id="ENT", received_at="2026-11-23 10:00",
                                        category="platform_issue", subject="Export fails"))
    return con


def refusal(action, *args) -> str:
    """The one problem ``action`` is refused with, as 'column: reason'."""
    with pytest.raises(Rejected) as refused:
        action(*args)
    [problem] = refused.value.problems
    return str(problem)


def pauses(con) -> list[tuple]:
    return con.execute("SELECT strftime(paused_at AT TIME ZONE 'Asia/Hong_Kong', '%a %H:%M'), "
                       "strftime(resumed_at AT TIME ZONE 'Asia/Hong_Kong', '%a %H:%M'), reason, paused_by, resumed_by "
                       "FROM pauses ORDER BY paused_at").fetchall()


def audit_rows(con, table: str) -> list[tuple]:
    """The audit rows of ``table``: actor, action, row id, before, after (instants read back as datetimes)."""
    return [(actor, action, row_id, instants(before), instants(after))
            for actor, action, row_id, before, after in con.execute(
                "SELECT actor, action, row_id, before, after FROM audit_log WHERE table_name = ? ORDER BY audit_id",
                [table]).fetchall()]


def instants(text: str | None) -> dict | None:
    """An audit row's JSON object, its ISO 8601 instants as datetimes (compared as instants, whatever the offset)."""
    def read(value):
        try:
            return datetime.fromisoformat(value)
        except (TypeError, ValueError):
            return value

    return None if text is None else {key: read(value) for key, value in json.loads(text).items()}


# --- pause, resume, undo ------------------------------------------------------------------------------------


def test_a_case_waits_on_the_client_then_resumes_each_audited(con):
    pause_case(con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-23 14:00"), "  asked for the logs ")
    assert pauses(con) == [("Mon 14:00", None, "asked for the logs", "sam@support.example", None)]
    resume_case(con, SPEC_CONFIG, OTHER, "OPEN", local("2026-11-24 11:00"))
    assert pauses(con) == [("Mon 14:00", "Tue 11:00", "asked for the logs", "sam@support.example",
                            "kim@support.example")]
    pause_case(con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-25 09:30"))  # after the last one ended: a new pause
    assert [p[:3] for p in pauses(con)] == [("Mon 14:00", "Tue 11:00", "asked for the logs"), ("Wed 09:30", None, None)]
    entries = audit_rows(con, "pauses")
    paused, resumed = local("2026-11-23 14:00"), local("2026-11-24 11:00")
    assert [(actor, action, row) for actor, action, row, _, _ in entries] == [
        ("sam@support.example", "pause", "OPEN"), ("kim@support.example", "resume", "OPEN"),
        ("sam@support.example", "pause", "OPEN")]
    assert entries[0][3:] == (None, {"paused_at": paused, "reason": "asked for the logs"})
    assert entries[1][3:] == ({"paused_at": paused, "resumed_at": None, "resumed_by": None},
                              {"paused_at": paused, "resumed_at": resumed, "resumed_by": "kim@support.example"})


def test_pausing_follows_the_rules_of_the_other_writes_and_names_the_case(con):
    add(con, SPEC_CONFIG, "cases",
        dict(case_id="DONE", client_id="ENT", received_at="2026-11-23 10:00", category="api_help", subject="s",
             resolved_at="2026-11-24 12:00"),
        dict(case_id="GONE", client_id="ENT", received_at="2026-11-23 10:00", category="api_help", subject="s"))
    corrections.void_case(con, SPEC_CONFIG, ADMIN, "GONE", "Logged twice")
    assert refusal(pause_case, con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-25 16:36")) == (
        "paused_at: is in the future (Wed 2026-11-25 16:36:00 (UTC+08:00); now is Wed 2026-11-25 16:30:00 (UTC+08:00))")
    assert refusal(pause_case, con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-23 09:59")) == (
        "paused_at: is before case OPEN was received (Mon 2026-11-23 10:00 HKT (UTC+08:00))")
    assert refusal(pause_case, con, SPEC_CONFIG, STAFF, "GONE", NOW) == (
        "case GONE is voided; it cannot wait on the client")
    assert refusal(pause_case, con, SPEC_CONFIG, STAFF, "DONE", NOW) == (
        "case DONE is resolved (Tue 2026-11-24 12:00 HKT (UTC+08:00)); it cannot wait on the client")
    assert refusal(pause_case, con, SPEC_CONFIG, STAFF, "NONE", NOW) == "case_id: no case 'NONE'"
    assert refusal(pause_case, con, SPEC_CONFIG, STAFF, "OPEN", NOW, "x" * 201) == (
        "reason: is 201 characters long; at most 200")
    assert refusal(pause_case, con, SPEC_CONFIG, STAFF, "OPEN", NOW, "logs\x00") == (
        "reason: contains a NUL character (byte 0); remove it")
    with pytest.raises(PermissionDenied, match="ceo@board.example \\(viewer\\) may not record response"):
        pause_case(con, SPEC_CONFIG, VIEWER, "OPEN", NOW)
    pause_case(con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-23 14:00"), "   ")  # a blank reason is none
    assert refusal(pause_case, con, SPEC_CONFIG, OTHER, "OPEN", NOW) == (
        "case OPEN is already waiting on the client (since Mon 2026-11-23 14:00 HKT (UTC+08:00))")
    resume_case(con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-24 11:00"))
    assert refusal(pause_case, con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-24 10:00")) == (
        "paused_at: is not after case OPEN's last pause ended (Tue 2026-11-24 11:00 HKT (UTC+08:00)); pauses of a "
        "case never overlap")
    assert pauses(con) == [("Mon 14:00", "Tue 11:00", None, "sam@support.example", "sam@support.example")]
    assert [action for _, action, _, _, _ in audit_rows(con, "pauses")] == ["pause", "resume"]


def test_resuming_needs_an_open_pause_and_comes_after_it(con):
    assert refusal(resume_case, con, SPEC_CONFIG, STAFF, "OPEN", NOW) == (
        "case OPEN is not waiting on the client; nothing to resume")
    pause_case(con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-24 14:00"))
    assert refusal(resume_case, con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-24 13:59")) == (
        "resumed_at: is before case OPEN was paused (Tue 2026-11-24 14:00 HKT (UTC+08:00))")
    assert refusal(resume_case, con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-25 16:36")) == (
        "resumed_at: is in the future (Wed 2026-11-25 16:36:00 (UTC+08:00)"
            "; now is Wed 2026-11-25 16:30:00 (UTC+08:00))")
    with pytest.raises(PermissionDenied):
        resume_case(con, SPEC_CONFIG, VIEWER, "OPEN", NOW)
    resume_case(con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-24 14:00"))  # at its pause: not before it
    assert refusal(resume_case, con, SPEC_CONFIG, STAFF, "OPEN", NOW) == (
        "case OPEN is not waiting on the client; nothing to resume")


def test_a_pause_is_undone_by_whoever_started_it_while_it_is_open(con):
    pause_case(con, SPEC_CONFIG, STAFF, "OPEN", NOW, "asked for the logs")
    assert refusal(undo_pause, con, SPEC_CONFIG, OTHER, "OPEN") == (
        "case OPEN is not waiting on the client as you paused it; nothing undone")
    undo_pause(con, SPEC_CONFIG, STAFF, "OPEN")
    assert pauses(con) == []
    assert audit_rows(con, "pauses")[-1] == ("sam@support.example", "undo_pause", "OPEN",
                                             {"paused_at": NOW, "reason": "asked for the logs"},
                                             None)
    assert refusal(undo_pause, con, SPEC_CONFIG, STAFF, "OPEN") == (
        "case OPEN is not waiting on the client as you paused it; nothing undone")
    pause_case(con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-24 09:00"))
    resume_case(con, SPEC_CONFIG, OTHER, "OPEN", local("2026-11-24 10:00"))  # someone acted since: nothing to undo
    assert refusal(undo_pause, con, SPEC_CONFIG, STAFF, "OPEN") == (
        "case OPEN is not waiting on the client as you paused it; nothing undone")
    assert [p[:2] for p in pauses(con)] == [("Tue 09:00", "Tue 10:00")]


def test_a_paused_case_can_still_be_corrected_moved_and_resolved(con):
    pause_case(con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-24 14:00"))
    changed = corrections.correct_case(con, SPEC_CONFIG, ADMIN, "OPEN", {"client_id": "CUS", "category": "api_help"})
    assert {k: v[1] for k, v in changed.items()} == {"client_id": "CUS", "category": "api_help"}
    resolve_case(con, SPEC_CONFIG, STAFF, "OPEN", NOW)
    assert con.execute("SELECT client_id, resolved_at IS NOT NULL FROM cases").fetchall() == [("CUS", True)]
    assert [p[:2] for p in pauses(con)] == [("Tue 14:00", None)]


# --- a response recorded on the Queue is a team message --------------------------------------------------------


def messages(con) -> list[tuple]:
    return con.execute("SELECT message_key, case_id, is_team, is_automatic, unverified, source, "
                       "strftime(received_at AT TIME ZONE 'Asia/Hong_Kong', '%a %H:%M'), message_id, from_address "
                       "FROM messages ORDER BY received_at").fetchall()


def test_a_response_is_a_team_message_and_only_the_first_is_the_first_response(con):
    record_response(con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-23 15:00"))
    record_response(con, SPEC_CONFIG, OTHER, "OPEN", local("2026-11-24 09:30"))
    assert messages(con) == [
        ("queue:OPEN:2026-11-23T07:00:00+00:00", "OPEN", True, False, False, "queue", "Mon 15:00", None, None),
        ("queue:OPEN:2026-11-24T01:30:00+00:00", "OPEN", True, False, False, "queue", "Tue 09:30", None, None)]
    assert con.execute("SELECT first_response_at FROM cases").fetchone()[0] == local("2026-11-23 15:00")
    assert [entry for entry in audit_rows(con, "cases") if entry[1] != "import"] == [
        ("sam@support.example", "record_response", "OPEN", {"first_response_at": None},
         {"first_response_at": local("2026-11-23 15:00"), "message": "queue:OPEN:2026-11-23T07:00:00+00:00"})]
    assert audit_rows(con, "messages") == [
        ("kim@support.example", "record_reply", "queue:OPEN:2026-11-24T01:30:00+00:00", None,
         {"case_id": "OPEN", "replied_at": local("2026-11-24 09:30")})]


def test_a_response_follows_the_clock_and_is_recorded_once(con):
    assert refusal(record_response, con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-23 09:00")) == (
        "first_response_at: is before the case was received (Mon 2026-11-23 10:00 HKT (UTC+08:00))")
    record_response(con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-23 15:00"))
    assert refusal(record_response, con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-23 15:00")) == (
        "replied_at: case OPEN already has a response recorded at Mon 2026-11-23 15:00 HKT (UTC+08:00)")
    assert refusal(record_response, con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-23 14:00")) == (
        "replied_at: is before the first response of case OPEN (Mon 2026-11-23 15:00 HKT (UTC+08:00)); correct the "
        "first response instead")
    assert refusal(record_response, con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-25 16:36")) == (
        "replied_at: is in the future (Wed 2026-11-25 16:36:00 (UTC+08:00)"
            "; now is Wed 2026-11-25 16:30:00 (UTC+08:00))")
    with pytest.raises(PermissionDenied):
        record_response(con, SPEC_CONFIG, VIEWER, "OPEN", NOW)
    assert len(messages(con)) == 1


def test_an_imported_client_message_resumes_the_case_and_a_team_one_does_not(con):
    pause_case(con, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-23 12:00"))
    add(con, SPEC_CONFIG, "cases", dict(case_id="WAITING", client_id="CUS", received_at="2026-11-23 10:00",
                                        category="platform_issue", subject="Still waiting"))
    pause_case(con, SPEC_CONFIG, STAFF, "WAITING", local("2026-11-24 09:00"))
    messages = (b"case_id,at,direction,message_id\n"
                b"OPEN,2026-11-23 11:00,client,<before@ent.example>\n"  # before the pause: resumes nothing
                b"OPEN,2026-11-24 10:00,client,<tue@ent.example>\n"
                b"OPEN,2026-11-24 15:00,client,<later@ent.example>\n"
                b"WAITING,2026-11-24 10:00,team,<ours@support.example>\n")
    add_rows(con, SPEC_CONFIG, staged_from_csv("messages", messages), ADMIN, permission="import",
             source="messages.csv")
    assert pauses(con) == [("Mon 12:00", "Tue 10:00", None, STAFF.email, "import"),
                           ("Tue 09:00", None, None, STAFF.email, None)]
    resumed = [row for row in audit_rows(con, "pauses") if row[1] == "resume"]
    assert resumed == [(ADMIN.email, "resume", "OPEN", {"paused_at": local("2026-11-23 12:00"), "resumed_at": None,
                                                        "resumed_by": None},
                        {"paused_at": local("2026-11-23 12:00"), "resumed_at": local("2026-11-24 10:00"),
                         "resumed_by": "import", "message": "tue@ent.example"})]


def test_the_services_import_of_messages_resumes_the_case_too(tmp_path):
    store = Store(tmp_path / "kb.duckdb", SPEC_CONFIG)
    try:
        with store.transaction() as cur:
            add(cur, SPEC_CONFIG, "clients", dict(client_id="ENT", name="Enterprise Co", tier="enterprise"))
            add(cur, SPEC_CONFIG, "cases", dict(case_id="OPEN", client_id="ENT", received_at="2026-11-23 10:00",
                                                category="platform_issue", subject="Export fails"))
        store.write(pause_case, SPEC_CONFIG, STAFF, "OPEN", local("2026-11-23 12:00"))
        store.import_rows(staged_from_csv("messages", b"case_id,at,direction\nOPEN,2026-11-24 10:00,client\n"),
                          ADMIN, source="messages.csv")
        assert store.query("SELECT resumed_by, resumed_at FROM pauses").values.tolist() == [
            ["import", local("2026-11-24 10:00")]]
    finally:
        store.close()
