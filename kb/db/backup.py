"""Backups: a consistent copy of the store as one DuckDB file, and bringing one back.

One process may hold the database file read-write, and while the dashboard
runs that process is the dashboard. So a backup is taken by whoever holds the
file. The dashboard (``Store.backup``) takes the write lock for a moment,
checkpoints the database and copies its file byte for byte (a fraction of a
second at a million cases; forms wait that long). Where nothing can hold the
writes back (``python -m kb backup`` on a database opened read-only), behind an
import holding them, or when the checkpoint left a write-ahead log, it copies
the rows: it ``ATTACH``es a new file and ``COPY FROM DATABASE`` into it, in one
statement, hence one transaction and one consistent snapshot, taking seconds
and the rows' memory, while forms, imports and webhooks commit on cursors of
their own. The dashboard offers backups on its Import and export page (admins);
``python -m kb backup PATH`` makes one when the dashboard is stopped, and hands
it to the service when it runs.

The service writes backups only into the backup folder, ``backups/`` beside the
database (``backup_folder``): a name it is given (``POST /api/v1/backup``, the
command line's handed-off backup) is a file inside it, never an absolute path
elsewhere, never ``..``, never through a symlink out of it (``backup_target``).

A backup is an ordinary support database: ``--db BACKUP`` opens it as it is.
``python -m kb restore BACKUP`` copies it into a temporary file beside the
database, checks and checkpoints that, and renames it into place, so the
database is the old file or the whole backup, never a mix. It refuses a
database that holds rows unless told ``replace``, and then keeps the old file
beside the new one.

Neither ever writes over the database or its write-ahead log (``<db>.wal``),
however the path reaches them (``./``, a symlink, a hard link): a backup taken
over the database, with a log from a crash beside it, would leave a file that
log no longer fits, and no database at all. Both refuse such a path before
they touch anything. A full disk is said in words ("The disk holding … is
full: nothing was written").
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from kb.db import connection
from kb.db.schema import SCHEMA_VERSION
from kb.db.sqltext import quote

log = logging.getLogger(__name__)

DATA_TABLES = ("clients", "environments", "contracts", "cases", "incidents", "monitoring_checks", "audit_log")


class BackupError(connection.StoreError):
    """A backup or restore that was refused or failed; nothing was changed. The message says why."""


@dataclass(frozen=True)
class Restored:
    path: Path
    counts: dict[str, int]
    kept: Path | None  # the replaced database, kept beside it; None when there was none


def backup_folder(db: str | os.PathLike) -> Path:
    """The folder the service writes backups into: ``backups/`` beside the database."""
    return Path(db).parent / "backups"


def default_backup_path(db: str | os.PathLike, now: datetime | None = None) -> Path:
    """``backups/<name>-YYYYmmddTHHMMSSZ.duckdb`` beside the database."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return backup_folder(db) / f"{Path(db).stem}-{stamp}.duckdb"


def backup_target(db: str | os.PathLike, name: str) -> Path:
    """The file ``name`` names inside the backup folder of ``db``; BackupError, naming the rule, when ``name`` is
    an absolute path, climbs out with ``..``, or leads out of the folder through a symlink."""
    if os.path.isabs(name) or ".." in Path(name).parts or not Path(name).parts:
        raise BackupError(_outside_the_folder(db, name))
    target = backup_folder(db) / name
    backup_name(db, target)
    return target


def backup_name(db: str | os.PathLike, path: str | os.PathLike) -> str:
    """``path`` (absolute, or from the working folder) as a name inside the backup folder of ``db``, symlinks
    followed; BackupError, naming the rule, when it is not inside it."""
    try:
        folder, target = os.path.realpath(backup_folder(db)), os.path.realpath(path)
    except ValueError:  # a NUL in the name
        raise BackupError(_outside_the_folder(db, path)) from None
    if target == folder or os.path.commonpath([folder, target]) != folder:
        raise BackupError(_outside_the_folder(db, path))
    return os.path.relpath(target, folder)


