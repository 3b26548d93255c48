"""After a write, the snapshot takes in the rows of the cases it touched, and holds exactly what computing
every case again would: row for row, column for column."""

from __future__ import annotations

import threading
import time
import tomllib
from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pytest

import kb.engine.targets
import kb.reads.met
import kb.snapshot
import kb.store
from kb.access import Actor
from kb.config import load_config, parse_config
from kb.db.answers import answer
from kb.db.schema import TIERS
from kb.engine.asof import case_rows
from kb.engine.periods import day_bounds
from kb.engine.targets import decided_sql
from kb.intake import corrections, pauses, writes
from kb.intake.importing import add_rows, staged_from_records, update_row
from kb.intake.policies import add_policy_row, set_contract_policy
from kb.intake.validation import TABLES
from kb.reads import performance
from kb.reads.met import met_share_sets_on, met_shares
from kb.snapshot import EVERYTHING, Change, change_of, computed, moved_on, moving_cases
from kb.store import Store
from kb.timestamps import parse_timestamp, set_now
from tests.fixtures import AS_OF, HKT, SPEC_TOML, build_gold_fixture, local

LEAD = Actor("lead@example.com", "admin")
KEYS = {"case_questions": ["case_id", "asked_at"], "case_sla": ["case_id"], "open_case_sla": ["case_id"],
        "env_uptime": ["environment_id", "month"], "contract_refunds": ["contract_id", "month"]}


@pytest.fixture
def store(tmp_path):
    db, config_file = build_gold_fixture(tmp_path)
    store = Store(db, load_config(config_file))
    yield store
    store.close()


def rows(table: pa.Table, name: str) -> list[dict]:
    return table.sort_by([(key, "ascending") for key in KEYS[name]]).to_pylist()


def assert_as_computed(store: Store, as_of) -> None:
    snap = store.snapshot(as_of)
    with store.reader(snap):  # every table, computed if not yet
        pass
    with store.reader() as cur:
        fresh = computed(cur, store.config, as_of)
    assert set(snap.tables) == set(fresh)
    for name, table in fresh.items():
        assert table.schema == snap.tables[name].schema, name
        assert rows(snap.tables[name], name) == rows(table, name), name


def test_case_writes_are_taken_in_row_by_row(store, monkeypatch):
    as_of = parse_timestamp(AS_OF, HKT)
    with store.reader(store.snapshot(as_of)):
        pass
    built = []
    monkeypatch.setattr(kb.store, "computed", lambda *args: built.append(args) or computed(*args))
    fields = {"client_id": "ENT", "category": "platform_issue", "subject": "Printer on fire",
              "requester": "ops@ent.example", "assignee": "", "received_at": "2026-11-25T14:00:00+08:00",
              "first_response_at": ""}
    new = store.write(writes.log_case, store.config, LEAD, fields).row_id
    assert_as_computed(store, as_of)
    steps = [
        (writes.record_response, new, local("2026-11-25 15:00")),  # the first response
        (pauses.pause_case, new, local("2026-11-25 15:10")),
        (pauses.resume_case, new, local("2026-11-25 15:40")),
        (writes.record_response, "MET", local("2026-11-25 16:00")),  # a reply to the open question
        (writes.resolve_case, "URGENT", local("2026-11-25 16:10")),
    ]
    for action, case_id, at in steps:
        store.write(action, store.config, LEAD, case_id, at)
        assert_as_computed(store, as_of)
    store.write(corrections.void_case, store.config, LEAD, "SLOW", "logged twice")
    assert_as_computed(store, as_of)
    assert built == [], "a case's write computed every case again"


def test_a_write_to_anything_else_computes_everything_again(store, monkeypatch):
    as_of = parse_timestamp(AS_OF, HKT)
    first = store.snapshot(as_of)
    with store.reader(first):
        pass
    with store.transaction() as cur:
        cur.execute("UPDATE clients SET tier = 'custom' WHERE client_id = 'ENT'")  # no audit row: unknown
    again = store.snapshot(as_of)
    assert again is not first and "case_sla" not in again.tables  # to be computed anew when read
    assert_as_computed(store, as_of)


