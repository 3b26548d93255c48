"""What the Configuration page reads: every calendar with its versions in words, its upcoming closed days and
the policies that use it; ``[sla]`` and its dated changes in words; the tier policies ``[sla]`` makes; the schema
version of the database in use and the polled mailboxes.

Versions are read from the rules' description (``kb.config.effective``), the one the audit trail records, so the
page and the trail say the same: the first version ("always") in full, each change by what it changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import holidays
import pandas as pd

from kb import formats
from kb.config import WEEKDAYS, CalendarConfig, Config, SlaConfig, Versions
from kb.config.changes import ALWAYS
from kb.config.effective import effective_rules, settings_by_version
from kb.db.connection import schema_version as _schema_version
from kb.engine.policies import tier_rules
from kb.engine.targets import FIRST_RESPONSE
from kb.reads.clients import policy_rows
from kb.store import Snapshot, Store
from kb.timestamps import format_for_people

UPCOMING_DAYS = 60  # how far ahead the closed days of each calendar are listed


def schema_version(store: Store) -> int:
    """The schema version the database file is at."""
    with store.reader() as cur:
        return _schema_version(cur)


def tier_policies(sla: SlaConfig) -> list[str]:
    """Each tier policy as ``[sla]`` makes it, in words (Markdown): "`enterprise` — any priority: first response
    within 1 business day"."""
    return [f"`{policy}` — " + formats.policy_row("*", FIRST_RESPONSE.label, kind, amount, "support", "1970-01-01")
            for policy, kind, amount in tier_rules(sla)]


MAILBOX_COLUMNS = ["mailbox", "folder", "configured", "last UID", "last poll", "last error", "held"]


def mailboxes(store: Store) -> pd.DataFrame:
    """Each mailbox and folder, configured (``[[mail.mailboxes]]``) or polled before (``imap_state``): the last
    UID taken, when it was last polled (support zone), its last error (empty when the last poll went well) and
    how many of its messages the mail quarantine holds."""
    from kb.reads.mail import held_by_folder, mailbox_state

    zone = store.config.calendar.zone
    state = {(r.mailbox, r.folder): r for r in mailbox_state(store).itertuples()}
    held = held_by_folder(store)
    configured = [(box.name, folder) for box in store.config.mail.mailboxes for folder in box.folders]
    rows = []
    for key in configured + sorted((set(state) | set(held)) - set(configured)):
        r = state.get(key)
        rows.append({
            "mailbox": key[0], "folder": key[1],
            "configured": "yes" if key in configured else "no (mail import)" if key[0] == "import" else "no (removed)",
            "last UID": "" if r is None else str(int(r.last_uid)),
            "last poll": "never" if r is None or pd.isna(r.polled_at) else format_for_people(r.polled_at, zone),
            "last error": "" if r is None or r.last_error is None or pd.isna(r.last_error) else str(r.last_error),
            "held": held.get(key, 0),
        })
    return pd.DataFrame(rows, columns=MAILBOX_COLUMNS)


# --- Calendars -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CalendarInWords:
    """One calendar as the Configuration page shows it."""

    name: str
    section: str  # where support.toml sets it: "[calendar]", "[calendars.london]"; "" built in
    zone: str
    versions: list[str]  # "always: 09:00–18:00, Mon–Fri, HK holidays", "from 2027-01-01: 08:00–18:00"
    closed: list[str] | None  # "Fri 2026-12-25: Christmas Day"; None: never closed (24x7)
    used_by: list[str]  # "`gold`: urgent: first response within 4 hours", one line per policy


def calendars_in_words(store: Store, snap: Snapshot, now: datetime) -> list[CalendarInWords]:
    """Every calendar a policy row may name (``support``, ``24x7``, each ``[calendars.NAME]``): its versions in
    words, its closed days in the ``UPCOMING_DAYS`` days from ``now`` (each by the version in force that day;
    weekends not listed) and the policies whose rows run on it."""
    config = store.config
    described = effective_rules(config)["calendars"]
    users = policies_by_calendar(store, snap)
    found = []
    for calendar in config.calendars:
        today = now.astimezone(calendar.versions.base.zone).date()
        found.append(CalendarInWords(
            calendar.name, "[calendar]" if calendar.name == "support" else f"[calendars.{calendar.name}]",
            calendar.versions.base.timezone, calendar_versions(described[calendar.name]["versions"]),
            [f"{WEEKDAYS[day.weekday()]} {day.isoformat()}: {why}" for day, why in closed_days(calendar.versions,
                                                                                               today)],
            users.get(calendar.name, [])))
    found.insert(1, CalendarInWords(
        "24x7", "", config.calendar.timezone,
        ["always: every hour of every day counts, a business day is 24 hours, days are the support zone's dates"],
        None, users.get("24x7", [])))
    return found


