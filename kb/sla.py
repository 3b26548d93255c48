"""First-response deadlines and SLA states of every case as of an instant (SPEC 3, 4).

One set-based query over all cases. With the calendar's ``business_days``
(each business day's opening and the business time before it, see
``kb/calendar.py``):

* business time elapsed at an instant ``t`` is an ASOF join on the last opening
  at or before ``t``: ``cum_before_us + clamp(t − opens_at, 0, length_us)``;
* "within N business days" adds N days of business time to the elapsed time at
  receipt and finds, with a second ASOF join, the last business day whose
  ``cum_before_us`` is *below* that target. Strictly below, so a deadline that
  lands exactly on a close is that close and not the next opening;
* "end of the next business day" is the close of the first business day whose
  local date is after the local date of receipt (an ASOF join on ``day``).
"""

from __future__ import annotations

from kb.config import Config
from kb.sqltext import quote


def case_sla_sql(config: Config, as_of_literal: str) -> str:
    """SELECT of one row per case that exists at ``as_of``, with its deadline and state."""
    tz = quote(config.calendar.timezone)
    day_us = config.calendar.business_day_seconds * 1_000_000
    at_risk_us = int(config.sla.at_risk_business_hours * 3600 * 1_000_000)
    sla = config.sla
    return f"""
    WITH as_of AS (
        SELECT {as_of_literal} AS t
    ),
    clock_now AS (
        SELECT d.cum_before_us + least(greatest(epoch_us(a.t) - epoch_us(d.opens_at), 0), d.length_us) AS cum_us
        FROM as_of a ASOF LEFT JOIN business_days d ON a.t >= d.opens_at
    ),
    existing AS (
        SELECT c.case_id, c.client_id, cl.name AS client_name, cl.tier, c.category, c.subject,
               c.requester, c.assignee, c.received_at,
               CASE WHEN c.first_response_at <= a.t THEN c.first_response_at END AS first_response_at,
               CASE WHEN c.resolved_at <= a.t THEN c.resolved_at END AS resolved_at,
               CAST(timezone({tz}, c.received_at) AS DATE) AS received_day
        FROM cases c JOIN clients cl USING (client_id), as_of a
        WHERE c.received_at <= a.t
    ),
    contract_days AS (
        SELECT client_id, starts_on, coalesce(ends_on, DATE '9999-12-31') AS ends_on, response_business_days
        FROM contracts WHERE response_business_days IS NOT NULL
    ),
    promised AS (
        SELECT e.*,
               CASE WHEN e.tier <> 'free' THEN 'within_days'
                    WHEN e.category <> 'general_coding' THEN 'next_business_day_close'
                    ELSE 'none' END AS deadline_rule,
               CASE WHEN e.tier <> 'free' THEN coalesce(
                       (SELECT min(k.response_business_days) FROM contract_days k
                        WHERE k.client_id = e.client_id AND e.received_day BETWEEN k.starts_on AND k.ends_on),
                       CASE e.tier WHEN 'enterprise' THEN {sla.enterprise_response_business_days}
                                   ELSE {sla.custom_response_business_days} END)
               END AS response_business_days
        FROM existing e
    ),
    received_clock AS (
        SELECT p.*,
               d.cum_before_us + least(greatest(epoch_us(p.received_at) - epoch_us(d.opens_at), 0), d.length_us)
                   AS received_cum_us
        FROM promised p ASOF LEFT JOIN business_days d ON p.received_at >= d.opens_at
    ),
    targets AS (
        SELECT r.*, r.received_cum_us + coalesce(r.response_business_days, 0) * {day_us} AS target_cum_us
        FROM received_clock r
    ),
    within_days AS (
        SELECT t.*,
               d.opens_at + to_microseconds(t.target_cum_us - d.cum_before_us) AS within_due
        FROM targets t ASOF LEFT JOIN business_days d ON d.cum_before_us < t.target_cum_us
    ),
    next_day AS (
        SELECT w.*, d.closes_at AS next_day_close, d.cum_before_us + d.length_us AS next_day_close_cum_us
        FROM within_days w ASOF LEFT JOIN business_days d ON w.received_day < d.day
    ),
    due AS (
        SELECT n.*,
               CASE n.deadline_rule WHEN 'next_business_day_close' THEN n.next_day_close
                                    WHEN 'within_days' THEN n.within_due END AS first_response_due,
               CASE n.deadline_rule WHEN 'next_business_day_close' THEN n.next_day_close_cum_us
                                    WHEN 'within_days' THEN n.target_cum_us END AS due_cum_us
        FROM next_day n
    ),
    responded AS (
        SELECT u.*,
               CASE WHEN u.first_response_at IS NOT NULL THEN d.cum_before_us
                    + least(greatest(epoch_us(u.first_response_at) - epoch_us(d.opens_at), 0), d.length_us)
               END AS response_cum_us
        FROM due u ASOF LEFT JOIN business_days d ON u.first_response_at >= d.opens_at
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
