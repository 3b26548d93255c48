"""How values read wherever people see them: the pages, the statement, the alerts.

One way for each kind of value, so the same number never shows three ways:

* money: ``USD 2,500.00`` (the currency first, thousands grouped, always cents);
* months: ``Nov 2026``;
* percentages: ``99.90 %``, two decimals rounded down (an uptime of 99.8999 % never reads as meeting a
  99.9 % target); a contract's or the configuration's own figure (a target, a credit) with up to four
  decimals (``99.995 %``) in full;
* durations: ``1 d 3 h``, ``3 h 20 min``, ``45 min``; past a deadline ``overdue 3 h``;
* instants: ``Wed 2026-11-25 16:30 HKT (UTC+08:00)``, in the support zone with its offset; days:
  ``Tue 2026-12-01``;
* counts of things: ``1 environment``, ``7 cases``;
* nothing: ``—``; nobody assigned: ``(unassigned)``;
* tiers, categories, states, impacts and kinds as words (``Platform issue``), and a field by its label.

CSV exports keep the data contract's machine formats (rules §7); this module is for display only, and
imports no Streamlit.
"""

from __future__ import annotations

import math
import re
from datetime import date
from decimal import ROUND_FLOOR, Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

import pandas as pd

from kb.credits import CreditScheduleError, parse_credit_schedule

EMPTY = "—"
CACHED = 16384  # distinct values each of the pure formatters remembers (``lru_cache``)
UNASSIGNED = "(unassigned)"
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Values of the rules' enumerations as words, by the column that holds them.
WORDS: dict[str, dict[str, str]] = {
    "tier": {"enterprise": "Enterprise", "custom": "Custom program", "free": "Free"},
    "category": {"platform_issue": "Platform issue", "api_help": "API help", "general_coding": "General coding"},
    # Every target's state (``sla_state``, ``resolution_state``, …: any column ending in ``_state``).
    "state": {"breached": "Breached", "at_risk": "At risk", "pending": "Pending", "paused": "Waiting on client",
              "met": "Met", "no_sla": "No deadline"},
    "priority": {"urgent": "Urgent", "high": "High", "normal": "Normal", "low": "Low", "*": "Any priority"},
    "impact": {"outage": "Outage", "degraded": "Degraded", "maintenance": "Maintenance"},
    "kind": {"dedicated": "Dedicated", "shared": "Shared"},
    "deployment": {"on_premise": "On premise", "dedicated_cloud": "Dedicated cloud",
                   "shared_cloud": "Shared cloud"},
    "status": {"final": "Month over", "projected": "Projected"},  # ("final" in the data: the month has ended)
    # A policy row's calendar, and the unit a form asks its ``within`` in.
    "calendar": {"support": "Business hours (support)", "24x7": "Around the clock (24x7)"},
    "within_unit": {"h": "hours", "d": "business days", "next_day_close": "end of next business day"},
    # Where a month's credit stands (rules §13): computed while the month is open, final once it is closed.
    "stage": {"projected": "Projected", "computed": "Computed", "final": "Final", "applied": "Applied"},
    # The audit trail's actions and tables.
    "action": {"add": "Add", "edit": "Edit", "import": "Import", "void": "Void", "assign": "Assign",
               "correct": "Correct", "merge": "Merge", "record_response": "Record response", "resolve": "Resolve",
               "undo_resolve": "Undo resolve", "breach_reason": "Breach reason", "close": "Close",
               "check": "Check", "create": "Create", "revoke": "Revoke", "mail": "Mail", "hold": "Hold",
               "retry": "Retry", "discard": "Discard", "alert": "Alert sent", "alert withdrawn": "Alert withdrawn",
               "statement": "Statement sent", "record_reply": "Record reply", "pause": "Waiting on client",
               "resume": "Resume", "undo_pause": "Undo waiting on client", "remove": "Remove",
               "rules": "Rules changed", "close_month": "Close month", "reopen_month": "Reopen month",
               "apply_credit": "Credit applied"},
    "table_name": {"clients": "Clients", "environments": "Environments", "contracts": "Contracts",
                   "cases": "Cases", "incidents": "Incidents", "monitoring_checks": "Monitoring checks",
                   "api_tokens": "API tokens", "messages": "Messages", "mail_quarantine": "Mail quarantine",
                   "policies": "Policies", "pauses": "Pauses",
                   "alert_deliveries": "Alert deliveries", "job_runs": "Job runs",
                   "webhook_events": "Webhook events", "month_closings": "Closed months",
                   "credit_applications": "Credits applied", "support.toml": "Configuration (support.toml)"},
}

