"""Every promise an SLA makes, as it comes in (rules §12): a case's priority, a contract's policy, and the import
tables ``policies``, ``pauses`` and ``messages``, through ``python -m kb import``: what passes is stored as the
rules say, what does not is refused naming its line, column and reason, and a refusal writes nothing.

The store: the rules' calendar (Hong Kong), an enterprise client with a contract, the policy ``gold`` of the
rules' worked examples, cases received Fri 2026-11-20 15:00: C0 with a pause stored from Sat 10:00 to 12:00,
OPEN with a pause that was never resumed, C1 without one, and a voided case; "now" is Thu 2026-11-26 12:00."""

from __future__ import annotations

import getpass
import hashlib
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from kb.access import Actor
from kb.cli import main
from kb.config import load_config
from kb.db import connection
from kb.intake import corrections
from kb.timestamps import set_now
from kb.tools.demo import demo_records, write_demo
from tests.fixtures import SPEC_TOML, table_counts

NOW = "2026-11-26T12:00:00+08:00"
IMPORTER = f"cli:{getpass.getuser()}"
WITHIN = ("is not a target: Nh (N hours of business time, N from 1 to 10000), Nd (N business days, N from 1 to 60) "
          "or next_day_close")
OVERLAPS_STORED = ("overlaps a pause of this case already stored (pauses of a case never overlap; one not resumed "
                   "runs on)")
OVERLAPS_IN_FILE = ("overlaps another pause of this case in this file (pauses of a case never overlap; one not "
                    "resumed runs on)")
BASE = {
    "clients": "client_id,name,tier\nENT,Enterprise Co,enterprise\n",
    "environments": "environment_id,name,kind,deployment,client_id,active_from\nE1,Prod,dedicated,on_premise,ENT,"
                    "2026-01-01\n",
    "policies": "policy_id,metric,priority,within,calendar\ngold,first_response,urgent,4h,24x7\n"
                "gold,first_response,*,1d,\ngold,resolution,*,2d,\ngold,next_response,*,1d,\n",
    "contracts": "contract_id,client_id,environment_id,monthly_fee,currency,starts_on\nK1,ENT,E1,1000,USD,2026-01-01\n",
    "cases": "case_id,client_id,received_at,category,subject\nC0,ENT,2026-11-20 15:00,api_help,Earlier\n"
             "OPEN,ENT,2026-11-20 15:00,api_help,Waiting\nC1,ENT,2026-11-20 15:00,api_help,Quiet\n"
             "VOID,ENT,2026-11-20 15:00,api_help,Logged in error\n",
    "pauses": "case_id,paused_at,resumed_at\nC0,2026-11-21 10:00,2026-11-21 12:00\nOPEN,2026-11-21 10:00,\n",
    "messages": "case_id,at,direction,message_id\nC0,2026-11-20 15:00,client,<first@ent.example>\n",
}


