"""Which alerts are due as of an instant, read from the as-of views (``case_sla``, ``case_questions``, ``env_uptime``).

* a target of an enterprise or custom case (its first response, its resolution, or a follow-up question), still
  running on an unresolved case, that is ``at_risk``, or that is ``breached`` with its deadline in the last day
  (older breaches, first seen now, are in the digest instead of arriving one by one the day alerts are switched
  on); a paused resolution is neither;
* an environment whose downtime this month has reached 50 % or 75 % of its error budget, or gone past it
  (100 %: the target is missed): one alert for the highest level reached, and none for a level at or
  below one already sent for that month;
* on a business day at or after ``digest_at``, the leads' digest: open breaches and at-risk cases by assignee;
* for the admins, a background job or webhook that failed three times in a row (``kb.health``), once
  per streak of failures;
* for the admins, messages held in the mail quarantine (``kb.health.quarantined``), once per mailbox
  each time it grows: the key names the newest held message's instant, so a steady quarantine is told once.

A key names each alert: ``case_at_risk:CS-00042`` (a first response: the form these keys had before there were
other targets, so an alert sent then is not sent again), ``case_breached:resolution:CS-00042``,
``case_at_risk:next_response:CS-00042:2026-11-24T09:00:00+00:00`` (a follow-up question, by when it was asked, in
UTC), ``budget:ENV-1:2026-11:75``, ``digest:2026-11-26``, ``job-failing:mail:support:2026-11-26T01:00:00+00:00``,
``quarantine:support:2026-11-26T01:00:00+00:00``; ``kb/alerts/deliver.py`` records and sends each key once per
channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kb import formats
from kb.alerts.text import one_line
from kb.config import Config
from kb.db.sqltext import quote
from kb.engine.calendar import business_day_hours, is_business_day
from kb.engine.targets import BY_METRIC, FIRST_RESPONSE, TARGETS, Target
from kb.health import alarming, quarantined
from kb.timestamps import format_for_people

BUDGET_LEVELS = (50, 75, 100)
BREACH_WINDOW = timedelta(days=1)
WATCHED_TIERS = ("enterprise", "custom")


@dataclass(frozen=True)
class Alert:
    key: str
    kind: str  # case_at_risk, case_breached (of any target), budget, digest, job_failing, quarantine
    breach: bool  # a breach is sent even in quiet hours
    roles: tuple[str, ...]  # who receives it by e-mail (``[alerts.recipients]``)
    subject: str
    body: str


def due_alerts(con, config: Config, now: datetime) -> list[Alert]:
    """Every alert due at ``now``; ``con`` has the as-of views open at ``now`` (``kb.engine.asof``)."""
    return [*_case_alerts(con, config, now), *_budget_alerts(con, config), *_digest(con, config, now),
            *_failing_jobs(con, config), *_quarantine(con, config)]


def _alert_key_sql(target: Target, row: str) -> str:
    """The SQL of a target's alert key on ``row`` (a row of its source joined to the case as ``c``)."""
    named = "" if target is FIRST_RESPONSE else f"{target.metric}:"
    asked = f" || ':' || iso_local({row}.{target.starts}, 'UTC')" if target.per == "question" else ""
    return f"'case_' || {row}.{target.col('state')} || ':{named}' || c.case_id{asked}"


def alerting_targets_sql() -> str:
    """One row per target that a case alert is about now: running (not stopped, not paused) on an unresolved
    case of a watched tier, at risk or breached. Columns ``alert_key``, ``metric``, ``case_id``,
    ``client_name``, ``tier``, ``subject``, ``assignee``, ``state``, ``due``, ``hours_left`` (business hours of
    its ``calendar``) and ``asked_at`` (a follow-up question's). One SELECT per target of ``TARGETS``, over
    whole tables."""
    parts = []
    for target in TARGETS:
        row = "c" if target.per == "case" else "q"
        source = "case_sla c" if target.per == "case" else "case_questions q JOIN case_sla c USING (case_id)"
        state = f"{row}.{target.col('state')}"
        asked = f"{row}.{target.starts}" if target.per == "question" else "NULL"
        parts.append(f"""
            SELECT {_alert_key_sql(target, row)} AS alert_key, '{target.metric}' AS metric, c.case_id,
                   c.client_name, c.tier, c.subject, c.assignee,
                   {state} AS state, {row}.{target.col('due')} AS due, {row}.{target.col('hours_left')} AS hours_left,
                   {row}.{target.col('calendar')} AS calendar, {asked} AS asked_at
            FROM {source}
            WHERE c.tier IN ({", ".join(quote(tier) for tier in WATCHED_TIERS)}) AND c.resolved_at IS NULL
              AND {row}.{target.stops} IS NULL AND {state} IN ('at_risk', 'breached')""")
    return "UNION ALL".join(parts)