def test_what_a_write_changed_comes_from_its_audit_rows():
    assert change_of([("cases", "C1", None, None), ("pauses", "C2", None, None)]) == Change(frozenset({"C1", "C2"}))
    assert change_of([("messages", "m1", None, '{"case_id": "C3", "replied_at": "x"}')]).cases == {"C3"}
    assert change_of([("incidents", "I1", None, None)]) == Change(uptime=True)
    assert change_of([("month_closings", "2026-10", None, None)]) == Change(uptime=True, closings=True)
    assert change_of([("environments", "E1", None, '{"name": "prod"}')]) == Change(uptime=True)
    assert change_of([("alert_deliveries", "k", None, None)]) == Change()
    assert change_of([("clients", "ENT", None, None), ("cases", "C1", None, None)]) == \
        Change(frozenset({"C1"}), uptime=True, clients=frozenset({"ENT"}))
    assert change_of([("clients", "MAIL", None, '{"merged_into": "ENT"}')]).clients == {"MAIL", "ENT"}
    moved = [("contracts", "K1", '{"client_id": "A"}', '{"client_id": "B", "policy_id": "gold"}')]
    assert change_of(moved) == Change(uptime=True, clients=frozenset({"A", "B"}))  # its cases and its new client's
    assert change_of([("contracts", "K1", None, '{"policy_id": "gold"}')]) == EVERYTHING  # whose: not said
    assert change_of([("policies", "gold", None, None)]) == Change(policies=frozenset({"gold"}))
    assert change_of([("clients", None, None, '{"source": "import.csv"}')]) == EVERYTHING  # an import
    assert change_of([("rules", None, None, None)]) == EVERYTHING
    assert change_of([("messages", None, None, '{"source": "mbox"}')]) == EVERYTHING  # a mail batch of many cases
    mail = [("clients", None, None, '{"source": "mbox"}'), ("cases", None, None, '{"source": "mbox"}'),
            ("cases", "C4", None, None), ("pauses", "C5", None, None),
            ("messages", None, None, '{"cases": ["C4", "C6"]}')]
    assert change_of(mail) == Change(frozenset({"C4", "C5", "C6"}))  # one that names them
    assert change_of([]) == EVERYTHING  # a write nothing describes


def edited(store: Store, table: str, key: str, row_id: str, **values) -> None:
    """Edit one stored row as the Clients and contracts page does (``update_row``), with ``values`` changed."""
    with store.reader() as cur:
        found = cur.execute(f"SELECT * FROM {table} WHERE {key} = ?", [row_id])
        row = dict(zip([d[0] for d in found.description], found.fetchall()[0], strict=True))
    fields = {name: "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
              for name, value in {**row, **values}.items() if name in {c.name for c in TABLES[table]}}
    store.write(update_row, store.config, staged_from_records(table, [fields]), LEAD, permission="edit_clients")


EDITS = {
    "client": lambda store: edited(store, "clients", "client_id", "ENT", tier="custom"),
    "contract": lambda store: store.write(set_contract_policy, store.config, LEAD, "K1", None),
    "policy": lambda store: store.write(add_policy_row, store.config, LEAD, {
        "policy_id": "gold", "metric": "first_response", "priority": "normal", "within": "2h",
        "calendar": "24x7", "valid_from": "2026-01-01"}),
    "contract moved": lambda store: edited(store, "contracts", "contract_id", "K1", client_id="CUS",
                                                         environment_id="S1"),
    "environment": lambda store: store.write(add_rows, store.config, staged_from_records("environments", [{
        "environment_id": "E9", "name": "Enterprise staging", "kind": "dedicated", "deployment": "on_premise",
        "client_id": "ENT", "active_from": "2026-11-01"}]), LEAD, permission="edit_clients", source="form"),
}


