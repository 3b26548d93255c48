"""Every case's rows, kept in files beside the database, so that a process starting does not compute a million
cases again.

Computing ``case_sla`` for every case takes seconds; most of its rows never change again (a case whose every
clock has stopped). So after the dashboard computes every case, it writes the case tables (``KEPT_TABLES``) to
Arrow files in a folder beside the database (``kept_folder``). The next process maps them (no copy) and moves
them on to its instant (``kb.snapshot.moved_case_tables``: only the cases whose rows change with time are
computed again), with the cases written since computed again too.

The files are used only when they say exactly what computing every case would (``opened``):

* the same code and the same rules: they name the sha256 of every source file of ``kb`` with the versions of
  what computes a row with it (``CODE``: DuckDB, pyarrow, public holidays, the time zones) and of the
  configuration's effective rules (``kb.config.effective``);
* the same database, and every write since known: they name the last audit row they saw (its id, its time and
  how many rows the audit trail held up to it). When that row is gone or different, or a row with a lower id
  was committed since (an import commits late), they are not used. The audit rows written since say which
  cases those writes touched (``kb.snapshot.change_of``: an edit of a client, a contract or a policy names the
  clients whose cases it changed); a write that names no row (an import, the rules) means computing everything
  again;
* an instant no earlier than theirs.

Only one process holds the database (DuckDB), so only one uses the files at a time; each file is replaced
whole (a temporary file renamed), and both carry the same token, so a pair written half is never read.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import threading
import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import holidays
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from kb.config import Config
from kb.config.effective import effective_rules, fingerprint
from kb.db import connection
from kb.engine.asof import every_case_rows
from kb.snapshot import SLICE_ROWS, Change, change_of, moved_case_tables, running

KEPT_TABLES = ("case_questions", "case_sla")
ABOUT = b"kb.kept"  # the schema metadata key of what the files were computed from

log = logging.getLogger(__name__)


def _code_fingerprint() -> str:
    """The sha256 of every source file of the package (their paths and bytes), of the versions of what computes
    a row with it (DuckDB, pyarrow, the ``holidays`` package's public holidays) and of the time zone database's:
    new code or data may compute a row differently, so it never reads rows kept by other code."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256(f"{duckdb.__version__} {pa.__version__} {holidays.__version__}".encode())
    for folder in zoneinfo.TZPATH:  # the system's zones, which zoneinfo reads first: their version
        version = Path(folder) / "tzdata.zi"
        if version.is_file():
            with version.open("rb") as first:
                digest.update(first.readline())
    try:
        digest.update(importlib.metadata.version("tzdata").encode())  # the zones zoneinfo falls back to
    except importlib.metadata.PackageNotFoundError:
        pass
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


CODE = _code_fingerprint()


@dataclass(frozen=True)
class Mark:
    """The last audit row the kept rows saw: its id, its time and how many rows the trail held up to it."""

    audit_id: int
    logged_at: str
    rows: int


def audit_mark(cur) -> Mark:
    """The audit trail's last row now (read before computing the rows to keep: a write committed meanwhile
    is then computed again on opening, which changes nothing)."""
    last = cur.execute("SELECT audit_id, CAST(logged_at AS VARCHAR), (SELECT count(*) FROM audit_log) "
                       "FROM audit_log ORDER BY audit_id DESC LIMIT 1").fetchall()
    return Mark(*last[0]) if last else Mark(0, "", 0)


def kept_folder(db: Path) -> Path | None:
    """Where the rows of the database ``db`` are kept: ``<db>.kept`` beside it (None for an in-memory one)."""
    return None if str(db) == ":memory:" else db.with_name(db.name + ".kept")


def keep(folder: Path, config: Config, tables: dict[str, pa.Table], as_of: datetime, mark: Mark) -> None:
    """Write ``tables`` (every case's rows as of ``as_of``, computed from the database as it was at ``mark`` or
    later) to ``folder``, the rows of the cases running (``kb.snapshot.running``) last: those the next process
    computes again, so that it copies only the last slices to replace them. A slice at a time (and the running
    rows, a few thousand), so that keeping them takes little memory beside the tables. On failure (a full disk)
    the folder is emptied, and the next process computes every case."""
    about = json.dumps({"code": CODE, "rules": fingerprint(effective_rules(config)), "as_of": as_of.isoformat(),
                        "mark": [mark.audit_id, mark.logged_at, mark.rows], "token": uuid.uuid4().hex}).encode()
    sla = tables["case_sla"]
    moving = running(sla)
    asked = pc.is_in(tables["case_questions"]["case_id"], value_set=sla.filter(moving)["case_id"].combine_chunks())
    with _keeping:
        try:
            forget(folder)  # (and what a process stopped while writing left)
            folder.mkdir(exist_ok=True)
            for name, last in (("case_questions", asked), ("case_sla", moving)):
                _write_last(folder, name, tables[name], pc.fill_null(last, False).combine_chunks(), about)
            directory = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(directory)  # the new names too
            finally:
                os.close(directory)
        except OSError:
            log.warning("the case rows could not be kept in %s", folder, exc_info=True)
            forget(folder)


_keeping = threading.Lock()  # one writing at a time in a process


def _write_last(folder: Path, name: str, table: pa.Table, last: pa.BooleanArray, about: bytes) -> None:
    """``folder/<name>.arrow``: ``table``'s rows, those where ``last`` holds last, with ``about`` in its schema's
    metadata; written beside it and renamed into place."""
    schema = table.schema.with_metadata({**(table.schema.metadata or {}), ABOUT: about})
    temporary = folder / f".{name}.{uuid.uuid4().hex}.arrow"
    with pa.OSFile(str(temporary), "wb") as sink, ipc.new_file(sink, schema) as writer:
        start = 0
        for batch in table.to_batches(max_chunksize=SLICE_ROWS):
            mask = last.slice(start, batch.num_rows)
            start += batch.num_rows
            kept = batch.filter(pc.invert(mask)) if mask.true_count else batch
            if kept.num_rows:
                writer.write_batch(kept)
        writer.write_table(table.filter(last), max_chunksize=SLICE_ROWS)
    with temporary.open("rb") as written:  # on the disk before it takes the name: a power cut leaves it whole
        os.fsync(written.fileno())
    os.replace(temporary, folder / f"{name}.arrow")


def forget(folder: Path) -> None:
    """Remove the kept rows (and any file half-written), and forget having read them."""
    _remember_read(None)
    for path in folder.glob("*.arrow") if folder.is_dir() else ():
        path.unlink(missing_ok=True)


def kept_as_of(folder: Path) -> datetime | None:
    """The instant of the rows kept in ``folder``, if any."""
    about = _read(folder)
    return None if about is None else datetime.fromisoformat(about[0]["as_of"])


def opened(cur, config: Config, folder: Path, as_of: datetime) -> dict[str, pa.Table] | None:
    """The case tables as of ``as_of`` from the rows kept in ``folder``, moved on to ``as_of`` and with the cases
    written since computed again; None when there are none, or they cannot say what computing every case
    would (see the module's note), or when so many cases would be computed again that computing every case
    is as quick."""
    read = _read(folder)
    if read is None:
        return None
    about, tables = read
    try:
        since, mark = datetime.fromisoformat(about["as_of"]), Mark(*about["mark"])
    except (KeyError, TypeError, ValueError):
        return None
    if about.get("code") != CODE or about.get("rules") != fingerprint(effective_rules(config)) or since > as_of:
        return None
    written = _written_since(cur, mark)
    if written is None or written.everything:
        return None
    return moved_case_tables(cur, config, tables, since, as_of, written)


def _read(folder: Path) -> tuple[dict, dict[str, pa.Table]] | None:
    """What the kept rows were computed from, and the tables (mapped, not copied); None when there are none, or
    not a pair written together. The files last read are read once a process while they stay the same: a second
    mapping of them would hold their pages twice, as long as a snapshot read from the first one lives."""
    identity = _identity(folder)
    if identity is None:
        return None
    last = _last_read
    if last is not None and last[0] == identity:
        return last[1], dict(last[2])
    tables, abouts = {}, set()
    try:
        for name in KEPT_TABLES:
            with pa.memory_map(str(folder / f"{name}.arrow")) as source:
                table = ipc.open_file(source).read_all()
            abouts.add((table.schema.metadata or {}).get(ABOUT))
            tables[name] = table.replace_schema_metadata(None)
    except (OSError, pa.ArrowInvalid):
        return None
    if len(abouts) != 1 or None in abouts:
        return None
    try:
        about = json.loads(abouts.pop())
    except ValueError:
        return None
    if not isinstance(about, dict):
        return None
    if _identity(folder) == identity:  # (not replaced while they were mapped)
        _remember_read((identity, about, tables))
    return about, dict(tables)


_last_read: tuple | None = None  # (the files' identity, what they were computed from, their tables)


def _identity(folder: Path) -> tuple | None:
    """Which files of the kept rows ``folder`` holds: their device, inode, size and time of change; None when
    one is missing."""
    try:
        files = tuple(os.stat(folder / f"{name}.arrow") for name in KEPT_TABLES)
    except OSError:
        return None
    return folder, tuple((f.st_dev, f.st_ino, f.st_size, f.st_mtime_ns) for f in files)


def _remember_read(read: tuple | None) -> None:
    """Remember the files last read (or none: they are being replaced, and their mapping may go)."""
    global _last_read
    _last_read = read


def _written_since(cur, mark: Mark) -> Change | None:
    """What the writes committed since ``mark`` changed (``change_of`` their audit rows); None when the trail
    is not the one ``mark`` was read from, or rows were committed below it since."""
    now = cur.execute("SELECT CAST(logged_at AS VARCHAR), (SELECT count(*) FROM audit_log WHERE audit_id <= $id) "
                      "FROM audit_log WHERE audit_id = $id", {"id": mark.audit_id}).fetchall()
    if not now or list(now[0]) != [mark.logged_at, mark.rows]:  # (an empty trail says nothing of the database)
        return None
    rows = cur.execute("SELECT table_name, row_id, before, after FROM audit_log WHERE audit_id > ? "
                       "ORDER BY audit_id", [mark.audit_id]).fetchall()
    return change_of(rows) if rows else Change()


def every_case(cur, config: Config, as_of: datetime) -> dict[str, pa.Table]:
    """Every case's ``case_questions`` and ``case_sla`` as of ``as_of``, as the dashboard opens them: from the
    rows kept beside ``cur``'s database when they can say it (``opened``), else computed by the engine."""
    database = connection.database_file(cur)
    kept = opened(cur, config, kept_folder(database), as_of) if database else None
    return kept or every_case_rows(cur, config, as_of)