def calendar_versions(versions: list[dict]) -> list[str]:
    """A calendar's versions (``effective_rules``) in words: "always: 09:00–18:00, Mon–Fri, HK holidays" in full,
    then each change by what it changes, "from 2027-01-01: 08:00–18:00"."""
    lines = []
    for (since, settings), version in zip(settings_by_version(versions), versions, strict=True):
        if since == ALWAYS.isoformat():
            lines.append(f"always: {_calendar_words(settings, version, complete=True)}")
        else:
            lines.append(f"from {since}: {_calendar_words(settings, version, complete=False) or 'as before'}")
    return lines


def _calendar_words(settings: dict, version: dict, *, complete: bool) -> str:
    """The ``settings`` of a calendar version in words; ``complete``: the calendar's first version, whose empty
    lists go unsaid."""
    parts = []
    if "business_hours" in settings:
        parts.append("–".join(settings["business_hours"]))
    if "weekend" in settings:
        parts.append(open_days(settings["weekend"]))
    if "holidays_country" in settings or "holidays_subdivision" in settings:
        country, subdivision = version["holidays_country"], version["holidays_subdivision"]
        parts.append(f"{country}{'-' + subdivision if subdivision else ''} holidays" if country
                     else "no public holidays")
    for key, said, unsaid in (("extra_holidays", "also closed", "no extra closed days"),
                              ("working_days", "open on", "no extra open days")):
        if settings.get(key):
            parts.append(f"{said} {', '.join(settings[key])}")
        elif key in settings and not complete:
            parts.append(unsaid)
    return ", ".join(parts)


def open_days(weekend: list[str]) -> str:
    """The days a calendar opens, from its weekend: "Mon–Fri", "Sun–Thu", "Mon, Wed, Fri", "every day"."""
    open_ = [day for day in WEEKDAYS if day not in weekend]
    if len(open_) == 7:
        return "every day"
    first = next(i for i, day in enumerate(WEEKDAYS) if day in open_ and WEEKDAYS[i - 1] not in open_)
    run = [WEEKDAYS[(first + i) % 7] for i in range(len(open_))]
    if set(run) == set(open_):
        return run[0] if len(run) == 1 else f"{run[0]}–{run[-1]}"
    return ", ".join(open_)


def closed_days(versions: Versions[CalendarConfig], today: date, days: int = UPCOMING_DAYS) -> list[tuple[date, str]]:
    """The days from ``today`` on, for ``days`` days, that would be business days but for a holiday, each by the
    version in force on it, and why: the public holiday's name, "extra closed day (support.toml)", or both."""
    found, public = [], {}
    for offset in range(days):
        day = today + timedelta(days=offset)
        rules = versions.on(day)
        if day in rules.working_days or day.weekday() in rules.weekend:
            continue
        key = (rules.holidays_country, rules.holidays_subdivision, day.year)
        if rules.holidays_country and key not in public:
            public[key] = holidays.country_holidays(rules.holidays_country,
                                                    subdiv=rules.holidays_subdivision or None, years=day.year)
        names = [public[key][day]] if day in public.get(key, {}) else []
        if day in rules.extra_holidays:
            names.append("extra closed day (support.toml)")
        if names:
            found.append((day, "; ".join(names)))
    return found


def policies_by_calendar(store: Store, snap: Snapshot) -> dict[str, list[str]]:
    """Per calendar, the policies with rows on it, one line each with those rows in words: "`gold`: urgent: first
    response within 4 hours, around the clock"; a tier policy ``[sla]`` makes says so, and names only the
    versions of ``[sla]`` that change its rule."""
    rows = policy_rows(store, snap)
    rule = rows.kind + ":" + rows.amount.map(str)
    rows = rows[~(rows.from_config & (rule == rule.groupby([rows.policy_id, rows.metric, rows.priority]).shift()))]
    found: dict[str, list[str]] = {}
    for (calendar, policy), group in rows.groupby(["calendar", "policy_id"], sort=False):
        made = " ([sla])" if group.from_config.all() else ""
        found.setdefault(calendar, []).append(f"`{policy}`{made}: " + "; ".join(group.target))
    return found


# --- [sla] ---------------------------------------------------------------------------------------------------

def sla_changes(config: Config) -> list[str]:
    """Each ``[[sla.changes]]`` in words, by what it changes: "from 2026-12-01: enterprise first response within
    2 business days"."""
    return [f"from {since}: " + ", ".join(_sla_words(key, value) for key, value in settings.items())
            for since, settings in settings_by_version(effective_rules(config)["sla"])[1:]]


def _sla_words(key: str, value) -> str:
    if key in ("enterprise_response_business_days", "custom_response_business_days"):
        return f"{formats.word('tier', key.split('_')[0]).lower()} first response {formats.rule('days', value)}"
    if key == "at_risk_business_hours":
        return f"at risk with at most {value} business hours left"
    if key == "default_credit_schedule":
        return f"service credits {formats.schedule(value)}"
    label = {"default_uptime_target_pct": "uptime target", "response_target_pct": "response target",
             "next_response_target_pct": "follow-up target", "resolution_target_pct": "resolution target"}[key]
    return f"{label} {formats.term(Decimal(value)) if value is not None else 'as the response target'}"
