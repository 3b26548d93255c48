"""Rules of ``[sla]`` as they were on a date (rules: dated changes), as SQL a query evaluates per row.

``[[sla.changes]]`` give the defaults from a date on; a month is judged by the
defaults in force on its first day, a case by those in force on the day it was
received (``kb/engine/policies.py``), so a change never moves a past month.
"""

from __future__ import annotations

from collections.abc import Callable

from kb.config import Config, SlaConfig


def sla_on(config: Config, day_sql: str, value: Callable[[SlaConfig], str]) -> str:
    """SQL for ``value`` (SQL made from one version of ``[sla]``) of the version in force on the local date
    ``day_sql``: the newest change on or before it, else ``[sla]`` itself."""
    versions = config.sla_changes.versions
    if len(versions) == 1:
        return value(config.sla)
    whens = " ".join(f"WHEN {day_sql} >= DATE '{since.isoformat()}' THEN {value(rules)}"
                     for since, rules in reversed(versions[1:]))
    return f"CASE {whens} ELSE {value(config.sla)} END"
