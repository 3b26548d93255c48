"""Which alerts are due as of an instant, read from the as-of views (``case_sla``, ``env_uptime``).

* an enterprise or custom case, unanswered and unresolved, that is ``at_risk``, or that is ``breached``
  with its deadline in the last day (older breaches, first seen now, are in the digest instead of
  arriving one by one the day alerts are switched on);
* an environment whose downtime this month has reached 50 % or 75 % of its error budget, or gone past it
  (100 %: the target is missed): one alert for the highest level reached, and none for a level at or
  below one already sent for that month;
* on a business day at or after ``digest_at``, the leads' digest: open breaches and at-risk cases by assignee;
* for the admins, a background job or webhook that failed three times in a row (``kb.health``), once
  per streak of failures;
* for the admins, messages held in the mail quarantine (``kb.health.quarantined``), once per mailbox
  each time it grows: the key names the newest held message's instant, so a steady quarantine is told once.

A key names each alert (``case_at_risk:CS-00042``, ``budget:ENV-1:2026-11:75``, ``digest:2026-11-26``,
``job-failing:mail:support:2026-11-26T01:00:00+00:00``, ``quarantine:support:2026-11-26T01:00:00+00:00``);
``kb/alerts/deliver.py`` records and sends each key once per channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kb import formats
from kb.alerts.text import one_line
from kb.config import Config
from kb.engine.calendar import is_business_day
from kb.health import alarming, quarantined
from kb.timestamps import format_for_people

BUDGET_LEVELS = (50, 75, 100)
BREACH_WINDOW = timedelta(days=1)
# The cases a lead is warned about (``case_sla`` columns): enterprise or custom, unanswered, unresolved.
WATCHED_CASES = "tier IN ('enterprise', 'custom') AND resolved_at IS NULL AND first_response_at IS NULL"


@dataclass(frozen=True)
class Alert:
    key: str
    kind: str  # case_at_risk, case_breached, budget, digest
    breach: bool  # a breach is sent even in quiet hours
    roles: tuple[str, ...]  # who receives it by e-mail (``[alerts.recipients]``)
    subject: str
    body: str


def due_alerts(con, config: Config, now: datetime) -> list[Alert]:
    """Every alert due at ``now``; ``con`` has the as-of views open at ``now`` (``kb.engine.asof``)."""
    return [*_case_alerts(con, config, now), *_budget_alerts(con, config), *_digest(con, config, now),
            *_failing_jobs(con, config), *_quarantine(con, config)]


def _case_alerts(con, config: Config, now: datetime) -> list[Alert]:
    rows = con.execute(
        f"""
        SELECT case_id, client_name, tier, subject, coalesce(assignee, '') AS assignee, sla_state,
               first_response_due, business_hours_left
        FROM case_sla
        WHERE {WATCHED_CASES}
          AND (sla_state = 'at_risk' OR (sla_state = 'breached' AND first_response_due >= $since))
        ORDER BY first_response_due, case_id
        """,
        {"since": now - BREACH_WINDOW},
    ).fetchall()
    alerts = []
    for case_id, client, tier, subject, assignee, state, due, hours_left in rows:
        client, subject, assignee = one_line(client), one_line(subject), one_line(assignee)
        breached = state == "breached"
        what = ("breached its first-response deadline" if breached else
                f"is at risk: {formats.duration(hours_left, config.calendar.business_day_seconds / 3600)} left")
        link = f"{_dashboard(config)}/queue?case={case_id}"
        alerts.append(Alert(
            key=f"case_{state}:{case_id}", kind=f"case_{state}", breach=breached, roles=("lead",),
            subject=f"[SLA] Case {case_id} ({client}) {what}",
            body=(f"Case {case_id} of {client} ({formats.word('tier', tier)}) {what}.\n"
                  f"Subject: {subject}\nAssignee: {formats.assignee(assignee)}\n"
                  f"First response due: {formats.instant(due, config.calendar.zone)}\n\n{link}\n"),
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
                  f"against a budget of {formats.duration(budget / 60)} ({formats.duration(left / 60)} left)."
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
        ORDER BY assignee, sla_state, first_response_due
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