@pytest.fixture(scope="module")
def base_db(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sla")
    (folder / "support.toml").write_text(SPEC_TOML)
    for table, text in BASE.items():
        (folder / f"{table}.csv").write_text(text)
        assert main(["import", table, str(folder / f"{table}.csv"), "--db", str(folder / "base.duckdb"),
                     "--config", str(folder / "support.toml"), "--now", NOW]) == 0
    con = connection.connect(folder / "base.duckdb")
    corrections.void_case(con, load_config(folder / "support.toml"), Actor("lee@example.com", "lead"), "VOID",
                          "Logged in error")
    con.close()
    return folder / "base.duckdb"


@pytest.fixture
def kb_import(base_db, tmp_path, capsys):
    """Import ``text`` as ``table`` into a copy of the base store: (exit code, stderr lines, counts before, counts
    after); ``run.rows(sql)`` reads the copy."""
    db = tmp_path / "s.duckdb"
    shutil.copy(base_db, db)
    (tmp_path / "support.toml").write_text(SPEC_TOML)

    def run(table: str, text: str):
        path = tmp_path / f"{table}.csv"
        path.write_text(text, encoding="utf-8")
        before = table_counts(db)
        capsys.readouterr()
        code = main(["import", table, str(path), "--db", str(db), "--config", str(tmp_path / "support.toml"),
                     "--now", NOW])
        err = capsys.readouterr().err
        problems = [line.removeprefix(f"{path}: ") for line in err.splitlines()[:-1]]
        return code, problems, before, table_counts(db)

    def rows(sql: str, params=None) -> list[tuple]:
        con = connection.connect(db, read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    run.rows = rows
    return run


def refused(result, *problems: str) -> None:
    """The file was refused with exactly these problems, and nothing was written."""
    code, found, before, after = result
    assert code == 1
    assert found == list(problems)
    assert after == before


def written(result, rows: int) -> None:
    code, found, before, after = result
    assert code == 0, found
    assert sum(after.values()) - sum(before.values()) == rows + 1  # and its audit row


def csv(header: str, *lines: str) -> str:
    return "\n".join([header, *lines]) + "\n"


# --- cases: priority ------------------------------------------------------------------------------------------

CASE = "case_id,client_id,received_at,category,subject,priority"


def test_a_case_takes_its_priority_and_is_normal_without_one(kb_import):
    written(kb_import("cases", csv(CASE, "U,ENT,2026-11-23 10:00,api_help,Down,urgent",
                                   "N,ENT,2026-11-23 10:00,api_help,Slow, ")), 2)
    assert kb_import.rows("SELECT case_id, priority FROM cases WHERE case_id IN ('U', 'N') ORDER BY 1") == [
        ("N", "normal"), ("U", "urgent")]
    written(kb_import("cases", "case_id,client_id,received_at,category,subject\nW,ENT,2026-11-23 10:00,api_help,x\n"),
            1)
    assert kb_import.rows("SELECT priority FROM cases WHERE case_id = 'W'") == [("normal",)]


def test_a_priority_is_one_of_the_four(kb_import):
    refused(kb_import("cases", csv(CASE, "U,ENT,2026-11-23 10:00,api_help,Down,asap",
                                   "V,ENT,2026-11-23 10:00,api_help,Down,Urgent")),
            "line 2, priority: 'asap' is not one of urgent, high, normal, low",
            "line 3, priority: 'Urgent' is not one of urgent, high, normal, low")


# --- contracts: policy_id -------------------------------------------------------------------------------------

CONTRACT = "contract_id,client_id,environment_id,monthly_fee,currency,starts_on,policy_id,response_business_days"


def test_a_contract_names_a_stored_policy_or_a_tier_policy(kb_import):
    written(kb_import("contracts", csv(CONTRACT, "K2,ENT,E1,10,USD,2026-02-01,gold,", "K3,ENT,E1,10,USD,2026-02-01,"
                                                 "enterprise,", "K4,ENT,E1,10,USD,2026-02-01,,2")), 3)
    assert kb_import.rows("SELECT contract_id, policy_id, response_business_days FROM contracts "
                          "WHERE contract_id <> 'K1' ORDER BY 1") == [("K2", "gold", None), ("K3", "enterprise", None),
                                                                     ("K4", None, 2)]


def test_a_contract_may_not_name_an_unknown_policy_nor_set_days_beside_one(kb_import):
    refused(kb_import("contracts", csv(CONTRACT, "K2,ENT,E1,10,USD,2026-02-01,silver,",
                                       "K3,ENT,E1,10,USD,2026-02-01,gold,1", "K4,ENT,E1,10,USD,2026-02-01,go ld,")),
            "line 2, policy_id: no policy 'silver'",
            "line 3, policy_id: a contract that names a policy takes its targets from it: leave response_business_days "
            "empty",
            "line 4, policy_id: no policy 'go ld'; it is not an id (it contains a space): an id is 1–64 characters, "
            "each a letter A–Z or a–z, a digit 0–9 or one of . _ - @ + :")


# --- policies -------------------------------------------------------------------------------------------------

POLICY = "policy_id,metric,priority,within,calendar,valid_from"


def test_a_policy_row_is_stored_with_its_calendar_and_date_defaulted(kb_import):
    written(kb_import("policies", csv(POLICY, "silver,first_response,high,8h,,", "silver,resolution,*,5d,24x7,",
                                      "silver,next_response,low,next_day_close,support,2026-12-01")), 3)
    assert kb_import.rows("SELECT * FROM policies WHERE policy_id = 'silver' ORDER BY metric") == [
        ("silver", "first_response", "high", "8h", "support", date(1970, 1, 1)),
        ("silver", "next_response", "low", "next_day_close", "support", date(2026, 12, 1)),
        ("silver", "resolution", "*", "5d", "24x7", date(1970, 1, 1))]
    trail = kb_import.rows("SELECT after->>'first_id', after->>'last_id' FROM audit_log "
                           "WHERE action = 'import' AND table_name = 'policies' ORDER BY audit_id DESC LIMIT 1")
    assert trail == [("silver first_response high 1970-01-01", "silver next_response low 2026-12-01")]


@pytest.mark.parametrize("within", ["1h", "10000h", "01h", "1d", "60d", "next_day_close", " 4h "])
def test_within_is_hours_business_days_or_next_day_close(kb_import, within):
    written(kb_import("policies", csv(POLICY, f"silver,first_response,*,{within},,")), 1)
    assert kb_import.rows("SELECT within FROM policies WHERE policy_id = 'silver'") == [(within.strip(),)]


@pytest.mark.parametrize("within", ["0h", "10001h", "0d", "61d", "4w", "4 h", "4H", "1.5h", "-4h", "４h",
                                    "next day close", "Next_day_close", "h", "d"])
def test_within_refuses_anything_else_naming_the_three_forms(kb_import, within):
    refused(kb_import("policies", csv(POLICY, f"silver,first_response,*,{within},,")),
            f"line 2, within: '{within}' {WITHIN}")


def test_a_policy_row_names_a_known_metric_priority_and_calendar(kb_import):
    refused(kb_import("policies", csv(POLICY, "silver,first_answer,any,4h,moon,2026-02-30", "silver,,,,,")),
            "line 2, calendar: 'moon' is not one of the calendars support, 24x7",
            "line 2, metric: 'first_answer' is not one of first_response, next_response, resolution",
            "line 2, priority: 'any' is not one of urgent, high, normal, low, *",
            "line 2, valid_from: '2026-02-30' is not an ISO date (e.g. 2026-11-01)",
            "line 3, metric: is empty", "line 3, priority: is empty", "line 3, within: is empty")


def test_a_policy_id_is_an_id(kb_import):
    refused(kb_import("policies", csv(POLICY, "gold plated,resolution,*,2d,,")),
            "line 2, policy_id: 'gold plated' is not an id (it contains a space): an id is 1–64 characters, each a "
            "letter A–Z or a–z, a digit 0–9 or one of . _ - @ + :")


def test_a_policy_row_is_its_policy_metric_priority_and_date_once(kb_import):
    refused(kb_import("policies", csv(POLICY, "gold,first_response,*,2d,,", "gold,first_response,*,2d,,1970-01-01",
                                      "silver,resolution,*,2d,,2026-12-01", "silver,resolution,*,3d,24x7,2026-12-01")),
            "line 2, policy_id, metric, priority, valid_from: 'gold', 'first_response', '*', '1970-01-01' already "
            "exists",
            "line 2, policy_id, metric, priority, valid_from: 'gold', 'first_response', '*', '1970-01-01' appears more "
            "than once in this file",
            "line 3, policy_id, metric, priority, valid_from: 'gold', 'first_response', '*', '1970-01-01' already "
            "exists",
            "line 3, policy_id, metric, priority, valid_from: 'gold', 'first_response', '*', '1970-01-01' appears more "
            "than once in this file",
            "line 4, policy_id, metric, priority, valid_from: 'silver', 'resolution', '*', '2026-12-01' appears more "
            "than once in this file",
            "line 5, policy_id, metric, priority, valid_from: 'silver', 'resolution', '*', '2026-12-01' appears more "
            "than once in this file")


def test_a_policy_changes_from_a_date_as_a_row_of_its_own(kb_import):
    written(kb_import("policies", csv(POLICY, "gold,first_response,*,2d,,2026-12-01", "gold,first_response,high,1d,,")),
            2)
    assert kb_import.rows("SELECT count(*) FROM policies WHERE policy_id = 'gold'") == [(6,)]


# --- pauses ---------------------------------------------------------------------------------------------------

PAUSE = "case_id,paused_at,resumed_at,reason"


def test_a_pause_is_stored_with_the_importer_who_paused_it(kb_import):
    written(kb_import("pauses", csv(PAUSE, "C0,2026-11-21 12:00,2026-11-21 14:00,  Waiting on logs ",
                                    "C0,2026-11-23 09:00,2026-11-23 09:00,", "C0,2026-11-24 09:00,,")), 3)
    assert kb_import.rows("SELECT paused_at, resumed_at, reason, paused_by, resumed_by FROM pauses "
                          "WHERE case_id = 'C0' ORDER BY paused_at") == [
        (datetime(2026, 11, 21, 2, tzinfo=UTC), datetime(2026, 11, 21, 4, tzinfo=UTC), None, IMPORTER, IMPORTER),
        (datetime(2026, 11, 21, 4, tzinfo=UTC), datetime(2026, 11, 21, 6, tzinfo=UTC), "  Waiting on logs ", IMPORTER,
         IMPORTER),
        (datetime(2026, 11, 23, 1, tzinfo=UTC), datetime(2026, 11, 23, 1, tzinfo=UTC), None, IMPORTER, IMPORTER),
        (datetime(2026, 11, 24, 1, tzinfo=UTC), None, None, IMPORTER, None)]


@pytest.mark.parametrize("reason", ["'; DROP TABLE pauses; --", "<script>alert(1)</script>", "line one\r\nline two",
                                    "\u202eexe.pdf\u202c", "=HYPERLINK(\"x\")", "x" * 100_000])
def test_a_pause_s_reason_is_stored_verbatim(kb_import, reason):
    quoted = '"' + reason.replace('"', '""') + '"'
    written(kb_import("pauses", csv(PAUSE, f"C1,2026-11-23 09:00,,{quoted}")), 1)
    assert kb_import.rows("SELECT reason FROM pauses WHERE case_id = 'C1'") == [(reason,)]


def test_a_pause_is_of_a_case_that_exists_and_is_not_voided(kb_import):
    refused(kb_import("pauses", csv(PAUSE, "NOPE,2026-11-23 09:00,,", "VOID,2026-11-23 09:00,,",
                                    ",2026-11-23 09:00,,")),
            "line 2, case_id: no case 'NOPE'", "line 3, case_id: is a voided case", "line 4, case_id: is empty")


def test_a_pause_lies_between_the_case_s_receipt_and_now(kb_import):
    refused(kb_import("pauses", csv(PAUSE, "C0,2026-11-20 14:59,2026-11-20 16:00,",
                                    "C0,2026-11-23 10:00,2026-11-23 09:59,",
                                    "C0,2026-11-26 12:06,,", "C0,2026-11-25 10:00,2026-11-26 12:06,", "C0,,,")),
            "line 2, paused_at: is before the case was received",
            "line 3, resumed_at: is before the pause began",
            "line 4, paused_at: is in the future (Thu 2026-11-26 12:06:00 (UTC+08:00)"
                "; now is Thu 2026-11-26 12:00:00 (UTC+08:00))",
            "line 5, resumed_at: is in the future (Thu 2026-11-26 12:06:00 (UTC+08:00)"
                "; now is Thu 2026-11-26 12:00:00 (UTC+08:00))",
            "line 6, paused_at: is empty")
    written(kb_import("pauses", csv(PAUSE, "C0,2026-11-20 15:00,2026-11-20 16:00,", "C0,2026-11-26 12:05,,")), 2)


@pytest.mark.parametrize("row", [
    "C0,2026-11-21 11:00,2026-11-21 11:30,",  # inside the stored one
    "C0,2026-11-21 09:00,2026-11-21 10:01,",  # into it
    "C0,2026-11-21 09:00,,",  # not resumed: runs on over it
    "OPEN,2026-11-25 10:00,2026-11-25 11:00,",  # after one that was never resumed
])
def test_a_pause_never_overlaps_a_stored_one(kb_import, row):
    refused(kb_import("pauses", csv(PAUSE, row)), f"line 2, paused_at: {OVERLAPS_STORED}")


def test_a_pause_stored_already_is_refused_as_its_key(kb_import):
    refused(kb_import("pauses", csv(PAUSE, "C0,2026-11-21 10:00,2026-11-21 11:00,")),
            "line 2, case_id, paused_at: 'C0', '2026-11-21T10:00:00+08:00' already exists")


def test_pauses_of_a_case_never_overlap_in_the_file(kb_import):
    refused(kb_import("pauses", csv(PAUSE, "C0,2026-11-23 10:00,2026-11-23 12:00,", "C0,2026-11-23 11:00,,",
                                    "C1,2026-11-24 10:00,2026-11-24 12:00,", "C1,2026-11-24 10:00,2026-11-24 11:00,")),
            f"line 2, paused_at: {OVERLAPS_IN_FILE}",
            f"line 3, paused_at: {OVERLAPS_IN_FILE}",
            "line 4, case_id, paused_at: 'C1', '2026-11-24T10:00:00+08:00' appears more than once in this file",
            "line 5, case_id, paused_at: 'C1', '2026-11-24T10:00:00+08:00' appears more than once in this file")


def test_a_pause_may_begin_as_another_ends(kb_import):
    written(kb_import("pauses", csv(PAUSE, "C0,2026-11-21 09:00,2026-11-21 10:00,",
                                    "C0,2026-11-21 12:00,2026-11-23 12:00,", "C0,2026-11-23 12:00,,",
                                    "C1,2026-11-23 12:00,,")), 4)


# --- messages -------------------------------------------------------------------------------------------------

MESSAGE = "case_id,at,direction,message_id"


def import_key(case_id: str, at_utc: str, direction: str) -> str:
    return "import:" + hashlib.sha256(f"{case_id}|{at_utc}|{direction}".encode()).hexdigest()


def test_a_message_is_stored_with_the_mail_as_an_import(kb_import):
    written(kb_import("messages", csv(MESSAGE, "C0,2026-11-20 15:00,client,",
                                      "C0,2026-11-23 10:00,team, <r1@x.example> ",
                                      "C0,2026-11-23 11:00:00.5+08:00,client,q2@x.example")), 3)
    rows = kb_import.rows("""SELECT message_key, message_id, case_id, is_team, is_automatic, unverified, received_at,
                                    taken_at, source, mailbox, folder, from_address
                             FROM messages WHERE source = 'import' AND case_id = 'C0' ORDER BY received_at""")
    taken = datetime(2026, 11, 26, 4, tzinfo=UTC)
    assert rows == [
        ("first@ent.example", "first@ent.example", "C0", False, False, False, datetime(2026, 11, 20, 7, tzinfo=UTC),
         taken, "import", None, None, None),
        (import_key("C0", "2026-11-20T07:00:00.000000Z", "client"), None, "C0", False, False, False,
         datetime(2026, 11, 20, 7, tzinfo=UTC), taken, "import", None, None, None),
        ("r1@x.example", "r1@x.example", "C0", True, False, False, datetime(2026, 11, 23, 2, tzinfo=UTC), taken,
         "import", None, None, None),
        ("q2@x.example", "q2@x.example", "C0", False, False, False,
         datetime(2026, 11, 23, 3, 0, 0, 500000, tzinfo=UTC), taken, "import", None, None, None)]


def test_a_message_already_taken_is_refused_naming_its_line(kb_import):
    text = csv(MESSAGE, "C0,2026-11-23 10:00,team,")
    written(kb_import("messages", text), 1)
    key = import_key("C0", "2026-11-23T02:00:00.000000Z", "team")
    refused(kb_import("messages", text), f"line 2, message_id: '{key[:57]}...' already exists")
    refused(kb_import("messages", csv(MESSAGE, "C0,2026-11-24 10:00,team,<first@ent.example>",
                                      "C0,2026-11-24 10:00,client,a@x", "C0,2026-11-24 11:00,team,<a@x>")),
            "line 2, message_id: 'first@ent.example' already exists",
            "line 3, message_id: 'a@x' appears more than once in this file",
            "line 4, message_id: 'a@x' appears more than once in this file")


def test_a_message_is_of_a_case_that_exists_not_voided_and_between_its_receipt_and_now(kb_import):
    refused(kb_import("messages", csv(MESSAGE, "NOPE,2026-11-23 10:00,client,", "VOID,2026-11-23 10:00,client,",
                                      "C0,2026-11-20 14:59,client,", "C0,2026-11-26 12:06,team,",
                                      "C0,2026-11-23 10:00,both,", "C0,2026-11-23 10:00,client,a b@x",
                                      "C0,,,")),
            "line 2, case_id: no case 'NOPE'",
            "line 3, case_id: is a voided case",
            "line 4, at: is before the case was received",
            "line 5, at: is in the future (Thu 2026-11-26 12:06:00 (UTC+08:00)"
                "; now is Thu 2026-11-26 12:00:00 (UTC+08:00))",
            "line 6, direction: 'both' is not one of client, team",
            "line 7, message_id: 'a b@x' is not a Message-ID: printable ASCII without spaces, at most 998 characters, "
            "in <> or not (e.g. <abc.123@mail.example>)",
            "line 8, at: is empty", "line 8, direction: is empty")


# --- the demo ---------------------------------------------------------------------------------------------------

def test_the_demo_serves_one_enterprise_client_on_gold_with_priorities_pauses_and_threads(tmp_path):
    config = load_config(Path(__file__).resolve().parent.parent / "support.toml")
    now = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)
    records = demo_records(config, date(2026, 11, 25), now=now)
    assert records["policies"] == [
        dict(policy_id="gold", metric="first_response", priority="urgent", within="4h", calendar="24x7"),
        dict(policy_id="gold", metric="first_response", priority="*", within="1d"),
        dict(policy_id="gold", metric="resolution", priority="*", within="2d"),
        dict(policy_id="gold", metric="next_response", priority="*", within="1d")]
    con = connection.connect(tmp_path / "demo.duckdb")
    try:
        set_now(now)
        write_demo(con, config, date(2026, 11, 25), Actor("demo@example.com", "admin"))
        rows = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        assert rows("SELECT client_id, tier, policy_id, response_business_days FROM contracts "
                    "JOIN clients USING (client_id) WHERE policy_id IS NOT NULL") == [("DELT", "enterprise", "gold",
                                                                                       None)]
        assert rows("SELECT count(*) FROM policies WHERE policy_id = 'gold'") == [(4,)]
        priorities = dict(rows("SELECT priority, count(*) FROM cases GROUP BY priority"))
        assert set(priorities) == {"urgent", "high", "normal", "low"} and priorities["normal"] > priorities["urgent"]
        assert rows("SELECT count(*) FILTER (WHERE resumed_at IS NULL), count(*) > 3 FROM pauses") == [(1, True)]
        questions = rows("""
            SELECT count(*), count(*) FILTER (WHERE answered) FROM (
                SELECT EXISTS (SELECT 1 FROM messages t WHERE t.case_id = m.case_id AND t.is_team
                                 AND t.received_at > m.received_at) AS answered
                FROM messages m JOIN cases c USING (case_id)
                WHERE NOT m.is_team AND m.received_at > c.first_response_at)""")[0]
        assert questions[0] > questions[1] > 0
        assert rows("SELECT count(DISTINCT is_team), min(source) FROM messages") == [(2, "import")]
    finally:
        con.close()
