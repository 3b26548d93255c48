"""The service's scheduled backups: where each goes, which are kept, and one run of the ``backup`` job
(``kb.service.jobs``).

Backups (``[backup]``: ``every_hours``, default 24, 0 turns them off; ``keep``, default 7) go to
``backups/<db name>-auto-<UTC time>.duckdb`` beside the database (``kb.db.backup``: one consistent
copy, the writes held back a fraction of a second, written whole or not at all); after each one the
oldest of these beyond ``keep`` are deleted. Backups made by hand (``<db name>-<UTC time>.duckdb``) are
never deleted.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

from kb.db.backup import backup_folder

log = logging.getLogger("kb.service.jobs")  # a run of the backup job logs as the jobs do

AUTO_MARK = "auto"

_AUTO_NAME = re.compile(r"-auto-(\d{8}T\d{6}Z)(?:-(\d+))?\.duckdb")


def auto_backup_path(db: str | Path, now: datetime | None = None) -> Path:
    """``backups/<name>-auto-YYYYmmddTHHMMSSZ.duckdb`` beside the database; ``-2``, ``-3``… when taken."""
    db = Path(db)
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = backup_folder(db)
    path, n = folder / f"{db.stem}-{AUTO_MARK}-{stamp}.duckdb", 1
    while path.exists():
        n += 1
        path = folder / f"{db.stem}-{AUTO_MARK}-{stamp}-{n}.duckdb"
    return path


def auto_backups(db: str | Path) -> list[Path]:
    """The scheduled backups of ``db``, oldest first."""
    db = Path(db)
    folder = backup_folder(db)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        name = path.name
        if name.startswith(f"{db.stem}-") and (match := _AUTO_NAME.fullmatch(name[len(db.stem):])):
            found.append(((match.group(1), int(match.group(2) or 1)), path))
    return [path for _, path in sorted(found)]


def prune_backups(db: str | Path, keep: int) -> list[Path]:
    """Delete the oldest scheduled backups of ``db`` beyond the newest ``keep``; returns those deleted."""
    backups = auto_backups(db)
    doomed = backups[: max(0, len(backups) - keep)]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def run_backup(store, *, keep: int, now: datetime | None = None) -> str:
    """Back the store up beside it (``Store.backup``), then keep the newest ``keep``."""
    target = auto_backup_path(store.path, now)
    counts = store.backup(target)
    removed = prune_backups(store.path, keep)
    log.info("backup written to %s; %d older removed", target, len(removed))
    return f"{target.name}: {sum(counts.values()):,} rows" + (f"; removed {len(removed)} older" if removed else "")