@pytest.mark.parametrize("edit", EDITS)
def test_an_edit_of_a_client_a_contract_or_a_policy_computes_again_the_cases_it_can_change(store, monkeypatch,
                                                                                            edit):
    as_of = parse_timestamp(AS_OF, HKT)
    with store.reader(store.snapshot(as_of)):
        pass
    built, taken_in = [], []
    monkeypatch.setattr(kb.store, "computed", lambda *args: built.append(args) or computed(*args))
    monkeypatch.setattr(kb.snapshot, "rows_of_cases",
                        lambda cur, config, at, ids, rows=kb.snapshot.rows_of_cases: taken_in.append(set(ids))
                        or rows(cur, config, at, ids))
    before = store.snapshot(as_of).tables["case_sla"]
    EDITS[edit](store)
    assert_as_computed(store, as_of)
    after = store.snapshot(as_of).tables["case_sla"]
    assert built == [], "an edit of a few cases' rules computed every case again"
    clients = {"environment": [], "contract moved": ["ENT", "CUS"]}.get(edit, ["ENT"])  # (the cases of both)
    cases = set(store.query("SELECT case_id FROM cases WHERE list_contains($clients, client_id)",
                            {"clients": clients}).case_id)
    assert taken_in == ([cases] if cases else [])
    if edit != "environment":  # the edit did change their targets
        assert rows(after, "case_sla") != rows(before, "case_sla")


def test_an_edit_of_a_tier_policy_past_most_cases_computes_every_case_again(store, monkeypatch):
    as_of = parse_timestamp(AS_OF, HKT)
    with store.reader(store.snapshot(as_of)):
        pass
    monkeypatch.setattr(kb.snapshot, "MOST_CASES", 1)
    store.write(add_policy_row, store.config, LEAD, {"policy_id": "enterprise", "metric": "resolution",
                                                     "priority": "*", "within": "5d", "calendar": "support",
                                                     "valid_from": "2026-01-01"})
    assert "case_sla" not in store.snapshot(as_of).tables  # to be computed anew when read
    assert_as_computed(store, as_of)


def test_a_frozen_snapshot_still_moves_on_with_time(store):
    as_of = parse_timestamp(AS_OF, HKT)
    assert store.snapshot(as_of) is store.snapshot(as_of)
    later = as_of + timedelta(hours=1)
    assert store.snapshot(later).as_of == later


def test_a_table_is_computed_when_first_read(store):
    as_of = parse_timestamp(AS_OF, HKT)
    snap = store.snapshot(as_of)
    store.query("SELECT count(*) FROM env_uptime", snapshot=snap)
    assert set(snap.tables) == {"env_uptime"}
    queue = store.query("SELECT * FROM open_case_sla ORDER BY case_id", snapshot=snap)  # its own rows alone
    assert "case_sla" not in snap.tables
    whole = store.query("SELECT * FROM case_sla WHERE resolved_at IS NULL ORDER BY case_id", snapshot=snap)
    assert queue.equals(whole)


def test_the_columns_of_few_values_are_held_as_dictionaries_and_read_as_text(store):
    snap = store.snapshot(parse_timestamp(AS_OF, HKT))
    with store.reader(snap):
        pass
    few = {"case_sla": ["tier", "category", "priority", "sla_state", "first_response_state", "first_response_kind",
                        "resolution_state", "resolution_kind", "next_response_state", "next_due_metric",
                        "next_due_state"],
           "case_questions": ["tier", "category", "priority", "next_response_state"]}
    for name, columns in few.items():
        schema = snap.tables[name].schema
        assert [c for c in columns if not pa.types.is_dictionary(schema.field(c).type)] == []
        assert pa.types.is_string(schema.field("case_id").type)
        read = store.query(f"SELECT {', '.join(columns)} FROM {name} WHERE tier = 'enterprise'", snapshot=snap)
        assert len(read) and all(read[c].dropna().map(type).eq(str).all() for c in columns)
        assert set(read.tier) == {"enterprise"}
    states = store.query("SELECT DISTINCT sla_state FROM case_sla", snapshot=snap).sla_state
    assert set(states) <= set(kb.engine.targets.STATES) and "met" in set(states)


