"""Opening the DuckDB file: where it lives, its schema version, and clear errors; and the
two contexts every write runs in.

Every connection runs with ``TimeZone = 'UTC'``: instants are stored as
TIMESTAMPTZ (UTC) and only turned into the support zone for display, or for
reading text without an offset as local time (``local_zone``).

``transaction`` is the one place that begins, commits and rolls back: every
write in kb runs inside it, and one opened inside another joins it.

A full disk is an error like any other to DuckDB ("Could not write file …: No
space left on device", raised by the statement or by the COMMIT, after which
DuckDB has ended the transaction itself). ``full_disk`` recognizes one, so that
every write path can say so in words (``disk_full_message``); the transaction
was never committed, so nothing was written, and the connection stays usable.
"""

from __future__ import annotations

import errno
import os
import re
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import duckdb

from kb.config import PROJECT_ROOT
from kb.db.schema import MIGRATIONS, SCHEMA_VERSION
from kb.db.sqltext import quote
from kb.timestamps import SQL_MACROS


class StoreError(RuntimeError):
    """The database file cannot be used; the message says why and what to do."""


class StoreBusy(StoreError):
    """Another process (most likely the running dashboard) holds the database file."""


DEMO_DB = PROJECT_ROOT / "data" / "demo.duckdb"  # what the dashboard opens without $SUPPORT_DB (``kb.opening``)


def db_path(explicit: str | os.PathLike | None = None) -> Path:
    """``--db``, else ``$SUPPORT_DB``, else ``data/support.duckdb`` at the project root."""
    if explicit:
        return Path(explicit)
    if os.environ.get("SUPPORT_DB"):
        return Path(os.environ["SUPPORT_DB"])
    return PROJECT_ROOT / "data" / "support.duckdb"


def new_database_note(path: Path) -> str | None:
    """What a command that writes says before it makes a database where there is none: a path mistyped, or
    the default one when the dashboard runs on its demo data (``data/demo.duckdb``), would otherwise get a
    new, empty database without a word. None when ``path`` exists."""
    if path.exists():
        return None
    return (f"note: there is no database at {path}: a new one is made there (the dashboard without $SUPPORT_DB "
            f"shows its demo data, {DEMO_DB}; name the database with --db or $SUPPORT_DB)")


def database_file(con) -> Path | None:
    """The file of the database ``con`` works on (None for an in-memory one)."""
    path = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()[0][0]
    return Path(path) if path else None