# The fields of the data contract as a form labels them, where the column's name in words is not enough.
FIELD_LABELS = {
    "client_id": "Client ID", "environment_id": "Environment ID", "contract_id": "Contract ID",
    "case_id": "Case ID", "incident_id": "Incident ID", "token_id": "Token ID", "email_domain": "Email domain",
    "statement_recipients": "Statement recipients", "active_from": "Active from",
    "uptime_target_pct": "Uptime target %", "response_business_days": "Response (business days)",
    "monthly_fee": "Monthly fee", "credit_schedule": "Credit schedule", "starts_on": "Starts on",
    "ends_on": "Ends on", "received_at": "Received", "first_response_at": "First response",
    "resolved_at": "Resolved", "started_at": "Started", "ended_at": "Ended", "void_reason": "Reason",
    "breach_reason": "Breach reason", "replied_at": "Reply sent at", "paused_at": "Waiting on client since",
    "resumed_at": "Resumed", "resumed_by": "Resumed by", "policy_id": "Policy ID", "valid_from": "Valid from",
    "asked_at": "Asked", "responded_at": "Answered",
    "closed_at": "Closed", "reopened_at": "Reopened", "reopen_reason": "Reason", "reference": "Reference",
}


def is_empty(value) -> bool:
    """None, NaN, NaT or text of nothing but spaces."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or an array: not one missing value
        return False


def text(value) -> str:
    """``value`` as text, ``—`` when there is none."""
    return EMPTY if is_empty(value) else str(value)


def assignee(value) -> str:
    """Who a case is assigned to, ``(unassigned)`` when nobody."""
    return UNASSIGNED if is_empty(value) else str(value)


def count(n, thing: str, things: str | None = None) -> str:
    """How many of a thing, plural by the count: ``1 environment``, ``2 environments``, ``1,234 cases``;
    ``things`` where the plural is not ``thing`` + s (``count(2, "entry", "entries")``)."""
    n = int(n)
    return f"{n:,} {thing if n == 1 else things or thing + 's'}"


def money(amount, currency: str) -> str:
    """``USD 2,500.00``."""
    return EMPTY if is_empty(amount) else f"{currency} {float(amount):,.2f}"


@lru_cache(maxsize=CACHED)  # pages write a column's few distinct values over and over
def month_label(month: str) -> str:
    """A month ``2026-11`` as ``Nov 2026``."""
    year, number = (int(part) for part in str(month).split("-")[:2])
    return f"{MONTH_NAMES[number - 1]} {year}"


def percent_value(value) -> Decimal:
    """The number ``percent`` shows: two decimals, rounded down (float noise such as 99.89999999999 taken
    off first), so a measurement just under a target never reads as reaching it."""
    exact = Decimal(repr(round(float(value), 9)))
    return exact.quantize(Decimal("0.01"), rounding=ROUND_FLOOR)


@lru_cache(maxsize=CACHED)  # pages write a column's few distinct values over and over
def percent(value) -> str:
    """A measured percentage (uptime, % met): ``99.90 %``; ``—`` when there is none."""
    return EMPTY if is_empty(value) else f"{percent_value(value)} %"


@lru_cache(maxsize=CACHED)  # pages write a column's few distinct values over and over
def term(value) -> str:
    """A percentage a contract or the configuration sets (a target, a credit): as ``percent`` writes one,
    but a figure with three or four decimals (a 99.995 % target) in full, never rounded."""
    if is_empty(value):
        return EMPTY
    exact = Decimal(repr(round(float(value), 4)))
    return f"{exact:.{max(2, -exact.normalize().as_tuple().exponent)}f} %"


@lru_cache(maxsize=CACHED)  # pages write a column's few distinct values over and over
def duration(hours: float, day_hours: float = 24.0) -> str:
    """A length of time: ``1 d 3 h`` from a day on, ``3 h 20 min`` from an hour, else ``45 min``; a
    negative one (an error budget overspent) with a minus sign. A day is ``day_hours`` long (a business
    day's hours, for business time). ``—`` when there is none."""
    if is_empty(hours):
        return EMPTY
    if float(hours) < 0 and round(-float(hours) * 60):
        return "-" + duration(-float(hours), day_hours)
    minutes = round(abs(float(hours)) * 60)
    day_minutes = round(day_hours * 60)
    days, rest = divmod(minutes, day_minutes)
    whole_hours, rest_minutes = divmod(rest, 60)
    if days:
        return f"{days} d {whole_hours} h" if whole_hours else f"{days} d"
    if whole_hours:
        return f"{whole_hours} h {rest_minutes} min" if rest_minutes else f"{whole_hours} h"
    return f"{rest_minutes} min"


def budget_left(minutes) -> str:
    """An error budget's minutes left as a ``duration``, rounded down to the minute (an overspent one up, in
    size), so that it never reads as more than there is: 44.64 minutes are ``44 min``, -0.4 are ``-1 min``."""
    if is_empty(minutes):
        return EMPTY
    return duration(math.floor(round(float(minutes), 6)) / 60)


def time_left(hours, day_hours: float = 24.0) -> str:
    """Time left before a deadline: a ``duration``, ``overdue 3 h`` past it, ``—`` when no clock runs (the
    case was answered, or has no deadline)."""
    if is_empty(hours):
        return EMPTY
    return f"overdue {duration(-float(hours), day_hours)}" if float(hours) < 0 else duration(hours, day_hours)


_OFFSET = re.compile(r"([+-]\d\d)(\d\d)\)$")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # %a, by pandas' dayofweek


def instant(moment, zone: ZoneInfo) -> str:
    """``Wed 2026-11-25 16:30 HKT (UTC+08:00)``: the instant in ``zone``; ``—`` for none."""
    if is_empty(moment):
        return EMPTY
    local = pd.Timestamp(moment).tz_convert(zone)
    return _OFFSET.sub(r"\1:\2)", local.strftime("%a %Y-%m-%d %H:%M %Z (UTC%z)"))


def day(value: date) -> str:
    """A local date: ``Tue 2026-12-01``."""
    return value.strftime("%a %Y-%m-%d")


def instants(frame: pd.DataFrame, zone: ZoneInfo, *columns: str) -> pd.DataFrame:
    """``frame`` with each of ``columns`` (instants) written as ``instant`` writes one. The day's name, the zone's
    name and offset are pieced on (by weekday, and per offset in force: two at most in a year) around the date
    and time, which pandas writes fast; written whole, each row costs its own ``strftime``."""
    frame = frame.copy()
    for column in columns:
        values = pd.to_datetime(frame[column], utc=True).dt.tz_convert(zone)
        present = values.notna()
        local = values.dt.tz_localize(None)
        offset = local - values.dt.tz_convert("UTC").dt.tz_localize(None)
        zones = {gap: _OFFSET.sub(r"\1:\2)", moment.strftime(" %Z (UTC%z)"))
                 for gap, moment in values[present].groupby(offset[present]).first().items()}
        weekday = pd.Series(_WEEKDAYS, dtype=object).reindex(local.dt.day_of_week.to_numpy()).set_axis(frame.index)
        written = (weekday + " " + local.dt.strftime("%Y-%m-%d %H:%M").astype(object)
                   + offset.map(zones).astype(object))
        frame[column] = written.where(present, EMPTY).astype(object)
    return frame


def word(column: str, value) -> str:
    """A value of one of the rules' enumerations as words (``platform_issue`` → ``Platform issue``); one
    not listed with its underscores as spaces (``some_code`` → ``Some code``)."""
    if is_empty(value):
        return EMPTY
    return _words_of(column).get(value) or str(value).replace("_", " ").capitalize()


def _words_of(column: str) -> dict[str, str]:
    return WORDS["state"] if column.endswith("_state") else WORDS.get(column, {})


def in_words(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every column named in ``WORDS`` (tier, category, sla_state…) as words."""
    return frame.assign(**{column: _column_in_words(frame[column], column)
                           for column in frame.columns if column in WORDS or column.endswith("_state")})


def _column_in_words(values: pd.Series, column: str) -> pd.Series:
    """``word`` of each value, worked out once per distinct value (a column holds a handful)."""
    if values.empty:
        return values.copy()
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    words = [word(column, value) for value in uniques] + [EMPTY]  # a code of -1 (missing) takes the last
    return pd.Series([words[code] for code in codes], index=values.index)


def rule(kind, amount, calendar: str = "support") -> str:
    """A target's rule in words: "within 4 business hours", "within 2 days, around the clock", "by the end of
    the next business day", "within 1 business day on the london calendar"; "no target" without one."""
    if is_empty(kind):
        return "no target"
    clock = calendar == "24x7"
    business = "" if clock else "business "
    if kind == "next_day_close":
        words = f"by the end of the next {business}day"
    else:
        unit = "hour" if kind == "hours" else "day"
        words = f"within {count(int(amount), business + unit)}"
    if clock:
        return f"{words}, around the clock"
    return words if calendar == "support" else f"{words} on the {calendar} calendar"


def policy_row(priority, metric_label: str, kind, amount, calendar: str, valid_from) -> str:
    """One row of a policy in words, its priority first: "urgent: first response within 4 hours, around the
    clock", "any priority: resolution within 2 business days, from 2027-01-01". A row valid from the start
    (1970-01-01) names no date. ``metric_label``: the target's label (``kb.engine.targets``)."""
    who = "any priority" if priority == "*" else word("priority", priority).lower()
    since = pd.Timestamp(valid_from).date().isoformat()
    return (f"{who}: {metric_label[:1].lower()}{metric_label[1:]} {rule(kind, amount, calendar)}"
            + ("" if since == "1970-01-01" else f", from {since}"))


def field_label(column: str) -> str:
    """A field of the data contract as forms label it: ``client_id`` → ``Client``."""
    return FIELD_LABELS.get(column, column.replace("_", " ").capitalize())


@lru_cache(maxsize=CACHED)  # pages write a column's few distinct values over and over
def schedule(text_, default: str = "") -> str:
    """A credit schedule in words, ``below 99.90 % uptime → 10.00 % of the fee; …``, or why it cannot be
    read; a contract without one has ``default`` (``[sla] default_credit_schedule``), said so."""
    if is_empty(text_) and default:
        return schedule(default) + " (default)"
    try:
        tiers = parse_credit_schedule("" if is_empty(text_) else text_)
    except CreditScheduleError as e:
        return f"unreadable: {e}"
    return "; ".join(f"below {term(t.below_pct)} uptime → {term(t.credit_pct)} of the fee" for t in tiers)


def verdict(target_met) -> str:
    """Whether a month kept its uptime target: ``On target``, ``Below target``, ``—`` without a target."""
    return EMPTY if is_empty(target_met) else "On target" if target_met else "Below target"


_MARKDOWN_ESCAPES = str.maketrans({mark: "\\" + mark for mark in r"""!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"""})


def plain(text_) -> str:
    """Text someone typed, for a place that renders Markdown (st.markdown, st.success, st.caption…):
    every ASCII punctuation mark escaped, so it shows as typed, never as a link, an image, a heading or HTML."""
    return str(text_).translate(_MARKDOWN_ESCAPES)