def test_tables_moved_on_to_a_later_instant_are_those_computed_then(store, monkeypatch):
    t1 = parse_timestamp(AS_OF, HKT)
    set_now(t1 + timedelta(days=6))  # what follows is stamped after t1, already stored when t1's tables are made
    fields = {"client_id": "ENT", "category": "platform_issue", "subject": "Received after t1",
              "requester": "ops@ent.example", "assignee": "", "first_response_at": "",
              "received_at": (t1 + timedelta(hours=1)).isoformat()}
    late = store.write(writes.log_case, store.config, LEAD, fields).row_id
    store.write(writes.record_response, store.config, LEAD, "PENDING", t1 + timedelta(minutes=30))
    store.write(pauses.resume_case, store.config, LEAD, "RISK", t1 + timedelta(hours=2))
    with store.transaction() as cur:  # a client's question on a case settled at t1 (resolved, all answered)
        cur.execute("""INSERT INTO messages (message_key, case_id, mailbox, folder, from_address, is_team,
                                             is_automatic, received_at, links, taken_at, source)
                       VALUES ('late-question', 'FIXED', 'test', 'INBOX', 'ops@ent.example', FALSE, FALSE, ?, [],
                               ?, 'test')""", [t1 + timedelta(hours=3), t1 + timedelta(hours=3)])
        answer(cur, ["FIXED"])
    monkeypatch.setattr(kb.snapshot, "MOST_MOVING", 1.0)  # most of this small store moves: still take it in
    recomputed = []
    monkeypatch.setattr(kb.snapshot, "case_rows", lambda *args: recomputed.append(args[3]) or case_rows(*args))
    with store.reader() as cur:
        at_t1 = computed(cur, store.config, t1)
        settled = set(at_t1["case_sla"]["case_id"].to_pylist()) - moving_cases(cur, at_t1, t1, t1)
        assert settled == {"FIXED", "SLOW", "CODING"}  # every clock stopped or without a target, nothing open
        for later in (t1 + timedelta(hours=4), t1 + timedelta(days=5)):
            assert moving_cases(cur, at_t1, t1, later) >= {late, "PENDING", "RISK", "FIXED"}
            recomputed.clear()
            moved = moved_on(cur, store.config, at_t1, t1, later)
            assert recomputed and "SLOW" not in recomputed[0]  # settled and untouched: its rows were kept
            fresh = computed(cur, store.config, later)
            assert set(moved) == set(fresh)
            for name, table in fresh.items():
                assert table.schema == moved[name].schema, name
                assert rows(moved[name], name) == rows(table, name), (name, later)


def test_a_snapshot_remembers_its_aggregates_until_a_write_makes_the_next(store, monkeypatch):
    as_of = parse_timestamp(AS_OF, HKT)
    start, end = as_of - timedelta(days=60), as_of + timedelta(days=1)
    first = store.snapshot(as_of)
    shares = met_shares(store, first, start, end, by=("tier",))
    queries = []
    monkeypatch.setattr(kb.reads.met, "met_share_sets_on",
                        lambda *a, **k: queries.append(a) or met_share_sets_on(*a, **k))
    again = met_shares(store, store.snapshot(as_of), start, end, by=("tier",))
    assert queries == [] and again.equals(shares)  # drawn again: read from the snapshot's memo
    again.loc[:, "met"] = -1  # a copy: what a caller does to it, the memo does not see
    assert met_shares(store, first, start, end, by=("tier",)).equals(shares)
    store.write(corrections.void_case, store.config, LEAD, "SLOW", "logged twice")
    after = met_shares(store, store.snapshot(as_of), start, end, by=("tier",))
    assert len(queries) == 1  # the write made a new snapshot, which reads its tables again
    assert after.decided.sum() < shares.decided.sum()  # the voided case's decided targets no longer count


