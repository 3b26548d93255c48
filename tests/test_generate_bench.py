"""The synthetic data set (``python -m kb generate``) and the benchmark (``python -m kb bench``).

The bench's figures are not asserted (machines are noisy); it is run once on a
small size so that it keeps working.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from kb.access import Actor
from kb.cli import main
from kb.config import load_config, parse_config
from kb.credits import parse_credit_schedule
from kb.db import connection
from kb.engine.asof import open_views
from kb.engine.calendar import business_days, holiday_dates
from kb.intake import writes
from kb.reads.exports import write_report
from kb.tools.generate import generate, generate_tables
from kb.tools.generate_calendars import bench_calendars, config_with, toml_text
from kb.tools.generate_sla import calendar_policy_id

ROOT = Path(__file__).resolve().parent.parent
CONFIG = load_config(ROOT / "support.toml")
UNTIL = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)  # Wednesday 16:30 in Hong Kong
ADMIN = Actor("tests@example.com", "admin")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A store of 20 000 generated cases over two years, and its connection with the views open at UNTIL."""
    db = tmp_path_factory.mktemp("generated") / "generated.duckdb"
    con = connection.connect(db)
    counts = generate(con, CONFIG, ADMIN, cases=20_000, environments=30, years=2, seed=7, until=UNTIL)
    open_views(con, CONFIG, UNTIL)
    yield con, counts, db
    con.close()


