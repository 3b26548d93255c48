"""The service's background jobs: scheduled backups, one run at a time, failures recorded and retried,
a clean stop; the ``[backup]`` configuration; the Configuration page's "Background jobs"."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import kb.db.backup
import kb.store
from kb.background import NICENESS
from kb.config import ConfigError, load_config, parse_config
from kb.db import connection
from kb.db.backup import BackupError
from kb.mail.imap import MailboxError
from kb.service import jobs as service_jobs
from kb.service.backups import auto_backup_path, auto_backups, prune_backups, run_backup
from kb.service.jobs import (
    Job,
    Jobs,
    jobs_table,
    scheduled_jobs,
)
from kb.store import Store
from tests.fixtures import SPEC_TOML, add, open_page

BACKUP_TOML = SPEC_TOML + "\n[backup]\nevery_hours = 6\nkeep = 2\n"


@pytest.fixture
def store(tmp_path):
    config_file = tmp_path / "support.toml"
    config_file.write_text(BACKUP_TOML)
    config = load_config(config_file)
    store = Store(tmp_path / "db" / "support.duckdb", config)
    with store.transaction() as con:
        add(con, config, "clients", dict(client_id="ENT", name="Enterprise Co", tier="enterprise"))
    yield store
    if service_jobs.running() is not None:
        service_jobs.register(None)
    store.close()


def runs(store: Store, kind: str | None = None) -> list[tuple]:
    with store.reader() as cur:
        return cur.execute("SELECT kind, started_at, finished_at, error, detail FROM job_runs "
                           "WHERE ? IS NULL OR kind = ? ORDER BY started_at", [kind, kind]).fetchall()


def wait_for(condition, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# --- [backup] ---------------------------------------------------------------------------------------------

def test_backup_configuration():
    assert parse_config({}).backup.every_hours == 24 and parse_config({}).backup.keep == 7
    shipped = load_config(Path(__file__).resolve().parent.parent / "support.toml").backup
    assert (shipped.every_hours, shipped.keep) == (24, 7)
    config = parse_config(tomllib.loads("[backup]\nevery_hours = 0.5\nkeep = 30\n"))
    assert scheduled_jobs(config)[0].every == timedelta(minutes=30)
    assert scheduled_jobs(parse_config({"backup": {"every_hours": 0}}))[0].every is None  # off
    for bad, says in [({"every_hours": -1}, "backup.every_hours"), ({"every_hours": "daily"}, "backup.every_hours"),
                      ({"every_hours": float("inf")}, "backup.every_hours"), ({"every_hours": 9000}, "8760"),
                      ({"keep": 0}, "backup.keep"), ({"keep": "7"}, "backup.keep"), ({"kept": 3}, "backup.kept"),
                      ({"every_hours": 0.001}, "0.01")]:
        with pytest.raises(ConfigError, match=says.replace(".", r"\.")):
            parse_config({"backup": bad})
    with pytest.raises(ConfigError, match="backup"):
        parse_config({"backup": 24})


# --- Backups ----------------------------------------------------------------------------------------------

def test_scheduled_backup_beside_the_database_keeps_the_newest(store):
    folder = store.path.parent / "backups"
    by_hand = folder / f"{store.path.stem}-20200101T000000Z.duckdb"  # "Back up now": never pruned
    folder.mkdir()
    by_hand.write_bytes(b"")
    moments = [datetime(2026, 11, 25, h, tzinfo=UTC) for h in (1, 2, 3)]
    details = [run_backup(store, keep=2, now=m) for m in moments]
    assert "1 rows" in details[0] or "rows" in details[0]
    kept = auto_backups(store.path)
    assert [p.name for p in kept] == ["support-auto-20261125T020000Z.duckdb", "support-auto-20261125T030000Z.duckdb"]
    assert by_hand.exists()
    assert "removed 1 older" in details[2]
    backup = connection.connect(kept[-1], read_only=True)  # an ordinary support database
    try:
        assert backup.execute("SELECT client_id FROM clients").fetchall() == [("ENT",)]
    finally:
        backup.close()
    # the same second twice: a second file, not a failure
    again = auto_backup_path(store.path, moments[2])
    assert again.name == "support-auto-20261125T030000Z-2.duckdb"
    assert prune_backups(store.path, 1) == kept[:1]


# --- Running jobs -----------------------------------------------------------------------------------------

def test_runs_on_schedule_never_overlapping_itself(store):
    active, most, calls = [0], [0], []
    lock = threading.Lock()

    def work(s):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.15)  # longer than the interval: the next run waits for this one
        with lock:
            active[0] -= 1
        calls.append(1)
        return f"run {len(calls)}"

    jobs = Jobs(store, [Job("tick", "Tick", timedelta(seconds=0.05), work)], start_delay=0)
    jobs.start()
    try:
        wait_for(lambda: len(calls) >= 3, what="three runs")
        # a run asked for by hand while the scheduled one is under way is refused, not run beside it
        wait_for(lambda: jobs._locks["tick"].locked(), what="a run under way")
        assert jobs.run_now("tick") is None
    finally:
        jobs.stop()
    assert most[0] == 1
    rows = runs(store, "tick")
    assert len(rows) == len(calls) and all(r[2] is not None and r[3] is None for r in rows)
    assert [r[4] for r in rows][:2] == ["run 1", "run 2"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a priority per thread is Linux's")
def test_a_backup_behind_an_import_copies_the_rows_at_a_lower_cpu_priority_and_its_caller_keeps_its_own(
        store, tmp_path, monkeypatch):
    """While an import holds the write lock, a backup does not wait for it: after ``QUIET_WAIT_SECONDS`` it
    copies the rows, yielding the cores to the threads serving pages and writes (``kb.background``): on a
    thread NICENESS above the caller's; the caller (a job's thread, which takes the store's locks) and the
    threads it starts afterwards keep the caller's priority."""
    ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    copying = []
    real = kb.db.backup._rows_copied
    monkeypatch.setattr(kb.db.backup, "_rows_copied", lambda *a: copying.append(
        os.getpriority(os.PRIO_PROCESS, threading.get_native_id())) or real(*a))
    monkeypatch.setattr(kb.store, "QUIET_WAIT_SECONDS", 0.2)
    with store._writing("an import"):
        counts = store.backup(tmp_path / "copy.duckdb")
    assert copying == [min(19, ours + NICENESS)] and (tmp_path / "copy.duckdb").exists() and "cases" in counts
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == ours
    started = []
    after = threading.Thread(target=lambda: started.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    after.start()
    after.join()
    assert started == [ours]


def test_a_backup_copies_the_checkpointed_file_byte_for_byte_and_the_store_keeps_it(store, tmp_path, monkeypatch):
    """With nothing else writing, a backup is the database's file, checkpointed, copied while the store holds
    the write lock: the same bytes, and no row copied one by one. The store still holds the file afterwards:
    another process cannot open it (the copy is made apart, as closing a descriptor of the file in this process
    would drop DuckDB's lock on it). Files compared and opened by other processes, for the same reason."""
    copying = []
    monkeypatch.setattr(kb.db.backup, "_rows_copied", lambda *a: copying.append(a))
    with store.transaction() as con:
        add(con, store.config, "clients", dict(client_id="C2", name="Cobalt", tier="enterprise"))
    counts = store.backup(tmp_path / "copy.duckdb")
    assert copying == [] and counts["clients"] == 2
    assert subprocess.run(["cmp", "--", str(tmp_path / "copy.duckdb"), str(store.path)]).returncode == 0
    opened = subprocess.run([sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1], read_only=True)",
                             str(store.path)], capture_output=True, text=True)
    assert opened.returncode != 0 and "lock" in opened.stderr.lower(), opened.stderr