def test_response_performance_reads_the_shares_of_its_period_in_one_pass_each_as_counted_alone(store, monkeypatch):
    """What Response performance shows of a period (% met per week and tier, over the period, per assignee and
    per client) is read in one query, and each part counts the decided targets as a query of it alone would."""
    as_of = parse_timestamp(AS_OF, HKT)
    first, last = (as_of - timedelta(days=60)).date(), as_of.date()
    snap = store.snapshot(as_of)
    passes = []
    monkeypatch.setattr(kb.reads.met, "met_share_sets_on",
                        lambda *a, **k: passes.append(a[4]) or met_share_sets_on(*a, **k))
    over_time = performance.met_per_period(store, snap, "week", "tier", first, last, TIERS)
    totals = performance.met_in_period(store, snap, first, last, TIERS)
    by_assignee = performance.met_by(store, snap, "first_response", "assignee", first, last, TIERS)
    by_client = performance.met_by(store, snap, "resolution", "client", first, last, TIERS)
    assert len(passes) == 1 and len(passes[0]) == 4
    start, end = day_bounds(store.config.calendar, first, last)
    with store.reader(snap, ("case_questions", "case_sla")) as cur:
        decided = cur.execute(f"SELECT * FROM ({decided_sql()}) WHERE due >= ? AND due < ?", [start, end]).fetchdf()
    assert not decided.empty and decided.state.isin(["met", "breached"]).all()
    counted = decided.groupby("metric").state.agg(met=lambda s: (s == "met").sum(), decided="size")
    assert totals.set_index("metric")[["met", "decided"]].to_dict() == counted.to_dict()
    assert over_time.groupby("metric").decided.sum().to_dict() == counted.decided.to_dict()
    assert set(over_time.tier) <= set(TIERS) and over_time.period.notna().all()
    first_responses = decided[decided.metric == "first_response"]
    assert by_assignee.decided.sum() == len(first_responses)
    assert by_client.decided.sum() == (decided.metric == "resolution").sum()


def test_shares_read_together_are_each_what_a_query_of_it_alone_gives(store):
    """Two shapes of the same keys are one set, each counted once; each part is ordered by its own keys."""
    as_of = parse_timestamp(AS_OF, HKT)
    start, end = as_of - timedelta(days=60), as_of + timedelta(days=1)
    shapes = ((("tier",), None), (("tier",), None), (("tier", "priority"), "week"), (("priority", "tier"), "week"))
    with store.reader(store.snapshot(as_of), ("case_questions", "case_sla")) as cur:
        together = met_share_sets_on(cur, store.config, start, end, shapes)
        alone = [met_share_sets_on(cur, store.config, start, end, [shape])[0] for shape in shapes]
    assert len(together[0]) > 0 and together[3].period.notna().all()
    for both, one in zip(together, alone, strict=True):
        pd.testing.assert_frame_equal(both, one)


def test_a_case_logged_keeps_what_was_read_of_decided_targets_uptime_and_tables_it_did_not_write(store,
                                                                                                 monkeypatch):
    """A write that touched only cases with no target decided before or after it (a case logged) leaves in the
    next snapshot what was read of the decided targets (the shares of targets met, their charts), of uptime, and
    of stored tables it did not write; what was read of the cases is read again, and holds the new case. A
    response that decides a target makes the shares be read again, and they count it."""
    as_of = parse_timestamp(AS_OF, HKT)
    start, end = as_of - timedelta(days=60), as_of + timedelta(days=30)
    first = store.snapshot(as_of)
    shares = met_shares(store, first, start, end, by=("tier",))
    sqls = {name: f"SELECT count(*) AS n FROM {name}" for name in ("env_uptime", "incidents", "case_sla", "cases")}
    before = {name: store.snapshot_query(sql, None, first).n[0] for name, sql in sqls.items()}
    shares_read, stored_read = [], []
    monkeypatch.setattr(kb.reads.met, "met_share_sets_on",
                        lambda *a, **k: shares_read.append(a) or met_share_sets_on(*a, **k))
    query = store.query
    monkeypatch.setattr(store, "query", lambda sql, *a, **k: stored_read.append(sql) or query(sql, *a, **k))
    new = store.write(writes.log_case, store.config, LEAD, {
        "client_id": "ENT", "category": "platform_issue", "subject": "Printer on fire", "requester": "ops@ent.example",
        "assignee": "", "received_at": "2026-11-25T14:00:00+08:00", "first_response_at": ""}).row_id
    after = store.snapshot(as_of)
    assert after.version > first.version
    assert met_shares(store, after, start, end, by=("tier",)).equals(shares) and shares_read == []
    now = {name: store.snapshot_query(sql, None, after).n[0] for name, sql in sqls.items()}
    assert now == {**before, "case_sla": before["case_sla"] + 1, "cases": before["cases"] + 1}
    assert stored_read == [sqls["case_sla"], sqls["cases"]]  # uptime and incidents: from the memo
    messages = store.snapshot_query("SELECT count(*) AS n FROM messages", None, after).n[0]
    store.write(writes.record_response, store.config, LEAD, new, local("2026-11-25 15:00"))
    later = store.snapshot(as_of)
    decided = met_shares(store, later, start, end, by=("tier",))
    assert len(shares_read) == 1 and decided.decided.sum() == shares.decided.sum() + 1
    # its audit row names the case alone; the team's message it stored is read all the same
    assert store.snapshot_query("SELECT count(*) AS n FROM messages", None, later).n[0] == messages + 1
    assert_as_computed(store, as_of)


