"""``[backup]``: how often the service backs the store up, and how many backups it keeps."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from kb.config.reading import ConfigError, decimal, positive_int


@dataclass(frozen=True)
class BackupConfig:
    """``[backup]``: the service's scheduled backups (``kb.service.jobs``)."""

    every_hours: Decimal = Decimal(24)  # 0 = no scheduled backups
    keep: int = 7  # scheduled backups kept; older ones are deleted


def backup_config(table: dict) -> BackupConfig:
    """``[backup]``: ``every_hours`` a number of hours (0 turns scheduled backups off), ``keep`` how many."""
    unknown = sorted(set(table) - {"every_hours", "keep"})
    if unknown:
        raise ConfigError(f"backup.{unknown[0]}: unknown key (backup has every_hours and keep)")
    every = decimal(table, "backup.every_hours", "every_hours", BackupConfig.every_hours)
    if every < 0 or every > 8760:
        raise ConfigError(f"backup.every_hours = {table.get('every_hours')!r} must be from 0 (off) to 8760 hours")
    if 0 < every < Decimal("0.01"):
        raise ConfigError(f"backup.every_hours = {table.get('every_hours')!r} is less than 0.01 (36 seconds)")
    return BackupConfig(every_hours=every,
                        keep=positive_int(table, "backup.keep", "keep", BackupConfig.keep, at_most=10_000))
