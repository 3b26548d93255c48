"""The rules a configuration puts in force, described so that two files with the same rules read the same, and the
difference between two such descriptions in words (the audit trail's record of ``support.toml``).

The rules are what decides a number or who may see it: every calendar with its dated versions, ``[sla]`` with
its dated versions, ``[monitoring]``, ``[roles]``, and the part of ``[mail]`` that decides whose message is the
team's (``support_addresses``, ``trusted_authserv_ids``). Mailbox accounts, password variables, backups and where
alerts go are how the service runs, not rules, and are left out. Each version is described in full, as parsed
(so a comment, the order of keys or ``99.90`` for ``99.9`` changes nothing), and the description is hashed as
canonical JSON (keys sorted, no spaces), so its sha256 changes exactly when a rule does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from decimal import Decimal

from kb.config.calendar import WEEKDAYS, CalendarConfig
from kb.config.changes import ALWAYS, Versions
from kb.config.sla import SlaConfig

FIRST_RECORDED = "first recorded"


def effective_rules(config) -> dict:
    """The rules ``config`` (a ``kb.config.Config``) puts in force, as JSON values: ``calendars`` by name (its
    ``timezone`` and ``versions``, each a ``from`` date and every key of the section), ``sla`` (its versions),
    ``monitoring``, ``roles`` (address or @domain → role) and ``mail`` (the team's addresses and the servers
    trusted to vouch for them)."""
    return {
        "calendars": {calendar.name: {"timezone": calendar.versions.base.timezone,
                                      "versions": _versions(calendar.versions, _calendar_settings)}
                      for calendar in config.calendars},
        "sla": _versions(config.sla_changes, _sla_settings),
        "monitoring": {"stale_after_days": config.stale_after_days},
        "roles": dict(sorted(config.roles.items())),
        "mail": {"support_addresses": list(config.mail.support_addresses),
                 "trusted_authserv_ids": list(config.mail.trusted_authserv_ids)},
    }


def fingerprint(rules: dict) -> str:
    """The sha256 (hex) of ``rules`` as canonical JSON: keys sorted, no spaces, UTF-8."""
    text = json.dumps(rules, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _versions(versions: Versions, settings) -> list[dict]:
    return [{"from": since.isoformat(), **settings(rules)} for since, rules in versions.versions]


def _calendar_settings(calendar: CalendarConfig) -> dict:
    """A calendar version as ``[calendar]`` writes it, but its zone (which never changes on a date)."""
    return {
        "business_hours": [f"{calendar.opens:%H:%M}", f"{calendar.closes:%H:%M}"],
        "weekend": [WEEKDAYS[day] for day in calendar.weekend],
        "holidays_country": calendar.holidays_country,
        "holidays_subdivision": calendar.holidays_subdivision,
        "extra_holidays": [day.isoformat() for day in calendar.extra_holidays],
        "working_days": [day.isoformat() for day in calendar.working_days],
    }


def _sla_settings(sla: SlaConfig) -> dict:
    return {field.name: _plain(getattr(sla, field.name)) for field in fields(SlaConfig)}


def _plain(value):
    """A number as the same JSON value however the file wrote it: ``99.90`` and ``99.9`` are ``"99.9"``."""
    return f"{value.normalize():f}" if isinstance(value, Decimal) else value


def settings_by_version(versions: list[dict]) -> list[tuple[str, dict]]:
    """What each version of a section sets: the first every key, each later one the keys whose value differs
    from the version before it (a change is written as what it changes). ``(from, settings)`` pairs."""
    found, before = [], {}
    for version in versions:
        settings = {key: value for key, value in version.items() if key != "from"}
        found.append((version["from"], {key: value for key, value in settings.items()
                                        if not before or before.get(key) != value}))
        before = settings
    return found


# --- The difference in words ---------------------------------------------------------------------------------

def differences(old: dict | None, new: dict) -> list[str]:
    """What changed from the rules ``old`` to ``new`` (both ``effective_rules``), one line each, keys named as
    ``support.toml`` names them: "sla.enterprise_response_business_days: 1 → 2", "calendar: from 2027-01-01
    business hours 08:00–18:00 (new change)", "roles.sam@example.com: none → staff". ``old`` None: the rules
    were never recorded, ``["first recorded"]``."""
    if old is None:
        return [FIRST_RECORDED]
    lines = []
    old_calendars, new_calendars = old["calendars"], new["calendars"]
    for name in [*new_calendars, *(n for n in old_calendars if n not in new_calendars)]:
        where = "calendar" if name == "support" else f"calendars.{name}"
        if name not in old_calendars:
            lines.append(f"{where}: new calendar in {new_calendars[name]['timezone']}, "
                         + "; ".join(_version_words(since, settings)
                                     for since, settings in settings_by_version(new_calendars[name]["versions"])))
        elif name not in new_calendars:
            lines.append(f"{where}: removed")
        else:
            lines += _changed(f"{where}.timezone", old_calendars[name]["timezone"], new_calendars[name]["timezone"])
            lines += _version_differences(where, old_calendars[name]["versions"], new_calendars[name]["versions"])
    lines += _version_differences("sla", old["sla"], new["sla"])
    for section in ("monitoring", "roles", "mail"):
        before, after = old.get(section, {}), new.get(section, {})
        for key in [*before, *(k for k in after if k not in before)]:
            lines += _changed(f"{section}.{key}", before.get(key), after.get(key))
    return lines


def _version_differences(where: str, old: list[dict], new: list[dict]) -> list[str]:
    """A section's own keys that changed, then each dated change added, removed or altered, by date."""
    before, after = dict(settings_by_version(old)), dict(settings_by_version(new))
    base = ALWAYS.isoformat()
    lines = [line for key in after[base] for line in _changed(f"{where}.{key}", before[base].get(key),
                                                               after[base][key])]
    for since in sorted((set(before) | set(after)) - {base}):
        if since not in before:
            lines.append(f"{where}: from {since} {_setting_words(after[since])} (new change)")
        elif since not in after:
            lines.append(f"{where}: the change from {since} removed (it set {_setting_words(before[since])})")
        elif before[since] != after[since]:
            lines.append(f"{where}: the change from {since} now sets {_setting_words(after[since])} "
                         f"(it set {_setting_words(before[since])})")
    return lines


def _changed(key: str, before, after) -> list[str]:
    return [] if before == after else [f"{key}: {_value_words(key, before)} → {_value_words(key, after)}"]


def _version_words(since: str, settings: dict) -> str:
    return f"{'always' if since == ALWAYS.isoformat() else 'from ' + since} {_setting_words(settings)}"


def _setting_words(settings: dict) -> str:
    """"business hours 08:00–18:00, weekend Sat", or "nothing new" for a change that sets what was in force."""
    return ", ".join(f"{key.replace('_', ' ')} {_value_words(key, value)}" for key, value in settings.items()) \
        or "nothing new"


def _value_words(key: str, value) -> str:
    """A value as the file writes it, in words: business hours as "09:00–18:00", a list joined, nothing as
    "none"."""
    if value is None or value == "" or value == []:
        return "none"
    if key.endswith("business_hours"):
        return "–".join(value)
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