def test_a_backup_whose_file_copy_fails_copies_the_rows(store, tmp_path, monkeypatch, caplog):
    """``cp`` refusing (another system's ``cp``, or none): the backup is made all the same, from the rows, and
    the log says why."""
    copying = []
    real = kb.db.backup._rows_copied
    monkeypatch.setattr(kb.db.backup, "_rows_copied", lambda *a: copying.append(a) or real(*a))
    monkeypatch.setattr(kb.db.backup.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a[0], 1, "", "cp: unrecognized option '--reflink=auto'"))
    with caplog.at_level(logging.WARNING, logger="kb.db.backup"):
        counts = store.backup(tmp_path / "copy.duckdb")
    assert len(copying) == 1 and counts["clients"] == 1 and (tmp_path / "copy.duckdb").exists()
    assert "unrecognized option" in caplog.text and "copying its rows" in caplog.text


def test_a_backup_onto_a_full_disk_says_so_and_leaves_nothing(store, tmp_path, monkeypatch):
    monkeypatch.setattr(kb.db.backup.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a[0], 1, "", f"cp: error writing '{a[0][-1]}': No space left on device"))
    with pytest.raises(BackupError, match="is full") as refused:
        store.backup(tmp_path / "copy.duckdb")
    assert "No backup" in str(refused.value) and not (tmp_path / "copy.duckdb").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".copy.duckdb")] == []  # nor its temporary


