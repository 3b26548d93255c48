"""Response performance over time: % met by tier per week or month, by assignee and by client, breaches and
their recorded reasons, time to respond.

Cases count in the period their deadline falls in (rules §4); pending and at-risk
cases are not decided yet and count nowhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

import pandas as pd

from kb.db.sqltext import quote, where_in
from kb.engine.periods import day_bounds
from kb.store import Snapshot, Store
from kb.timestamps import FIRST_YEAR, LAST_YEAR, OUTSIDE_YEARS, OutsideYears, TimestampError, parse_date

GRAINS = ("week", "month")
LINK_PARAMETERS = ("due_from", "due_to")


def linked_period(params: Mapping[str, str], today: date) -> tuple[tuple[date, date], str | None]:
    """The period a link asks for (``?due_from=YYYY-MM-DD&due_to=YYYY-MM-DD``, the Queue's link to where a breach
    reason is counted), else the last 13 weeks to ``today``. A link whose period cannot be read (not a date, a
    day outside FIRST_YEAR–LAST_YEAR, one of the two missing, the end before the start) gets the last 13 weeks
    too, and a one-line warning naming the parameter."""
    default = (today - timedelta(days=91), today)
    if not any(name in params for name in LINK_PARAMETERS):
        return default, None
    try:
        start, end = (_linked_day(params, name) for name in LINK_PARAMETERS)
    except TimestampError as e:
        return default, f"{e}: showing the last 13 weeks"
    if end < start:
        return default, f"due_to: {end.isoformat()!r} is before due_from: showing the last 13 weeks"
    return (start, end), None


def _linked_day(params: Mapping[str, str], name: str) -> date:
    text = params.get(name, "")
    try:
        day = parse_date(text)
    except TimestampError as e:
        raise TimestampError(f"{name}: {e}") from None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise OutsideYears(f"{name}: {text!r} {OUTSIDE_YEARS}, the years the business calendar holds")
    return day


def _decided(store: Store, grain: str) -> str:
    """Decided cases with their period and local due day; takes the instant range of the days asked
    (``day_bounds``) as its two parameters, so the local dates are computed only for the cases in it."""
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {GRAINS}")
    tz = quote(store.config.calendar.timezone)
    return f"""
        (SELECT *, CAST(date_trunc('{grain}', timezone({tz}, first_response_due)) AS DATE) AS period,
                CAST(timezone({tz}, first_response_due) AS DATE) AS due_day
         FROM case_sla WHERE sla_state IN ('met', 'breached') AND first_response_due >= ? AND first_response_due < ?)
    """


def performance_by_period(store: Store, snap: Snapshot, grain: str, start: date, end: date) -> pd.DataFrame:
    """Per period and tier: met, breached, % met, median business hours to first response."""
    return store.query(
        f"""
        SELECT period, tier,
               count(*) FILTER (WHERE sla_state = 'met') AS met,
               count(*) FILTER (WHERE sla_state = 'breached') AS breached,
               100.0 * count(*) FILTER (WHERE sla_state = 'met') / count(*) AS pct_met,
               median(business_hours_to_response) AS median_business_hours
        FROM {_decided(store, grain)}
        WHERE due_day BETWEEN ? AND ?
        GROUP BY period, tier ORDER BY period, tier
        """,
        [*day_bounds(store.config.calendar, start, end), start, end],
        snap,
    )


def breached_cases(store: Store, snap: Snapshot, grain: str, start: date, end: date,
                   tiers: tuple[str, ...] = (), limit: int = 1000) -> pd.DataFrame:
    """The breached cases behind the chart, latest deadline first."""
    tier_condition, tier_params = where_in({"tier": tiers})
    return store.query(
        f"""
        SELECT period, case_id, client_name, tier, category, subject, assignee, received_at, first_response_due,
               first_response_at, business_hours_to_response, breach_reason
        FROM {_decided(store, grain)}
        WHERE sla_state = 'breached' AND due_day BETWEEN ? AND ? AND {tier_condition}
        ORDER BY first_response_due DESC LIMIT {int(limit)}
        """,
        [*day_bounds(store.config.calendar, start, end), start, end, *tier_params],
        snap,
    )


BREAKDOWNS = {
    "assignee": ("coalesce(nullif(trim(assignee), ''), '(unassigned)')", "assignee"),
    "client": ("client_name || ' (' || client_id || ')'", "client"),
}


def performance_by(store: Store, snap: Snapshot, by: str, start: date, end: date,
                   tiers: tuple[str, ...] = ()) -> pd.DataFrame:
    """Over the whole period, per assignee (``by='assignee'``) or client (``by='client'``): met, breached,
    % met and median business hours to first response; the lowest % met first."""
    if by not in BREAKDOWNS:
        raise ValueError(f"by must be one of {tuple(BREAKDOWNS)}")
    key, name = BREAKDOWNS[by]
    tier_condition, tier_params = where_in({"tier": tiers})
    return store.query(
        f"""
        SELECT {key} AS {name},
               count(*) FILTER (WHERE sla_state = 'met') AS met,
               count(*) FILTER (WHERE sla_state = 'breached') AS breached,
               100.0 * count(*) FILTER (WHERE sla_state = 'met') / count(*) AS pct_met,
               median(business_hours_to_response) AS median_business_hours
        FROM {_decided(store, "month")}
        WHERE due_day BETWEEN ? AND ? AND {tier_condition}
        GROUP BY ALL ORDER BY pct_met, breached DESC, {name}
        """,
        [*day_bounds(store.config.calendar, start, end), start, end, *tier_params],
        snap,
    )


NO_REASON = "(no reason recorded)"


def breach_reasons(store: Store, snap: Snapshot, start: date, end: date, tiers: tuple[str, ...] = ()) -> pd.DataFrame:
    """The breached cases of the period counted by their recorded reason (trimmed, case kept as first
    written), the most frequent first; cases without one under ``NO_REASON``."""
    tier_condition, tier_params = where_in({"tier": tiers})
    return store.query(
        f"""
        SELECT coalesce(min(trim(breach_reason)), '{NO_REASON}') AS reason, count(*) AS cases
        FROM {_decided(store, "month")}
        WHERE sla_state = 'breached' AND due_day BETWEEN ? AND ? AND {tier_condition}
        GROUP BY lower(trim(breach_reason)) ORDER BY lower(trim(breach_reason)) IS NULL, cases DESC, reason
        """,
        [*day_bounds(store.config.calendar, start, end), start, end, *tier_params],
        snap,
    )