def _outside_the_folder(db: str | os.PathLike, path: str | os.PathLike) -> str:
    return (f"{str(path)!r} is not inside the backup folder {backup_folder(db)}: the service writes backups only "
            "there (a file name inside it; no absolute path elsewhere, no '..', no symlink out of it). "
            "Nothing was written")


def backup_to(con: duckdb.DuckDBPyConnection, dest: str | os.PathLike, *, replace: bool = False,
              quiet: Callable[[], AbstractContextManager[bool]] | None = None,
              before_rows: Callable[[], None] | None = None) -> dict[str, int]:
    """Copy the database ``con`` belongs to into the new file ``dest``; returns its row counts.

    Call it from the process that holds the database, on a cursor of its own (``Store.backup``). With
    ``quiet`` (a context in which nothing writes to the database, when it says True: the store's write lock),
    the database is checkpointed and its file copied inside it, byte for byte: a fraction of a second, where
    copying its rows takes seconds on both cores and 0.6 GB of memory at a million cases. Without it, when it
    says False, or when the checkpoint leaves a write-ahead log (a write not yet committed), the rows are
    copied in one read transaction, so writes on other cursors go on meanwhile and the backup holds the
    database as it was when the copy began (``before_rows`` is called first: the store lowers its thread's
    CPU priority). ``dest`` appears whole or not at all; an existing file is an error unless ``replace``.
    """
    dest = Path(dest)
    source_file = connection.database_file(con)
    if source_file:
        _refuse_the_database(dest, source_file)
    if dest.exists() and not replace:
        raise BackupError(f"{dest} exists; choose another name (or pass --replace)")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BackupError(f"cannot make the folder {dest.parent}: {e.strerror}") from None
    temporary = _temporary_beside(dest, "backup")
    try:
        if not (quiet is not None and source_file and _file_copied(con, source_file, temporary, quiet)):
            if before_rows is not None:
                before_rows()
            _rows_copied(con, temporary)
        counts = _counts(temporary)
        _fsync(temporary)
        os.replace(temporary, dest)
        _fsync_folder(dest.parent)
        return counts
    except (duckdb.Error, OSError) as e:
        if connection.full_disk(e) is not None:
            raise BackupError(f"{connection.disk_full_message(dest.parent)} No backup {dest} was made.") from e
        reason = connection.first_line(e) if isinstance(e, duckdb.Error) else e.strerror or str(e)
        raise BackupError(f"the backup to {dest} failed, nothing was written: {reason}") from e
    finally:
        _remove(temporary)


def _file_copied(con, source_file: Path, temporary: Path, quiet: Callable[[], AbstractContextManager[bool]]) -> bool:
    """Whether the database's file, checkpointed, was copied to ``temporary`` while nothing wrote to it; not
    when ``quiet`` could not hold the writes back (it says False), or the checkpoint left a write-ahead log
    behind (another cursor's write, not yet committed)."""
    with quiet() as held:
        if not held:
            return False
        con.execute("CHECKPOINT").fetchall()
        wal = Path(f"{source_file}.wal")
        if wal.exists() and wal.stat().st_size:
            return False
        try:
            _copied_apart(source_file, temporary)
        except OSError as e:  # a full disk is said as such; any other failure of ``cp``: the rows are copied
            if connection.full_disk(e) is not None:
                raise
            log.warning("the database's file could not be copied (%s): copying its rows", e)
            return False
    return True


def _copied_apart(source: Path, target: Path) -> None:
    """Copy the file ``source`` to ``target`` in a process of its own: this one must not open and close the
    database's file, since closing any descriptor of a file drops every POSIX lock the process holds on it,
    DuckDB's among them, and another process could then open the database."""
    try:
        done = subprocess.run(["cp", "--reflink=auto", "--", str(source), str(target)], capture_output=True, text=True)
    except OSError as e:  # no ``cp`` here
        raise OSError(errno.ENOENT, f"cp cannot be run: {e}", str(target)) from None
    if done.returncode:
        reason = done.stderr.strip() or f"cp ended with {done.returncode}"
        raise OSError(errno.ENOSPC if "No space left" in reason else errno.EIO, reason, str(target))


