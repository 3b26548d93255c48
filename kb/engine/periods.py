"""The support zone's months and days as instants: which months a page shows, and where they start and end."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from kb.config import CalendarConfig
from kb.db.sqltext import quote
from kb.engine.calendar import is_business_day


@dataclass(frozen=True)
class Months:
    """The month holding T, the one before, and the same month a year before (where twelve-month
    views start), as 'YYYY-MM' in the support zone."""

    this: str
    last: str
    year_ago: str


def months_of(calendar: CalendarConfig, as_of: datetime) -> Months:
    """The months around ``as_of`` in the support zone."""
    local = as_of.astimezone(calendar.zone)
    last_year, last_month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return Months(f"{local.year:04d}-{local.month:02d}", f"{last_year:04d}-{last_month:02d}",
                  f"{local.year - 1:04d}-{local.month:02d}")


def local_month(calendar: CalendarConfig, column: str) -> str:
    """SQL for the support-zone month ('YYYY-MM') of a TIMESTAMPTZ column."""
    return f"strftime(timezone({quote(calendar.timezone)}, {column}), '%Y-%m')"


def month_span(calendar: CalendarConfig, month: str) -> tuple[datetime, datetime]:
    """The first instant of ``month`` ('YYYY-MM') in the support zone and the first instant after it."""
    year, number = int(month[:4]), int(month[5:])
    start = datetime(year, number, 1, tzinfo=calendar.zone)
    end = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=calendar.zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def month_bounds(calendar: CalendarConfig, months: Months) -> tuple[datetime, datetime]:
    """The first instant of last month and the first instant after this month, in the support zone."""
    return month_span(calendar, months.last)[0], month_span(calendar, months.this)[1]


def day_bounds(calendar: CalendarConfig, start: date, end: date) -> tuple[datetime, datetime]:
    """The first instant of local day ``start`` and the first after local day ``end``."""
    zone = calendar.zone
    return (datetime.combine(start, time(0), tzinfo=zone).astimezone(UTC),
            datetime.combine(end + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC))


def month_days(calendar: CalendarConfig, moment: datetime) -> tuple[date, date]:
    """The first and the last local day of the month holding ``moment`` in the support zone."""
    first = moment.astimezone(calendar.zone).date().replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def first_business_day(calendar: CalendarConfig, year: int, month: int) -> date:
    """The first business day of a month: when its statements go, and when the month before can be closed."""
    day = date(year, month, 1)
    while not is_business_day(calendar, day):
        day += timedelta(days=1)
    return day
