"""The support team's configuration: its business calendar and SLA defaults.

Read from ``support.toml`` (or ``--config`` / ``$SUPPORT_CONFIG``) and validated
whole at start, so a bad value stops with a message that names the key.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

import holidays

from kb.credits import CreditScheduleError, parse_credit_schedule

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
class Config:
    calendar: CalendarConfig = field(default_factory=CalendarConfig)
    sla: SlaConfig = field(default_factory=SlaConfig)
    stale_after_days: int = 7
    roles: dict[str, str] = field(default_factory=dict)  # e-mail address or @domain -> role


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
    try:
        hours, minutes = str(text).split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ConfigError(f"{key}: {text!r} is not a time of day like \"09:00\"") from None


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
            result.append(date.fromisoformat(str(value)))
        except ValueError:
            raise ConfigError(f"{key}: {value!r} is not an ISO date like \"2026-12-24\"") from None
    return tuple(sorted(set(result)))


def _decimal(table: dict, key: str, name: str, default: Decimal) -> Decimal:
    value = table.get(name, default)
    if isinstance(value, bool):
        raise ConfigError(f"{key} = {value!r} must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{key} = {value!r} must be a number") from None
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
