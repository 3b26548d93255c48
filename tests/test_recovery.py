"""Crash safety and recovery: an import killed at any moment, and backups taken and brought back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kb.access import command_line_actor
from kb.cli import main
from kb.config import load_config
from kb.db import backup, connection
from kb.intake.importing import staged_from_csv
from kb.store import Store
from tests.fixtures import SPEC_TOML, build_fixture, button, open_page, shown, table_counts

ROOT = Path(__file__).resolve().parent.parent
BIG = 300_000  # rows in each killed import: about 4 s of work, most of it reading and checking

TOML = """
[calendar]
timezone = "Asia/Hong_Kong"
holidays_country = "HK"
"""

CLIENTS_CSV = "client_id,name,tier\nENT,Enterprise Co,enterprise\nFREE,Free User,free\n"
EARLIER_CSV = """case_id,client_id,received_at,category,subject,first_response_at
EARLY-1,ENT,2026-11-20 15:00,platform_issue,Gateway down,2026-11-20 16:00
EARLY-2,ENT,2026-11-23 09:00,api_help,Versioning,
EARLY-3,FREE,2026-11-24 07:00,general_coding,Regex,
EARLY-4,FREE,2026-11-22 10:00,api_help,"Quotes ""and"", commas",
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "support.toml").write_text(TOML)
    (tmp_path / "clients.csv").write_text(CLIENTS_CSV)
    (tmp_path / "earlier.csv").write_text(EARLIER_CSV)
    return tmp_path


def kb(files, *args, db="s.duckdb") -> int:
    return main([*args, "--db", str(files / db), "--config", str(files / "support.toml")])


