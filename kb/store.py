"""The dashboard's one owner of the database file.

DuckDB lets one process hold a file read-write. The dashboard process opens it
once; every read gets its own cursor, and every write goes through one lock,
in a transaction (``kb.db.connection.transaction``), retried when DuckDB
reports a write conflict: ``Store.transaction()`` for a block of statements,
``Store.write(action, …)`` for one of kb's write functions. Each committed
write bumps ``version``, which is what cached reads are keyed on, so a write
shows up on every page at once.

The as-of views are costly on large tables, so they are computed once per
version and minute into Arrow tables (a ``Snapshot``) that every page queries,
with ``open_case_sla``: the rows of ``case_sla`` not resolved yet, for the queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from kb.config import Config
from kb.db import connection
from kb.engine.asof import open_views
from kb.timestamps import now_utc

T = TypeVar("T")
SNAPSHOT_TABLES = ("case_sla", "env_uptime", "contract_refunds")


@dataclass(frozen=True)
class Snapshot:
    """The as-of views materialized at one instant, for one store version."""

    as_of: datetime
    version: int
    tables: dict[str, pa.Table]


class Store:
    def __init__(self, path: str | Path, config: Config, *, wait_seconds: float = 5.0):
        self.path = Path(path)
        self.config = config
        self._con = connection.connect(self.path, wait_seconds=wait_seconds)
        self._write_lock = threading.Lock()
        self._snapshot_lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._frozen = False
        self.version = 0

    @contextmanager
    def reader(self, snapshot: Snapshot | None = None):
        """A cursor of its own; with a snapshot, its tables are registered under the views' names."""
        with self._cursor() as cur:
            if snapshot is not None:
                for name, table in snapshot.tables.items():
                    cur.register(name, table)
            yield cur

    def query(self, sql: str, params=None, snapshot: Snapshot | None = None):
        """A DataFrame from one SELECT."""
        with self.reader(snapshot) as cur:
            return cur.execute(sql, params or []).fetchdf()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor in a transaction, as the only writer: committed when the block ends (and
        ``version`` bumped), rolled back when it raises.

        A ``with`` block cannot be run a second time, so a write conflict in it is raised
        (``Store.write``, which holds the action, runs it again instead). The functions of
        ``kb.intake`` called inside join this transaction.
        """
        with self._write_lock, self._cursor() as cur:
            with connection.transaction(cur):
                yield cur
            self.version += 1

    def write(self, action: Callable[..., T], *args, attempts: int = 5, **kwargs) -> T:
        """Run ``action(cursor, *args, **kwargs)`` as the only writer; run it again on a write conflict.

        ``action`` is one of kb's writes: it opens its own ``transaction`` (so a
        failed attempt leaves nothing behind), or, like a backup, runs outside one.
        """
        with self._write_lock:
            for attempt in range(attempts):
                try:
                    with self._cursor() as cur:
                        result = action(cur, *args, **kwargs)
                except duckdb.TransactionException as e:
                    if "conflict" not in str(e).lower() or attempt == attempts - 1:
                        raise
                    time.sleep(0.05 * (attempt + 1))
                    continue
                self.version += 1
                return result
        raise AssertionError("unreachable")

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cur = connection.cursor(self._con)
        try:
            yield cur
        finally:
            cur.close()

    def snapshot(self, as_of: datetime | None = None, *, max_age_seconds: float = 60.0) -> Snapshot:
        """The as-of tables at ``as_of`` (default: now), reused until the next write, and for "now"
        for at most ``max_age_seconds``."""
        with self._snapshot_lock:
            current = self._snapshot
            fresh = current is not None and current.version == self.version and (
                current.as_of == as_of if as_of is not None
                else not self._frozen and (now_utc() - current.as_of).total_seconds() <= max_age_seconds)
            if not fresh:
                current = self._snapshot = None  # the old tables can go before the new ones exist (memory)
                current = self._snapshot = self._build_snapshot(as_of or now_utc())
                self._frozen = as_of is not None
            return current

    def _build_snapshot(self, as_of: datetime) -> Snapshot:
        version = self.version
        with self.reader() as cur:
            open_views(cur, self.config, as_of)
            tables = {name: cur.sql(f"SELECT * FROM {name}").to_arrow_table() for name in SNAPSHOT_TABLES}
        # The queue reads only unresolved cases: a few thousand rows, kept apart from the million others.
        cases = tables["case_sla"]
        tables["open_case_sla"] = cases.filter(pc.is_null(cases["resolved_at"]))
        return Snapshot(as_of=as_of, version=version, tables=tables)

    def close(self) -> None:
        self._con.close()
