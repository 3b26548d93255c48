"""Every case's rows kept beside the database (``kb.kept``): a process opening them gets what computing every
case would give, or computes every case when they cannot say so."""

from __future__ import annotations

import os
import shutil
import threading
import tomllib
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pytest

import kb.kept
import kb.snapshot
import kb.store
from kb.access import Actor
from kb.config import load_config, parse_config
from kb.intake import corrections, pauses, writes
from kb.intake.importing import staged_from_records, update_row
from kb.intake.policies import set_contract_policy
from kb.kept import KEPT_TABLES, kept_as_of, kept_folder, opened
from kb.snapshot import computed
from kb.store import Store
from kb.timestamps import parse_timestamp, set_now
from tests.fixtures import AS_OF, HKT, build_gold_fixture

LEAD = Actor("lead@example.com", "admin")
KEYS = {"case_questions": ["case_id", "asked_at"], "case_sla": ["case_id"]}
T1 = parse_timestamp(AS_OF, HKT)


@pytest.fixture
def gold(tmp_path, monkeypatch):
    """The gold store, with one audited write, and its case rows kept at T1 by a process that has closed."""
    monkeypatch.setattr(kb.snapshot, "MOST_MOVING", 1.0)  # most of this small store moves: still take it in
    db, config_file = build_gold_fixture(tmp_path)
    set_now(T1)
    store = Store(db, load_config(config_file))
    store.write(writes.assign_case, store.config, LEAD, "FIXED", None)  # the audit trail's first row
    every_case(store)
    store.close()
    yield db, config_file
    set_now(None)


def log_case(store: Store, received) -> str:
    fields = {"client_id": "ENT", "category": "platform_issue", "subject": "Logged by a later process",
              "requester": "ops@ent.example", "assignee": "", "first_response_at": "", "received_at": received}
    return store.write(writes.log_case, store.config, LEAD, fields).row_id


def rows(table: pa.Table, name: str) -> list[dict]:
    return table.sort_by([(key, "ascending") for key in KEYS[name]]).to_pylist()


def assert_as_computed(tables: dict[str, pa.Table], store: Store, as_of) -> None:
    with store.reader() as cur:
        fresh = computed(cur, store.config, as_of, ["case_sla"])
    for name in KEPT_TABLES:
        assert tables[name].schema == fresh[name].schema, name
        assert rows(tables[name], name) == rows(fresh[name], name), name


def every_case(store: Store, snap=None):
    """``snap`` (else the snapshot of now) with every case's rows, computed or opened."""
    snap = snap or store.snapshot()
    with store.reader(snap, ["case_sla"]):
        pass
    return snap


def kept_opened(store: Store, as_of):
    with store.reader() as cur:
        return opened(cur, store.config, kept_folder(store.path), as_of)


def test_a_process_computing_every_case_keeps_them_and_the_next_opens_them(gold, monkeypatch):
    db, config_file = gold
    assert kept_as_of(kept_folder(db)) == T1
    later = T1 + timedelta(hours=3)
    set_now(later)
    store = Store(db, load_config(config_file))  # a later process writes, then a third opens
    new = log_case(store, (T1 + timedelta(hours=1)).isoformat())
    store.write(writes.record_response, store.config, LEAD, new, T1 + timedelta(hours=2))
    store.write(pauses.pause_case, store.config, LEAD, "PENDING", T1 + timedelta(minutes=10))
    store.write(writes.record_response, store.config, LEAD, "MET", T1 + timedelta(minutes=20))  # its question
    store.write(corrections.void_case, store.config, LEAD, "SLOW", "logged twice")  # settled at T1, now gone
    store.close()
    store = Store(db, load_config(config_file))
    served = []
    monkeypatch.setattr(kb.store, "opened", lambda *args: served.append(opened(*args)) or served[-1])
    monkeypatch.setattr(kb.snapshot, "MOST_CASES", 1)  # (a bound on the cases of edited clients and policies)
    snap = every_case(store)
    assert served[0] is not None and served[0]["case_sla"] is snap.tables["case_sla"], "not opened from the kept"
    assert "SLOW" not in snap.tables["case_sla"]["case_id"].to_pylist()
    assert_as_computed(snap.tables, store, later)
    assert kept_as_of(kept_folder(db)) == T1  # opened, not written again
    store.close()


