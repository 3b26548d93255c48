"""Sending each client its statement for last month, on the first business day of the month, once.

A service that was down (or whose run failed) on that day sends the month's statements at its first run
after it, later in the same month: a missed day never loses a month's statements. For the same reason a
client given ``statement_recipients`` later in the month gets last month's statement at the next run.

The statement goes by e-mail (``[alerts]`` smtp_url and sender) to the addresses in the client's
``statement_recipients``. It is recorded in ``alert_deliveries`` under ``statement:<client>:<month>``
before it is sent, and marked sent when the server took it, so a restart never sends it twice and a
refusal is retried at the next run (the service runs this every hour). A statement that cannot be made or
sent (a recipient that is not an address) is recorded with its error and retried alone: the other
clients' statements go.

A statement once sent is kept as sent (rules §13): its PDF, byte for byte, with its SHA-256, in
``sent_statements``, written in the transaction that marks it sent. ``sent_statement`` gives it back to
``python -m kb statement`` and the Client page, which serve it rather than typeset the month again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kb import formats
from kb.access import Actor
from kb.alerts.channels import DeliveryError, send_email
from kb.alerts.deliver import failure, mark_failed, mark_sent
from kb.alerts.text import one_line
from kb.config import Config
from kb.db.connection import transaction
from kb.engine.asof import open_views
from kb.engine.periods import first_business_day
from kb.statement.content import statement
from kb.statement.render import statement_pdf

STATEMENTS = Actor("statements", "admin")


@dataclass(frozen=True)
class SentStatement:
    """A statement as it was e-mailed."""

    client_id: str
    month: str
    sent_at: datetime
    pdf: bytes
    sha256: str


@dataclass
class Sent:
    sent: list[str] = field(default_factory=list)  # "CLIENT 2026-10"
    failed: list[str] = field(default_factory=list)


def send_statements(con, config: Config, now: datetime) -> Sent:
    """From the first business day of a month (local) to its end, send last month's statements not sent yet:
    each once; a refused one is retried at the next run."""
    result = Sent()
    settings = config.alerts
    today = now.astimezone(config.calendar.zone).date()
    if settings is None or not settings.smtp_url:
        return result
    last = today.replace(day=1) - timedelta(days=1)
    month = f"{last.year:04d}-{last.month:02d}"
    # From the first business day on, every client with recipients whose statement the server has not taken.
    due = con.execute(
        """SELECT client_id, name, statement_recipients FROM clients c
           LEFT JOIN alert_deliveries d ON d.alert_key = 'statement:' || c.client_id || ':' || $month
           WHERE nullif(trim(statement_recipients), '') IS NOT NULL AND d.sent_at IS NULL
             AND $from_first_day
           ORDER BY client_id""",
        {"month": month,
         "from_first_day": today >= first_business_day(config.calendar, today.year, today.month)}).fetchall()
    if not due:
        return result
    open_views(con, config, now)
    for client_id, name, recipients in due:
        key, name, shown_month = f"statement:{client_id}:{month}", one_line(name), formats.month_label(month)
        subject = f"Your SLA statement for {shown_month} ({name})"
        addresses = [a.strip() for a in recipients.split(",") if a.strip()]
        with transaction(con):
            con.execute("INSERT INTO alert_deliveries (alert_key, channel, kind, breach, roles, subject, body, "
                        "created_at) VALUES (?, 'email', 'statement', FALSE, [], ?, ?, ?) ON CONFLICT DO NOTHING",
                        [key, subject, ", ".join(addresses), now])
        try:
            pdf = _pdf(con, config, client_id, month, now)
            send_email(settings.smtp_url, settings.sender, addresses, subject,
                       f"Attached: the SLA statement of {name} for {shown_month}: response and resolution targets, "
                       "uptime and service credits under the Support Service Terms.\n",
                       {f"statement-{client_id}-{month}.pdf": pdf})
        except Exception as e:  # noqa: BLE001 - whatever stops one statement is that statement's error alone
            mark_failed(con, key, "email", failure(e))
            result.failed.append(f"{client_id} {month}: {failure(e)}")
            continue
        digest = hashlib.sha256(pdf).hexdigest()
        with transaction(con):
            mark_sent(con, key, "email", now, STATEMENTS, "statement", "clients", client_id,
                      {"month": month, "recipients": addresses, "sent_at": now, "sha256": digest})
            con.execute("INSERT INTO sent_statements VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        [client_id, month, now, pdf, digest])
        result.sent.append(f"{client_id} {month}")
    return result


def sent_statement(con, client_id: str, month: str) -> SentStatement | None:
    """The statement of ``client_id`` for ``month`` as it was e-mailed; None when it was not sent."""
    rows = con.execute("SELECT sent_at, pdf, sha256 FROM sent_statements WHERE client_id = ? AND month = ?",
                       [client_id, month]).fetchall()
    return SentStatement(client_id, month, *rows[0]) if rows else None


def _pdf(con, config: Config, client_id: str, month: str, now: datetime) -> bytes:
    """The statement's PDF; DeliveryError when it cannot be made, so that one client's statement, not the
    month's mailing, waits for a fix."""
    try:
        return statement_pdf(statement(con, config, client_id, month, now), config.calendar.timezone)
    except Exception as e:  # noqa: BLE001 - whatever stops one statement is that statement's error alone
        raise DeliveryError(f"the statement could not be made: {e}") from None
