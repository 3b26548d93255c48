"""First-response deadlines and SLA states of every case as of an instant (SPEC 3, 4).

One set-based query over all cases. With the calendar's business days (each
business day's opening and the business time before it, ``cum_before_us``, see
``kb/engine/calendar.py``):

* business time elapsed at an instant ``t`` is that of the last opening at or
  before ``t``: ``cum_before_us + clamp(t − opens_at, 0, length_us)``;
* "within N business days" adds N days of business time to the elapsed time at
  receipt and finds the last business day whose ``cum_before_us`` is *below*
  that target. Strictly below, so a deadline that lands exactly on a close is
  that close and not the next opening;
* "end of the next business day" is the close of the first business day whose
  local date is after the local date of receipt.

The first two are "last key at or below x" lookups. They read the calendar's
bucketed lookup tables (``clock_index`` in ``kb/engine/calendar.py``) with equality
joins, because an ASOF join sorts every case with its whole row and takes
seconds on a million cases: the bucket of x holds at most one key, and the
answer is that key when it is at or below x, else the last key before the
bucket. The third is an equality join on the local date.
"""

from __future__ import annotations

from kb.config import Config
from kb.db.sqltext import quote


def _bucket(x: str, kind: str) -> str:
    """The bucket of ``x`` in the lookup table ``kind`` ('instant' or 'clock'); ``p`` is ``business_index``."""
    return (f"CASE WHEN {x} < p.{kind}_origin THEN 0 "
            f"ELSE least(({x} - p.{kind}_origin) // p.{kind}_width, p.{kind}_last) END")


def _elapsed(x: str, k: str) -> str:
    """Business microseconds elapsed at epoch microseconds ``x``, from its ``business_instants`` row ``k``."""
    return (f"CASE WHEN {x} >= {k}.b_opens_us THEN {k}.b_cum_us + least({x} - {k}.b_opens_us, {k}.b_length_us) "
            f"ELSE {k}.a_cum_us + least(greatest({x} - {k}.a_opens_us, 0), {k}.a_length_us) END")


