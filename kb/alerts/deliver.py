"""Recording and sending the due alerts: each key once per channel, retried until the server takes it.

A run (``python -m kb alerts send``, or the service's job every minute) opens the as-of views at now,
records every due alert that is new as one row per channel in ``alert_deliveries`` (so a restart never
sends it again), then sends every unsent row. A row the server refused keeps ``sent_at`` empty and its
error, and goes again next run; a row that cannot be sent (an address that is not one, or anything
unexpected while sending it) fails alone with its error, never the run. In quiet hours only breaches are
recorded and sent; the rest wait until the quiet hours end, and are sent then if still due. A case alert
that waited (quiet hours, a mail server down) and no longer holds when it could go (its target was met or moved
to another state, or the case was resolved, paused or voided) is withdrawn (``withdrawn_at``) instead of sent.
Each sent or withdrawn row is audited.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, time

from kb.access import Actor
from kb.alerts.channels import DeliveryError, post_webhook, send_email
from kb.alerts.due import alerting_targets_sql, due_alerts
from kb.alerts.text import one_line
from kb.config import AlertsConfig, Config
from kb.db import audit
from kb.db.connection import transaction
from kb.engine.asof import open_views

ALERTS = Actor("alerts", "admin")


@dataclass
class Report:
    recorded: int = 0
    sent: int = 0
    failed: list[str] = field(default_factory=list)  # "key (channel): error"


def send_due(con, config: Config, now: datetime, *, views_open: bool = False) -> Report:
    """Record and send what is due at ``now`` on ``con`` (a cursor of its own: sending waits on servers, and
    the store's write lock is not held meanwhile; a conflict fails this run, and the next one retries).
    ``views_open``: ``con`` has the as-of views already (the service's snapshot, at most a minute old), else
    they are computed at ``now``."""
    report = Report()
    settings = config.alerts
    if settings is None:
        return report
    channels = _channels(settings)
    if not views_open:
        open_views(con, config, now)
    quiet = in_quiet_hours(settings, now.astimezone(config.calendar.zone).time())
    alerts = [a for a in due_alerts(con, config, now) if a.breach or not quiet]
    withdraw_stale(con, now)  # before recording: what is recorded now holds now
    with transaction(con):
        for alert in alerts:
            for channel in channels:
                report.recorded += len(con.execute(
                    "INSERT INTO alert_deliveries (alert_key, channel, kind, breach, roles, subject, body, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING 1",
                    [alert.key, channel, alert.kind, alert.breach, list(alert.roles), one_line(alert.subject),
                     alert.body, now],
                ).fetchall())
    pending = con.execute(  # statements share the table; kb.statement.mailing sends them, with their PDF
        "SELECT alert_key, channel, kind, roles, subject, body FROM alert_deliveries "
        "WHERE sent_at IS NULL AND withdrawn_at IS NULL AND kind <> 'statement' AND (breach OR NOT ?) "
        "ORDER BY created_at, alert_key, channel", [quiet]).fetchall()
    for key, channel, kind, roles, subject, text in pending:
        try:
            if channel == "email":
                send_email(settings.smtp_url, settings.sender, _addresses(settings, roles), subject, text)
            elif settings.webhook_url_env not in os.environ:
                raise DeliveryError(f"${settings.webhook_url_env} is not set")
            else:
                post_webhook(os.environ[settings.webhook_url_env], f"{subject}\n{text}")
        except Exception as e:  # noqa: BLE001 - whatever stops one delivery is that delivery's error alone
            mark_failed(con, key, channel, failure(e))
            report.failed.append(f"{key} ({channel}): {failure(e)}")
            continue
        mark_sent(con, key, channel, now, ALERTS, "alert", "alert_deliveries", f"{key} ({channel})",
                  {"kind": kind, "subject": subject, "channel": channel, "sent_at": now})
        report.sent += 1
    return report


def withdraw_stale(con, now: datetime) -> None:
    """Withdraw each unsent case alert whose target is no longer in its state at ``now`` (the as-of views open
    at ``now``): an at-risk warning held up until the case was answered, paused or breached tells a lead
    nothing true. The row stays, with ``withdrawn_at``, and the audit trail says so."""
    waiting = "sent_at IS NULL AND withdrawn_at IS NULL AND kind IN ('case_at_risk', 'case_breached')"
    if not con.execute(f"SELECT count(*) FROM alert_deliveries WHERE {waiting}").fetchone()[0]:
        return  # the usual run: nothing waits from an earlier one, and no case's state is worked out again
    with transaction(con):
        withdrawn = con.execute(
            f"""UPDATE alert_deliveries d SET withdrawn_at = $now
                WHERE {waiting}
                  AND d.alert_key NOT IN (SELECT alert_key FROM ({alerting_targets_sql()}))
                RETURNING alert_key, channel, kind, subject""", {"now": now}).fetchall()
        for key, channel, kind, subject in withdrawn:
            audit.record(con, ALERTS, "alert withdrawn", "alert_deliveries", f"{key} ({channel})", None,
                         {"kind": kind, "subject": subject, "channel": channel, "withdrawn_at": now})


def failure(error: Exception) -> str:
    """What stopped one delivery, for its row: a DeliveryError's own words; anything unexpected named with
    its kind, so it fails that delivery and never the run (nor the alerts or statements after it)."""
    return str(error) if isinstance(error, DeliveryError) else f"it could not be sent: {type(error).__name__}: {error}"


def mark_failed(con, key: str, channel: str, error: str) -> None:
    """The server did not take delivery ``key``: count the attempt, keep the error, send again next run."""
    with transaction(con):
        con.execute("UPDATE alert_deliveries SET attempts = attempts + 1, last_error = ? "
                    "WHERE alert_key = ? AND channel = ?", [error, key, channel])


def mark_sent(con, key: str, channel: str, now: datetime, actor: Actor, action: str, table: str, row_id: str,
              after: dict) -> None:
    """The server took delivery ``key``: it is never sent again; audited in the same transaction."""
    with transaction(con):
        con.execute("UPDATE alert_deliveries SET attempts = attempts + 1, sent_at = ?, last_error = NULL "
                    "WHERE alert_key = ? AND channel = ?", [now, key, channel])
        audit.record(con, actor, action, table, row_id, None, after)


def in_quiet_hours(settings: AlertsConfig, clock: time) -> bool:
    if settings.quiet_hours is None:
        return False
    start, end = settings.quiet_hours
    return start <= clock < end if start < end else clock >= start or clock < end


def _channels(settings: AlertsConfig) -> list[str]:
    channels = []
    if settings.smtp_url and any(settings.recipients.values()):
        channels.append("email")
    if settings.webhook_url_env:
        channels.append("webhook")
    return channels


def _addresses(settings: AlertsConfig, roles: list[str]) -> list[str]:
    return sorted({address for role in roles for address in settings.recipients.get(role, ())})
