"""A target's clock in SQL: its deadline, pauses and state on every row, from the rule a policy gave it.

``clock_ctes`` turns one ``Target`` (``kb/engine/targets.py``) into the CTEs that
add its deadline to every row of a relation carrying the target's rule
(``{metric}_kind``, ``_amount``, ``_cal`` from ``kb/engine/policies.py``), with the
builders of ``kb/engine/business_time.py`` (equality joins on bucketed lookup
tables keyed by calendar, no ASOF join, no per-row Python). Rules:

* ``hours`` (``Nh``): the instant at which N hours of business time have passed
  since the start;
* ``days`` (``Nd``): the same for N business days, each as long as the business
  day on which the clock starts (by the calendar's rules in force that day);
* ``next_day_close``: the close of the first business day whose local date is
  after the local date of the start.

Each is first a running total of business time (``{metric}_target_cum_us``)
and then the instant that total is reached, so a pause adds its business time
to the total before the one lookup. A pause counts only while the clock runs:
once the target's business time has passed, a later pause moves nothing (a
breach stays a breach). A pause still open at T counts up to T, and the target
is ``paused``. Pauses of one case never overlap, so the pauses that count are
the first ones whose active time before them is still short of the target.

The columns a target ``x`` adds: ``x_start_cum_us``, ``x_target_cum_us``,
``x_paused_us``, ``x_paused_since_cum_us`` (pausable targets), ``x_due``,
``x_due_cum_us`` and ``x_stop_cum_us``; ``target_state``, ``hours_left``, ``hours_paused`` and
``hours_taken`` read them as of T.
"""

from __future__ import annotations

from kb.db.sqltext import one_of
from kb.engine.business_time import elapsed_us, reached_at
from kb.engine.targets import STATES, Target

HOUR_US = 3_600 * 1_000_000


def clock_ctes(target: Target, source: str, rules: str) -> tuple[str, str]:
    """CTE definitions (``name AS (…), …``, no WITH, no trailing comma) adding the target's columns to
    every row of the relation ``source``, which has the target's rule, ``starts`` and ``stops``; and the
    name of the last CTE, which has them all. ``rules`` is a relation with the same ``case_id`` rows'
    rule and stop, which a pausable target reads its pauses against."""
    c = target.col
    kind, cal = f"e.{c('kind')}", f"e.{c('cal')}"
    start = elapsed_us(f"e.{target.starts}", cal, c("s"))
    ctes = [(c("started"), f"""
        SELECT e.*, {start.value} AS {c('start_cum_us')}, {start.day_us} AS {c('day_us')},
               {start.next_close_cum_us} AS {c('close_cum_us')}
        FROM {source} e {start.join}"""),
        (c("targeted"), f"""
        SELECT e.*,
               CASE {kind} WHEN 'hours' THEN e.{c('start_cum_us')} + e.{c('amount')} * {HOUR_US}
                           WHEN 'days' THEN e.{c('start_cum_us')} + e.{c('amount')} * e.{c('day_us')}
                           WHEN 'next_day_close' THEN e.{c('close_cum_us')} END AS {c('target_cum_us')}
        FROM {c('started')} e""")]
    total = f"e.{c('target_cum_us')}"
    last = c("targeted")
    if target.pausable:
        ctes += _pause_ctes(target, rules, last)
        last = c("paused")
        total = (f"e.{c('target_cum_us')} + e.{c('paused_us')} + coalesce(n.cum_us - e.{c('paused_since_cum_us')}, 0)")
    due = reached_at(f"e.{c('total_cum_us')}", cal, c("d"))
    stop = elapsed_us(f"e.{target.stops}", cal, c("t"))
    ctes.append((c("due"), f"""
        SELECT e.*, {due.value} AS {c('due')}, {due.value_cum_us} AS {c('due_cum_us')},
               {stop.value} AS {c('stop_cum_us')}
        FROM (SELECT e.*, {total} AS {c('total_cum_us')}
              FROM {last} e LEFT JOIN clock_now n ON n.cal = {cal}) e {due.join} {stop.join}"""))
    return ",\n".join(f"{name} AS ({body}\n    )" for name, body in ctes), c("due")