def test_a_query_of_stored_tables_is_remembered_until_the_next_write(store):
    """A page drawn again reads its stored rows from the snapshot's memo; a write of this process, even one made
    while the page holds the same snapshot, is read at once; a table that changes without a write is not
    remembered at all."""
    snap = store.snapshot(parse_timestamp(AS_OF, HKT))
    sql = "SELECT client_id, name FROM clients ORDER BY client_id"
    first = store.snapshot_query(sql, None, snap)
    with store.reader() as cur:
        cur.execute("UPDATE clients SET name = 'Renamed by hand' WHERE client_id = 'ENT'")  # not a write of it
    assert store.snapshot_query(sql, None, snap).equals(first)  # drawn again: from the memo
    store.write(writes.log_case, store.config, LEAD, {"client_id": "ENT", "category": "api_help",
                                                      "subject": "Any", "received_at": "2026-11-25 10:00"})
    after = store.snapshot_query(sql, None, snap)  # the same snapshot, a later version
    assert "Renamed by hand" in after.name.tolist() and "Renamed by hand" not in first.name.tolist()
    with pytest.raises(ValueError, match="audit_log change without a new version"):
        store.snapshot_query("SELECT count(*) FROM audit_log", None, snap)


def test_a_write_that_commits_and_then_fails_is_read_at_once(store):
    """A write committing in parts (a mail batch) that fails after its first commit: what it committed is a
    new version, so a query remembered before does not hide it."""
    snap = store.snapshot(parse_timestamp(AS_OF, HKT))
    sql = "SELECT count(*) AS n FROM cases WHERE subject = 'Committed first'"
    assert store.snapshot_query(sql, None, snap).n[0] == 0

    def logs_then_fails(cur):
        writes.log_case(cur, store.config, LEAD, {"client_id": "ENT", "category": "api_help",
                                                  "subject": "Committed first", "received_at": "2026-11-25 10:00"})
        raise RuntimeError("after its first commit")

    with pytest.raises(RuntimeError):
        store.write(logs_then_fails)
    assert store.snapshot_query(sql, None, snap).n[0] == 1


def test_the_services_own_records_leave_the_snapshot_and_remembered_queries_as_they_are(store):
    """A job's run and a webhook's delivery recorded (``write(..., record_only=True)``) change nothing a page
    reads: the next page reads the same snapshot, every case still computed, and what it remembered."""
    from datetime import UTC, datetime

    from kb.health import record_delivery, record_end, record_start

    snap = store.snapshot()
    store.ready(snap)
    store.snapshot_query("SELECT count(*) AS n FROM clients", None, snap)
    started = datetime.now(UTC)
    store.write(record_start, "alerts", started, record_only=True)
    store.write(record_end, "alerts", started, datetime.now(UTC), None, "0 sent", record_only=True)
    store.write(record_delivery, "alertmanager", started, None, record_only=True)
    assert store.snapshot() is snap and "case_sla" in snap.tables
    assert [key[1] for key in snap.memo if key[0] == "query"] == ["SELECT count(*) AS n FROM clients"]
    assert store.query("SELECT count(*) AS n FROM job_runs").n[0] == 2  # written all the same


