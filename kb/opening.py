"""Which store this process opens, and the one it shares once open.

The dashboard and the service open ``$SUPPORT_DB`` here (``open_store``), or, without one, the demo database
``data/demo.duckdb``, written with the demo data when it is new. The service's lifespan (``kb.service.app``)
registers what it opened (``register``); the pages' ``kb.ui.open_app`` asks ``running()`` and, when it
answers, uses that store rather than open the file again. Without the service (AppTest, the bench) nothing
is registered and the pages open the store themselves. The command line finds its file with
``kb.db.connection.db_path`` and writes the demo data with ``kb.tools.demo.write_demo``.

The rules come from the configuration file, read once (``load_watched``) and again when it changes
(``reload_config``: the service's jobs check it, an admin presses "Reload configuration"): the new file is
validated whole, and against the policies stored (a calendar a policy row names cannot go), before the store
takes it (``Store.use_config``); a file that cannot be used leaves the rules in force as they were, and says
why (``ConfigFile.problem``, shown on the Configuration page and under ``attention`` in ``/healthz``). Each
time the service starts or takes a file, the rules' description (``kb.config.effective``) is compared with the
last one the audit trail recorded, and a row is added when they differ (``record_rules``), naming the
differences; the actor is the file, since who edited it cannot be known.

The record of the running service, and of each configuration file read, lives on a module of its own without a
file (``_kb_running_service`` in ``sys.modules``): when a source file changes, Streamlit unloads every module of
the project to import it afresh on the next run, and a plain module-level variable here would be lost with it;
that module is left alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import types
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kb.access import Actor, command_line_actor
from kb.config import Config, ConfigError, config_bytes, config_from_bytes, config_path
from kb.config.effective import differences, effective_rules, fingerprint
from kb.db import audit
from kb.db.connection import DEMO_DB, transaction
from kb.store import Store
from kb.timestamps import now_utc
from kb.tools.demo import write_demo

_HOLDER = "_kb_running_service"
RULES_TABLE = "support.toml"  # the audit trail's table_name (and actor) of the file's rules
FILE = Actor(RULES_TABLE, "admin")  # who changed the rules cannot be known from a file: the file is the actor

log = logging.getLogger("kb.service")


def open_store(db_setting: str, config: Config) -> tuple[Store, bool]:
    """The store at ``db_setting`` (a path), or, without one, the demo database, written with the demo data
    when it is new; and whether it is the demo. The dashboard and the service open their store here."""
    if db_setting:
        return Store(Path(db_setting), config), False
    fresh = not DEMO_DB.exists()
    store = Store(DEMO_DB, config)
    if fresh:
        store.write(write_demo, config, now_utc().astimezone(config.calendar.zone).date(), command_line_actor())
    return store, True


@dataclass
class Running:
    """What the lifespan opened: the store (None when it could not be opened, ``error`` then says why)."""

    store: Any  # kb.store.Store (typed loosely: its class may have been imported afresh since)
    demo: bool
    path: Path
    error: Exception | None = None
    state: dict = field(default_factory=dict)  # what the lifespan yields, for every request


def _holder() -> types.ModuleType:
    holder = sys.modules.get(_HOLDER)
    if holder is None:
        holder = sys.modules.setdefault(_HOLDER, types.ModuleType(_HOLDER))
    return holder


def register(service: Running | None) -> None:
    """Record the service of this process (None: it stopped)."""
    _holder().service = service


def running() -> Running | None:
    """The service of this process, or None when the dashboard runs without it."""
    return getattr(_holder(), "service", None)


# --- The configuration file and its rules --------------------------------------------------------------------

@dataclass
class ConfigFile:
    """A configuration file as this process last read it: the sha256 of the bytes whose rules are in use, and,
    while the file as it is now cannot be used, why (the rules in use stay those last read)."""

    path: Path
    digest: str | None = None  # of the bytes in use; None: not read by this process yet
    read_at: datetime | None = None  # when they were read
    problem: str | None = None  # why the file as it is now is not in use; None: it is
    problem_since: datetime | None = None
    refused: str | None = None  # the digest of the bytes refused, read once rather than at every check
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def took(self, digest: str) -> None:
        """The bytes of sha256 ``digest`` were read, and their rules are in use."""
        self.digest, self.read_at = digest, now_utc()
        self.usable()

    def usable(self) -> None:
        """The file as it is now is the one in use: no problem to show."""
        self.problem = self.problem_since = self.refused = None

    def refuse(self, digest: str | None, problem: str) -> None:
        """The file as it is now (sha256 ``digest``; None: it could not be read) cannot be used, for ``problem``."""
        if problem != self.problem:
            log.error("the configuration file %s cannot be used, the rules in force stay as they were: %s",
                      self.path, problem)
            self.problem_since = now_utc()
        self.problem, self.refused = problem, digest


def config_file(path: str | os.PathLike | None = None) -> ConfigFile:
    """This process's record of the configuration file at ``path`` (``kb.config.config_path``: ``--config``,
    ``$SUPPORT_CONFIG``, else ``support.toml``)."""
    resolved = config_path(path).resolve()
    files = _holder().__dict__.setdefault("config_files", {})
    return files.setdefault(resolved, ConfigFile(resolved))


def load_watched(path: str | os.PathLike | None = None) -> Config:
    """The configuration at ``path``, validated (ConfigError naming the bad key), its bytes noted as the ones in
    use so that a reload knows whether the file changed since."""
    source = config_file(path)
    with source.lock:
        data = config_bytes(source.path)
        config = config_from_bytes(data, source.path)
        source.took(_sha256(data))
    return config


@dataclass(frozen=True)
class Reload:
    """What a reload did: ``outcome`` 'unchanged' (the file is the one in use), 'reloaded' (the store took it;
    ``changes``, the differences in its rules the audit trail recorded, empty when none did) or 'refused'
    (``problem``: why; the rules in force stay as they were)."""

    outcome: str
    changes: tuple[str, ...] = ()
    problem: str | None = None


def reload_config(store: Store, path: str | os.PathLike | None = None, *, noticed: str) -> Reload:
    """Read the configuration file again and, when it changed, validate it whole and against the stored policies,
    give it to ``store`` and record its rules (``record_rules``); a file that cannot be used is refused and the
    rules in force stay. ``noticed``: how the change came to be read, for the audit row ("file check",
    "Reload configuration by ada@example.com")."""
    source = config_file(path)
    with source.lock:
        try:
            data = config_bytes(source.path)
        except ConfigError as e:
            source.refuse(None, str(e))
            return Reload("refused", problem=str(e))
        digest = _sha256(data)
        if digest == source.digest:
            source.usable()  # a bad edit undone, if there was one
            return Reload("unchanged")
        if digest == source.refused:
            return Reload("refused", problem=source.problem)
        try:
            config = config_from_bytes(data, source.path)
            _check_policies(store, config)
        except ConfigError as e:
            source.refuse(digest, str(e))
            return Reload("refused", problem=str(e))
        store.use_config(config)
        source.took(digest)
        log.info("the configuration file %s was reloaded (%s)", source.path, noticed)
        return Reload("reloaded", tuple(record_rules(store, noticed=noticed, path=source.path) or ()))


def _check_policies(store: Store, config: Config) -> None:
    """Every calendar a stored policy row names is one of ``config``'s: a row whose calendar went would give its
    cases no target at all."""
    with store.reader() as cur:
        named = [row[0] for row in cur.execute("SELECT DISTINCT calendar FROM policies ORDER BY 1").fetchall()]
    missing = [name for name in named if name not in config.calendar_names]
    if missing:
        raise ConfigError(f"stored policy rows run on the calendar{'s' if len(missing) > 1 else ''} "
                          f"{', '.join(missing)}, which the file no longer has: keep [calendars.{missing[0]}], or "
                          "move those rows to another calendar first (Clients and contracts, Policies)")


def record_rules(store: Store, *, noticed: str, path: Path | None = None) -> list[str] | None:
    """Compare the rules in force in ``store`` with the last ones the audit trail recorded and, when they differ,
    record them: a row ``rules`` on ``support.toml`` by the file, ``before`` the last sha256, ``after`` the new
    sha256, the ``changes`` in words ("first recorded" the first time), the ``rules`` described in full (what
    the next comparison reads), the ``file`` and how the change was ``noticed``. The changes; None when the
    rules are the ones recorded."""
    rules = effective_rules(store.config)
    digest = fingerprint(rules)
    last = last_rules(store)
    if last is not None and last.get("sha256") == digest:
        return None
    changes = differences(last.get("rules") if last else None, rules)
    after = {"sha256": digest, "changes": changes, "rules": rules, "noticed": noticed,
             "file": str(path or config_path())}
    store.write(_record, {"sha256": last.get("sha256")} if last else None, after)
    return changes


def last_rules(store: Store) -> dict | None:
    """The ``after`` of the audit trail's last record of the rules (``record_rules``), with ``logged_at``; None
    when none was recorded."""
    with store.reader() as cur:
        rows = cur.execute("SELECT after, logged_at FROM audit_log WHERE action = 'rules' AND table_name = ? "
                           "ORDER BY audit_id DESC LIMIT 1", [RULES_TABLE]).fetchall()
    return {**json.loads(rows[0][0]), "logged_at": rows[0][1]} if rows else None


def _record(con, before: dict | None, after: dict) -> None:
    with transaction(con):
        audit.record(con, FILE, "rules", RULES_TABLE, None, before, after)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