def case_sla_sql(config: Config, as_of_literal: str) -> str:
    """SELECT of one row per case that exists at ``as_of``, with its deadline and state."""
    tz = quote(config.calendar.timezone)
    day_us = config.calendar.business_day_seconds * 1_000_000
    at_risk_us = int(config.sla.at_risk_business_hours * 3600 * 1_000_000)
    sla = config.sla
    return f"""
    WITH as_of AS (
        SELECT {as_of_literal} AS t, p.* FROM business_index p
    ),
    clock_now AS (
        SELECT {_elapsed("epoch_us(p.t)", "k")} AS cum_us
        FROM as_of p LEFT JOIN business_instants k ON k.bucket = {_bucket("epoch_us(p.t)", "instant")}
    ),
    contract_days AS (
        SELECT client_id, starts_on, coalesce(ends_on, DATE '9999-12-31') AS ends_on, response_business_days
        FROM contracts WHERE response_business_days IS NOT NULL
    ),
    contract_bounds AS (
        SELECT client_id, starts_on AS bound FROM contract_days
        UNION SELECT client_id, ends_on + 1 FROM contract_days WHERE ends_on < DATE '9999-12-31'
    ),
    contract_terms AS (
        -- Each client's dates cut where any contract starts or ends: one smallest N per stretch, so
        -- that a case finds at most one row by an equality join on the client.
        SELECT s.client_id, s.starts_on, s.ends_on, min(k.response_business_days) AS response_business_days
        FROM (SELECT client_id, bound AS starts_on,
                     coalesce(lead(bound) OVER (PARTITION BY client_id ORDER BY bound) - 1, DATE '9999-12-31')
                         AS ends_on
              FROM contract_bounds) s
        JOIN contract_days k ON k.client_id = s.client_id AND s.starts_on BETWEEN k.starts_on AND k.ends_on
        GROUP BY s.client_id, s.starts_on, s.ends_on
    ),
    existing AS (
        SELECT c.case_id, c.client_id, cl.name AS client_name, cl.tier, c.category, c.subject,
               c.requester, c.assignee, c.received_at,
               CASE WHEN c.first_response_at <= p.t THEN c.first_response_at END AS first_response_at,
               CASE WHEN c.resolved_at <= p.t THEN c.resolved_at END AS resolved_at,
               CAST(timezone({tz}, c.received_at) AS DATE) AS received_day
        FROM cases c JOIN clients cl USING (client_id), as_of p
        WHERE c.received_at <= p.t
    ),
    promised AS (
        SELECT e.*,
               CASE WHEN e.tier <> 'free' THEN 'within_days'
                    WHEN e.category <> 'general_coding' THEN 'next_business_day_close'
                    ELSE 'none' END AS deadline_rule,
               CASE WHEN e.tier <> 'free' THEN coalesce(k.response_business_days,
                       CASE e.tier WHEN 'enterprise' THEN {sla.enterprise_response_business_days}
                                   ELSE {sla.custom_response_business_days} END)
               END AS response_business_days
        FROM existing e
        LEFT JOIN contract_terms k ON k.client_id = e.client_id AND e.received_day BETWEEN k.starts_on AND k.ends_on
    ),
    targets AS (
        SELECT q.*, q.received_cum_us + coalesce(q.response_business_days, 0) * {day_us} AS target_cum_us
        FROM (
            SELECT e.*, {_elapsed("epoch_us(e.received_at)", "k")} AS received_cum_us
            FROM promised e CROSS JOIN as_of p
            LEFT JOIN business_instants k ON k.bucket = {_bucket("epoch_us(e.received_at)", "instant")}
        ) q
    ),
    due AS (
        SELECT t.*,
               CASE t.deadline_rule
                   WHEN 'next_business_day_close' THEN n.next_close
                   WHEN 'within_days' THEN
                       CASE WHEN t.target_cum_us - 1 >= k.b_cum_us
                            THEN k.b_opens_at + to_microseconds(t.target_cum_us - k.b_cum_us)
                            ELSE k.a_opens_at + to_microseconds(t.target_cum_us - k.a_cum_us) END
               END AS first_response_due,
               CASE t.deadline_rule WHEN 'next_business_day_close' THEN n.next_close_cum_us
                                    WHEN 'within_days' THEN t.target_cum_us END AS due_cum_us
        FROM targets t CROSS JOIN as_of p
        LEFT JOIN business_clock k ON k.bucket = {_bucket("t.target_cum_us - 1", "clock")}
        LEFT JOIN business_dates n ON n.day = t.received_day
    ),
    responded AS (
        SELECT u.*,
               CASE WHEN u.first_response_at IS NOT NULL THEN {_elapsed("epoch_us(u.first_response_at)", "k")}
               END AS response_cum_us
        FROM due u CROSS JOIN as_of p
        LEFT JOIN business_instants k ON k.bucket = {_bucket("epoch_us(u.first_response_at)", "instant")}
    )
    SELECT r.case_id, r.client_id, r.client_name, r.tier, r.category, r.subject, r.requester, r.assignee,
           r.received_at, r.first_response_due, r.first_response_at, r.resolved_at,
           CASE
               WHEN r.first_response_due IS NULL THEN 'no_sla'
               WHEN r.first_response_at IS NOT NULL AND r.first_response_at <= r.first_response_due THEN 'met'
               WHEN r.first_response_at IS NOT NULL THEN 'breached'
               WHEN a.t > r.first_response_due THEN 'breached'
               WHEN r.due_cum_us - n.cum_us <= {at_risk_us} THEN 'at_risk'
               ELSE 'pending'
           END AS sla_state,
           CASE WHEN r.first_response_at IS NULL AND r.first_response_due IS NOT NULL
                THEN (r.due_cum_us - n.cum_us) / 3.6e9 END AS business_hours_left,
           (r.response_cum_us - r.received_cum_us) / 3.6e9 AS business_hours_to_response,
           r.deadline_rule, r.response_business_days
    FROM responded r, as_of a, clock_now n
    """