def test_a_monitoring_check_keeps_the_snapshots_tables_and_what_it_remembered(store):
    """A write that changes no snapshot table (a monitoring check, a monitor's heartbeat) is a new version, so
    stored rows are read again; the tables and the aggregates read from them alone stand."""
    snap = store.snapshot(parse_timestamp(AS_OF, HKT))
    store.ready(snap)
    drawn = []
    snap.remembered(("shares",), lambda: drawn.append(1) or pd.DataFrame({"n": [1]}))
    environment = store.query("SELECT min(environment_id) AS e FROM environments").e[0]
    store.write(writes.log_check, store.config, LEAD, environment, parse_timestamp(AS_OF, HKT), "looked")
    after = store.snapshot(parse_timestamp(AS_OF, HKT))
    assert after.version == store.version > snap.version and after.tables == snap.tables
    after.remembered(("shares",), lambda: drawn.append(2) or pd.DataFrame())
    assert drawn == [1]


def test_a_snapshot_lets_go_of_the_aggregates_read_least_recently_past_its_rows(monkeypatch):
    monkeypatch.setattr(kb.snapshot, "MEMO_ROWS", 10)
    snap = kb.snapshot.Snapshot(as_of=parse_timestamp(AS_OF, HKT), version=0, frozen=True)
    frame = pd.DataFrame({"n": range(4)})
    computed_now = []
    for key in ("a", "b", "a", "c"):  # "a" read again before "c" comes: "b" is the one let go
        snap.remembered((key,), lambda key=key: computed_now.append(key) or frame)
    assert computed_now == ["a", "b", "c"] and list(snap.memo) == [("a",), ("c",)]
    assert snap.remembered(("a",), lambda: pd.DataFrame()).equals(frame) and computed_now == ["a", "b", "c"]


def test_a_mail_batch_is_taken_in_by_the_cases_it_names(tmp_path, monkeypatch):
    from kb.mail.intake import take
    from kb.mail.messages import MailRecord, parse_message, support_matcher
    from kb.mail.sources import read_paths
    from kb.tools.mbox import write_mbox

    db, _ = build_gold_fixture(tmp_path)
    config = parse_config(tomllib.loads(SPEC_TOML + '[mail]\nsupport_addresses = ["support@knowru.example"]\n'))
    store = Store(db, config)
    try:
        as_of = parse_timestamp(AS_OF, HKT)
        with store.reader(store.snapshot(as_of)):
            pass
        built = []
        monkeypatch.setattr(kb.store, "computed", lambda *args: built.append(args) or computed(*args))
        mbox = tmp_path / "poll.mbox"
        write_mbox(mbox, config, messages=40, seed=7, until=as_of, days=2)
        team = support_matcher(config.mail.support_addresses, config.mail.trusted_authserv_ids)
        records = [parse_message(raw.data, team, mailbox="test", folder="INBOX", where=raw.where,
                                 from_line=raw.from_line, now=as_of) for raw in read_paths([mbox])]
        done = store.write(take, config, [r for r in records if isinstance(r, MailRecord)], LEAD,
                           source="a poll", now=as_of)
        assert done.cases_opened > 0 and done.taken > 0
        assert_as_computed(store, as_of)
        assert built == [], "a mail batch computed every case again"
    finally:
        store.close()


