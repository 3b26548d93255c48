"""Named calendars for a synthetic data set at scale, and the configuration file that holds them.

``bench_calendars(count, first_day, last_day)`` gives ``count`` ``[calendars.NAME]`` tables, one per city of
``CITIES`` (numbered once they run out): its zone, business hours, weekend and public holidays, each with
one dated change inside the period (``[[calendars.NAME.changes]]``, rules: calendars as data): the hours
move, the weekend changes, or the team closes on extra days and stays open longer. The changes are dated the
first of a month, spread over the period, so that every calendar has cases on both sides of its change.

``config_with(raw, calendars)`` is a configuration (the parsed TOML ``raw`` of another) with those calendars
added, and the team's ``[mail] support_addresses`` when it names none (a synthetic mailbox needs them);
``toml_text`` writes one back as TOML. The generator (``kb.tools.generate_sla``) puts a policy on every named
calendar of the configuration it is given; the bench (``kb.tools.bench``) writes such a file for its worker.
"""

from __future__ import annotations

import json
from datetime import date, time
from typing import Any

# name, zone, holidays country and subdivision, business hours, weekend
CITIES = (
    ("london", "Europe/London", "GB", "ENG", ("09:00", "17:30"), ("Sat", "Sun")),
    ("new-york", "America/New_York", "US", "NY", ("09:00", "18:00"), ("Sat", "Sun")),
    ("san-francisco", "America/Los_Angeles", "US", "CA", ("08:00", "17:00"), ("Sat", "Sun")),
    ("tokyo", "Asia/Tokyo", "JP", "", ("09:30", "18:30"), ("Sat", "Sun")),
    ("sydney", "Australia/Sydney", "AU", "NSW", ("08:30", "17:00"), ("Sat", "Sun")),
    ("dubai", "Asia/Dubai", "AE", "", ("08:00", "17:00"), ("Fri", "Sat")),
    ("riyadh", "Asia/Riyadh", "SA", "", ("09:00", "17:00"), ("Fri", "Sat")),
    ("berlin", "Europe/Berlin", "DE", "BE", ("08:00", "16:30"), ("Sat", "Sun")),
    ("paris", "Europe/Paris", "FR", "", ("09:00", "18:00"), ("Sat", "Sun")),
    ("sao-paulo", "America/Sao_Paulo", "BR", "", ("09:00", "18:00"), ("Sat", "Sun")),
    ("mumbai", "Asia/Kolkata", "IN", "", ("10:00", "19:00"), ("Sun",)),
    ("singapore", "Asia/Singapore", "SG", "", ("09:00", "18:00"), ("Sat", "Sun")),
    ("johannesburg", "Africa/Johannesburg", "ZA", "", ("08:00", "17:00"), ("Sat", "Sun")),
    ("toronto", "America/Toronto", "CA", "ON", ("09:00", "17:00"), ("Sat", "Sun")),
    ("mexico-city", "America/Mexico_City", "MX", "", ("09:00", "18:00"), ("Sat", "Sun")),
    ("seoul", "Asia/Seoul", "KR", "", ("09:00", "18:00"), ("Sat", "Sun")),
    ("auckland", "Pacific/Auckland", "NZ", "", ("08:30", "17:00"), ("Sat", "Sun")),
    ("tel-aviv", "Asia/Jerusalem", "IL", "", ("09:00", "18:00"), ("Fri", "Sat")),
    ("cairo", "Africa/Cairo", "EG", "", ("09:00", "17:00"), ("Fri", "Sat")),
    ("warsaw", "Europe/Warsaw", "PL", "", ("08:00", "16:00"), ("Sat", "Sun")),
)
SUPPORT_ADDRESSES = ["support@knowru.example", "@knowru.example"]  # a synthetic mailbox's team (kb/tools/mbox.py)


def bench_calendars(count: int, first_day: date, last_day: date) -> dict[str, dict]:
    """``count`` named calendars (TOML tables by name), each with one change dated inside ``first_day`` to
    ``last_day``."""
    span = (last_day - first_day).days
    found = {}
    for n in range(count):
        city, zone, country, subdivision, hours, weekend = CITIES[n % len(CITIES)]
        name = city if n < len(CITIES) else f"{city}-{n // len(CITIES) + 1}"
        at = date.fromordinal(first_day.toordinal() + span * (n + 1) // (count + 1))
        since = min(at if at.day == 1 else date(at.year + (at.month == 12), at.month % 12 + 1, 1),
                    last_day.replace(day=1))
        change: dict[str, Any] = {"from": since}
        if n % 3 == 0:  # the hours move an hour earlier
            change["business_hours"] = [_shifted(hours[0], -1), _shifted(hours[1], -1)]
        elif n % 3 == 1:  # the weekend changes: one day less, or the other pair
            change["weekend"] = ["Sat", "Sun"] if list(weekend) != ["Sat", "Sun"] else ["Sun"]
        else:  # closed on two more days a year, and open an hour longer
            change["extra_holidays"] = [date(y, 12, 24) for y in range(since.year, last_day.year + 2)]
            change["business_hours"] = [hours[0], _shifted(hours[1], 1)]
        found[name] = {"timezone": zone, "business_hours": list(hours), "weekend": list(weekend),
                       "holidays_country": country, "holidays_subdivision": subdivision, "extra_holidays": [],
                       "working_days": [], "changes": [change]}
    return found


def _shifted(clock: str, hours: int) -> str:
    hour, minute = (int(part) for part in clock.split(":"))
    return f"{max(0, min(23, hour + hours)):02d}:{minute:02d}"


def config_with(raw: dict, calendars: dict[str, dict]) -> dict:
    """The configuration ``raw`` (parsed TOML) with ``calendars`` added to its ``[calendars]`` (replacing any of
    the same name), and ``SUPPORT_ADDRESSES`` as ``[mail] support_addresses`` when it names none."""
    found = {**raw, "calendars": {**raw.get("calendars", {}), **calendars}}
    mail = dict(raw.get("mail", {}))
    if not mail.get("support_addresses"):
        mail["support_addresses"] = list(SUPPORT_ADDRESSES)
    found["mail"] = mail
    return found


def toml_text(raw: dict) -> str:
    """``raw`` (parsed TOML: tables, arrays, strings, numbers, booleans, dates and times) as TOML text that
    parses back to it: one ``key = value`` line per top-level key, tables written inline."""
    return "".join(f"{_key(key)} = {_value(value)}\n" for key, value in raw.items())


def _key(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


def _value(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # inf and nan as TOML spells them
    if isinstance(value, (date, time)):  # a datetime is a date
        return value.isoformat()
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")