@pytest.mark.parametrize("change", ["rules", "code", "import", "earlier", "restored", "late commit", "half pair"])
def test_kept_rows_that_cannot_say_what_computing_would_are_not_used(gold, tmp_path, change, monkeypatch):
    db, config_file = gold
    config = load_config(config_file)
    as_of = T1 + timedelta(hours=1)
    before = tmp_path / "before.duckdb"
    shutil.copyfile(db, before)
    if change == "rules":  # business hours from 08:00
        raw = tomllib.loads(config_file.read_text())
        raw["calendar"]["business_hours"] = ["08:00", "18:00"]
        config = parse_config(raw)
    elif change == "code":
        monkeypatch.setattr(kb.kept, "CODE", "another version of kb")
    elif change == "import":  # rows that name no row: every case computed again
        store = Store(db, config)
        with store.transaction() as cur:
            cur.execute("UPDATE clients SET tier = 'custom' WHERE client_id = 'ENT'")
            cur.execute("INSERT INTO audit_log (logged_at, actor, action, table_name, row_id) "
                        "VALUES (now(), 'lead@example.com', 'import', 'clients', NULL)")
        store.close()
    elif change == "earlier":
        as_of = T1 - timedelta(minutes=1)
    elif change == "restored":  # a backup taken before the last write the rows saw
        con = kb.store.connection.connect(before)
        con.execute("DELETE FROM audit_log WHERE audit_id = (SELECT max(audit_id) FROM audit_log)")
        con.close()
        shutil.copyfile(before, db)
    elif change == "late commit":  # a row committed below the mark since (an import's, committed late)
        store = Store(db, config)
        with store.transaction() as cur:
            cur.execute("INSERT INTO audit_log (audit_id, logged_at, actor, action, table_name, row_id) "
                        "VALUES (0, now(), 'lead@example.com', 'import', 'cases', NULL)")
        store.close()
    elif change == "half pair":  # one file of another writing
        path = kept_folder(db) / "case_sla.arrow"
        with pa.memory_map(str(path)) as source:
            table = ipc.open_file(source).read_all()
        metadata = dict(table.schema.metadata)
        metadata[kb.kept.ABOUT] = metadata[kb.kept.ABOUT].replace(b'"token": "', b'"token": "x')
        table = table.replace_schema_metadata(metadata)
        with pa.OSFile(str(tmp_path / "other.arrow"), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(tmp_path / "other.arrow", path)  # as kb.kept writes (a mapped file is never rewritten)
    set_now(as_of)
    store = Store(db, config)
    assert kept_opened(store, as_of) is None
    assert_as_computed(every_case(store).tables, store, as_of)
    store.close()


def test_a_client_edited_and_its_contract_given_no_policy_since_open_the_kept_rows(gold):
    db, config_file = gold
    later = T1 + timedelta(hours=1)
    set_now(later)
    store = Store(db, load_config(config_file))
    store.write(set_contract_policy, store.config, LEAD, "K1", None)  # ENT's cases back on the tier's targets
    store.write(update_row, store.config, staged_from_records("clients", [{
        "client_id": "ENT", "name": "Enterprise Co", "tier": "custom"}]), LEAD, permission="edit_clients")
    store.close()
    store = Store(db, load_config(config_file))
    tables = kept_opened(store, later)
    assert tables is not None, "an edit of one client's rules made every case computed again"
    assert_as_computed(tables, store, later)
    met = tables["case_sla"].filter(pc.equal(tables["case_sla"]["case_id"], "MET")).to_pylist()[0]
    assert (met["tier"], met["policy_id"]) == ("custom", "custom")
    store.close()


def test_a_process_computing_every_case_again_keeps_them_anew(gold):
    db, config_file = gold
    later = T1 + timedelta(days=2)
    set_now(later)
    store = Store(db, load_config(config_file))
    with store.transaction() as cur:  # clients imported: every case computed again, and kept as of then
        cur.execute("INSERT INTO audit_log (logged_at, actor, action, table_name, row_id) "
                    "VALUES (now(), 'lead@example.com', 'import', 'clients', NULL)")
    store.close()
    store = Store(db, load_config(config_file))
    every_case(store)
    store.close()  # once the rows are kept (in the background)
    assert kept_as_of(kept_folder(db)) == later
    store = Store(db, load_config(config_file))
    assert_as_computed(kept_opened(store, later), store, later)
    store.close()


def mapped_kept_files(db) -> list[str]:
    """The mappings of this process of the kept files of ``db`` (``/proc/self/maps``)."""
    folder = str(kept_folder(db))
    return [line for line in open("/proc/self/maps", encoding="utf-8").read().splitlines() if folder in line]


def test_rows_kept_once_are_mapped_once_by_a_process_however_often_it_opens_them(gold):
    db, config_file = gold
    store = Store(db, load_config(config_file))
    first = kept_opened(store, T1)
    store.close()
    store = Store(db, load_config(config_file))  # a store opened again in the same process (the bench's pages)
    again = kept_opened(store, T1)
    assert again["case_sla"].column("case_id").chunk(0).buffers()[2].address == \
        first["case_sla"].column("case_id").chunk(0).buffers()[2].address
    assert len({line.split()[0] for line in mapped_kept_files(db) if line.endswith("case_sla.arrow")}) == 1
    store.close()
    later = T1 + timedelta(days=2)  # the rows kept anew: read from their new files
    set_now(later)
    store = Store(db, load_config(config_file))
    with store.transaction() as cur:
        cur.execute("INSERT INTO audit_log (logged_at, actor, action, table_name, row_id) "
                    "VALUES (now(), 'lead@example.com', 'import', 'clients', NULL)")
    every_case(store)
    store.close()
    store = Store(db, load_config(config_file))
    assert_as_computed(kept_opened(store, later), store, later)
    store.close()


def test_a_snapshot_of_an_instant_before_the_kept_rows_computes_them(gold):
    db, config_file = gold
    store = Store(db, load_config(config_file))
    earlier = T1 - timedelta(days=1)
    assert_as_computed(every_case(store, store.snapshot(earlier)).tables, store, earlier)
    assert kept_as_of(kept_folder(db)) == T1  # a frozen instant is never kept
    store.close()


def test_the_questions_read_first_open_the_kept_rows(gold):
    db, config_file = gold
    later = T1 + timedelta(hours=1)
    set_now(later)
    store = Store(db, load_config(config_file))
    snap = store.snapshot()
    store.query("SELECT count(*) FROM case_questions", snapshot=snap)  # as /metrics reads: the questions first
    assert set(snap.tables) == {"case_questions", "case_sla"}
    store.query("SELECT count(*) FROM case_sla", snapshot=snap)
    assert_as_computed(snap.tables, store, later)
    store.close()
    assert kept_as_of(kept_folder(db)) == T1  # opened, not computed whole and kept again


def test_a_write_committed_while_every_case_is_computed_is_computed_again_on_opening(gold, monkeypatch):
    db, config_file = gold
    later = T1 + timedelta(days=2)
    set_now(later)
    store = Store(db, load_config(config_file))
    with store.transaction() as cur:  # a client edited: the next read computes every case
        cur.execute("INSERT INTO audit_log (logged_at, actor, action, table_name, row_id) "
                    "VALUES (now(), 'lead@example.com', 'update', 'clients', 'ENT')")
    written = []

    def computed_then_a_write(*args):  # a form's write commits after the rows were read, before they are kept
        tables = computed(*args)
        if not written:
            written.append(log_case(store, (later - timedelta(hours=1)).isoformat()))
        return tables
    monkeypatch.setattr(kb.store, "computed", computed_then_a_write)
    rows = every_case(store).tables["case_sla"]["case_id"].to_pylist()
    assert written and written[0] not in rows
    store.close()
    monkeypatch.setattr(kb.store, "computed", computed)
    served = []
    monkeypatch.setattr(kb.store, "opened", lambda *args: served.append(opened(*args)) or served[-1])
    store = Store(db, load_config(config_file))
    snap = every_case(store)
    assert served[0] is not None, "the rows kept were not opened"
    assert written[0] in snap.tables["case_sla"]["case_id"].to_pylist()
    assert_as_computed(snap.tables, store, later)
    store.close()


def test_rows_kept_for_a_page_are_written_whole_by_a_stopping_process(gold):
    """A page's script runs in a daemon thread, whose threads are daemons unless told: the interpreter would stop
    them half-way through the files when the process stops."""
    db, config_file = gold
    later = T1 + timedelta(days=2)
    set_now(later)
    store = Store(db, load_config(config_file))
    with store.transaction() as cur:  # every case computed again, then kept
        cur.execute("INSERT INTO audit_log (logged_at, actor, action, table_name, row_id) "
                    "VALUES (now(), 'lead@example.com', 'import', 'cases', NULL)")
    page = threading.Thread(target=every_case, args=(store,), daemon=True)
    page.start()
    page.join()
    assert [thread.daemon for thread in store._keeping] == [False]
    store.close()
    assert kept_as_of(kept_folder(db)) == later

