"""The dashboard's one owner of the database file.

DuckDB lets one process hold a file read-write. The dashboard process opens it
once; every read gets its own cursor, and every write goes through one lock,
in a transaction (``kb.db.connection.transaction``), retried when DuckDB
reports a write conflict: ``Store.transaction()`` for a block of statements,
``Store.write(action, …)`` for one of kb's write functions. Each committed
write bumps ``version``, which is what cached reads are keyed on, so a write
shows up on every page at once.

A write waits at most ``write_wait_seconds`` (5 s) behind an import's commit,
then fails with ``Busy`` ("The database is busy with an import; try again in a
moment") rather than hang (behind other form writes, a queue that moves, up to
a minute); a write on a full disk fails with ``DiskFull`` ("The disk
holding … is full: nothing was written"). Both are a ``Rejected`` with one
problem, so every form shows them where it shows its own problems, and both
mean that nothing was written.

An import holds the lock only for its COMMIT: ``import_rows`` reads, checks
and types the rows on a reader cursor (most of its time), then appends them
with its audit row in a transaction of its own while form writes go on in
theirs, and takes the lock to commit. The tables' constraints (keys,
references) catch a row a form committed meanwhile that clashes; the import is
then checked again, to name the line. ``start_import``
runs one in a thread of the process, not of the page's script run, so a rerun
(a click elsewhere) cannot abandon it; ``import_job`` is how any later run of
that session finds its progress and then its result.

The as-of views are costly on large tables, so they are computed once a
minute into Arrow tables (a ``Snapshot``, ``kb.snapshot``) that every page
queries. Each committed write is recorded with what it changed (``Change``,
from its audit rows), and the next snapshot asked for takes in the rows of
the cases it touched, rather than computing every case again.

Over 400 lines: ``Store`` and ``Snapshot`` share the write lock and the version counter that keys
every snapshot, and read best as one.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa

from kb.access import Actor, require
from kb.background import yield_cores
from kb.config import Config
from kb.db import audit, connection
from kb.db.answers import answer
from kb.db.backup import backup_to
from kb.intake.importing import Problem, Progress, Rejected, Staged, checked, staged_from_csv
from kb.intake.resuming import resume_on_imported_messages
from kb.intake.validation import KEYS, key_text, stored_columns, typed_rows_sql
from kb.kept import KEPT_TABLES, audit_mark, keep, kept_folder, opened
from kb.snapshot import (
    CASE_TABLES,
    EVERYTHING,
    TABLES,
    UPTIME_TABLES,
    Change,
    Snapshot,
    change_of,
    combined,
    computed,
    moved_on,
    patched,
    rows_of_cases,
    with_inputs,
)
from kb.timestamps import now_utc

T = TypeVar("T")
WRITE_WAIT_SECONDS = 5.0  # the longest a write waits behind an import's commit before it says so
QUEUE_WAIT_SECONDS = 60.0  # behind other form writes (each a fraction of a second) a write waits longer
QUIET_WAIT_SECONDS = 1.0  # a backup waits this long behind an import before it copies the rows instead
FORM_WRITE = "another write"
IMPORT_WAIT_SECONDS = 600.0  # an import, in its own thread, waits longer for its turn to commit
IMPORT_ATTEMPTS = 3  # checks of an import whose insert met a row written meanwhile
STALE_SECONDS = 600.0  # the oldest snapshot of "now" served while its successor is computed
JOBS_KEPT_SECONDS = 3600.0  # a finished import's result stays this long for its session to show
# The stored tables this process changes only by ``write``, ``transaction`` and ``import_rows``, each change a new
# ``version``: what a query read of them holds until the next one (``snapshot_query``). The others (the alerts'
# and statements' records, job runs, tokens, the mail's state, the audit trail) change on cursors of their own.
VERSIONED_TABLES = frozenset({
    "cases", "clients", "contracts", "environments", "incidents", "messages", "monitoring_checks", "pauses",
    "policies", "month_closings", "closed_cases", "closed_targets", "closed_uptime", "closed_refunds",
    "closed_clients", "credit_applications",
})

# The stored tables a write that changed cases alone (no uptime) may have written without an audit row naming
# each: a mail batch's rows name its messages, yet it opens cases, adds clients and ends pauses.
CASES_WRITE = frozenset({"cases", "messages", "pauses", "clients", "policies"})

log = logging.getLogger(__name__)


class _ClosingsMoved(Exception):
    """A month was closed or reopened between an import's check and its commit."""


