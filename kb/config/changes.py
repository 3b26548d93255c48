"""Rules that change on a date: named calendars and ``[[… .changes]]`` (rules: calendars as data).

A section may list dated changes::

    [[calendar.changes]]
    from = "2027-01-01"
    business_hours = ["08:00", "18:00"]

Each change names the day it takes effect and any of the section's keys. The
rules of a local date are the section's own, overridden by every change dated
on or before it, in date order: so a change never alters a day before its
``from``, and a later change keeps what an earlier one set unless it sets it
again. Changes are listed in date order, each date once; a key the section does
not have is refused by name, and so is a change of ``timezone`` (a calendar's
days are its zone's local dates, which cannot move under past days).

``[calendars.NAME]`` is a calendar of its own (``[calendar]`` is the one named
``support``; ``24x7`` is built in): a key it leaves out is the support
calendar's, so a London calendar may name only its zone, hours and holidays.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Generic, TypeVar

from kb.config.calendar import CalendarConfig, calendar_config
from kb.config.reading import ConfigError, section
from kb.config.sla import SlaConfig, sla_config
from kb.timestamps import TimestampError, parse_date

T = TypeVar("T")
ALWAYS = date(1970, 1, 1)  # the section's own rules hold from the first day the calendar covers
BUILT_IN = ("support", "24x7")
CALENDAR_KEYS = ("timezone", "business_hours", "weekend", "holidays_country", "holidays_subdivision",
                 "extra_holidays", "working_days")
SLA_KEYS = ("at_risk_business_hours", "enterprise_response_business_days", "custom_response_business_days",
            "default_uptime_target_pct", "default_credit_schedule", "response_target_pct",
            "next_response_target_pct", "resolution_target_pct")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class Versions(Generic[T]):
    """A section's rules and their changes: ``(from, rules)`` pairs, the first from ``ALWAYS``."""

    versions: tuple[tuple[date, T], ...]

    @property
    def base(self) -> T:
        return self.versions[0][1]

    def on(self, day: date) -> T:
        """The rules in force on the local date ``day``."""
        return next(rules for since, rules in reversed(self.versions) if since <= day)


@dataclass(frozen=True)
class Calendar:
    """A named calendar with its versions."""

    name: str
    versions: Versions[CalendarConfig]


def versions(table: dict, where: str, keys: tuple[str, ...], parse: Callable[[dict, str], T],
             fixed: tuple[str, ...] = ()) -> Versions[T]:
    """The section ``table`` (named ``where`` in messages) and its ``changes``, each parsed whole by ``parse``
    from the section's own keys overridden by every change up to it."""
    own = {k: v for k, v in table.items() if k != "changes"}
    found = [(ALWAYS, parse(own, where))]
    changes = table.get("changes", [])
    if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
        raise ConfigError(f"{where}.changes must be a list of tables ([[{where}.changes]]), each with a \"from\" date")
    merged = dict(own)
    for i, change in enumerate(changes, 1):
        at = f"{where}.changes[{i}]"
        since = _from(change, at)
        if since <= found[-1][0]:
            raise ConfigError(f"{at}.from = {since.isoformat()} is not after the change before it "
                              f"({found[-1][0].isoformat()}): list changes in date order, each date once")
        for key in change:
            if key == "from":
                continue
            if key in fixed:
                raise ConfigError(f"{at}: {key} cannot change on a date (past days would move); "
                                  f"set it in [{where}] or use another calendar")
            if key not in keys:
                raise ConfigError(f"{at}: unknown key {key!r} (one of {', '.join(k for k in keys if k not in fixed)})")
        merged.update({k: v for k, v in change.items() if k != "from"})
        try:
            found.append((since, parse(merged, where)))
        except ConfigError as e:
            raise ConfigError(f"{at} (from {since.isoformat()}): {e}") from None
    return Versions(tuple(found))


def _from(change: dict, at: str) -> date:
    value = change.get("from")
    if value is None:
        raise ConfigError(f"{at}: \"from\" is missing: the date the change takes effect, e.g. from = \"2027-01-01\"")
    try:
        return value if isinstance(value, date) else parse_date(str(value))
    except TimestampError:
        raise ConfigError(f"{at}.from = {value!r} is not an ISO date like \"2027-01-01\"") from None


def calendars_config(raw: dict) -> tuple[Calendar, ...]:
    """``[calendar]`` as the calendar ``support``, then every ``[calendars.NAME]`` in name order."""
    support = section(raw, "calendar")
    found = [Calendar("support", versions(support, "calendar", CALENDAR_KEYS, calendar_config, ("timezone",)))]
    named = section(raw, "calendars")
    inherited = {k: v for k, v in support.items() if k != "changes"}
    for name in sorted(named):
        where = f"calendars.{name}"
        if name in BUILT_IN:
            raise ConfigError(f"[{where}]: {name!r} is built in ({'[calendar]' if name == 'support' else 'all time'})"
                              "; give this calendar another name")
        if not _NAME.fullmatch(name):
            raise ConfigError(f"[{where}]: a calendar name is 1-32 lower-case letters, digits, - or _")
        table = section(named, name)
        for key in table:
            if key != "changes" and key not in CALENDAR_KEYS:
                raise ConfigError(f"{where}: unknown key {key!r} (one of {', '.join(CALENDAR_KEYS)})")
        found.append(Calendar(name, versions({**inherited, **table}, where, CALENDAR_KEYS, calendar_config,
                                             ("timezone",))))
    return tuple(found)


def sla_versions(raw: dict) -> Versions[SlaConfig]:
    """``[sla]`` and its ``[[sla.changes]]``."""
    return versions(section(raw, "sla"), "sla", SLA_KEYS, lambda table, where: sla_config(table))
