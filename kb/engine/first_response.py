"""First-response deadlines and SLA states of every case as of an instant (rules §3, 4).

One set-based query over all cases. The first response is one ``SlaClock``
(``kb/engine/sla_clock.py``): it starts at receipt, stops at the first response,
and its deadline rule is "within N business days" for ``enterprise`` and
``custom`` (N from the contract in force at receipt, else the tier's default),
"end of the next business day" for ``free``, and none for a ``free`` case in
``general_coding``. The business-time lookups the clock compiles to (elapsed
business time at an instant, the instant N business days later, the next
business day's close) are equality joins on the calendar's bucketed lookup
tables, see ``kb/engine/business_time.py``: no ASOF join, which would sort a
million cases with their whole rows.

A case voided by a person (``voided_at`` set, with a reason, audited) was logged in error: it is
left out at every instant, so of every state, count, chart and export; it stays in the audit trail.

Another target (time to resolution, a follow-up) is another ``SlaClock`` passed
through ``clock_ctes`` after this one, with its own columns in the final SELECT.
"""

from __future__ import annotations

from kb.config import Config, SlaConfig
from kb.engine.business_time import elapsed_us
from kb.engine.sla_clock import SlaClock, business_hours_left, business_hours_taken, clock_ctes, sla_state


def first_response_clock(sla: SlaConfig) -> SlaClock:
    """rules §3: the first-response target of a case (``e``), with its contract term (``k``)."""
    return SlaClock(
        name="first_response", starts="received_at", stops="first_response_at",
        rule="""CASE WHEN e.tier <> 'free' THEN 'within_days'
                     WHEN e.category <> 'general_coding' THEN 'next_business_day_close'
                     ELSE 'none' END""",
        business_days=f"""coalesce(k.days, CASE e.tier WHEN 'enterprise' THEN {sla.enterprise_response_business_days}
                                                       ELSE {sla.custom_response_business_days} END)""",
        contract_days="response_business_days",
    )


def target_in_words(rule: str, business_days: int | None, by_contract: bool, tier: str, client_name: str) -> str:
    """Which first-response target a case has and why, from the engine's own columns (``deadline_rule``,
    ``response_business_days``, ``response_days_by_contract`` of ``case_sla``): "Cobalt's contract: 2
    business days", "Enterprise default: 1 business day", "Free: end of the next business day",
    "General coding on the free tier: no deadline"."""
    if rule == "none":
        return "General coding on the free tier: no deadline"
    if rule == "next_business_day_close":
        return f"{tier.capitalize()}: end of the next business day"
    days = f"{business_days} business day{'s' if business_days != 1 else ''}"
    return f"{client_name}'s contract: {days}" if by_contract else f"{tier.capitalize()} default: {days}"


def case_sla_sql(config: Config, as_of_literal: str) -> str:
    """SELECT of one row per case that exists at ``as_of``, with its deadline and state."""
    at_risk_us = int(config.sla.at_risk_business_hours * 3600 * 1_000_000)
    response = first_response_clock(config.sla)
    response_ctes, responded = clock_ctes(response, "existing", config.calendar)
    now = elapsed_us("a.t", "k")
    return f"""
    WITH as_of AS (
        SELECT {as_of_literal} AS t
    ),
    clock_now AS (
        SELECT {now.value} AS cum_us FROM as_of a {now.join}
    ),
    existing AS (
        SELECT c.case_id, c.client_id, cl.name AS client_name, cl.tier, c.category, c.subject,
               c.requester, c.assignee, c.breach_reason, c.message_id, c.received_at,
               CASE WHEN c.first_response_at <= p.t THEN c.first_response_at END AS first_response_at,
               CASE WHEN c.resolved_at <= p.t THEN c.resolved_at END AS resolved_at
        FROM cases c JOIN clients cl USING (client_id), as_of p
        WHERE c.received_at <= p.t AND c.voided_at IS NULL  -- a voided case was logged in error: never counts
    ),
    {response_ctes}
    SELECT r.case_id, r.client_id, r.client_name, r.tier, r.category, r.subject, r.requester, r.assignee,
           r.breach_reason, r.message_id,
           r.received_at, r.{response.col('due')} AS first_response_due, r.first_response_at, r.resolved_at,
           {sla_state(response, "r", "a.t", "n.cum_us", at_risk_us)} AS sla_state,
           {business_hours_left(response, "r", "n.cum_us")} AS business_hours_left,
           {business_hours_taken(response, "r")} AS business_hours_to_response,
           r.{response.col('rule')} AS deadline_rule, r.{response.col('business_days')} AS response_business_days,
           r.{response.col('days_by_contract')} AS response_days_by_contract
    FROM {responded} r, as_of a, clock_now n
    """
