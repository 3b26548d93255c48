"""Response performance over time: % met of every target (first response, follow-ups, resolution) by tier or
priority per week or month, by assignee and by client, the breaches and their recorded reasons.

A target counts in the period its deadline falls in (rules §4); pending and
at-risk ones are not decided yet and count nowhere. The shares are
``kb.reads.met``'s, as on every page.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

import pandas as pd

from kb.db.sqltext import quote, where_in
from kb.engine.closings import dated_as_of_sql
from kb.engine.periods import day_bounds
from kb.engine.targets import BY_METRIC, FIRST_RESPONSE, Target
from kb.reads.met import GRAINS, met_shares, met_shares_of
from kb.store import Snapshot, Store
from kb.timestamps import FIRST_YEAR, LAST_YEAR, OUTSIDE_YEARS, OutsideYears, TimestampError, parse_date

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


BREAKDOWNS = {"assignee": "assignee", "client": "client_id"}


def met_per_period(store: Store, snap: Snapshot, grain: str, by: str, start: date, end: date,
                   tiers: tuple[str, ...]) -> pd.DataFrame:
    """Per metric, per ``by`` (``tier`` or ``priority``) and per week or month of the deadline (``period``): the
    targets met, breached and decided, and % met, over deadlines on the local days ``start`` to ``end``.

    The page's other shares of the period (``met_in_period``, ``met_by``) are read in the same pass over the
    decided targets, and remembered for when the page asks for them."""
    shapes = (((by,), grain), ((), None), *(((column,), None) for column in BREAKDOWNS.values()))
    return met_shares_of(store, snap, *day_bounds(store.config.calendar, start, end), shapes, tiers=tiers)[0]


def met_in_period(store: Store, snap: Snapshot, start: date, end: date, tiers: tuple[str, ...]) -> pd.DataFrame:
    """Per metric, over the whole period: the targets met, breached and decided, and % met."""
    return met_shares(store, snap, *day_bounds(store.config.calendar, start, end), tiers=tiers)


def met_by(store: Store, snap: Snapshot, metric: str, by: str, start: date, end: date, tiers: tuple[str, ...],
           limit: int = 1000) -> pd.DataFrame:
    """Over the whole period, for one metric, per assignee (``by='assignee'``, None for nobody) or client
    (``by='client'``, as "name (id)"): the targets met, breached and decided, and % met; the lowest % met
    first, then the most breached, at most ``limit`` of them."""
    if by not in BREAKDOWNS:
        raise ValueError(f"by must be one of {tuple(BREAKDOWNS)}")
    shares = met_shares(store, snap, *day_bounds(store.config.calendar, start, end), by=(BREAKDOWNS[by],),
                        tiers=tiers)
    shares = shares[shares.metric == metric].drop(columns="metric")
    if by == "client":
        names = store.snapshot_query("SELECT client_id, name || ' (' || client_id || ')' AS client FROM clients",
                                     None, snap)
        shares = shares.merge(names, on="client_id").drop(columns="client_id")
    shares = shares.sort_values(["pct_met", "breached", by], ascending=[True, False, True])
    return shares.head(limit).reset_index(drop=True)


# The target a breach reason explains: the Queue records one on a case whose first response was breached.
REASON_OF = FIRST_RESPONSE


def breached(store: Store, snap: Snapshot, metric: str, grain: str, start: date, end: date,
             tiers: tuple[str, ...], limit: int = 1000) -> pd.DataFrame:
    """The breached targets of ``metric`` behind the charts, the latest deadline first: cases, or client
    questions for a per-question target. Each with its ``period``, case, client, tier, priority, category,
    subject and assignee; where its clock started (``target.starts``), its deadline and where it stopped
    (``target.stops``, null while it runs); the business hours it took (per-case targets) and the breach reason
    recorded (``REASON_OF``). A month closed as of the snapshot lists the targets its closing kept
    (``kb.engine.closings.dated_as_of_sql``), with the hours taken as computed now where the deadline is the
    one kept, and the reason as recorded now."""
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {GRAINS}")
    target = BY_METRIC[metric]
    tz = quote(store.config.calendar.timezone)
    due, starts, stops = target.col("due"), target.starts, target.stops
    bounds = day_bounds(store.config.calendar, start, end)
    per_case = target.per == "case"
    taken = target.col("hours_taken") if per_case else "NULL"
    reason = "breach_reason" if target is REASON_OF else "NULL"
    closed = _with_closed_months(store, snap, target)
    if closed is None:
        rows = f"""SELECT case_id, client_name, tier, priority, category, subject, assignee, {starts}, {due}, {stops},
                          {taken} AS business_hours_taken, {reason} AS breach_reason
                   FROM {"case_sla" if per_case else "case_questions"} WHERE {target.col("state")} = 'breached'"""
    else:
        rows = f"""SELECT d.case_id, cl.name AS client_name, d.tier, d.priority, d.category, d.subject, d.assignee,
                          d.started_at AS {starts}, d.due AS {due}, d.stopped_at AS {stops},
                          {f"CASE WHEN s.{due} = d.due THEN s.{taken} END" if per_case else "NULL"}
                              AS business_hours_taken,
                          {"s." + reason if target is REASON_OF else "NULL"} AS breach_reason
                   FROM ({closed}) d JOIN clients cl USING (client_id) LEFT JOIN case_sla s USING (case_id)
                   WHERE d.metric = '{metric}' AND d.state = 'breached'"""
    tier_condition, tier_params = where_in({"tier": tiers})
    return store.snapshot_query(
        f"""
        SELECT CAST(date_trunc('{grain}', timezone({tz}, {due})) AS DATE) AS period, *
        FROM ({rows}) WHERE {due} >= ? AND {due} < ? AND {tier_condition}
        ORDER BY {due} DESC, case_id LIMIT {int(limit)}
        """,
        [*bounds, *tier_params],
        snap,
    )


def _with_closed_months(store: Store, snap: Snapshot, target: Target) -> str | None:
    """The targets ``target`` with a deadline as of the snapshot (``dated_as_of_sql``) when a month closed then
    kept its targets, whatever the period asked for (a target kept there is listed nowhere else); else None (the
    snapshot's own rows hold them all)."""
    with store.reader() as cur:
        return dated_as_of_sql(cur, store.config, snap.as_of, (target,))


NO_REASON = "(no reason recorded)"


def breach_reasons(store: Store, snap: Snapshot, start: date, end: date, tiers: tuple[str, ...]) -> pd.DataFrame:
    """The cases of the period whose first response was breached (``REASON_OF``) counted by their recorded
    reason (trimmed, case kept as first written), the most frequent first; cases without one under
    ``NO_REASON``. A month closed as of the snapshot counts the breaches its closing kept."""
    due, state = REASON_OF.col("due"), REASON_OF.col("state")
    bounds = day_bounds(store.config.calendar, start, end)
    closed = _with_closed_months(store, snap, REASON_OF)
    rows = (f"SELECT tier, breach_reason, {due} FROM case_sla WHERE {state} = 'breached'" if closed is None else
            f"""SELECT d.tier, s.breach_reason, d.due AS {due} FROM ({closed}) d LEFT JOIN case_sla s USING (case_id)
                WHERE d.metric = '{REASON_OF.metric}' AND d.state = 'breached'""")
    tier_condition, tier_params = where_in({"tier": tiers})
    return store.snapshot_query(
        f"""
        SELECT coalesce(min(trim(breach_reason)), '{NO_REASON}') AS reason, count(*) AS cases
        FROM ({rows})
        WHERE {due} >= ? AND {due} < ? AND {tier_condition}
        GROUP BY lower(trim(breach_reason)) ORDER BY lower(trim(breach_reason)) IS NULL, cases DESC, reason
        """,
        [*bounds, *tier_params],
        snap,
    )
