"""The support team's configuration: its business calendar and SLA defaults.

Read from ``support.toml`` (or ``--config`` / ``$SUPPORT_CONFIG``) and validated
whole at start, so a bad value stops with a message that names the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, available_timezones

import holidays

from kb.credits import CreditScheduleError, parse_credit_schedule
from kb.timestamps import NumberError, TimestampError, parse_clock, parse_date, parse_number

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
ROLES = ("viewer", "staff", "lead", "admin")


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


@dataclass(frozen=True)
class CalendarConfig:
    timezone: str = "Asia/Hong_Kong"
    opens: time = time(9, 0)
    closes: time = time(18, 0)
    weekend: tuple[int, ...] = (5, 6)  # Python weekday numbers, Monday = 0
    holidays_country: str = "HK"
    holidays_subdivision: str = ""
    extra_holidays: tuple[date, ...] = ()
    working_days: tuple[date, ...] = ()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def business_day_seconds(self) -> int:
        """Length of one business day of time: close − open on the local clock."""
        return (self.closes.hour * 60 + self.closes.minute - self.opens.hour * 60 - self.opens.minute) * 60


@dataclass(frozen=True)
class SlaConfig:
    at_risk_business_hours: Decimal = Decimal(2)
    enterprise_response_business_days: int = 1
    custom_response_business_days: int = 1
    default_uptime_target_pct: Decimal = Decimal("99.9")
    default_credit_schedule: str = "99.9:10, 99.0:30, 95.0:100"
    response_target_pct: Decimal = Decimal(95)  # the share of decided cases the team aims to meet


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


@dataclass(frozen=True)
class BackupConfig:
    """``[backup]``: the service's scheduled backups (``kb.service.jobs``)."""

    every_hours: Decimal = Decimal(24)  # 0 = no scheduled backups
    keep: int = 7  # scheduled backups kept; older ones are deleted


@dataclass(frozen=True)
class MailboxConfig:
    """One ``[[mail.mailboxes]]``: an IMAP account polled for cases; its password comes from the environment."""

    name: str
    url: str  # imap://host[:port] or imaps://host[:port]
    user: str
    password_env: str
    folders: tuple[str, ...] = ("INBOX",)
    sent_folders: tuple[str, ...] = ("Sent",)  # the team's own messages: trusted as the team's (rules §9)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "imaps"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (993 if self.tls else 143)


@dataclass(frozen=True)
class MailConfig:
    """``[mail]`` (rules §9): the team's addresses and the mailboxes that are the source of cases."""

    support_addresses: tuple[str, ...] = ()  # addresses, or "@domain" for a whole domain; lower-case
    poll_seconds: int = 60
    mailboxes: tuple[MailboxConfig, ...] = ()
    trusted_authserv_ids: tuple[str, ...] = ()  # servers whose Authentication-Results vouch for the team; lower-case


@dataclass(frozen=True)
class Config:
    calendar: CalendarConfig = field(default_factory=CalendarConfig)
    sla: SlaConfig = field(default_factory=SlaConfig)
    stale_after_days: int = 7
    roles: dict[str, str] = field(default_factory=dict)  # e-mail address or @domain -> role
    mail: MailConfig = field(default_factory=MailConfig)
    backup: BackupConfig = field(default_factory=BackupConfig)
    alerts: AlertsConfig | None = None  # None: no [alerts] section, nothing is sent


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    """``--config``, else ``$SUPPORT_CONFIG``, else ``support.toml`` at the project root."""
    if explicit:
        return Path(explicit)
    if os.environ.get("SUPPORT_CONFIG"):
        return Path(os.environ["SUPPORT_CONFIG"])
    return PROJECT_ROOT / "support.toml"


def load_config(path: str | os.PathLike | None = None) -> Config:
    """The validated configuration at ``path``; raises ConfigError naming the bad key."""
    path = config_path(path)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"configuration file {path} is not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"configuration file {path} is not UTF-8 text (byte 0x{e.object[e.start]:02x} "
                          f"at offset {e.start})") from None
    except OSError as e:
        raise ConfigError(f"configuration file {path} cannot be read: {e.strerror}") from None
    return parse_config(raw)