def test_every_write_moves_the_version_of_every_stored_table_it_changed(tmp_path):
    """A remembered query of stored tables is read again only once a write may have changed one of them
    (``Store._written_at``, from the tables the write's audit rows name): every kind of case write, a mail
    batch, a voided case and a monitoring check moves the version of each stored table it changed, whatever
    its audit rows name."""
    from kb.mail.intake import take
    from kb.mail.messages import MailRecord, parse_message, support_matcher
    from kb.mail.sources import read_paths
    from kb.tools.mbox import write_mbox

    db, _ = build_gold_fixture(tmp_path)
    config = parse_config(tomllib.loads(SPEC_TOML + '[mail]\nsupport_addresses = ["support@knowru.example"]\n'))
    store = Store(db, config)
    as_of = parse_timestamp(AS_OF, HKT)
    mbox = tmp_path / "poll.mbox"
    write_mbox(mbox, config, messages=40, seed=7, until=as_of, days=2)
    team = support_matcher(config.mail.support_addresses, config.mail.trusted_authserv_ids)
    mail = [r for r in (parse_message(raw.data, team, mailbox="test", folder="INBOX", where=raw.where,
                                      from_line=raw.from_line, now=as_of) for raw in read_paths([mbox]))
            if isinstance(r, MailRecord)]

    def contents() -> dict[str, tuple]:
        with store.reader() as cur:
            return {table: cur.execute(f"SELECT count(*), md5(string_agg(CAST(x AS VARCHAR), '|' ORDER BY "
                                       f"CAST(x AS VARCHAR))) FROM {table} AS x").fetchall()[0]
                    for table in sorted(kb.store.VERSIONED_TABLES & store._stored_tables)}

    try:
        new = store.write(writes.log_case, config, LEAD, {
            "client_id": "ENT", "category": "platform_issue", "subject": "Printer on fire",
            "requester": "ops@ent.example", "assignee": "", "received_at": "2026-11-25T14:00:00+08:00",
            "first_response_at": ""}).row_id
        environment = store.query("SELECT min(environment_id) AS e FROM environments").e[0]
        steps = [
            (writes.record_response, new, local("2026-11-25 15:00")),
            (pauses.pause_case, new, local("2026-11-25 15:10")),
            (pauses.resume_case, new, local("2026-11-25 15:40")),
            (corrections.correct_case, new, {"category": "api_help", "priority": "urgent"}),
            (writes.resolve_case, new, local("2026-11-25 16:10")),
            (corrections.void_case, "SLOW", "logged twice"),
            (writes.log_check, environment, as_of, "looked"),
        ]
        changed_by = {}
        for action, *args in steps:
            before = contents()
            store.write(action, config, LEAD, *args)
            after = contents()
            changed_by[action.__name__] = {table for table in before if before[table] != after[table]}
            for table in changed_by[action.__name__]:
                assert store._written_at([table]) == store.version, (action.__name__, table)
        before = contents()
        assert store.write(take, config, mail, LEAD, source="a poll", now=as_of).taken > 0
        after = contents()
        changed_by["take"] = {table for table in before if before[table] != after[table]}
        for table in changed_by["take"]:
            assert store._written_at([table]) == store.version, ("take", table)
        assert {"messages", "cases"} <= changed_by["take"] and "pauses" in changed_by["pause_case"]
        assert changed_by["log_check"] == {"monitoring_checks"}
    finally:
        store.close()


def test_a_snapshot_of_now_past_its_minute_is_served_while_the_next_is_computed(store):
    start = parse_timestamp(AS_OF, HKT)
    set_now(start)
    first = store.snapshot()
    store.query("SELECT count(*) FROM case_sla", snapshot=first)
    set_now(start + timedelta(minutes=2))
    assert store.snapshot() is first  # at once, while a thread computes the next
    deadline = time.monotonic() + 60
    while store.snapshot().as_of == start and time.monotonic() < deadline:
        time.sleep(0.05)
    second = store.snapshot()
    assert second.as_of == start + timedelta(minutes=2) and "case_sla" in second.tables
    set_now(start + timedelta(minutes=30))  # far past: made at once
    assert store.snapshot().as_of == start + timedelta(minutes=30)


def test_every_case_and_uptime_asked_for_together_are_computed_side_by_side(store, monkeypatch):
    as_of = parse_timestamp(AS_OF, HKT)
    apart, compute = [], Store._computed_apart

    def computed_apart(self, config, at, names, held):
        apart.append((threading.current_thread().name, tuple(names)))
        return compute(self, config, at, names, held)

    monkeypatch.setattr(Store, "_computed_apart", computed_apart)
    snap = store.snapshot(as_of)
    store.ready(snap, ("case_sla", "open_case_sla", "env_uptime", "contract_refunds"))
    assert [(name.startswith("uptime"), names) for name, names in apart] == [
        (True, ("env_uptime", "contract_refunds"))]
    assert set(snap.tables) == set(kb.snapshot.TABLES)
    assert_as_computed(store, as_of)
    later = store.snapshot(as_of + timedelta(hours=1))
    store.ready(later, ("env_uptime",))  # the uptime alone (the Uptime page): on the page's own cursor
    assert len(apart) == 1
    uptime = later.tables["env_uptime"]
    store.ready(later, ("case_sla", "open_case_sla", "env_uptime", "contract_refunds"))  # then the Overview
    assert apart[1][1] == ("contract_refunds",) and later.tables["env_uptime"] is uptime  # not computed again