def connect(
    path: str | os.PathLike, *, read_only: bool = False, wait_seconds: float = 0.0
) -> duckdb.DuckDBPyConnection:
    """A connection to the store at ``path``, created and migrated when writable.

    When another process holds the file, retry for ``wait_seconds`` and then
    raise StoreError saying so, rather than a DuckDB lock traceback.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise StoreError(f"database {path} does not exist (create it with `python -m kb demo` or an import)")
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"database {path} cannot be created: its folder {path.parent} cannot be made "
                             f"({e.strerror})") from None
    _check_header(path)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as e:
            if full_disk(e) is not None:
                raise StoreError(f"database {path} cannot be opened: {disk_full_message(path)}") from None
            if "lock" in str(e).lower():
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                raise StoreBusy(
                    f"database {path} is held by another process (most likely the running dashboard). "
                    "Import through the dashboard's Import page, or stop the dashboard and try again."
                ) from None
            raise StoreError(f"database {path} cannot be opened: {first_line(e)}") from None
        except duckdb.Error as e:
            raise StoreError(f"{path} is not a support database DuckDB can open: {first_line(e)}") from None
    try:
        prepare(con)
        if read_only:
            _check_version(con, path)
        else:
            migrate(con, path)
    except BaseException:
        con.close()  # release the file at once: a refused file stays as it was, and unlocked
        raise
    return con


def _check_header(path: Path) -> None:
    """Refuse, untouched, a file that is not a DuckDB database (DuckDB's header holds b"DUCK" at byte 8).

    Without this DuckDB would try to read a SQLite file through an extension it downloads.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise StoreError(f"database {path} is a directory, not a DuckDB file") from None
    except OSError as e:
        raise StoreError(f"database {path} cannot be read: {e.strerror}") from None
    if head[8:12] == b"DUCK":
        return
    if not head:
        what = "it is an empty file"
    elif head.startswith(b"SQLite format 3"):
        what = "it is a SQLite database"
    else:
        what = "it is not a DuckDB database file"
    raise StoreError(f"{path} cannot be used as the support database: {what}. The file was left untouched; "
                     "point --db or SUPPORT_DB at the support database, or move this file away")


MACROS = "kb_sql"  # an in-memory catalog beside the database's: the package's SQL macros, defined once
USE_MACROS = f"SET search_path = 'main,{MACROS}.main'"


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """The settings and macros every cursor of the database needs, set once on the connection that opened it:
    UTC as the session zone, for every cursor to come, and the macros in their own in-memory catalog
    (``MACROS``), so that a cursor finds them by one setting rather than by defining them all again (a page
    opens tens of cursors). A read-only database cannot hold that catalog: each cursor of it defines them."""
    con.execute("SET GLOBAL TimeZone = 'UTC'")
    # DuckDB's allocator gives back what its queries freed, from threads of its own and after any task that
    # freed more than a little, not at some later query: a process that has computed every case (0.6 GB of
    # working memory) otherwise keeps much of it resident, and the next large query adds to it
    con.execute("SET GLOBAL allocator_background_threads = true")
    con.execute("SET GLOBAL allocator_flush_threshold = '16MB'")
    con.execute("SET GLOBAL allocator_bulk_deallocation_flush_threshold = '64MB'")
    try:
        con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {MACROS}")
    except duckdb.CatalogException:  # read-only
        con.execute(SQL_MACROS)
        return
    con.execute(USE_MACROS)
    con.execute(SQL_MACROS.replace("CREATE OR REPLACE TEMP MACRO ", f"CREATE OR REPLACE MACRO {MACROS}.main."))


def cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor for one reader: shares the database, carries its own settings."""
    cur = con.cursor()
    try:
        cur.execute(USE_MACROS)
    except duckdb.CatalogException:  # a read-only database, without the macros' catalog
        cur.execute(SQL_MACROS)
    return cur


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    tables = {row[0] for row in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()").fetchall()}
    if "schema_version" not in tables:
        if tables:
            return -1
        return 0
    return con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0] or 0


def migrate(con: duckdb.DuckDBPyConnection, path: Path | str = "database") -> None:
    version = _check_version(con, path)
    if version == SCHEMA_VERSION:
        return
    with transaction(con):
        if version == 0:
            con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
        for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            con.execute(sql)
            con.execute("INSERT INTO schema_version VALUES (?, now())", [number])


def _check_version(con: duckdb.DuckDBPyConnection, path: Path | str) -> int:
    version = schema_version(con)
    if version < 0:
        raise StoreError(f"{path} holds tables that are not a support database; refusing to touch it")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {version}, newer than this program's {SCHEMA_VERSION}; upgrade the program"
        )
    return version


# The connections (cursors) inside a ``transaction`` right now: a transaction opened on one of them joins it.
_in_transaction: weakref.WeakSet = weakref.WeakSet()


@contextmanager
def registered(con, **tables) -> Iterator[None]:
    """Arrow tables (or frames) visible to the queries on ``con`` under the given names while the block runs; let
    go of after it, also when it fails inside a transaction."""
    for name, table in tables.items():
        con.register(name, table)
    try:
        yield
    except BaseException:
        for name in tables:
            try:
                con.unregister(name)
            except duckdb.Error:
                pass  # inside a failed transaction, whose rollback drops them anyway
        raise
    for name in tables:
        con.unregister(name)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection, *,
                commit_in: Callable[[], AbstractContextManager] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction on ``con``: COMMIT when it ends, ROLLBACK on any exception.

    Opened inside another transaction on the same connection, it joins that
    one: the outermost commits or rolls back. When DuckDB has already ended
    the transaction (a failed COMMIT, a conflict, a full disk), the ROLLBACK
    cannot run and the error raised is the original one, not "no transaction
    is active". ``commit_in``: a context the COMMIT alone runs in (an import
    takes the store's write lock for its commit only).
    """
    if con in _in_transaction:
        yield con
        return
    con.execute("BEGIN TRANSACTION")
    _in_transaction.add(con)
    try:
        yield con
        with commit_in() if commit_in is not None else nullcontext():
            con.execute("COMMIT")
    except BaseException as error:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error as failed:
            if "no transaction is active" not in str(failed):
                error.add_note(f"and the rollback failed: {first_line(failed)}")
        raise
    finally:
        _in_transaction.discard(con)


@contextmanager
def local_zone(con: duckdb.DuckDBPyConnection, timezone: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block with the session's TimeZone set to ``timezone`` (text without an offset is then
    local time there), and set it back after. Open it outside ``transaction``: a transaction that
    failed refuses every statement, the one that would set the zone back included."""
    before = con.execute("SELECT current_setting('TimeZone')").fetchall()[0][0]
    if before == timezone:
        yield con
        return
    con.execute(f"SET TimeZone = {quote(timezone)}")
    try:
        yield con
    except BaseException:
        try:
            con.execute(f"SET TimeZone = {quote(before)}")
        except duckdb.Error:
            pass  # inside a failed transaction: the block's own error is the one to report
        raise
    con.execute(f"SET TimeZone = {quote(before)}")


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NO_SPACE_WORDS = tuple(os.strerror(number) for number in _NO_SPACE)  # "No space left on device", …
_QUOTED_FILE = re.compile(r'file "([^"]+)"', re.IGNORECASE)


def full_disk(error: BaseException) -> str | None:
    """When ``error`` says that a disk is full (an OSError, or DuckDB's words for one), the file that could not
    be written ("" when the error does not name it); else None."""
    if isinstance(error, OSError):
        return os.fsdecode(error.filename or "") if error.errno in _NO_SPACE else None
    text = str(error)
    if not any(words in text for words in _NO_SPACE_WORDS):
        return None
    named = _QUOTED_FILE.search(text)
    return named.group(1) if named else ""


def disk_full_message(where: str | os.PathLike) -> str:
    """What a write on a full disk says, whatever the write was."""
    return f"The disk holding {where} is full: nothing was written. Free some space on it and try again."


def disk_full_words(error: BaseException, db: str | os.PathLike) -> str | None:
    """``disk_full_message`` for ``error`` when it says that a disk is full, naming the database ``db`` (or the
    other file that could not be written: a spill to the temporary folder, an export); else None."""
    file = full_disk(error)
    if file is None:
        return None
    return disk_full_message(db if not file or file.startswith(str(db)) else Path(file))


def first_line(error: Exception) -> str:
    """The first line of an error's message (DuckDB adds the query and a caret below it)."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
