"""Service credits owed per contract and covered month (rules §6).

Reads the ``env_uptime`` view. A contract's credit schedule (or the default
one) is split into tiers in SQL; a tier applies when the month's uptime is below
its threshold, compared exactly on microseconds like the uptime target, and the
largest applying credit wins. For each month the query also says how much more
downtime would reach the next tier, which the Service credits page ranks by.
``uptime_target_pct`` is the contract's own target, the default when it sets
none (``kb.engine.uptime.contract_target_sql``).
"""

from __future__ import annotations

from kb.config import Config
from kb.db.sqltext import quote
from kb.engine.dated import sla_on
from kb.engine.uptime import contract_target_sql


def contract_refunds_sql(config: Config, as_of_literal: str) -> str:
    """SELECT of one row per contract and covered month, zero credits included."""
    default_schedule = sla_on(config, "m.first_day", lambda sla: quote(sla.default_credit_schedule))
    return f"""
    WITH as_of AS (SELECT {as_of_literal} AS t),
    contract_months AS (
        SELECT k.contract_id, k.client_id, k.environment_id, k.monthly_fee, k.currency,
               coalesce(k.credit_schedule, {default_schedule}) AS credit_schedule,
               {contract_target_sql(config, 'm.first_day')} AS uptime_target_pct, k.response_business_days, k.starts_on,
               k.ends_on,
               m.month, a.t < m.month_end AS is_current
        FROM contracts k, calendar_months m, as_of a
        WHERE m.first_day >= k.starts_on AND (k.ends_on IS NULL OR m.first_day <= k.ends_on)
          AND m.month_start <= a.t
    ),
    tiers AS (
        SELECT contract_id, credit_schedule,
               CAST(round(CAST(trim(split_part(part, ':', 1)) AS DECIMAL(9, 4)) * 10000) AS HUGEINT) AS below_bp,
               CAST(trim(split_part(part, ':', 2)) AS DECIMAL(9, 4)) AS credit_pct
        FROM (SELECT contract_id, credit_schedule, unnest(string_split(credit_schedule, ',')) AS part
              FROM (SELECT DISTINCT contract_id, credit_schedule FROM contract_months))
    ),
    measured AS (
        SELECT cm.*, u.uptime_pct, u.downtime_us, u.period_us, u.downtime_minutes
        FROM contract_months cm
        LEFT JOIN env_uptime u ON u.environment_id = cm.environment_id AND u.month = cm.month
    ),
    credited AS (
        SELECT m.contract_id, m.month,
               coalesce(max(t.credit_pct) FILTER (
                   WHERE m.downtime_us::HUGEINT * 1000000 > (1000000 - t.below_bp) * m.period_us), 0) AS credit_pct
        FROM measured m JOIN tiers t USING (contract_id, credit_schedule)
        GROUP BY m.contract_id, m.month
    ),
    next_tier AS (
        SELECT m.contract_id, m.month,
               min(((1000000 - t.below_bp) * m.period_us - m.downtime_us::HUGEINT * 1000000) / 6e13)
                   AS minutes_to_next_tier,
               arg_min(t.credit_pct, t.below_bp * -1) AS next_credit_pct
        FROM measured m JOIN tiers t USING (contract_id, credit_schedule) JOIN credited c USING (contract_id, month)
        WHERE t.credit_pct > c.credit_pct
          AND m.downtime_us::HUGEINT * 1000000 <= (1000000 - t.below_bp) * m.period_us
        GROUP BY m.contract_id, m.month
    )
    SELECT m.contract_id, m.client_id, m.environment_id, m.month, m.uptime_pct, m.downtime_minutes,
           c.credit_pct, round(m.monthly_fee * c.credit_pct / 100, 2) AS refund_amount, m.currency,
           CASE WHEN m.is_current THEN 'projected' ELSE 'final' END AS status,
           m.monthly_fee, m.credit_schedule, m.uptime_target_pct, m.response_business_days, m.starts_on, m.ends_on,
           round(n.minutes_to_next_tier, 2) AS minutes_to_next_tier, n.next_credit_pct
    FROM measured m
    JOIN credited c USING (contract_id, month)
    LEFT JOIN next_tier n USING (contract_id, month)
    """
