"""SLA targets as business-time clocks (rules §3, 4): one description, one rule, any number of targets.

An ``SlaClock`` says when a target's clock starts and stops on a case and which
deadline rule applies to it; ``clock_ctes`` turns it into the CTEs that add its
deadline and the business time at its start and stop to every case row, with
the builders of ``kb/engine/business_time.py`` (equality joins on bucketed
lookup tables, no ASOF join, no per-row Python); ``sla_state``,
``business_hours_left`` and ``business_hours_taken`` read those columns as of T.

Deadline rules (the values of ``rule``):

* ``'within_days'``: the instant at which the business time elapsed since the
  start reaches N business days (N: ``business_days``);
* ``'next_business_day_close'``: the close of the first business day whose local
  date is after the local date of the start;
* ``'none'``: no deadline.

The columns a clock named ``x`` adds: ``x_start_day`` (local date of the start),
``x_rule``, ``x_business_days`` (N, for 'within_days' only), ``x_days_by_contract`` (whether N is the
contract's own rather than the default), ``x_start_cum_us``,
``x_target_cum_us`` (N business days after the start), ``x_due``, ``x_due_cum_us``
and ``x_stop_cum_us`` (business time as running totals, in microseconds).
"""

from __future__ import annotations

from dataclasses import dataclass

from kb.config import CalendarConfig
from kb.engine.business_time import business_time_after, elapsed_us, local_day, next_business_day_close, reached_at


@dataclass(frozen=True)
class SlaClock:
    """One SLA target of a case.

    ``name``: the prefix of the columns it adds. ``starts``/``stops``: the case columns (TIMESTAMPTZ)
    where its clock starts and stops; a null ``stops`` has not happened yet as of T (the case rows
    mask later stamps). ``rule``: SQL over the case row ``e`` giving its deadline rule.
    ``business_days``: SQL over ``e`` and ``k``, the contract term in force on the start's local date
    (``k.days``, null without one), giving N for a 'within_days' rule. ``contract_days``: the
    ``contracts`` column holding a contract's own N, or None when contracts do not set one
    (then ``business_days`` must not read ``k``).
    """

    name: str
    starts: str
    stops: str
    rule: str
    business_days: str = "NULL"
    contract_days: str | None = None

    def col(self, what: str) -> str:
        """The name of one of the columns the clock adds, e.g. ``col('due')``."""
        return f"{self.name}_{what}"


def _contract_terms(contracts: str) -> str:
    """Each client's dates cut where any of the contracts ``contracts`` (client_id, starts_on, ends_on,
    days) starts or ends, with one smallest ``days`` per stretch, so that a case finds at most one
    row by an equality join on the client."""
    return f"""
        SELECT s.client_id, s.starts_on, s.ends_on, min(k.days) AS days
        FROM (SELECT client_id, bound AS starts_on,
                     coalesce(lead(bound) OVER (PARTITION BY client_id ORDER BY bound) - 1, DATE '9999-12-31')
                         AS ends_on
              FROM (SELECT client_id, starts_on AS bound FROM {contracts}
                    UNION SELECT client_id, ends_on + 1 FROM {contracts} WHERE ends_on < DATE '9999-12-31')) s
        JOIN {contracts} k ON k.client_id = s.client_id AND s.starts_on BETWEEN k.starts_on AND k.ends_on
        GROUP BY s.client_id, s.starts_on, s.ends_on"""