def _written_meanwhile(error: duckdb.Error) -> bool:
    """Whether an import's insert failed on a row another write committed since its check: a key or reference
    it clashes with, or a row it updates (a wait on the client its messages end) changed meanwhile."""
    text = str(error).lower()
    return "constraint" in text or "conflict" in text


class WriteFailed(Rejected, connection.StoreError):
    """A write that did not happen for a reason outside its rows; nothing was written. A ``Rejected`` with
    one problem (every form shows it), and a ``StoreError`` (the command line prints it)."""

    def __init__(self, message: str):
        super().__init__([Problem(None, None, message)])


class Busy(WriteFailed):
    """The lock was not free within ``write_wait_seconds``: another write (an import) holds it."""


class DiskFull(WriteFailed):
    """The disk holding the database (or a backup) is full."""


@dataclass
class ImportJob:
    """One import run by ``Store.start_import``: its progress while it runs, then what it did."""

    id: str
    table: str
    source: str  # the file's name
    actor: Actor
    fraction: float = 0.0
    text: str = "waiting to start"
    written: int | None = None  # rows written: set when it succeeded
    problems: list[Problem] = field(default_factory=list)  # why nothing was written: set when it failed
    finished_at: float | None = None  # time.monotonic() when it ended
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.finished_at is not None

    def report(self, fraction: float, text: str) -> None:
        self.fraction, self.text = max(0.0, min(1.0, fraction)), text

    def wait(self, timeout: float | None = None) -> bool:
        """Block until it has ended (or ``timeout``); whether it has."""
        if self.thread is not None:
            self.thread.join(timeout)
        return self.done


