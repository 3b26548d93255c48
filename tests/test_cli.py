"""``python -m kb``: the data contract of rules §7, through files as a user would use it."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from kb.cli import main
from kb.db import connection
from tests.fixtures import SPEC_TOML

ROOT = Path(__file__).resolve().parent.parent


CLIENTS_CSV = """client_id,name,tier,email_domain
ENT,Enterprise Co,enterprise,ent.example
FREE,Free User,free,
"""

CASES_CSV = """case_id,client_id,received_at,category,subject,first_response_at
C1,ENT,2026-11-20 15:00,platform_issue,Gateway down,
C2,ENT,2026-11-24 19:00,platform_issue,Gateway down,
C3,ENT,2026-11-23 09:00,api_help,Versioning,
C4,ENT,2026-11-26 14:00,api_help,Pagination,
C5,FREE,2026-11-20 15:00,platform_issue,Login loop,
C6,FREE,2026-11-22 10:00,api_help,Scopes,
C7,FREE,2026-11-24 07:00,platform_issue,Webhooks,
C8,FREE,2026-11-24 07:00,general_coding,Regex,
"""

SPEC_DEADLINES = {
    "C1": "2026-11-23T15:00:00+08:00", "C2": "2026-11-25T18:00:00+08:00", "C3": "2026-11-23T18:00:00+08:00",
    "C4": "2026-11-30T14:00:00+08:00", "C5": "2026-11-23T18:00:00+08:00", "C6": "2026-11-23T18:00:00+08:00",
    "C7": "2026-11-25T18:00:00+08:00", "C8": "",
}


@pytest.fixture
def files(tmp_path):
    (tmp_path / "support.toml").write_text(SPEC_TOML)
    return tmp_path


def kb(files, *args):
    return main([*args, "--db", str(files / "s.duckdb"), "--config", str(files / "support.toml")])


def write(files, name, text, encoding="utf-8"):
    path = files / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def export(files, capsys, report, as_of="2026-12-05T00:00:00+08:00"):
    capsys.readouterr()
    assert kb(files, "export", report, "--as-of", as_of) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def row_count(files, table):
    con = connection.connect(files / "s.duckdb", read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    finally:
        con.close()


def test_import_then_export_reproduces_the_spec_deadlines(files, capsys):
    assert kb(files, "import", "clients", write(files, "clients.csv", CLIENTS_CSV)) == 0
    assert capsys.readouterr().err.startswith(f"note: there is no database at {files / 's.duckdb'}: a new one is "
                                              "made there")  # said once, when it is made
    assert kb(files, "import", "cases", write(files, "cases.csv", CASES_CSV)) == 0
    assert capsys.readouterr().err == ""
    rows = {r["case_id"]: r for r in export(files, capsys, "case-sla")}
    assert {cid: r["first_response_due"] for cid, r in rows.items()} == SPEC_DEADLINES
    assert rows["C1"]["received_at"] == "2026-11-20T15:00:00+08:00"
    assert rows["C8"]["sla_state"] == "no_sla"
    assert rows["C1"]["tier"] == "enterprise" and rows["C1"]["category"] == "platform_issue"
    assert set(rows["C1"]) >= {"case_id", "client_id", "tier", "category", "received_at", "first_response_due",
                               "first_response_at", "sla_state"}


def test_export_to_a_file_and_as_of_without_offset_is_local(files, capsys):
    kb(files, "import", "clients", write(files, "clients.csv", CLIENTS_CSV))
    kb(files, "import", "cases", write(files, "cases.csv", CASES_CSV))
    out = files / "out.csv"
    assert kb(files, "export", "case-sla", "--as-of", "2026-11-23 16:30", "--out", str(out)) == 0
    rows = {r["case_id"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == {"C1", "C3", "C5", "C6"}  # received by Monday 16:30 local
    assert {cid: r["sla_state"] for cid, r in rows.items()} == {
        "C1": "breached", "C3": "at_risk", "C5": "at_risk", "C6": "at_risk"}

def test_uptime_and_refund_reports(files, capsys):
    kb(files, "import", "clients", write(files, "clients.csv", CLIENTS_CSV))
    kb(files, "import", "environments", write(files, "env.csv", (
        "environment_id,name,kind,deployment,client_id,active_from\n"
        "E1,Prod,dedicated,on_premise,ENT,2026-10-01\n"
        "S1,Shared,shared,shared_cloud,,2026-10-01\n")))
    kb(files, "import", "contracts", write(files, "k.csv", (
        "contract_id,client_id,environment_id,uptime_target_pct,monthly_fee,currency,credit_schedule,starts_on\n"
        'K1,ENT,E1,99.9,1000,USD,"99.9:10, 99.0:30, 95.0:100",2026-10-01\n')))
    assert kb(files, "import", "incidents", write(files, "inc.csv", (
        "incident_id,environment_id,impact,started_at,ended_at,summary\n"
        "I1,E1,outage,2026-11-03 10:00,2026-11-03 10:30,first\n"
        "I2,E1,outage,2026-11-03 10:15,2026-11-03 11:00,overlaps\n"
        "I3,E1,maintenance,2026-11-03 02:00,2026-11-03 04:00,patching\n"))) == 0
    uptime = {(r["environment_id"], r["month"]): r for r in export(files, capsys, "uptime")}
    assert set(uptime) == {(e, m) for e in ("E1", "S1") for m in ("2026-10", "2026-11", "2026-12")}
    november = uptime[("E1", "2026-11")]
    assert november["downtime_minutes"] == "60.00"
    assert november["uptime_pct"] == "99.861111"
    assert november["budget_left_minutes"] == "-16.80"
    assert november["status"] == "final"
    assert uptime[("E1", "2026-12")]["status"] == "projected"
    refunds = {r["month"]: r for r in export(files, capsys, "refunds")}
    assert refunds["2026-11"]["credit_pct"].startswith("10.0000")
    assert refunds["2026-11"]["refund_amount"] == "100.00"
    assert refunds["2026-10"]["refund_amount"] == "0.00"
    assert refunds["2026-12"]["status"] == "projected"
    assert set(refunds["2026-11"]) >= {"contract_id", "client_id", "environment_id", "month", "uptime_pct",
                                       "credit_pct", "refund_amount", "currency", "status"}


def test_a_file_with_several_bad_rows_is_rejected_whole(files, capsys):
    kb(files, "import", "clients", write(files, "clients.csv", CLIENTS_CSV))
    bad = (
        "case_id,client_id,received_at,category,subject,first_response_at\n"
        "OK1,ENT,2026-11-20 15:00,platform_issue,Fine,\n"
        "B1,NOPE,2026-11-20 15:00,platform_issue,Unknown client,\n"
        "B2,ENT,yesterday,platform_issue,Bad time,\n"
        "B3,ENT,2026-11-20 15:00,hardware,Bad category,\n"
        "B4,ENT,2026-11-20 15:00,api_help,,\n"
        "B5,ENT,2026-11-20 15:00,api_help,Reply before receipt,2026-11-20 14:00\n"
        "OK1,ENT,2026-11-20 15:00,platform_issue,Duplicate id,\n"
    )
    capsys.readouterr()
    assert kb(files, "import", "cases", write(files, "bad.csv", bad)) == 1
    err = capsys.readouterr().err
    assert "line 3, client_id: no client 'NOPE'" in err
    assert "line 4, received_at: 'yesterday' is not an ISO 8601 timestamp" in err
    assert "line 5, category: 'hardware' is not one of platform_issue, api_help, general_coding" in err
    assert "line 6, subject: is empty" in err
    assert "line 7, first_response_at: is before the case was received" in err
    assert "line 2, case_id: 'OK1' appears more than once in this file" in err
    assert "line 8, case_id: 'OK1' appears more than once in this file" in err
    assert "nothing was written" in err
    assert row_count(files, "cases") == 0


def test_existing_ids_are_an_error_not_an_overwrite(files, capsys):
    kb(files, "import", "clients", write(files, "clients.csv", CLIENTS_CSV))
    capsys.readouterr()
    changed = CLIENTS_CSV.replace("Enterprise Co", "Renamed Co")
    assert kb(files, "import", "clients", write(files, "again.csv", changed)) == 1
    err = capsys.readouterr().err
    assert "line 2, client_id: 'ENT' already exists" in err
    assert "line 3, client_id: 'FREE' already exists" in err
    con = connection.connect(files / "s.duckdb", read_only=True)
    assert con.execute("SELECT name FROM clients WHERE client_id = 'ENT'").fetchall() == [("Enterprise Co",)]
    con.close()


@pytest.mark.parametrize("subject", [
    'He said "it\'s broken", then left',
    "commas, everywhere, really",
    "'; DROP TABLE cases; --",
    "Robert'); DELETE FROM clients WHERE ('1'='1",
    "Emoji 🔥🚀 and 中文 and עברית",
    "line one\nline two",
    "<script>alert(1)</script>",
    "  leading and trailing spaces  ",
])
def test_subjects_are_stored_verbatim(files, capsys, subject):
    kb(files, "import", "clients", write(files, "clients.csv", CLIENTS_CSV))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["case_id", "client_id", "received_at", "category", "subject"])
    writer.writerow(["C1", "ENT", "2026-11-20 15:00", "api_help", subject])
    assert kb(files, "import", "cases", write(files, "cases.csv", buffer.getvalue())) == 0
    con = connection.connect(files / "s.duckdb", read_only=True)
    assert con.execute("SELECT subject FROM cases").fetchall() == [(subject,)]
    con.close()
    assert row_count(files, "clients") == 2


def test_bom_and_windows_line_endings_are_read(files, capsys):
    text = "\ufeff" + CLIENTS_CSV.replace("\n", "\r\n")
    assert kb(files, "import", "clients", write(files, "clients.csv", text)) == 0
    assert row_count(files, "clients") == 2


def test_wrong_encoding_is_named(files, capsys):
    text = CLIENTS_CSV + "CAF,Café Crème,free,\n"
    capsys.readouterr()
    assert kb(files, "import", "clients", write(files, "clients.csv", text, encoding="latin-1")) == 1
    assert "line 4: is not UTF-8 text" in capsys.readouterr().err


def test_missing_and_unknown_columns_are_named(files, capsys):
    capsys.readouterr()
    assert kb(files, "import", "clients", write(files, "c.csv", "client_id,tier,colour\nX,free,red\n")) == 1
    err = capsys.readouterr().err
    assert "line 1, name: missing column" in err
    assert "line 1, colour: unknown column" in err


def test_bad_config_is_named(files, capsys):
    (files / "support.toml").write_text('[calendar]\ntimezone = "Mars/Olympus"\n')
    capsys.readouterr()
    assert kb(files, "export", "case-sla") == 1
    assert "calendar.timezone = 'Mars/Olympus' is not an IANA time zone name" in capsys.readouterr().err


def test_help_on_every_command():
    for args in ([], ["import"], ["export"], ["demo"]):
        result = subprocess.run([sys.executable, "-m", "kb", *args, "--help"], cwd=ROOT, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0
        assert "usage: python -m kb" in result.stdout


def test_demo_then_export_through_the_real_command(tmp_path):
    db = tmp_path / "demo.duckdb"
    run = [sys.executable, "-m", "kb"]
    made = subprocess.run([*run, "demo", "--db", str(db)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert "cases" in made.stdout
    again = subprocess.run([*run, "demo", "--db", str(db)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "--replace" in again.stderr
    out = subprocess.run([*run, "export", "case-sla", "--db", str(db)], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    states = {row["sla_state"] for row in csv.DictReader(io.StringIO(out.stdout))}
    assert {"met", "breached", "no_sla"} <= states
    refunds = subprocess.run([*run, "export", "refunds", "--db", str(db)], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
    assert any(float(r["refund_amount"]) > 0 for r in csv.DictReader(io.StringIO(refunds.stdout)))
    # read in part (``| head -1``): the reader's end of the pipe closes, and the export ends without a word
    cut = subprocess.Popen([*run, "export", "case-sla", "--db", str(db)], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    cut.stdout.close()  # before the export writes: its first write finds the pipe closed
    assert cut.wait(timeout=60) == 0 and cut.stderr.read() == b""


def test_global_flags_work_before_and_after_the_command(files, capsys):
    config = str(files / "support.toml")
    before = files / "before.duckdb"
    assert main(["--db", str(before), "--config", config, "import", "clients", write(files, "c.csv", CLIENTS_CSV)]) == 0
    assert main(["import", "--db", str(files / "after.duckdb"), "--config", config, "clients",
                 write(files, "c.csv", CLIENTS_CSV)]) == 0
    for path in (before, files / "after.duckdb"):
        con = connection.connect(path, read_only=True)
        assert con.execute("SELECT count(*) FROM clients").fetchall() == [(2,)]
        con.close()


def test_now_sets_the_clock_of_an_export(files, capsys):
    assert kb(files, "import", "clients", write(files, "c.csv", CLIENTS_CSV)) == 0
    assert kb(files, "import", "cases", write(files, "k.csv", CASES_CSV)) == 0
    capsys.readouterr()
    assert kb(files, "--now", "2026-11-23T16:00:00+08:00", "export", "case-sla") == 0
    rows = {r["case_id"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert set(rows) == {"C1", "C3", "C5", "C6"}  # received at or before now
    assert rows["C1"]["sla_state"] == "breached" and rows["C3"]["sla_state"] == "at_risk"  # 2 business hours left


@pytest.mark.parametrize("command", [["demo", "--replace"], ["generate", "--cases", "10", "--replace"]])
def test_replacing_a_database_that_another_process_holds_is_refused(tmp_path, command):
    db = tmp_path / "held.duckdb"
    made = subprocess.run([sys.executable, "-m", "kb", "demo", "--db", str(db)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; con = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); sys.stdin.read()", str(db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = subprocess.run([sys.executable, "-m", "kb", *command, "--db", str(db)], cwd=ROOT,
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1
        assert "is held by another process" in refused.stderr and "Nothing was changed" in refused.stderr
        assert db.exists()
    finally:
        holder.communicate("", timeout=30)
    con = connection.connect(db, read_only=True)
    assert con.execute("SELECT count(*) FROM cases WHERE case_id LIKE 'CS-%'").fetchall()[0][0] > 0
    con.close()


def test_exports_neutralise_spreadsheet_formulas_but_keep_numbers(files, capsys):
    clients = "client_id,name,tier\n+ACME,Plus,enterprise\n-ACME,Minus,enterprise\n@ACME,At,enterprise\n"
    assert kb(files, "import", "clients", write(files, "c.csv", clients)) == 0
    cases = ("case_id,client_id,received_at,category,subject\n"
             "C1,+ACME,2026-11-02 10:00,api_help,x\nC2,-ACME,2026-11-02 10:00,api_help,x\n"
             "C3,@ACME,2026-11-02 10:00,api_help,x\n")
    assert kb(files, "import", "cases", write(files, "k.csv", cases)) == 0
    rows = export(files, capsys, "case-sla")
    assert sorted(r["client_id"] for r in rows) == ["'+ACME", "'-ACME", "'@ACME"]
    assert all(r["sla_state"] == "breached" and float(r["business_hours_left"]) < 0 for r in rows)  # numbers stay
    environments = ("environment_id,name,kind,deployment,client_id,active_from\n"
                    "ENV,Prod,dedicated,on_premise,+ACME,2026-01-01\n")
    assert kb(files, "import", "environments", write(files, "e.csv", environments)) == 0
    incidents = ("incident_id,environment_id,impact,started_at,ended_at\n"
                 "I1,ENV,outage,2026-11-02 10:00,2026-11-02 12:00\n")
    assert kb(files, "import", "incidents", write(files, "i.csv", incidents)) == 0
    uptime = {r["month"]: r for r in export(files, capsys, "uptime")}
    assert uptime["2026-11"]["budget_left_minutes"] == "-76.80"  # a negative number stays a number