def parse_config(raw: dict) -> Config:
    cal = _section(raw, "calendar")
    sla = _section(raw, "sla")
    monitoring = _section(raw, "monitoring")
    defaults_cal, defaults_sla = CalendarConfig(), SlaConfig()

    timezone = _timezone(_str(cal, "calendar.timezone", "timezone", defaults_cal.timezone))

    hours = cal.get("business_hours", ["09:00", "18:00"])
    if not (isinstance(hours, list) and len(hours) == 2):
        raise ConfigError(f"calendar.business_hours = {hours!r} must be two times, e.g. [\"09:00\", \"18:00\"]")
    opens, closes = (_clock("calendar.business_hours", h) for h in hours)
    if closes <= opens:
        raise ConfigError(f"calendar.business_hours = {hours!r}: close {hours[1]} is not after open {hours[0]}")

    weekend_names = cal.get("weekend", ["Sat", "Sun"])
    if not isinstance(weekend_names, list):
        raise ConfigError(f"calendar.weekend = {weekend_names!r} must be a list of day names like \"Sat\"")
    weekend = []
    for name in weekend_names:
        if name not in WEEKDAYS:
            raise ConfigError(f"calendar.weekend: {name!r} is not a weekday name ({', '.join(WEEKDAYS)})")
        weekend.append(WEEKDAYS.index(name))
    if len(set(weekend)) == 7:
        raise ConfigError("calendar.weekend covers every day: there would be no business days")

    country = _str(cal, "calendar.holidays_country", "holidays_country", defaults_cal.holidays_country)
    subdivision = _str(cal, "calendar.holidays_subdivision", "holidays_subdivision", "")
    if country:
        try:
            holidays.country_holidays(country, subdiv=subdivision or None, years=2026)
        except NotImplementedError:
            if subdivision:
                raise ConfigError(
                    f"calendar.holidays_subdivision = {subdivision!r} is not a subdivision of {country!r}"
                ) from None
            raise ConfigError(
                f"calendar.holidays_country = {country!r} is not a country code of the holidays package"
            ) from None
    elif subdivision:
        raise ConfigError("calendar.holidays_subdivision is set but calendar.holidays_country is empty")

    calendar = CalendarConfig(
        timezone=timezone,
        opens=opens,
        closes=closes,
        weekend=tuple(sorted(set(weekend))),
        holidays_country=country,
        holidays_subdivision=subdivision,
        extra_holidays=_dates(cal, "calendar.extra_holidays", "extra_holidays"),
        working_days=_dates(cal, "calendar.working_days", "working_days"),
    )

    schedule = _str(sla, "sla.default_credit_schedule", "default_credit_schedule", defaults_sla.default_credit_schedule)
    try:
        parse_credit_schedule(schedule)
    except CreditScheduleError as e:
        raise ConfigError(f"sla.default_credit_schedule = {schedule!r}: {e}") from None
    target = _percentage(sla, "sla.default_uptime_target_pct", "default_uptime_target_pct",
                         defaults_sla.default_uptime_target_pct)
    response_target = _percentage(sla, "sla.response_target_pct", "response_target_pct",
                                  defaults_sla.response_target_pct)
    at_risk = _decimal(sla, "sla.at_risk_business_hours", "at_risk_business_hours", defaults_sla.at_risk_business_hours)
    if at_risk < 0:
        raise ConfigError(f"sla.at_risk_business_hours = {at_risk} is negative")
    if at_risk > 10_000:
        raise ConfigError(f"sla.at_risk_business_hours = {at_risk} is more than 10000")

    return Config(
        calendar=calendar,
        sla=SlaConfig(
            at_risk_business_hours=at_risk,
            enterprise_response_business_days=_positive_int(sla, "sla.enterprise_response_business_days",
                                                            "enterprise_response_business_days", 1, at_most=60),
            custom_response_business_days=_positive_int(sla, "sla.custom_response_business_days",
                                                        "custom_response_business_days", 1, at_most=60),
            default_uptime_target_pct=target,
            default_credit_schedule=schedule,
            response_target_pct=response_target,
        ),
        stale_after_days=_positive_int(monitoring, "monitoring.stale_after_days", "stale_after_days", 7,
                                       at_most=3650),
        roles=_roles(raw.get("roles", {})),
        mail=_mail(_section(raw, "mail")),
        backup=_backup(_section(raw, "backup")),
        alerts=_alerts(raw),
    )