def rows(con, sql: str, params=None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def test_same_seed_same_rows_other_seed_other_rows():
    first = generate_tables(CONFIG, cases=3000, environments=12, years=1, seed=5, until=UNTIL)
    again = generate_tables(CONFIG, cases=3000, environments=12, years=1, seed=5, until=UNTIL)
    other = generate_tables(CONFIG, cases=3000, environments=12, years=1, seed=6, until=UNTIL)
    assert list(first) == ["clients", "environments", "policies", "contracts", "cases", "pauses", "messages",
                           "incidents", "monitoring_checks"]
    for name in first:
        assert first[name].equals(again[name]), name
    assert not first["cases"].equals(other["cases"])


def test_sizes_and_nothing_after_until(generated):
    con, counts, _ = generated
    assert counts["cases"] == 20_000 and counts["environments"] == 30
    assert rows(con, "SELECT count(*) FROM cases WHERE received_at > ? OR first_response_at > ? OR resolved_at > ?",
                [UNTIL, UNTIL, UNTIL]) == [(0,)]
    assert rows(con, "SELECT count(*) FROM incidents WHERE started_at > ? OR ended_at > ?", [UNTIL, UNTIL]) == [(0,)]
    assert rows(con, "SELECT count(*) FROM pauses WHERE paused_at > ? OR resumed_at > ?", [UNTIL, UNTIL]) == [(0,)]
    assert rows(con, "SELECT count(*) FROM messages WHERE received_at > ?", [UNTIL]) == [(0,)]
    assert rows(con, "SELECT count(*) FROM audit_log WHERE action = 'import'")[0][0] == 8


def test_arrivals_cluster_in_business_hours_with_weekend_and_holiday_troughs(generated):
    con, _, _ = generated
    con.register("open_days", business_days(CONFIG.calendar, 2024, 2026)[["day", "opens_at", "closes_at"]])
    inside = rows(con, """
        SELECT avg(CASE WHEN d.day IS NOT NULL AND c.received_at >= d.opens_at AND c.received_at < d.closes_at
                   THEN 1 ELSE 0 END)
        FROM cases c LEFT JOIN open_days d ON d.day = CAST(timezone('Asia/Hong_Kong', c.received_at) AS DATE)
    """)[0][0]
    assert inside > 0.6
    per_day = dict(rows(con, """
        SELECT dayofweek(timezone('Asia/Hong_Kong', received_at)) IN (0, 6) AS weekend,
               count(*) / count(DISTINCT CAST(timezone('Asia/Hong_Kong', received_at) AS DATE))
        FROM cases GROUP BY ALL
    """))
    assert per_day[True] < 0.3 * per_day[False]
    weekday_holidays = [d for d in holiday_dates(CONFIG.calendar, range(2024, 2027)) if d.weekday() < 5]
    on_holidays = rows(con, """
        SELECT count(*) FROM cases WHERE CAST(timezone('Asia/Hong_Kong', received_at) AS DATE) IN (SELECT unnest(?))
    """, [weekday_holidays])[0][0]
    holidays_in_window = len([d for d in weekday_holidays if UNTIL.date().replace(year=2024) < d <= UNTIL.date()])
    assert on_holidays / holidays_in_window < 0.5 * per_day[False]


def test_tiers_categories_states_and_a_long_tail(generated):
    con, _, _ = generated
    tiers = dict(rows(con, "SELECT tier, count(*) / 20000 FROM case_sla GROUP BY tier"))
    assert set(tiers) == {"enterprise", "custom", "free"}
    assert 0.25 < tiers["enterprise"] < 0.45 and 0.1 < tiers["custom"] < 0.2 and 0.4 < tiers["free"] < 0.6
    assert {c for (c,) in rows(con, "SELECT DISTINCT category FROM cases")} == {
        "platform_issue", "api_help", "general_coding"}
    coding = dict(rows(con, "SELECT tier, avg((category = 'general_coding')::INT) FROM case_sla GROUP BY tier"))
    assert coding["free"] > 2 * coding["enterprise"]
    states = dict(rows(con, "SELECT sla_state, count(*) FROM case_sla GROUP BY sla_state"))
    assert {"met", "breached", "no_sla", "pending"} <= set(states)
    assert 0.8 < states["met"] / (states["met"] + states["breached"]) < 0.98
    p50, p99 = rows(con, "SELECT quantile_cont(business_hours_to_response, [0.5, 0.99]) FROM case_sla")[0][0]
    assert p99 > 8 * p50


def test_incidents_contracts_and_checks_are_varied(generated):
    con, _, _ = generated
    impacts = dict(rows(con, "SELECT impact, count(*) FROM incidents GROUP BY impact"))
    assert set(impacts) == {"outage", "degraded", "maintenance"}
    overlapping = rows(con, """
        SELECT count(*) FROM incidents a JOIN incidents b ON a.environment_id = b.environment_id
            AND a.incident_id < b.incident_id AND a.impact = 'outage' AND b.impact = 'outage'
            AND b.started_at < a.ended_at AND a.started_at < b.ended_at
    """)[0][0]
    assert overlapping > 0
    assert rows(con, "SELECT count(*) FROM env_uptime WHERE NOT target_met")[0][0] > 0
    assert rows(con, "SELECT count(*) FROM contract_refunds WHERE credit_pct > 0")[0][0] > 0
    terms = rows(con, "SELECT count(DISTINCT uptime_target_pct), count(DISTINCT response_business_days), "
                      "count(DISTINCT currency), count(*) FILTER (WHERE ends_on IS NOT NULL) FROM contracts")[0]
    assert terms[0] >= 3 and terms[1] >= 2 and terms[2] >= 2 and terms[3] >= 1
    for (schedule,) in rows(con, "SELECT DISTINCT credit_schedule FROM contracts WHERE credit_schedule IS NOT NULL"):
        parse_credit_schedule(schedule)
    assert rows(con, "SELECT count(DISTINCT environment_id) FROM monitoring_checks")[0][0] > 0


def test_priorities_policies_and_the_contracts_that_name_them(generated):
    con, _, _ = generated
    shares = dict(rows(con, "SELECT priority, count(*) / 20000 FROM cases GROUP BY priority"))
    assert set(shares) == {"urgent", "high", "normal", "low"}
    assert 0.03 < shares["urgent"] < 0.07 and 0.12 < shares["high"] < 0.18
    assert 0.65 < shares["normal"] < 0.75 and 0.07 < shares["low"] < 0.13
    assert rows(con, "SELECT count(DISTINCT policy_id) FROM policies")[0][0] >= 3
    assert rows(con, "SELECT count(*) FROM policies WHERE calendar = '24x7'")[0][0] >= 1
    named = rows(con, "SELECT count(*), count(*) FILTER (WHERE response_business_days IS NULL), "
                      "count(*) FILTER (WHERE policy_id NOT IN (SELECT policy_id FROM policies)) "
                      "FROM contracts WHERE policy_id IS NOT NULL")[0]
    assert named[0] >= 1 and named[1] == named[0] and named[2] == 0
    assert rows(con, "SELECT count(*) FROM contracts WHERE policy_id IS NULL")[0][0] >= 1


def test_messages_thread_each_case_and_follow_up_after_the_first_response(generated):
    con, _, _ = generated
    per_case = rows(con, "SELECT count(*) / 20000 FROM messages")[0][0]
    assert 2.7 < per_case < 3.3
    assert rows(con, """SELECT count(*) FROM cases c WHERE NOT EXISTS (
                            SELECT 1 FROM messages m WHERE m.case_id = c.case_id AND NOT m.is_team
                              AND m.received_at = c.received_at)""") == [(0,)]
    assert rows(con, """SELECT count(*) FROM cases c WHERE first_response_at IS NOT NULL AND NOT EXISTS (
                            SELECT 1 FROM messages m WHERE m.case_id = c.case_id AND m.is_team
                              AND m.received_at = c.first_response_at)""") == [(0,)]
    assert rows(con, "SELECT count(*) FROM messages m JOIN cases c USING (case_id) "
                     "WHERE m.received_at < c.received_at") == [(0,)]
    follow_ups = rows(con, "SELECT count(*) FROM messages m JOIN cases c USING (case_id) "
                           "WHERE NOT m.is_team AND m.received_at > c.first_response_at")[0][0]
    assert follow_ups > 0.3 * 20000
    assert rows(con, "SELECT count(DISTINCT source), min(source) FROM messages") == [(1, "import")]


def test_pauses_lie_in_the_case_s_life_never_overlap_and_most_are_resumed(generated):
    con, _, _ = generated
    paused, total, running = rows(con, "SELECT count(DISTINCT case_id), count(*), count(*) FILTER "
                                       "(WHERE resumed_at IS NULL) FROM pauses")[0]
    assert 0.15 < paused / 20000 < 0.25
    assert 0 < running < 0.2 * total
    assert rows(con, """SELECT count(*) FROM pauses p JOIN cases c USING (case_id)
                        WHERE p.paused_at < coalesce(c.first_response_at, c.received_at)
                           OR p.resumed_at > coalesce(c.resolved_at, ?)
                           OR (c.resolved_at IS NOT NULL AND p.resumed_at IS NULL)""", [UNTIL]) == [(0,)]
    assert rows(con, """SELECT count(*) FROM pauses a JOIN pauses b ON a.case_id = b.case_id
                            AND a.paused_at < b.paused_at
                            AND b.paused_at < coalesce(a.resumed_at, 'infinity'::TIMESTAMPTZ)""") == [(0,)]
    assert rows(con, "SELECT count(*) FROM pauses WHERE resumed_by = 'mail'")[0][0] > 0.5 * total


def test_generated_ids_leave_the_forms_ids_free(generated):
    con, _, _ = generated
    assert rows(con, "SELECT count(*) FROM cases WHERE NOT starts_with(case_id, 'G-CS-')") == [(0,)]
    assert rows(con, "SELECT count(*) FROM incidents WHERE NOT starts_with(incident_id, 'G-INC-')") == [(0,)]
    assert writes.next_id(con, "cases", "case_id") == "CS-00001"
    assert writes.next_id(con, "incidents", "incident_id") == "INC-00001"


def test_the_form_logs_a_case_into_a_generated_store(tmp_path):
    con = connection.connect(tmp_path / "small.duckdb")
    try:
        generate(con, CONFIG, ADMIN, cases=800, environments=6, years=1, seed=2, until=UNTIL)
        client = rows(con, "SELECT min(client_id) FROM clients WHERE tier = 'enterprise'")[0][0]
        logged = writes.log_case(con, CONFIG, ADMIN, {"client_id": client, "category": "api_help",
                                                     "subject": "Logged by hand", "received_at": "2026-11-25 10:00"})
        case_id = logged.row_id
        assert case_id == "CS-00001"
        assert rows(con, "SELECT count(*), count(DISTINCT case_id) FROM cases") == [(801, 801)]
    finally:
        con.close()


def test_case_sla_export_of_a_generated_store(generated, tmp_path):
    con, _, _ = generated
    out = tmp_path / "case-sla.csv"
    cur = connection.cursor(con)
    try:
        assert write_report(cur, CONFIG, "case-sla", UNTIL, out) == 20_000
    finally:
        cur.close()
    with out.open(newline="") as f:
        exported = list(csv.DictReader(f))
    assert len(exported) == 20_000
    assert {r["sla_state"] for r in exported} >= {"met", "breached", "no_sla"}
    assert all(r["received_at"].endswith("+08:00") for r in exported[:100])


def test_generate_command_refuses_an_existing_file(tmp_path, capsys):
    db = tmp_path / "g.duckdb"
    args = ["generate", "--cases", "500", "--environments", "5", "--years", "1", "--seed", "3",
            "--until", "2026-11-25T16:30:00+08:00", "--db", str(db)]
    assert main(args) == 0
    assert "500 cases" in capsys.readouterr().out
    assert main(args) == 1
    assert "--replace" in capsys.readouterr().err
    assert main([*args, "--replace"]) == 0


def test_named_calendars_each_change_inside_the_period_and_carry_a_policy_cases_run_on(tmp_path):
    raw = tomllib.loads((ROOT / "support.toml").read_text(encoding="utf-8"))
    calendars = bench_calendars(20, date(2025, 11, 1), date(2026, 11, 25))
    text = toml_text(config_with(raw, calendars))
    assert tomllib.loads(text) == config_with(raw, calendars)  # written as it was read
    config = parse_config(tomllib.loads(text))
    named = config.calendars[1:]
    assert len(named) == 20 and len({c.versions.base.timezone for c in named}) >= 15
    for calendar in named:
        (_, before), (since, after) = calendar.versions.versions
        assert date(2025, 11, 1) < since <= date(2026, 11, 25) and before != after, calendar.name
    assert config.mail.support_addresses
    db = tmp_path / "calendars.duckdb"
    con = connection.connect(db)
    try:
        generate(con, config, ADMIN, cases=6000, environments=80, years=1, seed=4, until=UNTIL)
        policies = dict(rows(con, "SELECT calendar, min(policy_id) FROM policies GROUP BY calendar"))
        assert {c.name: calendar_policy_id(c.name) for c in named}.items() <= policies.items()
        open_views(con, config, UNTIL)
        on_named = dict(rows(con, "SELECT first_response_calendar, count(*) FROM case_sla "
                                  "WHERE first_response_calendar NOT IN ('support', '24x7') GROUP BY ALL"))
        assert len(on_named) >= 5 and sum(on_named.values()) > 100
    finally:
        con.close()


def test_bench_runs_and_prints_its_table(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "kb", "bench", "--cases", "1500", "--environments", "12", "--years", "1",
         "--runs", "1", "--writes", "3", "--sample", "100", "--mail-messages", "300", "--workdir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    assert "| measure (median of 1 run) | 1,500 cases | target at 1 000 000 |" in table
    for label in ("every target of every case", "follow-up questions alone", "`export responses` CSV",
                  "rows: messages / pauses / client questions", "deadlines and states, per-row Python",
                  "… sample cases where Python and SQL agree", "uptime, every environment-month",
                  "page overview, cold", "page queue, warm", "log a case (form write), p95",
                  "peak memory of the worker", "the lookup tables of the 22 calendars"):
        assert f"| {label}" in table, label
    cells = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in table.splitlines() if line.startswith("| ")}
    for label, target in (("page overview, cold", "≤ 1.0 s"), ("page overview, warm", "≤ 0.2 s"),
                          ("log a case (form write), p95", "≤ 50 ms"), ("… its deadline confirmation, p95", "≤ 100 ms"),
                          ("overview right after a write", "≤ 0.3 s"), ("peak memory of the worker (RSS)", "≤ 1.2 GB"),
                          ("… ÷ the bare query of the same rows", "≤ 10 ×"),
                          ("log a case while the service runs its jobs, p95", "≤ 50 ms"),
                          ("API export case-sla, first byte", "≤ 0.5 s"),
                          ("mail import of 300 messages (`mail import --trust-team`, a process of its own)", "≤ 15 s"),
                          ("… its peak memory (RSS), with its parser processes'", "≤ 400 MB")):
        assert cells[label][-1].strip(" |") == target, label  # no ✓ or ✗ below a million cases
    said, sent = cells["… rows it announced (`X-Rows`) / sent"][0].split(" / ")
    assert said == sent and int(said.replace(",", "")) > 1500  # and the cases logged by the bench
    gained, threaded = cells["… rows `messages` gained / of them in a case's thread"][0].split(" / ")
    assert int(gained.replace(",", "")) > 250 and 0 < int(threaded.replace(",", "")) <= int(gained.replace(",", ""))
    named, on_named = cells["calendars: named, each with a dated change / cases whose first response runs on one"][0] \
        .split(" / ")
    assert named == "20, 20" and int(on_named.replace(",", "")) >= 0
    logged, runs = cells["… cases logged / job runs meanwhile (alerts, metrics, mail, backup)"][0].split(" / ")
    assert int(logged) >= 3 and min(int(n) for n in runs.split(", ")) >= 1
    assert not list(tmp_path.iterdir())  # the temporary databases are gone


@pytest.mark.parametrize("more", [[], ["--mbox", "g.mbox", "--messages", "10"]])
@pytest.mark.parametrize("until", ["9999-12-31", "1969-12-31T00:00:00Z"])
def test_generate_refuses_an_until_outside_the_calendar_years(tmp_path, capsys, monkeypatch, until, more):
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--cases", "10", "--until", until, "--db", str(tmp_path / "g.duckdb"), *more]) == 1
    assert capsys.readouterr().err == (f"error: --until: {until!r} is outside 1970–2200, the years the business "
                                       "calendar holds\n")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_bench_worker_reports_its_own_peak_memory_not_its_parents():
    held = bytearray(300 * 2**20)
    for i in range(0, len(held), 4096):
        held[i] = 1  # resident, in this process: the parent
    done = subprocess.run([sys.executable, "-c", "from kb.tools.memory import peak_mb; print(peak_mb())"],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    assert 1 < float(done.stdout) < 100  # a bare interpreter's, not the 300 MB its parent held when it forked
