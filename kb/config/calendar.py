"""``[calendar]``: the support zone, business hours, weekend, public holidays and the days that differ."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

import holidays

from kb.config.reading import ConfigError, clock, dates, string

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


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


def _timezone(name: str, where: str = "calendar") -> str:
    """An IANA zone name that Python and DuckDB both know; ``localtime``, ``posix/…``, ``right/…`` and the
    like are refused, since the calendar must mean the same on every machine."""
    if name in _NOT_ZONES or name.startswith(("posix/", "right/")) or name not in _known_zones():
        raise ConfigError(f"{where}.timezone = {name!r} is not an IANA time zone name (e.g. \"Asia/Hong_Kong\", "
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


def calendar_config(cal: dict, where: str = "calendar") -> CalendarConfig:
    """``[calendar]`` (or the table ``where``): the zone, business hours, weekend, public holidays and the days
    that differ."""
    defaults_cal = CalendarConfig()

    timezone = _timezone(string(cal, f"{where}.timezone", "timezone", defaults_cal.timezone), where)

    hours = cal.get("business_hours", ["09:00", "18:00"])
    if not (isinstance(hours, list) and len(hours) == 2):
        raise ConfigError(f"{where}.business_hours = {hours!r} must be two times, e.g. [\"09:00\", \"18:00\"]")
    opens, closes = (clock(f"{where}.business_hours", h) for h in hours)
    if closes <= opens:
        raise ConfigError(f"{where}.business_hours = {hours!r}: close {hours[1]} is not after open {hours[0]}")

    weekend_names = cal.get("weekend", ["Sat", "Sun"])
    if not isinstance(weekend_names, list):
        raise ConfigError(f"{where}.weekend = {weekend_names!r} must be a list of day names like \"Sat\"")
    weekend = []
    for name in weekend_names:
        if name not in WEEKDAYS:
            raise ConfigError(f"{where}.weekend: {name!r} is not a weekday name ({', '.join(WEEKDAYS)})")
        weekend.append(WEEKDAYS.index(name))
    if len(set(weekend)) == 7:
        raise ConfigError(f"{where}.weekend covers every day: there would be no business days")

    country = string(cal, f"{where}.holidays_country", "holidays_country", defaults_cal.holidays_country)
    subdivision = string(cal, f"{where}.holidays_subdivision", "holidays_subdivision", "")
    if country:
        try:
            holidays.country_holidays(country, subdiv=subdivision or None, years=2026)
        except NotImplementedError:
            if subdivision:
                raise ConfigError(
                    f"{where}.holidays_subdivision = {subdivision!r} is not a subdivision of {country!r}"
                ) from None
            raise ConfigError(
                f"{where}.holidays_country = {country!r} is not a country code of the holidays package"
            ) from None
    elif subdivision:
        raise ConfigError(f"{where}.holidays_subdivision is set but {where}.holidays_country is empty")

    return CalendarConfig(
        timezone=timezone,
        opens=opens,
        closes=closes,
        weekend=tuple(sorted(set(weekend))),
        holidays_country=country,
        holidays_subdivision=subdivision,
        extra_holidays=dates(cal, f"{where}.extra_holidays", "extra_holidays"),
        working_days=dates(cal, f"{where}.working_days", "working_days"),
    )