def _section(raw: dict, name: str) -> dict:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{name} = {value!r} must be a table ([{name}])")
    return value


def _str(table: dict, key: str, name: str, default: str) -> str:
    value = table.get(name, default)
    if not isinstance(value, str):
        raise ConfigError(f"{key} = {value!r} must be a string")
    return value.strip()


def _clock(key: str, text) -> time:
    """A time of day "HH:MM" (``kb.timestamps.parse_clock``: ASCII digits, 00:00 to 23:59)."""
    try:
        return parse_clock(str(text))
    except TimestampError:
        raise ConfigError(f"{key}: {text!r} is not a time of day like \"09:00\" (00:00 to 23:59, digits 0-9)") from None


def _dates(table: dict, key: str, name: str) -> tuple[date, ...]:
    values = table.get(name, [])
    if not isinstance(values, list):
        raise ConfigError(f"{key} = {values!r} must be a list of ISO dates")
    result = []
    for value in values:
        if isinstance(value, date) and not isinstance(value, datetime):
            result.append(value)
            continue
        try:
            result.append(parse_date(str(value)))
        except TimestampError:
            raise ConfigError(f"{key}: {value!r} is not an ISO date like \"2026-12-24\"") from None
    return tuple(sorted(set(result)))


def _decimal(table: dict, key: str, name: str, default: Decimal) -> Decimal:
    """A TOML number, or text holding one in ASCII digits (``kb.timestamps.parse_number``)."""
    value = table.get(name, default)
    if isinstance(value, str):
        try:
            return parse_number(value)
        except NumberError:
            raise ConfigError(f"{key} = {value!r} must be a number written with the digits 0-9 and at most "
                              "4 decimals (e.g. 99.9)") from None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ConfigError(f"{key} = {value!r} must be a number")
    number = Decimal(str(value))
    if not number.is_finite():
        raise ConfigError(f"{key} = {value!r} must be a finite number")
    return number


def _percentage(table: dict, key: str, name: str, default: Decimal) -> Decimal:
    """A percentage in (0, 100] with at most 4 decimals, as the database stores targets."""
    number = _decimal(table, key, name, default)
    if not (0 < number <= 100) or number.as_tuple().exponent < -4:
        raise ConfigError(f"{key} = {table.get(name)!r} must be a percentage in (0, 100] with at most 4 decimals")
    return number


def _timezone(name: str) -> str:
    """An IANA zone name that Python and DuckDB both know; ``localtime``, ``posix/…``, ``right/…`` and the
    like are refused, since the calendar must mean the same on every machine."""
    if name in _NOT_ZONES or name.startswith(("posix/", "right/")) or name not in _known_zones():
        raise ConfigError(f"calendar.timezone = {name!r} is not an IANA time zone name (e.g. \"Asia/Hong_Kong\", "
                          "\"Europe/London\")")
    return name


_NOT_ZONES = {"localtime", "Factory", "posixrules"}


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    """The zone names of both Python's zoneinfo and DuckDB's ICU."""
    import duckdb

    with duckdb.connect() as con:
        icu = {row[0] for row in con.execute("SELECT name FROM pg_timezone_names()").fetchall()}
    return frozenset(available_timezones() & icu)


def _positive_int(table: dict, key: str, name: str, default: int, *, at_most: int | None = None) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} = {value!r} must be a whole number of at least 1")
    if at_most is not None and value > at_most:
        raise ConfigError(f"{key} = {value!r} must be at most {at_most}")
    return value