class Store:
    def __init__(self, path: str | Path, config: Config, *, wait_seconds: float = 5.0,
                 write_wait_seconds: float = WRITE_WAIT_SECONDS):
        self.path = Path(path)
        self.config = config
        self.write_wait_seconds = write_wait_seconds
        self._con = connection.connect(self.path, wait_seconds=wait_seconds)
        self._kept_folder = kept_folder(self.path)
        self._keeping: list[threading.Thread] = []  # writing every case's rows beside the database
        self._write_lock = threading.Lock()
        self._writing_now: str | None = None  # what holds the write lock, for Busy's message
        self._jobs: dict[str, ImportJob] = {}
        self._jobs_lock = threading.Lock()
        self._reopen_lock = threading.Lock()
        self._snapshot_lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._refreshing = False  # a thread computes the next snapshot of now
        self.version = 0
        self._changes: list[tuple[int, Change]] = []  # (version, what the write that made it changed)
        self._tables_written_at: dict[str, int] = {}  # stored table → the last version that wrote it
        self._everything_written_at = 0  # the last version that may have written any stored table
        with self._cursor() as cur:
            self._audit_mark = cur.execute("SELECT coalesce(max(audit_id), 0) FROM audit_log").fetchall()[0][0]
            self._stored_tables = frozenset(name for (name,) in cur.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()").fetchall())

    @contextmanager
    def reader(self, snapshot: Snapshot | None = None, needs: Iterable[str] = TABLES):
        """A cursor of its own; with a snapshot, its tables ``needs`` (default: all) are registered under the
        views' names, computed first if the snapshot does not hold them yet."""
        with self._cursor() as cur:
            if snapshot is not None:
                for name, table in self._tables(snapshot, needs).items():
                    cur.register(name, table)
            yield cur

    def query(self, sql: str, params=None, snapshot: Snapshot | None = None, *, cases: list[str] | None = None):
        """A DataFrame from one SELECT (over the snapshot's tables it names). With ``cases``, a query of those
        cases only: while the snapshot has not computed every case yet, its case tables hold those cases' rows
        alone, computed for them."""
        needs = [name for name in TABLES if re.search(rf"\b{name}\b", sql)]
        case_tables = [name for name in needs if name in CASE_TABLES]
        if snapshot is None or cases is None or all(name in snapshot.tables for name in case_tables):
            with self.reader(snapshot, needs) as cur:
                return cur.execute(sql, params or []).fetchdf()
        key = tuple(cases)
        if key not in snapshot.of_cases:  # once per snapshot: a case's panel reads them in several queries
            with self._cursor() as cur:
                as_of = snapshot.as_of if snapshot.frozen else now_utc()
                snapshot.of_cases[key] = rows_of_cases(cur, self.config, as_of, cases)
        with self.reader(snapshot, [name for name in needs if name not in CASE_TABLES]) as cur:
            for name, table in snapshot.of_cases[key].items():
                cur.register(name, table)
            return cur.execute(sql, params or []).fetchdf()

    def snapshot_query(self, sql: str, params, snapshot: Snapshot):
        """``query`` over the snapshot's tables, remembered by the snapshot: a page drawn again reads it from
        there, and so does the next snapshot after a write that changed none of the snapshot's tables it names.
        The stored tables it names are read as they were at the last write that may have changed one of them
        (its ``version`` is part of the key: ``_written_at``), so it names only those that change by a write of
        this store (``VERSIONED_TABLES``): ValueError names another."""
        named = set(re.findall(r"\w+", sql))
        stored = named & self._stored_tables
        if stored - VERSIONED_TABLES:
            raise ValueError(f"{', '.join(sorted(stored - VERSIONED_TABLES))} change without a new version: "
                             "read with query, not remembered")
        key = ("query", sql, _hashable(params), self._written_at(stored) if stored else None)
        return snapshot.remembered(key, lambda: self.query(sql, params, snapshot), reads=named & set(TABLES))

    def _written_at(self, tables: Iterable[str]) -> int:
        """The last ``version`` that may have changed one of the stored ``tables``."""
        return max(self._everything_written_at, *(self._tables_written_at.get(table, 0) for table in tables))

    def ready(self, snapshot: Snapshot, names: Iterable[str] = TABLES) -> None:
        """Compute the tables ``names`` (default: all) of ``snapshot`` it does not hold yet, now: a page reading
        both every case and uptime says so first, and the two are computed side by side (``_tables``)."""
        self._tables(snapshot, names)

    def _tables(self, snapshot: Snapshot, needs: Iterable[str]) -> dict[str, pa.Table]:
        """The snapshot's tables ``needs``, computed (as of its instant, or of now for "now") when missing: every
        case's rows from those kept beside the database when they can be (``kb.kept``), and kept there when
        computed whole for now. Uptime and credits, when needed too, are computed meanwhile on a cursor of their
        own: DuckDB spreads each query over both cores, but opening the kept rows and planning a query is one
        thread's work."""
        needs = list(needs)
        if any(name not in snapshot.tables for name in needs):
            with self._snapshot_lock, self._cursor() as cur, ThreadPoolExecutor(1, "uptime") as beside:
                config = self.config  # once: a reload may swap it meanwhile
                as_of = snapshot.as_of if snapshot.frozen else now_utc()
                missing = [name for name in with_inputs(needs) if name not in snapshot.tables]
                uptime = None
                if any(name in CASE_TABLES for name in missing) and any(name in UPTIME_TABLES for name in missing):
                    held = {name: snapshot.tables[name] for name in UPTIME_TABLES if name in snapshot.tables}
                    uptime = beside.submit(self._computed_apart, config, as_of,
                                           [name for name in missing if name in UPTIME_TABLES], held)
                    missing = [name for name in missing if name not in UPTIME_TABLES]
                # (The open cases alone, the Queue's, are computed for those cases: quicker than opening them.)
                if (any(name in KEPT_TABLES for name in missing) and "case_sla" not in snapshot.tables
                        and self._kept_folder is not None):
                    snapshot.tables.update(opened(cur, config, self._kept_folder, as_of) or {})
                whole = "case_sla" in missing and "case_sla" not in snapshot.tables
                mark = audit_mark(cur) if whole and not snapshot.frozen else None
                snapshot.tables.update(computed(cur, config, as_of, missing, snapshot.tables))
                if mark is not None and self._kept_folder is not None:
                    kept = {name: snapshot.tables[name] for name in KEPT_TABLES}
                    # written in the background (a second or two), which no page waits for; not a daemon (a page's
                    # thread is one, and its threads would be too), so that a process stopping finishes them first
                    self._keeping.append(threading.Thread(target=_kept_aside, name="keep-case-rows", daemon=False,
                                                          args=(self._kept_folder, config, kept, as_of, mark)))
                    self._keeping[-1].start()
                if uptime is not None:
                    snapshot.tables.update(uptime.result())
        return {name: snapshot.tables[name] for name in needs}

    def _computed_apart(self, config: Config, as_of: datetime, names: list[str],
                        held: dict[str, pa.Table]) -> dict[str, pa.Table]:
        """``kb.snapshot.computed`` of the tables ``names`` (none of them read from a case table) from those the
        snapshot ``held`` already, on a cursor of its own."""
        with self._cursor() as cur:
            return computed(cur, config, as_of, names, held)

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor in a transaction, as the only writer: committed when the block ends (and
        ``version`` bumped), rolled back when it raises.

        A ``with`` block cannot be run a second time, so a write conflict in it is raised
        (``Store.write``, which holds the action, runs it again instead). The functions of
        ``kb.intake`` called inside join this transaction. Busy when the lock is not free within
        ``write_wait_seconds``; DiskFull when the disk is full.
        """
        with self._writing(FORM_WRITE), self._cursor() as cur:
            try:
                with connection.transaction(cur):
                    yield cur
            except (duckdb.Error, OSError) as e:
                self._failed(e)
                raise
            self._committed(cur)

    def write(self, action: Callable[..., T], *args, attempts: int = 5, lock_wait_seconds: float | None = None,
              record_only: bool = False, **kwargs) -> T:
        """Run ``action(cursor, *args, **kwargs)`` as the only writer; run it again on a write conflict.

        ``action`` is one of kb's writes: it opens its own ``transaction`` (so a
        failed attempt leaves nothing behind), or runs outside one.
        Busy when the lock is not free within ``lock_wait_seconds`` (default:
        ``write_wait_seconds``); DiskFull when the disk is full.
        ``record_only``: the action writes only the service's records of itself (a job's run, a webhook's
        delivery, a checkpoint), which no snapshot and no remembered query reads: no new ``version``, so that
        the pages stay as quick as they were while the jobs run (every minute) and the monitors call.
        """
        with self._writing(FORM_WRITE, lock_wait_seconds):
            for attempt in range(attempts):
                try:
                    with self._cursor() as cur:
                        try:
                            result = action(cur, *args, **kwargs)
                        except BaseException:
                            self._committed_before(cur)
                            raise
                        if not record_only:
                            self._committed(cur)
                except (duckdb.Error, OSError) as e:
                    self._failed(e)
                    if (not isinstance(e, duckdb.TransactionException) or "conflict" not in str(e).lower()
                            or attempt == attempts - 1):
                        raise
                    time.sleep(0.05 * (attempt + 1))
                    continue
                return result
        raise AssertionError("unreachable")

    def import_rows(self, staged: Staged, actor: Actor, *, source: str, progress: Progress | None = None,
                    now: datetime | None = None) -> int:
        """Add ``staged`` (a CSV file's rows) all or nothing, holding the write lock only for the COMMIT;
        returns the number of rows written. Raises Rejected (the problems, line by line), Busy, DiskFull.

        The rows are checked and typed on a reader cursor, then appended in a transaction of their own,
        both without the lock: form writes go on meanwhile, in transactions of theirs (an import only adds
        rows, so DuckDB lets both commit). The keys and references are constraints of the tables: a row a
        form committed meanwhile that clashes with one of these fails the insert or the commit, and the
        rows are then checked again, against the rows now there, to name its line.
        """
        require(actor, "import")
        report = progress or _silent
        table, key = staged.table, KEYS[staged.table]
        names = ", ".join(f'"{name}"' for name in stored_columns(table))
        for attempt in range(IMPORT_ATTEMPTS):
            try:
                closings = self._closings_mark()
                rows = self._checked_rows(staged, actor, report, now)
            except (duckdb.Error, OSError) as e:
                self._failed(e)  # a spill to the temporary folder, on the database's disk
                raise
            report(0.7, f"writing {len(staged):,} rows")
            alias = f"kb_import_{uuid.uuid4().hex[:12]}"
            try:
                with self._cursor() as cur:
                    cur.register(alias, rows)
                    with connection.transaction(cur, commit_in=partial(self._committing, report, len(staged),
                                                                       closings)):
                        cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {alias}")
                        if table == "messages":
                            resume_on_imported_messages(cur, self.config, actor, rows)
                        audit.record(cur, actor, "import", table, None, None,
                                     {"source": source, "rows": len(staged),
                                      "first_id": key_text([rows[k][0].as_py() for k in key]),
                                      "last_id": key_text([rows[k][-1].as_py() for k in key])})
            except _ClosingsMoved:
                continue  # a month was closed or reopened since the check: check again, to name its lines
            except (duckdb.ConstraintException, duckdb.TransactionException) as e:
                if not _written_meanwhile(e) or attempt == IMPORT_ATTEMPTS - 1:
                    self._failed(e)
                    raise
                continue  # a row committed since the check clashes with one of these: check again, to name its line
            except (duckdb.Error, OSError) as e:
                # DuckDB checkpoints a large insert as it commits; when that fails (a full disk) it gives the
                # database up. Opened again, the rows are there or not: say which.
                if not (self._recover(e) and self._holds(table, {k: rows[k][0].as_py() for k in key})):
                    self._failed(e)
                    raise
                log.warning("the import of %s was committed before its checkpoint failed: %s", source, e)
                self._committed(change=EVERYTHING)
            if table == "messages":  # as a write of its own: a write committed meanwhile may have added to a thread
                self.write(answer, rows["case_id"].to_pylist(), lock_wait_seconds=IMPORT_WAIT_SECONDS)
            report(1.0, f"{len(staged):,} rows written")
            return len(staged)
        raise AssertionError("unreachable")

    @contextmanager
    def _committing(self, report: Progress, rows: int, closings: tuple) -> Iterator[None]:
        """An import's COMMIT: as the only writer, waiting for its turn as long as it takes; _ClosingsMoved (and
        no commit) when a month was closed or reopened since its rows were checked (``closings``: the
        ``_closings_mark`` then). Closings are written under the write lock, so none can come in between."""
        report(0.9, f"waiting for other writes to finish, to commit {rows:,} rows")
        with self._writing("an import", IMPORT_WAIT_SECONDS):
            if self._closings_mark() != closings:
                raise _ClosingsMoved()
            report(0.95, f"committing {rows:,} rows")
            yield
            self._committed(change=EVERYTHING)

    def _closings_mark(self) -> tuple:
        """What changes whenever a month is closed or reopened."""
        with self._cursor() as cur:
            return tuple(cur.execute("SELECT count(*), count(reopened_at) FROM month_closings").fetchall()[0])

    def _checked_rows(self, staged: Staged, actor: Actor, report: Progress, now: datetime | None) -> pa.Table:
        """The staged rows checked by every rule (else Rejected) and typed as they will be stored (written by
        ``actor``), in file order, against the rows committed now; on a reader cursor, without the write lock."""
        report(0.1, f"checking {len(staged):,} rows")
        with self.reader() as cur, checked(cur, self.config, staged, now=now):
            report(0.6, f"preparing {len(staged):,} rows")
            return cur.sql(typed_rows_sql(staged.table, "staging", actor=actor.email,
                                          now=now or now_utc())).to_arrow_table()

    def backup(self, dest: str | os.PathLike, *, replace: bool = False) -> dict[str, int]:
        """``kb.db.backup.backup_to`` on a cursor and a thread of its own, which this one waits for: the
        database's file checkpointed and copied while this store holds the write lock, or, when an import holds
        it, the rows copied in one read transaction, the thread then at a lower CPU priority
        (``kb.background``). Its row counts; BackupError when it failed (nothing written)."""
        with ThreadPoolExecutor(1, "backup") as copier:
            return copier.submit(self._backup_copy, dest, replace).result()

    def _backup_copy(self, dest: str | os.PathLike, replace: bool) -> dict[str, int]:
        with self._cursor() as cur:
            return backup_to(cur, dest, replace=replace, quiet=self._quiet, before_rows=yield_cores)

    @contextmanager
    def _quiet(self) -> Iterator[bool]:
        """The write lock held inside, when taken within ``QUIET_WAIT_SECONDS`` (True); else nothing held
        (False): an import may hold it for minutes."""
        with ExitStack() as held:
            try:
                held.enter_context(self._writing("a backup", QUIET_WAIT_SECONDS))
            except Busy:
                yield False
                return
            yield True

    def start_import(self, table: str, data: bytes, source: str, actor: Actor) -> ImportJob:
        """Import the CSV bytes ``data`` into ``table`` in a thread of this process; the job, at once.

        The thread belongs to the process, not to the page's script run: a rerun
        of the page cannot stop it half-way, and any later run finds it by its
        id (``import_job``). It ends with ``written`` or with ``problems``.
        """
        require(actor, "import")
        job = ImportJob(id=uuid.uuid4().hex, table=table, source=source, actor=actor)
        job.thread = threading.Thread(target=self._run_import, args=(job, data), name=f"import-{job.id[:8]}")
        with self._jobs_lock:
            cutoff = time.monotonic() - JOBS_KEPT_SECONDS
            for old in [k for k, j in self._jobs.items() if j.finished_at is not None and j.finished_at < cutoff]:
                del self._jobs[old]
            self._jobs[job.id] = job
        job.thread.start()
        return job

    def import_job(self, job_id: str | None) -> ImportJob | None:
        """The import started with this id, while it runs and for an hour after; None when unknown."""
        with self._jobs_lock:
            return self._jobs.get(job_id) if job_id else None

    def _run_import(self, job: ImportJob, data: bytes) -> None:
        try:
            job.report(0.02, "reading the file")
            staged = staged_from_csv(job.table, data)
            del data
            job.written = self.import_rows(staged, job.actor, source=job.source, progress=job.report)
        except Rejected as e:
            job.problems = e.problems
        except BaseException as e:  # say so: the session that started it is waiting to show what happened
            log.exception("import of %s into %s failed", job.source, job.table)
            job.problems = [Problem(None, None, f"the import failed, nothing was written: {connection.first_line(e)}")]
        finally:
            job.finished_at = time.monotonic()

    @contextmanager
    def _writing(self, what: str, wait_seconds: float | None = None) -> Iterator[None]:
        """Hold the write lock as ``what`` ("an import", "another write"). Behind an import, wait at most
        ``wait_seconds`` (default: ``write_wait_seconds``), then raise Busy; behind other form writes (a queue
        of short ones, that moves) wait up to QUEUE_WAIT_SECONDS."""
        wait = self.write_wait_seconds if wait_seconds is None else wait_seconds
        started = time.monotonic()
        while not self._write_lock.acquire(timeout=min(0.1, max(wait, 0.0))):
            waited = time.monotonic() - started
            holder = self._writing_now or FORM_WRITE  # None: between two holders
            if waited >= wait and (holder != FORM_WRITE or waited >= max(wait, QUEUE_WAIT_SECONDS)):
                raise Busy(f"The database is busy with {holder}; try again in a moment. "
                           "Nothing was written.")
        self._writing_now = what
        try:
            yield
        finally:
            self._writing_now = None
            self._write_lock.release()

    def _committed_before(self, cur) -> None:
        """After a write raised: a new ``version`` if it committed some of its rows first (a mail batch commits
        in parts), so that no page reads what it wrote from a snapshot or a query remembered before."""
        try:
            written = cur.execute("SELECT count(*) FROM audit_log WHERE audit_id > ?", [self._audit_mark]).fetchall()
        except duckdb.Error:  # the write left the cursor unusable: the next write's audit rows are read with its own
            return
        if written[0][0]:
            self._committed(cur)

    def _failed(self, error: BaseException) -> None:
        """After a write failed with ``error``: open the file anew if DuckDB gave the database up, then
        raise DiskFull, naming the database, when the disk is full."""
        self._recover(error)
        message = connection.disk_full_words(error, self.path)
        if message is not None:
            raise DiskFull(message) from error

    def _recover(self, error: BaseException) -> bool:
        """Open the file anew when ``error`` is fatal: DuckDB then invalidates the database (a checkpoint that
        failed, on a full disk) and this process may not use it until it opens it again. Whether it did."""
        if not (isinstance(error, duckdb.FatalException) or "database has been invalidated" in str(error)):
            return False
        with self._reopen_lock:
            try:
                with self._cursor() as cur:
                    cur.execute("SELECT 1").fetchall()
            except duckdb.Error:
                self._reopen()
        return True

    def _holds(self, table: str, key: dict[str, object]) -> bool:
        """Whether ``table`` holds the row with this key (column → value)."""
        matches = " AND ".join(f'"{column}" = ?' for column in key)
        try:
            with self._cursor() as cur:
                return bool(cur.execute(f"SELECT count(*) FROM {table} WHERE {matches}", list(key.values()))
                            .fetchall()[0][0])
        except duckdb.Error:
            return False

    def _reopen(self) -> None:
        old = self._con
        try:
            old.close()  # closes every cursor of it too, so that DuckDB lets the invalid instance go
        except duckdb.Error:
            pass
        try:
            self._con = connection.connect(self.path)
        except connection.StoreError:
            log.exception("the database %s could not be opened again after a fatal error", self.path)
            return
        log.warning("the database %s was opened again after a fatal error", self.path)

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cur = connection.cursor(self._con)
        try:
            yield cur
        finally:
            cur.close()

    def use_config(self, config: Config) -> None:
        """Apply ``config`` from now on (the configuration file was reloaded): after the write in progress, and
        with a new ``version``, so that no snapshot computed with the old rules is served again. Busy when a
        write holds the lock for longer than ``write_wait_seconds``."""
        with self._writing("a configuration reload"):
            self.config = config
            self._committed(change=EVERYTHING)

    def _committed(self, cur=None, change: Change | None = None) -> None:
        """After a commit, holding the write lock: a new ``version``, recorded with what the write changed
        (``change``, else read on ``cur`` from the audit rows it wrote; an import's rows can have lower numbers
        than those of writes committed meanwhile, so an import says it changed everything)."""
        named = set()
        if change is None:
            try:
                rows = cur.execute("SELECT audit_id, table_name, row_id, before, after FROM audit_log "
                                   "WHERE audit_id > ? ORDER BY audit_id", [self._audit_mark]).fetchall()
            except duckdb.Error:  # committed all the same: the next snapshot computes everything again
                rows = []
            change = change_of(row[1:] for row in rows)
            named = {row[1] for row in rows}
            self._audit_mark = rows[-1][0] if rows else self._audit_mark
        self.version += 1
        self._changes.append((self.version, change))
        if change.everything or change.uptime or not named:
            self._everything_written_at = self.version
        else:
            for table in named | (CASES_WRITE if not change.empty else set()):
                self._tables_written_at[table] = self.version

    def snapshot(self, as_of: datetime | None = None, *, max_age_seconds: float = 60.0) -> Snapshot:
        """The as-of tables at ``as_of`` (default: now), brought up to date after writes by the rows they
        touched. For "now", one older than ``max_age_seconds`` is still served while a thread computes its
        successor (so no page waits for every case each minute), unless older than ``STALE_SECONDS`` (or the
        clock went back): then a new one is made at once."""
        with self._snapshot_lock:
            current = self._snapshot
            if as_of is not None:
                usable = current is not None and current.as_of == as_of
            else:
                age = (now_utc() - current.rows_as_of).total_seconds() if current is not None else None
                usable = current is not None and not current.frozen and 0 <= age <= STALE_SECONDS
                if usable and age > max_age_seconds and not self._refreshing:
                    self._refreshing = True
                    threading.Thread(target=self._refresh, args=(current,), name="snapshot-refresh",
                                     daemon=True).start()
            if usable and current.version != self.version:
                current = self._caught_up(current)
            if not usable or current is None:
                current = self._build_snapshot(as_of or now_utc(), as_of is not None)
            self._snapshot = current
            if not self._refreshing:  # what no snapshot will be brought up to date with any more
                self._changes = [(v, change) for v, change in self._changes if v > current.version]
            return current

    def _refresh(self, old: Snapshot) -> None:
        """Move ``old``'s tables on to now (``moved_on``: only the cases whose rows change with time are
        computed again) and serve the result in ``old``'s place, brought up to date with the writes made since
        ``old``, unless another took its place already."""
        try:
            as_of = now_utc()
            with self._cursor() as cur:
                tables = moved_on(cur, self.config, dict(old.tables), old.rows_as_of, as_of)
            new = Snapshot(as_of=as_of, version=old.version, frozen=False, tables=tables)
            with self._snapshot_lock:
                if (self._snapshot is not None and self._snapshot.rows_as_of == old.rows_as_of
                        and not self._snapshot.frozen):
                    self._snapshot = (new if new.version == self.version else self._caught_up(new)) or self._snapshot
        except Exception:  # the store was closed meanwhile, or the query failed: the next read makes one
            log.warning("the snapshot could not be computed again in the background", exc_info=True)
        finally:
            self._refreshing = False

    def _caught_up(self, current: Snapshot) -> Snapshot | None:
        """``current`` with the rows the writes since it touched; None when one of them named no row (an import,
        the rules) or touched more than ``MOST_CASES`` cases (computing everything again is then the quickest
        way)."""
        version = self.version
        changes = [change for v, change in list(self._changes) if current.version < v <= version]
        change = combined(changes) if len(changes) == version - current.version else EVERYTHING
        if change.everything:
            return None
        if change.empty:  # its tables stand, and with them what pages read of them alone and remembered
            return dataclasses.replace(current, version=version)
        changed: set[str] = set()
        at = current.as_of if current.frozen else now_utc()  # (for "now": after the writes, and what they stamped)
        with self.reader() as cur:
            tables = patched(cur, self.config, current.tables, change, at, changed)
        if tables is None:
            return None
        # A month closed or reopened is read as of the snapshot's instant: that moves on to now, so that it shows
        # at once (other writes leave it, and with it every query remembered with it).
        as_of = at if change.closings else current.as_of
        return Snapshot(as_of=as_of, version=version, frozen=current.frozen, moved_as_of=current.rows_as_of,
                        tables=tables, **current.carried(frozenset(changed)))

    def _build_snapshot(self, as_of: datetime, frozen: bool) -> Snapshot:
        """A new snapshot, its tables computed as pages read them."""
        return Snapshot(as_of=as_of, version=self.version, frozen=frozen)

    def close(self) -> None:
        for thread in self._keeping:
            thread.join()
        self._con.close()


def _silent(fraction: float, text: str) -> None:
    pass


def _kept_aside(*args) -> None:
    """``kb.kept.keep`` on a thread of its own, yielding the cores to the pages meanwhile."""
    yield_cores()
    keep(*args)


def _hashable(params):
    """A query's parameters as a key: lists as tuples, a dict as its sorted items."""
    if isinstance(params, dict):
        return tuple(sorted((name, _hashable(value)) for name, value in params.items()))
    if isinstance(params, list | tuple):
        return tuple(_hashable(value) for value in params)
    return params
