"""``[alerts]``: where breach warnings, budget alerts and the digest go, and when."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from urllib.parse import urlsplit

from kb.config.reading import ConfigError, clock, section, string
from kb.config.roles import ROLES


@dataclass(frozen=True)
class AlertsConfig:
    """``[alerts]``: where breach warnings and the digest go (SMTP credentials and the webhook URL come from
    the environment, never the file)."""

    smtp_url: str = ""  # smtp://host:port (STARTTLS when offered) or smtps://host:port; "" = no e-mail
    sender: str = ""
    recipients: dict[str, tuple[str, ...]] = field(default_factory=dict)  # role -> addresses
    webhook_url_env: str = ""  # the environment variable holding a Slack-compatible incoming-webhook URL
    dashboard_url: str = "http://127.0.0.1:8501"  # for links in the messages
    quiet_hours: tuple[time, time] | None = None  # local [start, end): only breaches are sent in between
    digest_at: time = time(9, 0)  # local time of the business-day morning digest


def alerts_config(raw: dict) -> AlertsConfig | None:
    if "alerts" not in raw:
        return None
    table = section(raw, "alerts")
    known = {"smtp_url", "sender", "recipients", "webhook_url_env", "dashboard_url", "quiet_hours", "digest_at"}
    for name in table:
        if name not in known:
            raise ConfigError(f"alerts.{name}: unknown key (one of {', '.join(sorted(known))})")
    smtp_url = string(table, "alerts.smtp_url", "smtp_url", "")
    if smtp_url and urlsplit(smtp_url).scheme not in ("smtp", "smtps"):
        raise ConfigError(f"alerts.smtp_url = {smtp_url!r} must start with smtp:// or smtps://")
    sender = string(table, "alerts.sender", "sender", "")
    if smtp_url and "@" not in sender:
        raise ConfigError(f"alerts.sender = {sender!r} must be an e-mail address when alerts.smtp_url is set")
    recipients = table.get("recipients", {})
    if not isinstance(recipients, dict):
        raise ConfigError("alerts.recipients must be a table of role = [addresses]")
    for role, addresses in recipients.items():
        if role not in ROLES:
            raise ConfigError(f"alerts.recipients.{role}: unknown role (one of {', '.join(ROLES)})")
        if not isinstance(addresses, list) or not all(isinstance(a, str) and "@" in a for a in addresses):
            raise ConfigError(f"alerts.recipients.{role} must be a list of e-mail addresses")
    hours = table.get("quiet_hours")
    if hours is not None and not (isinstance(hours, list) and len(hours) == 2):
        raise ConfigError(f"alerts.quiet_hours = {hours!r} must be two times, e.g. [\"20:00\", \"08:00\"]")
    return AlertsConfig(
        smtp_url=smtp_url, sender=sender,
        recipients={role: tuple(a.strip() for a in addresses) for role, addresses in recipients.items()},
        webhook_url_env=string(table, "alerts.webhook_url_env", "webhook_url_env", ""),
        dashboard_url=string(table, "alerts.dashboard_url", "dashboard_url", "http://127.0.0.1:8501").rstrip("/"),
        quiet_hours=tuple(clock("alerts.quiet_hours", h) for h in hours) if hours else None,
        digest_at=clock("alerts.digest_at", table.get("digest_at", "09:00")),
    )