def clock_ctes(clock: SlaClock, source: str, calendar: CalendarConfig) -> tuple[str, str]:
    """CTE definitions (``name AS (…), …``, no WITH, no trailing comma) adding the clock's columns to
    every row of the relation ``source``, which has ``client_id`` and the clock's ``starts`` and
    ``stops``; and the name of the last CTE, which has them all."""
    c = clock.col
    ctes = []
    if clock.contract_days is not None:
        ctes.append((c("contracts"), f"""
            SELECT client_id, starts_on, coalesce(ends_on, DATE '9999-12-31') AS ends_on,
                   {clock.contract_days} AS days
            FROM contracts WHERE {clock.contract_days} IS NOT NULL"""))
        ctes.append((c("terms"), _contract_terms(c("contracts"))))
        terms = (f"LEFT JOIN {c('terms')} k ON k.client_id = e.client_id "
                 f"AND e.{c('start_day')} BETWEEN k.starts_on AND k.ends_on")
    else:
        terms = ""
    ctes.append((c("ruled"), f"""
        SELECT e.*, {local_day(f"e.{clock.starts}", calendar)} AS {c('start_day')}, {clock.rule} AS {c('rule')}
        FROM {source} e"""))
    by_contract = f"e.{c('rule')} = 'within_days' AND k.days IS NOT NULL" if terms else "FALSE"
    ctes.append((c("promised"), f"""
        SELECT e.*, CASE WHEN e.{c('rule')} = 'within_days' THEN {clock.business_days} END AS {c('business_days')},
               {by_contract} AS {c('days_by_contract')}
        FROM {c('ruled')} e {terms}"""))
    start = elapsed_us(f"e.{clock.starts}", "k")
    ctes.append((c("started"), f"""
        SELECT q.*, {business_time_after(f"q.{c('start_cum_us')}", f"q.{c('business_days')}", calendar)}
                        AS {c('target_cum_us')}
        FROM (SELECT e.*, {start.value} AS {c('start_cum_us')}
              FROM {c('promised')} e {start.join}) q"""))
    within = reached_at(f"e.{c('target_cum_us')}", "k")
    close = next_business_day_close(f"e.{c('start_day')}", "n")
    ctes.append((c("due"), f"""
        SELECT e.*,
               CASE e.{c('rule')} WHEN 'next_business_day_close' THEN {close.value}
                                  WHEN 'within_days' THEN {within.value} END AS {c('due')},
               CASE e.{c('rule')} WHEN 'next_business_day_close' THEN {close.value_cum_us}
                                  WHEN 'within_days' THEN {within.value_cum_us} END AS {c('due_cum_us')}
        FROM {c('started')} e {within.join} {close.join}"""))
    stop = elapsed_us(f"e.{clock.stops}", "k")
    ctes.append((c("stopped"), f"""
        SELECT e.*, {stop.value} AS {c('stop_cum_us')}
        FROM {c('due')} e {stop.join}"""))
    return ",\n".join(f"{name} AS ({body}\n    )" for name, body in ctes), c("stopped")


def sla_state(clock: SlaClock, row: str, t_sql: str, now_cum_sql: str, at_risk_us: int) -> str:
    """rules §4's state of the target on ``row`` (a relation with the clock's columns) as of the instant
    ``t_sql``, whose elapsed business time is ``now_cum_sql``."""
    due, stop = f"{row}.{clock.col('due')}", f"{row}.{clock.stops}"
    return f"""CASE
               WHEN {due} IS NULL THEN 'no_sla'
               WHEN {stop} IS NOT NULL AND {stop} <= {due} THEN 'met'
               WHEN {stop} IS NOT NULL THEN 'breached'
               WHEN {t_sql} > {due} THEN 'breached'
               WHEN {row}.{clock.col('due_cum_us')} - {now_cum_sql} <= {at_risk_us} THEN 'at_risk'
               ELSE 'pending'
           END"""


def business_hours_left(clock: SlaClock, row: str, now_cum_sql: str) -> str:
    """Business hours from now (elapsed ``now_cum_sql``) to the deadline while the clock runs (negative past it)."""
    due, stop = f"{row}.{clock.col('due')}", f"{row}.{clock.stops}"
    return (f"CASE WHEN {stop} IS NULL AND {due} IS NOT NULL "
            f"THEN ({row}.{clock.col('due_cum_us')} - {now_cum_sql}) / 3.6e9 END")


def business_hours_taken(clock: SlaClock, row: str) -> str:
    """Business hours from the clock's start to its stop, once stopped."""
    return f"({row}.{clock.col('stop_cum_us')} - {row}.{clock.col('start_cum_us')}) / 3.6e9"