def _rows_copied(con, temporary: Path) -> None:
    """Copy every row of the database ``con`` belongs to into the new database ``temporary``, in one read
    transaction."""
    alias = f"kb_backup_{uuid.uuid4().hex[:12]}"
    source = con.execute("SELECT current_database()").fetchall()[0][0]
    con.execute(f"ATTACH {quote(str(temporary))} AS {alias} (READ_WRITE)").fetchall()
    try:
        con.execute(f"COPY FROM DATABASE {_identifier(source)} TO {alias}").fetchall()
        con.execute(f"CHECKPOINT {alias}").fetchall()
    except BaseException:
        try:
            con.execute(f"DETACH {alias}").fetchall()
        except duckdb.Error:
            pass
        raise
    con.execute(f"DETACH {alias}").fetchall()


def backup_file(db: str | os.PathLike, dest: str | os.PathLike, *, replace: bool = False,
                wait_seconds: float = 2.0) -> dict[str, int]:
    """``python -m kb backup``: open ``db`` read-only and copy it to ``dest``; returns the row counts."""
    db = Path(db)
    _refuse_the_database(Path(dest), db)
    try:
        con = connection.connect(db, read_only=True, wait_seconds=wait_seconds)
    except connection.StoreBusy:
        raise BackupError(
            f"database {db} is held by another process (most likely the running dashboard). Back it up from the "
            "dashboard's Import and export page (Backup, for admins), or stop the dashboard and run this again"
        ) from None
    try:
        return backup_to(con, dest, replace=replace)
    finally:
        con.close()


def restore(backup: str | os.PathLike, db: str | os.PathLike, *, replace: bool = False) -> Restored:
    """Bring ``backup`` back as the database ``db``, all or nothing.

    Refuses when ``db`` holds rows (or is not a support database) unless
    ``replace``; then the old file is kept as ``<db>.before-restore-<stamp>``.
    Refuses while another process (the dashboard) holds ``db``.
    """
    backup, db = Path(backup), Path(db)
    if not backup.is_file():
        raise BackupError(f"backup {backup} does not exist")
    what = _database_file(backup, db, "the database")
    if what:
        raise BackupError(f"{backup} is {what}, not a backup of it: restore a backup kept in another file. "
                          "Nothing was changed")
    what = _database_file(db, backup, "the backup")
    if what:
        raise BackupError(f"the database {db} is {what}: restore it into another path. Nothing was changed")
    counts = _counts(backup, what="backup")
    if db.exists():
        _check_replaceable(db, replace)
    temporary = _temporary_beside(db, "restore")
    try:
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(str(temporary))
            try:
                alias = f"kb_restore_{uuid.uuid4().hex[:12]}"
                target = con.execute("SELECT current_database()").fetchall()[0][0]
                con.execute(f"ATTACH {quote(str(backup))} AS {alias} (READ_ONLY)").fetchall()
                con.execute(f"COPY FROM DATABASE {alias} TO {_identifier(target)}").fetchall()
                con.execute(f"DETACH {alias}").fetchall()
            finally:
                con.close()
            con = connection.connect(temporary)  # checks the schema version, and brings an older backup up to date
            try:
                con.execute("CHECKPOINT").fetchall()
            finally:
                con.close()
            restored = _counts(temporary)
            if restored != counts:
                raise BackupError(f"the copy of {backup} does not hold the backup's rows ({restored} != {counts})")
            _fsync(temporary)
        except (duckdb.Error, OSError) as e:
            if connection.full_disk(e) is not None:
                raise BackupError(f"{connection.disk_full_message(db.parent)} {db} was not changed.") from e
            reason = connection.first_line(e) if isinstance(e, duckdb.Error) else e.strerror or str(e)
            raise BackupError(f"restoring {backup} failed, {db} was not changed: {reason}") from e
        kept = _keep_aside(db) if db.exists() else None
        # A write-ahead log left by the old file would be replayed onto the new one: it goes (kept aside above).
        Path(f"{db}.wal").unlink(missing_ok=True)
        os.replace(temporary, db)
        _fsync_folder(db.parent)
    finally:
        _remove(temporary)
    return Restored(db, counts, kept)