def write_cases(path: Path, prefix: str, rows: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("case_id,client_id,received_at,category,subject,first_response_at\n")
        f.writelines(
            f"{prefix}{i:07d},{'ENT' if i % 3 else 'FREE'},2025-{1 + i % 12:02d}-{1 + i % 28:02d} "
            f"{9 + i % 9:02d}:{i % 60:02d},api_help,Subject {i} of {prefix},\n"
            for i in range(rows)
        )


def state(db: Path) -> dict:
    """Everything that must survive: the earlier rows as they were, and the count per import prefix."""
    con = connection.connect(db, read_only=True)
    try:
        return {
            "clients": con.execute("SELECT * FROM clients ORDER BY client_id").fetchall(),
            "earlier": con.execute("SELECT * FROM cases WHERE case_id LIKE 'EARLY-%' ORDER BY case_id").fetchall(),
            "by_prefix": dict(con.execute(
                "SELECT split_part(case_id, '-', 1), count(*) FROM cases WHERE case_id NOT LIKE 'EARLY-%' "
                "GROUP BY ALL").fetchall()),
            "imports": dict(con.execute(
                "SELECT split_part(after->>'first_id', '-', 1), count(*) FROM audit_log "
                "WHERE action = 'import' AND table_name = 'cases' GROUP BY ALL").fetchall()),
            # Reading every row makes DuckDB check every block it reads.
            "scan": con.execute("SELECT count(*), count(DISTINCT case_id), max(subject), min(received_at) "
                                "FROM cases").fetchall(),
        }
    finally:
        con.close()


def start_import(files: Path, csv_file: Path) -> tuple[subprocess.Popen, Path]:
    out = csv_file.with_suffix(".out")
    with open(out, "wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "kb", "import", "cases", str(csv_file), "--db", str(files / "s.duckdb"),
             "--config", str(files / "support.toml")],
            cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    return process, out


def wait_for(process: subprocess.Popen, condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while process.poll() is None and not condition() and time.monotonic() < deadline:
        time.sleep(0.002)


def test_an_import_killed_at_any_moment_leaves_all_or_none_of_its_rows(files):
    db = files / "s.duckdb"
    wal = Path(f"{db}.wal")
    assert kb(files, "import", "clients", str(files / "clients.csv")) == 0
    assert kb(files, "import", "cases", str(files / "earlier.csv")) == 0
    before = state(db)
    assert len(before["earlier"]) == 4

    size = db.stat().st_size

    def after(seconds):
        started = time.monotonic()
        return lambda: time.monotonic() - started >= seconds

    # When to send SIGKILL: while the file is read and parsed, while the rows are checked, while they are
    # written (the file grows before the commit), at the commit (the write-ahead log appears), and while
    # the commit is checkpointed into the file on the way out.
    moments = {
        "K1": ("reading", lambda _out: after(0.5)),
        "K2": ("checking", lambda _out: after(2.0)),
        "K3": ("writing", lambda _out: lambda: db.stat().st_size != size),
        "K4": ("committing", lambda _out: wal.exists),
        "K5": ("checkpointing", lambda out: lambda: b"imported" in out.read_bytes()),
    }
    killed = []
    committed = []
    for prefix, (_phase, trigger) in moments.items():
        csv_file = files / f"{prefix}.csv"
        write_cases(csv_file, f"{prefix}-", BIG)
        size = db.stat().st_size
        process, out = start_import(files, csv_file)
        wait_for(process, trigger(out))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed.append(prefix)
        process.wait(timeout=30)

        now = state(db)  # opens: the database survived
        assert now["clients"] == before["clients"]
        assert now["earlier"] == before["earlier"]
        rows = now["by_prefix"].get(prefix, 0)
        assert rows in (0, BIG), f"{prefix}: {rows} of {BIG} rows after SIGKILL"
        assert now["imports"].get(prefix, 0) == (1 if rows else 0)  # the audit row commits with the rows
        if rows:
            committed.append(prefix)
        assert now["by_prefix"] == {p: BIG for p in committed}
        assert now["scan"][0][0] == now["scan"][0][1] == 4 + BIG * len(committed)
    assert len(killed) >= 3, f"only {killed} were killed before they finished"

    # And the file still takes a whole import afterwards.
    write_cases(files / "last.csv", "LAST-", 1000)
    assert kb(files, "import", "cases", str(files / "last.csv")) == 0
    final = state(db)
    assert final["earlier"] == before["earlier"]
    assert final["by_prefix"] == {**{p: BIG for p in committed}, "LAST": 1000}


def case_sla(files, capsys, db: str) -> str:
    capsys.readouterr()
    assert kb(files, "export", "case-sla", "--as-of", "2026-12-01T12:00:00+08:00", db=db) == 0
    return capsys.readouterr().out


def test_backup_and_restore_round_trip_through_the_command_line(files, capsys):
    assert kb(files, "import", "clients", str(files / "clients.csv")) == 0
    assert kb(files, "import", "cases", str(files / "earlier.csv")) == 0
    report = case_sla(files, capsys, "s.duckdb")
    assert kb(files, "backup", str(files / "b" / "one.duckdb")) == 0
    assert "4 cases" in capsys.readouterr().out
    assert kb(files, "backup", str(files / "b" / "one.duckdb")) == 1  # never over an existing file
    assert "exists" in capsys.readouterr().err

    # The backup is a support database as it is.
    assert case_sla(files, capsys, "b/one.duckdb") == report

    # Later work, then a restore: refused over rows, done with --replace, the old file kept.
    write_cases(files / "later.csv", "LATER-", 10)
    assert kb(files, "import", "cases", str(files / "later.csv")) == 0
    assert kb(files, "restore", str(files / "b" / "one.duckdb")) == 1
    assert "--replace" in capsys.readouterr().err
    assert state(files / "s.duckdb")["by_prefix"] == {"LATER": 10}
    assert kb(files, "restore", str(files / "b" / "one.duckdb"), "--replace") == 0
    out = capsys.readouterr().out
    assert "restored" in out and "kept as" in out
    assert case_sla(files, capsys, "s.duckdb") == report
    restored = state(files / "s.duckdb")
    assert restored["by_prefix"] == {} and len(restored["earlier"]) == 4
    kept = [p for p in files.iterdir() if p.name.startswith("s.duckdb.before-restore-")]
    assert len(kept) == 1 and state(kept[0])["by_prefix"] == {"LATER": 10}

    # The restored file takes writes, the audit sequence included.
    write_cases(files / "after.csv", "AFTER-", 3)
    assert kb(files, "import", "cases", str(files / "after.csv")) == 0
    assert state(files / "s.duckdb")["imports"] == {"EARLY": 1, "AFTER": 1}

    # Into a new path, no --replace needed; no stray temporary files anywhere.
    assert kb(files, "restore", str(files / "b" / "one.duckdb"), db="fresh/new.duckdb") == 0
    assert case_sla(files, capsys, "fresh/new.duckdb") == report
    assert not [p for p in files.rglob("*.tmp*")]


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(os.urandom(4096)), "not a DuckDB database file"),
    (lambda p: p.write_bytes(b""), "empty file"),
])
def test_restore_refuses_a_backup_that_is_not_one(files, capsys, make, message):
    kb(files, "import", "clients", str(files / "clients.csv"))
    bad = files / "bad.duckdb"
    make(bad)
    capsys.readouterr()
    assert kb(files, "restore", str(bad), "--replace") == 1
    assert message in capsys.readouterr().err
    assert state(files / "s.duckdb")["clients"]  # untouched
    assert not [p for p in files.iterdir() if "before-restore" in p.name or p.name.endswith(".tmp")]