def _case_alerts(con, config: Config, now: datetime) -> list[Alert]:
    rows = con.execute(
        f"""
        SELECT alert_key, metric, case_id, client_name, tier, subject, coalesce(assignee, '') AS assignee, state,
               due, hours_left, calendar, asked_at
        FROM ({alerting_targets_sql()})
        WHERE state = 'at_risk' OR due >= $since
        ORDER BY due, case_id, metric, asked_at
        """,
        {"since": now - BREACH_WINDOW},
    ).fetchall()
    zone, day_hours = config.calendar.zone, business_day_hours(config)
    alerts = []
    for key, metric, case_id, client, tier, subject, assignee, state, due, hours_left, calendar, asked_at in rows:
        client, subject, assignee = one_line(client), one_line(subject), one_line(assignee)
        target = BY_METRIC[metric]
        what = f"{target.label.lower()} {formats.word('state', state).lower()}"
        left = "" if state == "breached" else f", {formats.duration(hours_left, day_hours[calendar])} left"
        asked = f"Question asked: {formats.instant(asked_at, zone)}\n" if asked_at else ""
        alerts.append(Alert(
            key=key, kind=f"case_{state}", breach=state == "breached", roles=("lead",),
            subject=f"[SLA] Case {case_id} ({client}) {what}: due {formats.instant(due, zone)}",
            body=(f"Case {case_id} of {client} ({formats.word('tier', tier)}): {what}{left}.\n"
                  f"Subject: {subject}\nAssignee: {formats.assignee(assignee)}\n{asked}"
                  f"{target.label} due: {formats.instant(due, zone)}\n\n"
                  f"{_dashboard(config)}/queue?case={case_id}\n"),
        ))
    return alerts


def _budget_alerts(con, config: Config) -> list[Alert]:
    levels = " ".join(
        f"WHEN downtime_us::HUGEINT * 1000000 * 100 {'>' if level == 100 else '>='} "
        f"{level} * (1000000 - target_bp) * period_us THEN {level}"
        for level in reversed(BUDGET_LEVELS))
    rows = con.execute(
        f"""
        WITH reached AS (
            SELECT environment_id, environment_name, month, downtime_minutes, budget_minutes, budget_left_minutes,
                   CASE {levels} END AS level
            FROM env_uptime WHERE status = 'projected' AND target_bp IS NOT NULL AND target_bp < 1000000
        )
        SELECT r.* FROM reached r
        WHERE r.level IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM alert_deliveries d
            WHERE d.kind = 'budget' AND split_part(d.alert_key, ':', 2) = r.environment_id
              AND split_part(d.alert_key, ':', 3) = r.month
              AND CAST(split_part(d.alert_key, ':', 4) AS INTEGER) >= r.level)
        ORDER BY r.environment_id
        """
    ).fetchall()
    alerts = []
    for environment_id, name, month, downtime, budget, left, level in rows:
        name, shown_month = one_line(name), formats.month_label(month)
        what = ("has used up its error budget" if level == 100
                else f"has used {formats.percent(level)} of its error budget")
        alerts.append(Alert(
            key=f"budget:{environment_id}:{month}:{level}", kind="budget", breach=level == 100,
            roles=("lead", "admin"),
            subject=f"[SLA] {name} ({environment_id}) {what} for {shown_month}",
            body=(f"{name} ({environment_id}) {what} for {shown_month}: {formats.duration(downtime / 60)} of downtime "
                  f"against a budget of {formats.duration(budget / 60)} ({formats.budget_left(left)} left)."
                  f"\n\n{_dashboard(config)}/uptime\n"),
        ))
    return alerts