def _pause_ctes(target: Target, rules: str, source: str) -> list[tuple[str, str]]:
    """The pauses of each case in business time on its target's calendar, as a list per case, and then,
    per row of ``source``, the paused business time that counts (``paused_us``) and the start of a pause
    open at T that counts (``paused_since_cum_us``)."""
    c = target.col
    paused, resumed = elapsed_us("p.paused_at", "p.cal", c("ps")), elapsed_us("p.ended", "p.cal", c("pe"))
    counts = f"s.start_cum < e.{c('target_cum_us')} + s.before"
    return [
        (c("pause_spans"), f"""
        SELECT p.case_id, p.paused_at, {paused.value} AS start_cum,
               CASE WHEN p.ended IS NOT NULL THEN {resumed.value} END AS end_cum
        FROM (SELECT p.case_id, p.paused_at, e.{c('cal')} AS cal,
                     least(CASE WHEN p.resumed_at <= a.t THEN p.resumed_at END, e.{target.stops}) AS ended
              FROM case_pauses p JOIN {rules} e ON e.case_id = p.case_id CROSS JOIN as_of a
              WHERE p.paused_at <= a.t AND e.{c('kind')} IS NOT NULL
                AND (e.{target.stops} IS NULL OR p.paused_at < e.{target.stops})) p
        {paused.join} {resumed.join}"""),
        (c("pause_lists"), f"""
        SELECT case_id, list({{'start_cum': start_cum, 'end_cum': end_cum, 'before': before}}
                             ORDER BY start_cum) AS spans
        FROM (SELECT *, coalesce(sum(end_cum - start_cum) OVER (
                            PARTITION BY case_id ORDER BY paused_at
                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
              FROM {c('pause_spans')})
        GROUP BY case_id"""),
        (c("paused"), f"""
        SELECT e.*,
               CAST(coalesce(list_sum(list_transform(
                   list_filter(pl.spans, lambda s: s.end_cum IS NOT NULL AND {counts}),
                   lambda s: s.end_cum - s.start_cum)), 0) AS BIGINT) AS {c('paused_us')},
               list_max(list_transform(
                   list_filter(pl.spans, lambda s: s.end_cum IS NULL AND {counts}),
                   lambda s: s.start_cum)) AS {c('paused_since_cum_us')}
        FROM {source} e LEFT JOIN {c('pause_lists')} pl ON pl.case_id = e.case_id"""),
    ]


def target_state(target: Target, row: str, t_sql: str, now_cum_sql: str, at_risk_us: int) -> str:
    """The state of the target on ``row`` (a relation with its columns) as of the instant ``t_sql``, whose
    elapsed business time on the target's calendar is ``now_cum_sql``: one of ``STATES``, as their ENUM
    (``kb.db.sqltext.one_of``)."""
    due, stop = f"{row}.{target.col('due')}", f"{row}.{target.stops}"
    paused = (f"WHEN {row}.{target.col('paused_since_cum_us')} IS NOT NULL THEN 'paused'"
              if target.pausable else "")
    return one_of(f"""CASE
               WHEN {due} IS NULL THEN 'no_sla'
               WHEN {stop} IS NOT NULL AND {stop} <= {due} THEN 'met'
               WHEN {stop} IS NOT NULL THEN 'breached'
               {paused}
               WHEN {t_sql} > {due} THEN 'breached'
               WHEN {row}.{target.col('due_cum_us')} - {now_cum_sql} <= {at_risk_us} THEN 'at_risk'
               ELSE 'pending'
           END""", STATES)


def hours_left(target: Target, row: str, now_cum_sql: str) -> str:
    """Business hours from now (elapsed ``now_cum_sql``) to the deadline while the clock runs (negative past
    it): of the target's own calendar, so an hour of a 24x7 target is an hour of the clock."""
    due, stop = f"{row}.{target.col('due')}", f"{row}.{target.stops}"
    return (f"CASE WHEN {stop} IS NULL AND {due} IS NOT NULL "
            f"THEN ({row}.{target.col('due_cum_us')} - {now_cum_sql}) / 3.6e9 END")


def hours_paused(target: Target, row: str, now_cum_sql: str) -> str:
    """Business hours paused that moved the (pausable) target's deadline, a pause still open at T counted up
    to T (elapsed ``now_cum_sql``)."""
    c = target.col
    return f"({row}.{c('paused_us')} + coalesce({now_cum_sql} - {row}.{c('paused_since_cum_us')}, 0)) / 3.6e9"


def hours_taken(target: Target, row: str) -> str:
    """Business hours from the clock's start to its stop, once stopped, less the business time paused."""
    paused = f" - {row}.{target.col('paused_us')}" if target.pausable else ""
    return f"({row}.{target.col('stop_cum_us')} - {row}.{target.col('start_cum_us')}{paused}) / 3.6e9"