def _alerts(raw: dict) -> AlertsConfig | None:
    if "alerts" not in raw:
        return None
    table = _section(raw, "alerts")
    known = {"smtp_url", "sender", "recipients", "webhook_url_env", "dashboard_url", "quiet_hours", "digest_at"}
    for name in table:
        if name not in known:
            raise ConfigError(f"alerts.{name}: unknown key (one of {', '.join(sorted(known))})")
    smtp_url = _str(table, "alerts.smtp_url", "smtp_url", "")
    if smtp_url and urlsplit(smtp_url).scheme not in ("smtp", "smtps"):
        raise ConfigError(f"alerts.smtp_url = {smtp_url!r} must start with smtp:// or smtps://")
    sender = _str(table, "alerts.sender", "sender", "")
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
        webhook_url_env=_str(table, "alerts.webhook_url_env", "webhook_url_env", ""),
        dashboard_url=_str(table, "alerts.dashboard_url", "dashboard_url", "http://127.0.0.1:8501").rstrip("/"),
        quiet_hours=tuple(_clock("alerts.quiet_hours", h) for h in hours) if hours else None,
        digest_at=_clock("alerts.digest_at", table.get("digest_at", "09:00")),
    )


def _backup(table: dict) -> BackupConfig:
    """``[backup]``: ``every_hours`` a number of hours (0 turns scheduled backups off), ``keep`` how many."""
    unknown = sorted(set(table) - {"every_hours", "keep"})
    if unknown:
        raise ConfigError(f"backup.{unknown[0]}: unknown key (backup has every_hours and keep)")
    every = _decimal(table, "backup.every_hours", "every_hours", BackupConfig.every_hours)
    if every < 0 or every > 8760:
        raise ConfigError(f"backup.every_hours = {table.get('every_hours')!r} must be from 0 (off) to 8760 hours")
    if 0 < every < Decimal("0.01"):
        raise ConfigError(f"backup.every_hours = {table.get('every_hours')!r} is less than 0.01 (36 seconds)")
    return BackupConfig(every_hours=every,
                        keep=_positive_int(table, "backup.keep", "keep", BackupConfig.keep, at_most=10_000))


def _roles(table: dict) -> dict[str, str]:
    """``[roles]`` maps a role to the e-mail addresses and @domains that hold it."""
    if not isinstance(table, dict):
        raise ConfigError("[roles] must be a table of role = [addresses]")
    granted: dict[str, str] = {}
    for role, members in table.items():
        if role not in ROLES:
            raise ConfigError(f"roles.{role}: unknown role (one of {', '.join(ROLES)})")
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ConfigError(f"roles.{role} must be a list of e-mail addresses or \"@domain\" entries")
        for member in members:
            granted[member.strip().lower()] = role
    return granted


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAIL_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")
_MAILBOX_NAME = re.compile(r"[A-Za-z0-9._\-@+:]{1,64}")
_AUTHSERV_ID = re.compile(r"[A-Za-z0-9._-]{1,255}")
_FOLDER_NAME = re.compile(r"[ -~]{1,255}")


def _ascii_names(table: dict, key: str, name: str, default: list[str], pattern: re.Pattern,
                 what: str) -> tuple[str, ...]:
    """A list of names, each stripped and made only of ``pattern``'s ASCII characters: a lookalike or invisible
    character in a name that decides what is trusted is refused, as every id is (rules §8)."""
    values = table.get(name, default)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{key} must be a list of {what}")
    for value in values:
        if not value.isascii():
            raise ConfigError(f"{key}: {value!r} holds a character that is not ASCII (a lookalike or an invisible "
                              f"one); write it in plain ASCII")
        if not pattern.fullmatch(value.strip()):
            raise ConfigError(f"{key}: {value!r} is not one of {what}")
    return tuple(dict.fromkeys(v.strip() for v in values))