def test_a_failure_is_logged_recorded_and_retried_at_the_next_run(store, caplog):
    attempts = []

    def flaky(s):
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("disk full")
        return "fine"

    jobs = Jobs(store, [Job("flaky", "Flaky", timedelta(seconds=0.3), flaky)], start_delay=0)
    with caplog.at_level(logging.ERROR, logger="kb.service.jobs"):
        jobs.start()
        try:
            wait_for(lambda: len(runs(store, "flaky")) >= 2 and runs(store, "flaky")[1][2] is not None,
                     what="the retry")
        finally:
            jobs.stop()
    assert "disk full" in caplog.text and "Traceback" in caplog.text
    first, second = runs(store, "flaky")[:2]
    assert first[3] == "OSError: disk full" and second[3] is None
    assert second[1] - first[1] >= timedelta(seconds=0.3)  # retried at the next run, not at once
    [status] = jobs.status()
    assert status.last_error is None and status.last_detail == "fine"
    assert status.last_failure == first[1] and status.last_failure_error == "OSError: disk full"


def test_status_and_the_schedule_survive_a_restart(store):
    clock = [datetime(2026, 11, 25, 12, 0, tzinfo=UTC)]
    ran = []
    job = Job("backup", "Scheduled backup", timedelta(hours=6), lambda s: ran.append(1) or "ok")
    jobs = Jobs(store, [job], start_delay=30, clock=lambda: clock[0])
    [status] = jobs.status()
    assert status.last_started is None and status.next_run is None  # not started: nothing scheduled
    jobs.start()
    try:
        [status] = jobs.status()
        assert status.next_run == clock[0] + timedelta(seconds=30)  # never run: due just after the start
        assert jobs.run_now("backup") is True
        [status] = jobs.status()
        assert (status.last_started, status.last_error, status.next_run) == (
            clock[0], None, clock[0] + timedelta(hours=6))
    finally:
        jobs.stop()
    # the next process starts an hour later: due five hours on, not at its start
    clock[0] += timedelta(hours=1)
    later = Jobs(store, [job], start_delay=30, clock=lambda: clock[0])
    later.start()
    try:
        time.sleep(0.2)
        [status] = later.status()
        assert status.next_run == datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
        assert len(ran) == 1
    finally:
        later.stop()


def test_the_backup_job_of_the_configuration(store):
    jobs = Jobs(store, start_delay=0)
    assert [j.kind for j in jobs.jobs] == ["backup", "alerts", "statements", "mail"]
    assert jobs.jobs[0].every == timedelta(hours=6)
    assert all(j.every is None for j in jobs.jobs[1:])  # no [alerts], no [mail] mailboxes in this configuration
    jobs.start()
    try:
        wait_for(lambda: runs(store, "backup") and runs(store, "backup")[0][2] is not None, what="the backup")
    finally:
        jobs.stop()
    [(kind, started, finished, error, detail)] = runs(store, "backup")
    assert error is None and detail.startswith("support-auto-") and len(auto_backups(store.path)) == 1


