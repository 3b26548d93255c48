"""Which store this process opens, and the one it shares once open.

The dashboard and the service open ``$SUPPORT_DB`` here (``open_store``), or, without one, the demo database
``data/demo.duckdb``, written with the demo data when it is new. The service's lifespan (``kb.service.app``)
registers what it opened (``register``); the pages' ``kb.ui.open_app`` asks ``running()`` and, when it
answers, uses that store rather than open the file again. Without the service (AppTest, the bench) nothing
is registered and the pages open the store themselves. The command line finds its file with
``kb.db.connection.db_path`` and writes the demo data with ``kb.tools.demo.write_demo``.

The record of the running service lives on a module of its own without a file (``_kb_running_service`` in
``sys.modules``): when a source file changes, Streamlit unloads every module of the project to import it
afresh on the next run, and a plain module-level variable here would be lost with it; that module is left
alone.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.access import command_line_actor
from kb.config import PROJECT_ROOT, Config
from kb.store import Store
from kb.timestamps import now_utc
from kb.tools.demo import write_demo

DEMO_DB = PROJECT_ROOT / "data" / "demo.duckdb"
_HOLDER = "_kb_running_service"


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
