"""The support team's configuration: its business calendar, SLA defaults, roles, mail, backups and alerts.

Read from ``support.toml`` (or ``--config`` / ``$SUPPORT_CONFIG``) and validated
whole at start, so a bad value stops with a message that names the key (and when the running service reloads
the file, ``kb.opening``, where a bad one keeps the rules in force). One module per
section (``calendar.py``, ``sla.py``, ``roles.py``, ``mail.py``, ``backup.py``, ``alerts.py``), on the shared
value readers (``reading.py``); everything is imported from ``kb.config``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from kb.config.alerts import AlertsConfig, alerts_config
from kb.config.backup import BackupConfig, backup_config
from kb.config.calendar import WEEKDAYS, CalendarConfig
from kb.config.changes import ALWAYS, Calendar, Versions, calendars_config, sla_versions
from kb.config.mail import MailboxConfig, MailConfig, mail_config
from kb.config.reading import ConfigError, positive_int, section
from kb.config.roles import ROLES, roles_config
from kb.config.sla import SlaConfig

__all__ = ["PROJECT_ROOT", "ROLES", "WEEKDAYS", "AlertsConfig", "BackupConfig", "Calendar", "CalendarConfig", "Config",
           "ConfigError", "MailConfig", "MailboxConfig", "SlaConfig", "Versions", "config_bytes", "config_from_bytes",
           "config_path", "load_config", "parse_config"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class Config:
    calendar: CalendarConfig = field(default_factory=CalendarConfig)
    sla: SlaConfig = field(default_factory=SlaConfig)
    stale_after_days: int = 7
    roles: dict[str, str] = field(default_factory=dict)  # e-mail address or @domain -> role
    mail: MailConfig = field(default_factory=MailConfig)
    backup: BackupConfig = field(default_factory=BackupConfig)
    alerts: AlertsConfig | None = None  # None: no [alerts] section, nothing is sent
    # Every calendar with its dated changes (``support`` first: ``calendar`` is its own rules), and [sla]'s.
    calendars: tuple[Calendar, ...] = ()
    sla_changes: Versions[SlaConfig] | None = None

    def __post_init__(self):
        if not self.calendars:  # a Config made in code: its calendar and [sla], unchanging
            object.__setattr__(self, "calendars", (Calendar("support", Versions(((ALWAYS, self.calendar),))),))
        if self.sla_changes is None:
            object.__setattr__(self, "sla_changes", Versions(((ALWAYS, self.sla),)))

    @property
    def calendar_names(self) -> tuple[str, ...]:
        """The calendars a policy row may name: ``support`` (``[calendar]``), the built-in ``24x7``, and every
        ``[calendars.NAME]``."""
        return ("support", "24x7", *(c.name for c in self.calendars[1:]))


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
    return config_from_bytes(config_bytes(path), path)


def config_bytes(path: Path) -> bytes:
    """The bytes of the configuration file at ``path``; ConfigError when it cannot be read. A reload reads the
    file once, and both hashes and parses what it read, so the two never describe different files."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except OSError as e:
        raise ConfigError(f"configuration file {path} cannot be read: {e.strerror}") from None


def config_from_bytes(data: bytes, path: Path) -> Config:
    """The validated configuration in ``data``, the bytes of the file at ``path`` (named in messages)."""
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"configuration file {path} is not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"configuration file {path} is not UTF-8 text (byte 0x{e.object[e.start]:02x} "
                          f"at offset {e.start})") from None
    return parse_config(raw)


def parse_config(raw: dict) -> Config:
    calendars = calendars_config(raw)
    sla = sla_versions(raw)
    monitoring = section(raw, "monitoring")
    return Config(
        calendar=calendars[0].versions.base,
        sla=sla.base,
        calendars=calendars,
        sla_changes=sla,
        stale_after_days=positive_int(monitoring, "monitoring.stale_after_days", "stale_after_days", 7,
                                      at_most=3650),
        roles=roles_config(raw.get("roles", {})),
        mail=mail_config(section(raw, "mail")),
        backup=backup_config(section(raw, "backup")),
        alerts=alerts_config(raw),
    )