def test_each_mailbox_is_a_job_of_its_own(tmp_path):
    config = parse_config(tomllib.loads(BACKUP_TOML + """
[mail]
support_addresses = ["@support.example"]
poll_seconds = 120
[[mail.mailboxes]]
name = "support"
url = "imap://127.0.0.1:1"
user = "support"
password_env = "KB_TEST_UNSET_SUPPORT"
[[mail.mailboxes]]
name = "sales"
url = "imap://127.0.0.1:1"
user = "sales"
password_env = "KB_TEST_UNSET_SALES"
"""))
    mail = scheduled_jobs(config)[3:]
    assert [(j.kind, j.title, j.every) for j in mail] == [
        ("mail:support", "Mail polling: support", timedelta(minutes=2)),
        ("mail:sales", "Mail polling: sales", timedelta(minutes=2))]
    store = Store(tmp_path / "s.duckdb", config)
    try:
        with pytest.raises(MailboxError) as failed:
            mail[1].run(store)  # polls its own mailbox only
        assert "sales:" in str(failed.value) and "support" not in str(failed.value)
    finally:
        store.close()


def test_stop_lets_the_write_in_progress_finish_then_checkpoints(store):
    jobs = Jobs(store, [Job("slow", "Slow", timedelta(hours=1), lambda s: "ok")], start_delay=3600)
    jobs.start()
    writing, done = threading.Event(), threading.Event()

    def a_form_write():
        with store.transaction() as con:
            writing.set()
            time.sleep(0.5)
            add(con, store.config, "clients", dict(client_id="LATE", name="Late Co", tier="free"))
        done.set()

    writer = threading.Thread(target=a_form_write)
    writer.start()
    writing.wait(5)
    jobs.stop()
    assert done.is_set()  # stop() waited for it
    writer.join()
    assert service_jobs.running() is None
    wal = Path(f"{store.path}.wal")
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed: nothing left to replay
    assert store.query("SELECT count(*) AS n FROM clients WHERE client_id = 'LATE'")["n"][0] == 1
    jobs.stop()  # twice is harmless


def test_an_unwritable_backup_folder_is_a_recorded_failure(store):
    (store.path.parent / "backups").write_text("a file where the folder should be")
    jobs = Jobs(store, start_delay=0)
    assert jobs.run_now("backup") is False
    [(kind, started, finished, error, detail)] = runs(store, "backup")
    assert finished is not None and "BackupError" in error and detail is None


# --- The Configuration page -------------------------------------------------------------------------------

def test_background_jobs_read_for_the_page(store):
    table, here = jobs_table(store)
    assert not here and table.to_dict("records")[0] == {
        "job": "Scheduled backup", "every": "6 h", "last run": "—", "result": "never run", "next run": "",
        "last error": ""}
    assert table.job.tolist() == ["Scheduled backup", "Alerts", "Monthly statements", "Mail polling"]
    assert table.every.tolist()[1:] == ["off", "off", "off"]
    jobs = Jobs(store, clock=lambda: datetime(2026, 11, 25, 1, 0, tzinfo=UTC))
    jobs.start()
    try:
        (store.path.parent / "backups").write_text("not a folder")
        jobs.run_now("backup")
        table, here = jobs_table(store)
    finally:
        jobs.stop()
    row = table.to_dict("records")[0]
    assert here
    assert row["last run"] == "Wed 2026-11-25 09:00 HKT (UTC+08:00)"
    assert row["next run"] == "Wed 2026-11-25 15:00 HKT (UTC+08:00)"
    assert row["result"].startswith("failed: BackupError")
    assert row["last error"].startswith("Wed 2026-11-25 09:00 HKT (UTC+08:00): BackupError")


def test_configuration_page_shows_background_jobs(app):
    at, _ = app
    open_page(at, "configuration")
    assert "Background jobs" in [h.value for h in at.subheader]
    frame = next(d.value for d in at.dataframe if "next run" in d.value.columns)
    assert frame["job"].tolist() == ["Scheduled backup", "Alerts", "Monthly statements", "Mail polling"]
    assert any("streamlit run dashboard.py" in c.value for c in at.caption)