def _digest(con, config: Config, now: datetime) -> list[Alert]:
    local = now.astimezone(config.calendar.zone)
    alerts_config = config.alerts
    if alerts_config is None or local.time() < alerts_config.digest_at or \
            not is_business_day(config.calendar, local.date()):
        return []
    rows = con.execute(
        """
        SELECT coalesce(assignee, '') AS assignee, sla_state, case_id, client_name, first_response_due
        FROM case_sla
        WHERE resolved_at IS NULL AND first_response_at IS NULL AND sla_state IN ('breached', 'at_risk')
        ORDER BY assignee, sla_state <> 'breached', first_response_due  -- breaches first
        """
    ).fetchall()
    breaches = sum(1 for row in rows if row[1] == "breached")
    lines, current = [], None
    for assignee, state, case_id, client, due in rows:
        if assignee != current:
            current = assignee
            lines.append(f"\n{formats.assignee(one_line(assignee))}:")
        label = formats.word("sla_state", state).lower()
        lines.append(f"  {case_id} ({one_line(client)}) {label}, due {formats.instant(due, config.calendar.zone)}")
    day = local.date().isoformat()
    return [Alert(
        key=f"digest:{day}", kind="digest", breach=False, roles=("lead",),
        subject=f"[SLA] {day}: {_count(breaches, 'open breach', 'open breaches')}, "
                f"{_count(len(rows) - breaches, 'case at risk', 'cases at risk')}",
        body=(f"Open breaches and cases at risk on {day}, by assignee:\n" + "\n".join(lines)
              + f"\n\n{_dashboard(config)}/queue\n") if rows else
             f"No open breaches and no case at risk on {day}.\n\n{_dashboard(config)}/queue\n",
    )]


def _failing_jobs(con, config: Config) -> list[Alert]:
    """Each streak of failures long enough to tell the admins, keyed by the job and when the streak began; sent
    even in quiet hours, as a breach is: nothing comes in through a failing pipeline meanwhile."""
    zone = config.calendar.zone
    alerts = []
    for job in alarming(con):
        since = format_for_people(job.failing_since, zone)
        alerts.append(Alert(
            key=f"job-failing:{job.job}:{job.failing_since.astimezone(UTC).isoformat()}", kind="job_failing",
            breach=True, roles=("admin",),
            subject=f"[SLA] {job.job} is failing since {since}",
            body=(f"The service's {job.job} has failed {job.consecutive_failures} times in a row since {since}.\n"
                  f"Last error: {job.last_error}\n"
                  f"Last success: {format_for_people(job.last_success, zone) or 'none recorded'}\n\n"
                  f"{_dashboard(config)}/configuration\n"),
        ))
    return alerts


def _quarantine(con, config: Config) -> list[Alert]:
    """Each mailbox with messages held in the mail quarantine, keyed by the newest one's instant; sent even in
    quiet hours, as a failing job is: the held messages are cases nobody sees until an admin acts."""
    alerts = []
    for held in quarantined(con):
        mailbox, since = one_line(held.mailbox), format_for_people(held.since, config.calendar.zone)
        what = f"{_count(held.held, 'message', 'messages')} held in the mail quarantine ({mailbox}) since {since}"
        alerts.append(Alert(
            key=f"quarantine:{held.mailbox}:{held.newest.astimezone(UTC).isoformat()}", kind="quarantine",
            breach=True, roles=("admin",), subject=f"[SLA] {what}",
            body=(f"{what}: the store could not take them. Retry each after a fix, or discard it.\n\n"
                  f"{_dashboard(config)}/mail_quarantine\n"),
        ))
    return alerts


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _dashboard(config: Config) -> str:
    return config.alerts.dashboard_url if config.alerts else "http://127.0.0.1:8501"