def test_backup_while_the_dashboard_holds_the_file(files, tmp_path):
    assert kb(files, "import", "clients", str(files / "clients.csv")) == 0
    assert kb(files, "import", "cases", str(files / "earlier.csv")) == 0
    held = Store(files / "s.duckdb", load_config(files / "support.toml"))  # as the dashboard process does
    try:
        # The command line cannot open the file, and says what to do instead.
        result = subprocess.run(
            [sys.executable, "-m", "kb", "backup", str(files / "cli.duckdb"), "--db", str(files / "s.duckdb"),
             "--config", str(files / "support.toml")], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert "held by another process" in result.stderr and "Import and export page" in result.stderr
        assert "Traceback" not in result.stderr
        assert not (files / "cli.duckdb").exists()

        # The holder backs up through its own connection, as the only writer.
        target = backup.default_backup_path(held.path)
        counts = held.write(backup.backup_to, target)
        assert counts["cases"] == 4 and counts["clients"] == 2
        assert held.query("SELECT count(*) AS n FROM cases").n[0] == 4  # still serving

        # A restore never goes under a running dashboard.
        before = (files / "s.duckdb").stat()
        result = subprocess.run(
            [sys.executable, "-m", "kb", "restore", str(target), "--replace", "--db", str(files / "s.duckdb"),
             "--config", str(files / "support.toml")], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1, result.stderr
        assert "held by another process" in result.stderr and "stop it" in result.stderr
        assert (files / "s.duckdb").stat().st_ino == before.st_ino
    finally:
        held.close()
    assert target.parent == files / "backups" and target.name.startswith("s-")
    assert kb(files, "restore", str(target), db="copy.duckdb") == 0
    assert state(files / "copy.duckdb")["earlier"] == state(files / "s.duckdb")["earlier"]


def test_the_backup_button_on_the_import_and_export_page(app):
    at, db = app
    open_page(at, "transfer")
    button(at, "Back up now").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Backed up to" in s.value for s in at.success), [shown(e) for e in at.error]
    written = list((db.parent / "backups").glob("*.duckdb"))
    assert len(written) == 1
    assert state(written[0])["clients"]
    # A backup holds every client's data: never served as a link anyone holding it could fetch.
    assert not at.get("download_button")


def test_a_backup_that_cannot_be_written_says_why_on_the_page(app):
    at, db = app
    (db.parent / "backups").write_text("a file where the backup folder should be")
    open_page(at, "transfer")
    button(at, "Back up now").click().run()
    assert not at.exception and not at.success
    [error] = [shown(e) for e in at.error]
    assert error.startswith(f"No backup was written: cannot make the folder {db.parent / 'backups'}")


@pytest.mark.parametrize(("email", "sees_backup"), [("lee@support.example", False), ("ada@support.example", True)])
def test_only_admins_see_the_backup(signed_in, email, sees_backup):
    at = signed_in(email)
    at.switch_page("pages/transfer.py").run()
    assert ("Backup" in [s.value for s in at.subheader]) is sees_backup
    assert any(b.label == "Back up now" for b in at.button) is sees_backup


# --- Never a backup or a restore over the database itself ------------------------------------------------

def crash_log(files: Path) -> Path:
    """The database with a write-ahead log left by a process that died after its commit: the client WAL is in
    the log alone. Returns the database."""
    assert kb(files, "import", "clients", str(files / "clients.csv")) == 0
    db = files / "s.duckdb"
    subprocess.run([sys.executable, "-c", "import os, sys; from kb.db import connection; "
                    "con = connection.connect(sys.argv[1]); con.execute(\"INSERT INTO clients (client_id, name, tier) "
                    "VALUES ('WAL', 'Only in the log', 'free')\"); os._exit(0)", str(db)], cwd=ROOT, check=True)
    assert Path(f"{db}.wal").stat().st_size > 0
    return db


def untouched(db: Path, before: dict[Path, bytes]) -> None:
    assert {p: p.read_bytes() for p in before} == before
    assert [c[0] for c in state(db)["clients"]] == ["ENT", "FREE", "WAL"]  # opens, the log replayed
    assert not [p for p in db.parent.iterdir() if ".tmp" in p.name or "before-restore" in p.name]


@pytest.mark.parametrize("target", ["db", "dotted", "wal", "link to db", "link to wal", "hard link"])
def test_a_backup_over_the_database_or_its_log_is_refused(files, capsys, target):
    db = crash_log(files)
    wal = Path(f"{db}.wal")
    paths = {"db": db, "dotted": files / "." / "b" / ".." / "s.duckdb", "wal": wal,
             "link to db": files / "link.duckdb", "link to wal": files / "link.wal", "hard link": files / "hard.duckdb"}
    (files / "b").mkdir()
    (files / "link.duckdb").symlink_to(db)
    (files / "link.wal").symlink_to(wal)
    os.link(db, files / "hard.duckdb")
    before = {db: db.read_bytes(), wal: wal.read_bytes()}
    capsys.readouterr()
    assert kb(files, "backup", str(paths[target]), "--replace") == 1
    err = capsys.readouterr().err
    assert ("itself" in err or "write-ahead log" in err) and "Nothing was written" in err, err
    untouched(db, before)
    # And the holder of the file refuses it the same way (the dashboard's Backup, through the store).
    held = Store(db, load_config(files / "support.toml"))
    try:
        with pytest.raises(backup.BackupError, match="Nothing was written"):
            held.backup(paths[target], replace=True)
    finally:
        held.close()
    assert [c[0] for c in state(db)["clients"]] == ["ENT", "FREE", "WAL"]


@pytest.mark.parametrize("source", ["db", "link to db", "hard link", "wal"])
def test_a_restore_of_the_database_onto_itself_is_refused(files, capsys, source):
    db = crash_log(files)
    wal = Path(f"{db}.wal")
    (files / "link.duckdb").symlink_to(db)
    os.link(db, files / "hard.duckdb")
    paths = {"db": db, "link to db": files / "link.duckdb", "hard link": files / "hard.duckdb", "wal": wal}
    before = {db: db.read_bytes(), wal: wal.read_bytes()}
    capsys.readouterr()
    assert kb(files, "restore", str(paths[source]), "--replace") == 1
    err = capsys.readouterr().err
    assert "Nothing was changed" in err or "not a DuckDB database file" in err, err
    untouched(db, before)


# --- A full disk: said in words, nothing written, the database usable after --------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB file system of its own (tmpfs: needs root), to fill."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16M", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 16, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass
    return filler


def test_a_full_disk_is_said_in_words_and_the_database_stays_usable(small_disk):
    from kb.access import Actor
    from kb.intake.importing import Rejected
    from kb.intake.writes import log_case
    from kb.store import DiskFull
    from tests.fixtures import build_fixture
    from tests.test_concurrency import cases_csv

    db, config_file = build_fixture(small_disk)
    store = Store(db, load_config(config_file))
    staff, lead = Actor("staff@support.example", "staff"), Actor("lead@support.example", "lead")
    case = {"client_id": "ENT", "category": "api_help", "subject": "On a full disk", "received_at": "2026-11-25 10:00"}
    full = f"The disk holding {db} is full: nothing was written"
    filler = fill(small_disk)
    try:
        # A form write: the commit cannot write its log.
        with pytest.raises(DiskFull) as error:
            store.write(log_case, store.config, staff, case)
        assert str(error.value).startswith(full) and isinstance(error.value, Rejected)  # what every form shows
        # An import, as the Import page runs it: it ends, and says why nothing was written.
        job = store.start_import("cases", cases_csv("FULL-", 100_000), "full.csv", lead)
        assert job.wait(120)
        assert job.written is None and [str(p) for p in job.problems][0].startswith(full), job.problems
        # A backup, onto the same disk.
        with pytest.raises(backup.BackupError, match=f"The disk holding {small_disk / 'backups'} is full: nothing "
                                                     "was written"):
            store.backup(small_disk / "backups" / "b.duckdb")
        assert not [p for p in small_disk.rglob("*") if ".tmp" in p.name]
        assert store.query("SELECT count(*) AS n FROM cases").n[0] == 6  # reads go on
    finally:
        filler.unlink()
    # Space again: the same store writes, and the file holds what was committed and nothing else.
    case_id = store.write(log_case, store.config, staff, case).row_id
    assert store.query("SELECT count(*) AS n FROM cases").n[0] == 7
    assert store.import_rows(staged_from_csv("cases", cases_csv("AFTER-", 10)), lead, source="after.csv") == 10
    store.close()
    reopened = Store(db, load_config(config_file))
    assert reopened.query("SELECT count(*) AS n FROM cases WHERE case_id LIKE 'FULL-%'").n[0] == 0
    assert reopened.query("SELECT count(*) AS n FROM cases").n[0] == 17
    assert reopened.query("SELECT subject FROM cases WHERE case_id = ?", [case_id]).subject[0] == "On a full disk"
    reopened.close()



def test_the_command_line_says_a_full_disk_in_words(small_disk, tmp_path, capsys):
    db, config_file = build_fixture(small_disk)
    before = table_counts(db)
    csv = tmp_path / "clients.csv"
    csv.write_text("client_id,name,tier\nNEW,New Co,free\n")
    said = f"error: The disk holding {db} is full: nothing was written. Free some space on it and try again.\n"
    filler = fill(small_disk)
    try:
        for args in (["import", "clients", str(csv)], ["token", "create", "--role", "staff", "--name", "robot"]):
            capsys.readouterr()
            assert main([*args, "--db", str(db), "--config", str(config_file)]) == 1
            assert capsys.readouterr() == ("", said)
    finally:
        filler.unlink()
    assert table_counts(db) == before
    con = connection.connect(db, read_only=True)
    assert con.execute("SELECT count(*) FROM api_tokens").fetchall() == [(0,)]
    con.close()


# --- Backups while the dashboard works ---------------------------------------------------------------------

def test_a_backup_holds_form_writes_up_a_moment_only(tmp_path):
    """A backup of a million cases copies the database's file while it holds the write lock: a form submitted
    meanwhile waits for it a moment (0.2 s on a quiet machine, 1.3 s once with the browser tests loading both
    cores; a copy of the rows under the lock would take 6 s and more), and the backup holds the writes committed
    before it.

    A form write on this store takes a moment by itself (more on a busy machine), so what is measured is how
    much longer the slowest write takes while backups run than the slowest one with nothing else running."""
    import threading

    from kb.access import Actor
    from kb.intake.writes import log_case
    from kb.tools.generate import generate

    (tmp_path / "support.toml").write_text(SPEC_TOML)
    config = load_config(tmp_path / "support.toml")
    db = tmp_path / "large.duckdb"
    con = connection.connect(db)
    generate(con, config, command_line_actor(), cases=1_000_000, environments=50, years=1, seed=1,
             until=datetime(2026, 11, 1, tzinfo=UTC))
    con.close()
    store = Store(db, config)
    staff = Actor("staff@support.example", "staff")
    client = store.query("SELECT min(client_id) AS c FROM clients").c[0]

    def form_write(n: int) -> float:
        asked = time.monotonic()
        store.write(log_case, config, staff, {"client_id": client, "category": "api_help",
                                              "subject": f"Form write {n}", "received_at": "2026-11-25 10:00"})
        return time.monotonic() - asked

    alone = [form_write(n) for n in range(5)]
    waits, stop = [], threading.Event()

    def writing() -> None:
        while not stop.is_set():
            waits.append(form_write(len(alone) + len(waits)))
            time.sleep(0.05)

    writer = threading.Thread(target=writing)
    writer.start()
    copied = []
    try:
        for n in range(3):
            time.sleep(0.3)
            before = store.query("SELECT count(*) AS n FROM cases").n[0]
            target = tmp_path / "backups" / f"during-writes-{n}.duckdb"
            store.backup(target)
            copied.append((before, table_counts(target)["cases"], store.query("SELECT count(*) AS n FROM cases").n[0]))
        time.sleep(0.3)
    finally:
        stop.set()
        writer.join()
    store.close()
    print(f"\n{len(waits)} form writes beside three backups, the slowest {max(waits):.2f} s "
          f"(alone: {max(alone):.2f} s)")
    assert len(waits) >= 5 and max(waits) - max(alone) < 3.0, (alone, waits)
    assert all(before <= backed_up <= after for before, backed_up, after in copied), copied


def test_every_backup_path_the_docs_suggest_is_in_the_backup_folder_and_git_ignored():
    """The README's and docs' ``backup`` and ``restore`` paths work with the service running (inside the backup
    folder of the database they use) and, in the checkout, are never committed by mistake."""
    import re

    from kb.service.backups import auto_backup_path

    checkout_db = ROOT / "data" / "support.duckdb"  # the README's commands use the default database
    server_db = Path("/var/lib/support-sla/support.duckdb")  # docs/service.md's, as deploy/ sets SUPPORT_DB
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    suggested = {match for path in texts
                 for match in re.findall(r"python -m kb (?:backup|restore) (\S+\.duckdb)", path.read_text())}
    assert "data/backups/nightly-2026-11-26.duckdb" in suggested, suggested
    assert f"SUPPORT_DB={server_db}" in (ROOT / "deploy" / "support-sla.service").read_text()
    made = {str(p.relative_to(ROOT)) for p in (backup.default_backup_path(checkout_db), auto_backup_path(checkout_db))}
    for path in sorted(suggested | made):
        if Path(path).is_absolute():
            assert backup.backup_name(server_db, path), path
            continue
        assert backup.backup_name(checkout_db, ROOT / path), path  # where the running service may write it
        ignored = subprocess.run(["git", "check-ignore", "--quiet", "--no-index", path], cwd=ROOT)
        assert ignored.returncode == 0, f"{path} is not ignored by .gitignore"