def _mail(table: dict) -> MailConfig:
    """``[mail]``: ``support_addresses`` (addresses or ``@domain``), ``poll_seconds``, and
    ``[[mail.mailboxes]]`` with name, url (imap:// or imaps://), user, password_env and folders. A password
    in the file is refused: it comes from the environment variable that ``password_env`` names."""
    keys = ("support_addresses", "poll_seconds", "mailboxes", "trusted_authserv_ids")
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise ConfigError(f"mail.{unknown[0]}: unknown key (mail has {', '.join(keys)})")
    addresses = table.get("support_addresses", [])
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        raise ConfigError("mail.support_addresses must be a list of addresses or \"@domain\" entries")
    support = []
    for address in addresses:
        entry = address.strip().lower()
        if not (_MAIL_ADDRESS.fullmatch(entry) or (entry.startswith("@") and _MAIL_ADDRESS.fullmatch("x" + entry))):
            raise ConfigError(f"mail.support_addresses: {address!r} is neither an address nor \"@domain\"")
        support.append(entry)
    boxes = table.get("mailboxes", [])
    if not isinstance(boxes, list) or not all(isinstance(b, dict) for b in boxes):
        raise ConfigError("mail.mailboxes must be an array of tables ([[mail.mailboxes]])")
    mailboxes = []
    for number, box in enumerate(boxes, 1):
        where = f"mail.mailboxes[{number}]"
        if "password" in box:
            raise ConfigError(f"{where}.password: a password does not belong in the file; put it in an "
                              "environment variable and name that variable in password_env")
        unknown = sorted(set(box) - {"name", "url", "user", "password_env", "folders", "sent_folders"})
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown key (name, url, user, password_env, folders, "
                              "sent_folders)")
        name = _str(box, f"{where}.name", "name", "")
        if not _MAILBOX_NAME.fullmatch(name):
            raise ConfigError(f"{where}.name = {name!r} must be 1-64 characters of A-Z a-z 0-9 . _ - @ + :")
        if name in {m.name for m in mailboxes}:
            raise ConfigError(f"{where}.name = {name!r} is used by another mailbox")
        where = f"mail.mailboxes.{name}"
        url = _str(box, f"{where}.url", "url", "")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ConfigError(f"{where}.url = {url!r} is not a URL like imaps://imap.example.com:993") from None
        if parts.scheme not in ("imap", "imaps") or not parts.hostname:
            raise ConfigError(f"{where}.url = {url!r} must be imap://host[:port] or imaps://host[:port]")
        if parts.username or parts.password:
            raise ConfigError(f"{where}.url: no user or password in the URL; use user and password_env")
        user = _str(box, f"{where}.user", "user", "")
        if not user:
            raise ConfigError(f"{where}.user is empty")
        password_env = _str(box, f"{where}.password_env", "password_env", "")
        if not _ENV_NAME.fullmatch(password_env):
            raise ConfigError(f"{where}.password_env = {password_env!r} must name an environment variable")
        folders = box.get("folders", ["INBOX"])
        if not isinstance(folders, list) or not folders or not all(isinstance(f, str) and f.strip() for f in folders):
            raise ConfigError(f"{where}.folders must be a non-empty list of folder names, e.g. [\"INBOX\", \"Sent\"]")
        sent = _ascii_names(box, f"{where}.sent_folders", "sent_folders", ["Sent"], _FOLDER_NAME,
                            'folder names in printable ASCII, e.g. ["Sent"]')
        mailboxes.append(MailboxConfig(name, url, user, password_env, tuple(dict.fromkeys(f.strip() for f in folders)),
                                       sent))
    return MailConfig(
        support_addresses=tuple(dict.fromkeys(support)),
        poll_seconds=_positive_int(table, "mail.poll_seconds", "poll_seconds", 60, at_most=86_400),
        mailboxes=tuple(mailboxes),
        trusted_authserv_ids=tuple(a.lower() for a in _ascii_names(
            table, "mail.trusted_authserv_ids", "trusted_authserv_ids", [], _AUTHSERV_ID,
            'authserv-ids: host names such as "mx.example.com" (letters, digits, ".", "-", "_")')),
    )