def _refuse_the_database(dest: Path, db: Path) -> None:
    """Refuse, before anything is touched, a backup target that is the database ``db`` or its log."""
    what = _database_file(dest, db, "the database")
    if what:
        raise BackupError(f"{dest} is {what}: a backup goes into a file of its own, elsewhere. Nothing was written")


def _database_file(path: Path, db: Path, name: str) -> str | None:
    """Whether ``path`` is ``db`` or its log (which need not exist yet), through ``..``, symlinks or hard links:
    "<name> <db> itself", "the write-ahead log of <name> <db>", or None."""
    wals = {Path(f"{db}.wal"), Path(f"{os.path.realpath(db)}.wal")}  # DuckDB puts it beside the name it was given
    for what, candidates in ((f"{name} {db} itself", {db}), (f"the write-ahead log of {name} {db}", wals)):
        for candidate in candidates:
            if os.path.realpath(path) == os.path.realpath(candidate):
                return what
            try:
                if os.path.samefile(path, candidate):
                    return what
            except OSError:
                pass  # one of them does not exist
    return None


def _check_replaceable(db: Path, replace: bool) -> None:
    """Refuse a held database always, and one with rows (or one that is not ours) unless ``replace``."""
    try:
        con = connection.connect(db, read_only=True, wait_seconds=1.0)
    except connection.StoreBusy:
        raise BackupError(f"database {db} is held by another process (most likely the running dashboard); "
                          "stop it, then restore") from None
    except connection.StoreError as e:
        if replace:
            return
        raise BackupError(f"{e}. Pass --replace to replace it with the backup (it is kept beside it)") from None
    try:
        rows = sum(_table_counts(con).values())
    finally:
        con.close()
    if rows and not replace:
        raise BackupError(f"database {db} is not empty ({rows:,} rows); pass --replace to replace it with the "
                          "backup (the current file is kept beside it)")


def _keep_aside(db: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kept = db.with_name(f"{db.name}.before-restore-{stamp}")
    n = 1
    while kept.exists():
        n += 1
        kept = db.with_name(f"{db.name}.before-restore-{stamp}-{n}")
    for source, target in ((db, kept), (Path(f"{db}.wal"), Path(f"{kept}.wal"))):
        if source.exists():
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
    return kept


def _counts(path: Path, what: str = "database") -> dict[str, int]:
    try:
        con = connection.connect(path, read_only=True)
    except connection.StoreError as e:
        raise BackupError(f"{what} {path} cannot be used: {e}") from None
    try:
        return _table_counts(con)
    finally:
        con.close()


def _table_counts(con) -> dict[str, int]:
    if connection.schema_version(con) == 0:
        return dict.fromkeys(DATA_TABLES, 0)
    if connection.schema_version(con) > SCHEMA_VERSION:
        raise BackupError("the file has a newer schema than this program")
    return {table: con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] for table in DATA_TABLES}


def _temporary_beside(path: Path, purpose: str) -> Path:
    """A fresh name in the same folder (so the final rename is atomic), hidden, unique."""
    return path.with_name(f".{path.name}.{purpose}-{uuid.uuid4().hex[:12]}.tmp")


def _remove(path: Path) -> None:
    for leftover in (path, Path(f"{path}.wal")):
        try:
            leftover.unlink(missing_ok=True)
        except OSError:
            pass


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
