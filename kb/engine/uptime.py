"""Monthly uptime and error budgets of every environment as of an instant (rules §5).

Outage intervals are merged per environment (gaps and islands: an interval
starts a new island when it begins after every earlier one has ended), so
overlapping outages count once. The islands are clipped to each month's
measured period, in the support zone's calendar months (``calendar_months``).

A voided incident (logged in error; ``voided_at`` set, audited) is no downtime at any instant.

Downtime, periods and budgets are kept in integer microseconds, and the target
is compared as ``downtime × 10⁶ ≤ (10⁶ − target in 10⁻⁴ %) × period``, exactly,
so an outage of exactly the budget meets the target.

Targets: a contract's own target is its ``uptime_target_pct``, else ``[sla]
default_uptime_target_pct`` (``contract_target_sql``, the one place every
reader takes it from). An environment's target in a month is the highest of
the covering contracts' targets, each defaulted first (a contract without a
target holds the default, so a 99.0 % contract and its renewal without one
give 99.9 % in the month they share). No covering contract: a dedicated
environment takes the default, a shared one has no target.
"""

from __future__ import annotations

from kb.config import Config
from kb.db.sqltext import quote
from kb.engine.dated import sla_on


def contract_target_sql(config: Config, day_sql: str, column: str = "k.uptime_target_pct") -> str:
    """SQL for a contract's uptime target %, DECIMAL(7, 4): ``column`` (the contract's own), else the default in
    force on the local date ``day_sql`` (a month's first day)."""
    default = sla_on(config, day_sql,
                     lambda sla: f"CAST({quote(format(sla.default_uptime_target_pct, 'f'))} AS DECIMAL(7, 4))")
    return f"coalesce({column}, {default})"


def env_uptime_sql(config: Config, as_of_literal: str) -> str:
    """SELECT of one row per environment and month, from its ``active_from`` to the month of ``as_of``."""
    tz = quote(config.calendar.timezone)
    default_bp = sla_on(config, "em.first_day", lambda sla: f"{int(sla.default_uptime_target_pct * 10_000)}::HUGEINT")
    return f"""
    WITH as_of AS (SELECT {as_of_literal} AS t),
    outages AS (
        SELECT i.environment_id, i.started_at AS s,
               CASE WHEN i.ended_at IS NULL OR i.ended_at > a.t THEN a.t ELSE i.ended_at END AS e
        FROM incidents i, as_of a
        WHERE i.impact = 'outage' AND i.started_at <= a.t
          AND i.voided_at IS NULL  -- a voided incident was logged in error: no downtime, no credit
    ),
    ordered AS (
        SELECT *, max(e) OVER (PARTITION BY environment_id ORDER BY s, e
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS ended_before
        FROM outages
    ),
    numbered AS (
        SELECT *, sum(CASE WHEN ended_before IS NULL OR s > ended_before THEN 1 ELSE 0 END)
                      OVER (PARTITION BY environment_id ORDER BY s, e ROWS UNBOUNDED PRECEDING) AS island
        FROM ordered
    ),
    islands AS (
        SELECT environment_id, min(s) AS s, max(e) AS e FROM numbered GROUP BY environment_id, island
    ),
    env_months AS (
        SELECT env.environment_id, env.name AS environment_name, env.kind, env.client_id, m.month,
               m.first_day, m.last_day,
               greatest(m.month_start, timezone({tz}, CAST(env.active_from AS TIMESTAMP))) AS period_start,
               m.month_end AS period_end,
               a.t < m.month_end AS is_current
        FROM environments env, calendar_months m, as_of a
        WHERE m.month_end > timezone({tz}, CAST(env.active_from AS TIMESTAMP)) AND m.month_start <= a.t
    ),
    downtime AS (
        SELECT em.environment_id, em.month,
               coalesce(sum(epoch_us(least(i.e, em.period_end)) - epoch_us(greatest(i.s, em.period_start)))
                            FILTER (WHERE i.environment_id IS NOT NULL), 0) AS downtime_us
        FROM env_months em
        LEFT JOIN islands i ON i.environment_id = em.environment_id
                            AND i.s < em.period_end AND i.e > em.period_start
        GROUP BY em.environment_id, em.month
    ),
    targets AS (
        SELECT em.environment_id, em.month, max({contract_target_sql(config, 'em.first_day')}) AS contract_target_pct
        FROM env_months em
        JOIN contracts k ON k.environment_id = em.environment_id
                         AND k.starts_on <= em.last_day AND coalesce(k.ends_on, DATE '9999-12-31') >= em.first_day
        GROUP BY em.environment_id, em.month
    ),
    measured AS (
        SELECT em.*, d.downtime_us,
               epoch_us(em.period_end) - epoch_us(em.period_start) AS period_us,
               CASE WHEN t.environment_id IS NOT NULL THEN CAST(round(t.contract_target_pct * 10000) AS HUGEINT)
                    WHEN em.kind = 'dedicated' THEN {default_bp}
               END AS target_bp
        FROM env_months em
        JOIN downtime d USING (environment_id, month)
        LEFT JOIN targets t USING (environment_id, month)
    )
    SELECT environment_id, environment_name, kind, client_id, month,
           period_start, period_end, period_us, downtime_us,
           round(downtime_us / 6e7, 2) AS downtime_minutes,
           round(100 * (1 - downtime_us / period_us), 6) AS uptime_pct,
           target_bp, target_bp / 10000.0 AS target_pct,
           round(((1000000 - target_bp) * period_us) / 6e13, 2) AS budget_minutes,
           round(((1000000 - target_bp) * period_us - downtime_us::HUGEINT * 1000000) / 6e13, 2)
               AS budget_left_minutes,
           downtime_us::HUGEINT * 1000000 <= (1000000 - target_bp) * period_us AS target_met,
           CASE WHEN is_current THEN 'projected' ELSE 'final' END AS status
    FROM measured
    """
