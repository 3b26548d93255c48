"""The service running in this process, for the dashboard's pages to share its store.

The lifespan (``kb.service.app``) registers the ``Running`` service once the store is open; the
pages' ``kb.ui.open_app`` asks ``running()`` and, when it answers, uses that store rather than open
the file again. Without the service (AppTest, the bench) nothing is registered and the pages open
the store themselves, as before.

The record lives on a module of its own without a file (``_kb_running_service`` in ``sys.modules``):
when a source file changes, Streamlit unloads every module of the project to import it afresh on the
next run, and a plain module-level variable here would be lost with it; that module is left alone.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HOLDER = "_kb_running_service"


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
