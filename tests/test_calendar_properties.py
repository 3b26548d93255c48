"""Property tests of the calendar arithmetic done in SQL (rules §2, 3 and 5).

Deadlines and uptime are computed by DuckDB (the ``case_sla`` and ``env_uptime``
views). Every example here writes a batch of rows through the import path into a
fresh store, opens the views and compares what they say with a deliberately
simple and slow reference written below: it walks local dates one by one with
``zoneinfo`` and never uses the engine's calendar tables or helpers.

All instants are compared as integer microseconds since the Unix epoch.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kb.config import Config, parse_config
from kb.db import connection
from kb.engine.asof import open_views
from tests.fixtures import add

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
DAY_US = 86_400 * 1_000_000

ZONES = ["America/New_York", "Europe/London", "Australia/Sydney", "Asia/Hong_Kong", "UTC"]
DST_ZONES = ["America/New_York", "Europe/London", "Australia/Sydney"]
HOURS = [("08:30", "17:00"), ("09:00", "18:00"), ("07:00", "19:30")]
WEEKENDS = [["Sat", "Sun"], ["Fri", "Sat"], ["Sun"]]
HOLIDAY_SOURCES = [("HK", ""), ("US", ""), ("GB", "ENG"), ("", "")]

# Days worth a closer look: daylight-saving changes of the zones above, public
# holidays of the countries above, year ends.
DST_CHANGES = {
    "America/New_York": [date(2025, 3, 9), date(2025, 11, 2), date(2026, 3, 8), date(2026, 11, 1),
                         date(2027, 3, 14), date(2027, 11, 7)],
    "Europe/London": [date(2025, 3, 30), date(2025, 10, 26), date(2026, 3, 29), date(2026, 10, 25),
                      date(2027, 3, 28), date(2027, 10, 31)],
    "Australia/Sydney": [date(2025, 4, 6), date(2025, 10, 5), date(2026, 4, 5), date(2026, 10, 4),
                         date(2027, 4, 4), date(2027, 10, 3)],
}
FOCUS_DAYS = sorted({d for days in DST_CHANGES.values() for d in days} | {
    date(2025, 12, 24), date(2026, 12, 24), date(2026, 12, 31), date(2026, 2, 17), date(2026, 4, 3),
    date(2026, 11, 26), date(2026, 5, 25), date(2026, 7, 1), date(2026, 10, 1),
})


# --- instants -------------------------------------------------------------------------------------------------

def to_us(moment: datetime) -> int:
    return (moment - EPOCH) // ONE_US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def iso(us: int) -> str:
    return from_us(us).isoformat()


def local_us(day: date, clock: time, zone: ZoneInfo, fold: int = 0) -> int:
    """The instant of a local wall-clock time (UTC conversion first: aware subtraction in one zone is naive)."""
    return to_us(datetime.combine(day, clock, tzinfo=zone).replace(fold=fold).astimezone(UTC))


def clock(text: str) -> time:
    return time.fromisoformat(text)


def shift(t: time, us: int) -> time:
    return (datetime.combine(date(2000, 1, 2), t) + timedelta(microseconds=us)).time()


# --- the reference calendar -----------------------------------------------------------------------------------

@cache
def public_holidays(country: str, subdivision: str):
    return holidays.country_holidays(country, subdiv=subdivision or None)  # expands to any year asked


class Reference:
    """rules §2 read literally: one local date at a time."""

    def __init__(self, config: Config):
        cal = config.calendar
        self.zone = ZoneInfo(cal.timezone)
        self.opens, self.closes = cal.opens, cal.closes
        self.weekend = set(cal.weekend)
        self.country, self.subdivision = cal.holidays_country, cal.holidays_subdivision
        self.extra = set(cal.extra_holidays)
        self.working = set(cal.working_days)
        minutes = (cal.closes.hour * 60 + cal.closes.minute) - (cal.opens.hour * 60 + cal.opens.minute)
        self.day_us = minutes * 60_000_000

    def is_business_day(self, day: date) -> bool:
        if day in self.working:
            return True
        if day.weekday() in self.weekend or day in self.extra:
            return False
        return not (self.country and day in public_holidays(self.country, self.subdivision))

    def local(self, us: int) -> datetime:
        return from_us(us).astimezone(self.zone)

    def hours(self, day: date) -> tuple[int, int]:
        return local_us(day, self.opens, self.zone), local_us(day, self.closes, self.zone)

    def business_us(self, start: int, end: int) -> int:
        """Business time in [start, end)."""
        total = 0
        day = self.local(start).date() - timedelta(days=1)
        last = self.local(end).date() + timedelta(days=1)
        while day <= last:
            if self.is_business_day(day):
                opens, closes = self.hours(day)
                total += max(0, min(end, closes) - max(start, opens))
            day += timedelta(days=1)
        return total

    def within_days(self, received: int, n: int) -> int:
        """The earliest instant at which n business days of time have elapsed since ``received``."""
        return self.within_us(received, n * self.day_us)

    def within_us(self, start: int, remaining: int) -> int:
        """The earliest instant at which ``remaining`` of business time has passed since ``start``."""
        day = self.local(start).date() - timedelta(days=1)
        while True:
            if self.is_business_day(day):
                opens, closes = self.hours(day)
                begin = max(opens, start)
                if begin < closes:
                    if closes - begin >= remaining:
                        return begin + remaining
                    remaining -= closes - begin
            day += timedelta(days=1)

    def next_business_day_close(self, received: int) -> int:
        day = self.local(received).date() + timedelta(days=1)
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return self.hours(day)[1]

    def months(self, first: date, last: date) -> list[tuple[str, int, int]]:
        """(YYYY-MM, start, end) of each local calendar month from ``first``'s through ``last``'s."""
        result = []
        year, month = first.year, first.month
        while (year, month) <= (last.year, last.month):
            following = (year + 1, 1) if month == 12 else (year, month + 1)
            result.append((f"{year:04d}-{month:02d}", local_us(date(year, month, 1), time(0), self.zone),
                           local_us(date(*following, 1), time(0), self.zone)))
            year, month = following
        return result


# --- stores ---------------------------------------------------------------------------------------------------

@contextmanager
def fresh_store():
    with tempfile.TemporaryDirectory() as directory:
        con = connection.connect(Path(directory) / "support.duckdb")
        try:
            yield con
        finally:
            con.close()


# --- strategies -----------------------------------------------------------------------------------------------

@st.composite
def calendars(draw, zones=ZONES, base: date | None = None) -> tuple[Config, date]:
    """A parsed configuration and a base date near which its cases and extra days fall."""
    zone = draw(st.sampled_from(zones))
    if base is None:
        base = draw(st.one_of(
            st.sampled_from(FOCUS_DAYS),
            st.dates(date(2025, 1, 1), date(2027, 11, 30)),
        )) - timedelta(days=draw(st.integers(0, 14)))
    near = st.integers(-3, 40).map(lambda k: base + timedelta(days=k))
    opens, closes = draw(st.sampled_from(HOURS))
    country, subdivision = draw(st.sampled_from(HOLIDAY_SOURCES))
    raw = {
        "calendar": {
            "timezone": zone,
            "business_hours": [opens, closes],
            "weekend": draw(st.sampled_from(WEEKENDS)),
            "holidays_country": country,
            "holidays_subdivision": subdivision,
            "extra_holidays": [d.isoformat() for d in draw(st.lists(near, max_size=4))],
            "working_days": [d.isoformat() for d in draw(st.lists(near, max_size=3))],
        },
        "sla": {
            "enterprise_response_business_days": draw(st.integers(1, 3)),
            "custom_response_business_days": draw(st.integers(1, 3)),
        },
    }
    return parse_config(raw), base


@st.composite
def receipts(draw, config: Config, base: date) -> list[int]:
    """Up to 20 instants of receipt within a month of ``base``, many on interesting wall-clock times."""
    zone = config.calendar.zone
    opens, closes = config.calendar.opens, config.calendar.closes
    interesting = [opens, closes, shift(opens, -1), shift(opens, 1), shift(closes, -1), shift(closes, 1),
                   time(0), time(23, 59, 59, 999_999), time(1, 30), time(2, 30), time(12, 0)]
    any_clock = st.integers(0, DAY_US - 1).map(lambda us: shift(time(0), us))
    # The day a contract starts (see load_cases) and the day before, where local and UTC dates differ.
    contract_from = first_of_next_month(base)
    day = st.one_of(st.integers(0, 30).map(lambda k: base + timedelta(days=k)),
                    st.sampled_from([contract_from - timedelta(days=1), contract_from]))
    one = st.tuples(day, st.one_of(st.sampled_from(interesting), any_clock), st.integers(0, 1)) \
        .map(lambda t: local_us(t[0], t[1], zone, fold=t[2]))
    return draw(st.lists(one, min_size=1, max_size=20))


@st.composite
def deadline_scenarios(draw):
    config, base = draw(calendars())
    contract_days = draw(st.integers(1, 5))
    return config, base, contract_days, draw(receipts(config, base))


def first_of_next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def load_cases(con, config: Config, base: date, contract_days: int, received: list[int], categories: list[str]):
    """Four cases per receipt (enterprise, custom, enterprise under contract, free); returns case_sla rows by id."""
    add(con, config, "clients",
        {"client_id": "ent", "name": "Enterprise", "tier": "enterprise"},
        {"client_id": "cus", "name": "Custom", "tier": "custom"},
        {"client_id": "entk", "name": "Enterprise with contract", "tier": "enterprise"},
        {"client_id": "free", "name": "Free", "tier": "free"})
    add(con, config, "environments",
        {"environment_id": "entk-prod", "name": "Prod", "kind": "dedicated", "deployment": "on_premise",
         "client_id": "entk", "active_from": (base - timedelta(days=90)).isoformat()})
    add(con, config, "contracts",
        {"contract_id": "k1", "client_id": "entk", "environment_id": "entk-prod",
         "response_business_days": contract_days, "monthly_fee": "1000", "currency": "USD",
         "starts_on": first_of_next_month(base).isoformat()})
    rows = []
    for i, (us, category) in enumerate(zip(received, categories, strict=True)):
        for client in ("ent", "cus", "entk", "free"):
            rows.append({"case_id": f"{client}-{i}", "client_id": client, "received_at": iso(us),
                         "category": category, "subject": "s"})
    add(con, config, "cases", *rows)
    as_of = from_us(max(received)) + timedelta(days=1)
    open_views(con, config, as_of)
    result = con.execute(
        "SELECT case_id, epoch_us(received_at), epoch_us(first_response_due), first_response_amount FROM case_sla"
    ).fetchall()
    return {case_id: (rec, due, n) for case_id, rec, due, n in result}


# --- 1 and 3: within N business days --------------------------------------------------------------------------

@SETTINGS
@given(deadline_scenarios(), st.data())
def test_within_n_business_days_lands_in_business_time_after_exactly_n_days(scenario, data):
    config, base, contract_days, received = scenario
    categories = data.draw(st.lists(st.sampled_from(["platform_issue", "api_help", "general_coding"]),
                                    min_size=len(received), max_size=len(received)))
    ref = Reference(config)
    contract_from = first_of_next_month(base)
    with fresh_store() as con:
        rows = load_cases(con, config, base, contract_days, received, categories)
    assert len(rows) == 4 * len(received)
    for i, us in enumerate(received):
        expected_n = {
            "ent": config.sla.enterprise_response_business_days,
            "cus": config.sla.custom_response_business_days,
            "entk": contract_days if ref.local(us).date() >= contract_from
            else config.sla.enterprise_response_business_days,
        }
        for client, n in expected_n.items():
            case_id = f"{client}-{i}"
            stored, due, engine_n = rows[case_id]
            where = f"{case_id} received {ref.local(us).isoformat()} (N={n}, {config.calendar})"
            assert stored == us, where
            assert engine_n == n, where
            assert due is not None, where
            due_local = ref.local(due)
            # Inside business time. Not at an opening: the clock already reached the target at the close before.
            assert ref.is_business_day(due_local.date()), f"{where}: due {due_local.isoformat()} on a closed day"
            assert config.calendar.opens < due_local.time() <= config.calendar.closes, \
                f"{where}: due {due_local.isoformat()} outside business hours"
            assert ref.business_us(us, due) == n * ref.day_us, f"{where}: due {due_local.isoformat()}"
            assert due == ref.within_days(us, n), \
                f"{where}: due {due_local.isoformat()}, expected {ref.local(ref.within_days(us, n)).isoformat()}"


# --- 2 and 3: free tier, end of the next business day ---------------------------------------------------------

@SETTINGS
@given(deadline_scenarios(), st.data())
def test_free_tier_is_close_of_next_business_day_and_general_coding_has_none(scenario, data):
    config, base, contract_days, received = scenario
    categories = data.draw(st.lists(st.sampled_from(["platform_issue", "api_help", "general_coding"]),
                                    min_size=len(received), max_size=len(received)))
    ref = Reference(config)
    with fresh_store() as con:
        rows = load_cases(con, config, base, contract_days, received, categories)
    for i, (us, category) in enumerate(zip(received, categories, strict=True)):
        _, due, _ = rows[f"free-{i}"]
        where = f"free-{i} {category} received {ref.local(us).isoformat()} ({config.calendar})"
        if category == "general_coding":
            assert due is None, where
            continue
        expected = ref.next_business_day_close(us)
        assert due == expected, \
            f"{where}: due {due and ref.local(due).isoformat()}, expected {ref.local(expected).isoformat()}"
        due_local = ref.local(due)
        assert due_local.time() == config.calendar.closes, where
        assert due_local.date() > ref.local(us).date(), where


# --- 3: 09:00 stays local 09:00 across daylight-saving changes ------------------------------------------------

@st.composite
def dst_openings(draw):
    zone = draw(st.sampled_from(DST_ZONES))
    change = draw(st.sampled_from(DST_CHANGES[zone]))
    config, _ = draw(calendars(zones=[zone], base=change - timedelta(days=7)))
    days = draw(st.lists(st.integers(-7, 7).map(lambda k: change + timedelta(days=k)), min_size=1, max_size=15))
    return config, change, days


@SETTINGS
@given(dst_openings())
def test_opening_and_closing_stay_on_the_local_clock_across_dst(scenario):
    """A case received exactly at a local opening is due at the local close of the N-th business day
    counted from that day; and every business day the engine lays out opens and closes on the local clock."""
    config, change, days = scenario
    ref = Reference(config)
    cal = config.calendar
    n = config.sla.enterprise_response_business_days
    received = [local_us(day, cal.opens, cal.zone) for day in days]
    with fresh_store() as con:
        add(con, config, "clients", {"client_id": "ent", "name": "E", "tier": "enterprise"},
            {"client_id": "free", "name": "F", "tier": "free"})
        add(con, config, "cases", *[
            {"case_id": f"{client}-{i}", "client_id": client, "received_at": iso(us), "category": "api_help",
             "subject": "s"}
            for i, us in enumerate(received) for client in ("ent", "free")])
        open_views(con, config, from_us(max(received)) + timedelta(days=30))
        due = dict(con.execute("SELECT case_id, epoch_us(first_response_due) FROM case_sla").fetchall())
        laid_out = con.execute(
            f"SELECT day, CAST(timezone('{cal.timezone}', opens_at) AS TIME), "
            f"CAST(timezone('{cal.timezone}', closes_at) AS TIME), length_us FROM business_days "
            f"WHERE day BETWEEN DATE '{change - timedelta(days=20)}' AND DATE '{change + timedelta(days=20)}'"
        ).fetchall()
    for i, day in enumerate(days):
        business = [d for d in (day + timedelta(days=k) for k in range(60)) if ref.is_business_day(d)]
        expected = local_us(business[n - 1], cal.closes, cal.zone)
        got = due[f"ent-{i}"]
        assert got == expected, \
            f"ent-{i} received {day} {cal.opens} (N={n}): due {ref.local(got).isoformat()}, " \
            f"expected {ref.local(expected).isoformat()} ({cal})"
        assert ref.local(got).time() == cal.closes
        assert ref.local(due[f"free-{i}"]).time() == cal.closes
    expected_days = [change + timedelta(days=k) for k in range(-20, 21)
                     if ref.is_business_day(change + timedelta(days=k))]
    assert sorted(row[0] for row in laid_out) == expected_days
    for day, opens, closes, length_us in laid_out:
        assert (opens, closes, length_us) == (cal.opens, cal.closes, ref.day_us), f"{day} ({cal})"


# --- 4: months have their true local length -------------------------------------------------------------------

def uptime_rows(con, config: Config, as_of: datetime):
    open_views(con, config, as_of)
    return con.execute(
        "SELECT environment_id, month, epoch_us(period_start), epoch_us(period_end), period_us, downtime_us "
        "FROM env_uptime ORDER BY environment_id, month"
    ).fetchall()


@SETTINGS
@given(
    zone=st.sampled_from(ZONES),
    active_from=st.lists(st.dates(date(2024, 1, 1), date(2027, 12, 31)), min_size=1, max_size=4),
    as_of_us=st.integers(to_us(datetime(2025, 6, 1, tzinfo=UTC)), to_us(datetime(2028, 6, 1, tzinfo=UTC))),
)
def test_measured_period_is_the_true_length_of_the_local_month(zone, active_from, as_of_us):
    config = parse_config({"calendar": {"timezone": zone}})
    ref = Reference(config)
    as_of = from_us(as_of_us)
    with fresh_store() as con:
        add(con, config, "environments", *[
            {"environment_id": f"env-{i}", "name": f"Env {i}", "kind": "shared", "deployment": "shared_cloud",
             "active_from": day.isoformat()} for i, day in enumerate(active_from)])
        rows = uptime_rows(con, config, as_of)
    expected = []
    for i, day in enumerate(active_from):
        active_us = local_us(day, time(0), ref.zone)
        for month, start, end in ref.months(day, ref.local(as_of_us).date()):
            expected.append((f"env-{i}", month, max(start, active_us), end, end - max(start, active_us), 0))
    assert sorted(rows) == sorted(expected)


@SETTINGS
@given(
    zone=st.sampled_from(ZONES),
    year=st.integers(2024, 2028),
    month=st.integers(1, 12),
)
@example(zone="America/New_York", year=2026, month=3)
@example(zone="America/New_York", year=2026, month=11)
@example(zone="Europe/London", year=2026, month=10)
@example(zone="Australia/Sydney", year=2026, month=4)
@example(zone="Australia/Sydney", year=2026, month=10)
def test_a_whole_month_period_matches_zoneinfo(zone, year, month):
    """An environment active long before the month: period_us = local month end − local month start."""
    config = parse_config({"calendar": {"timezone": zone}})
    tz = ZoneInfo(zone)
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)
    true_us = to_us(end.astimezone(UTC)) - to_us(start.astimezone(UTC))
    with fresh_store() as con:
        add(con, config, "environments", {"environment_id": "env", "name": "Env", "kind": "shared",
                                          "deployment": "shared_cloud", "active_from": "2023-06-15"})
        rows = uptime_rows(con, config, datetime(2029, 1, 1, tzinfo=UTC))
    period = {m: p for _, m, _, _, p, _ in rows}
    assert period[f"{year:04d}-{month:02d}"] == true_us
    days = (end.date() - start.date()).days
    if (zone, year, month) == ("America/New_York", 2026, 3):
        assert true_us == (31 * 24 - 1) * 3_600_000_000
    if (zone, year, month) == ("America/New_York", 2026, 11):
        assert true_us == (30 * 24 + 1) * 3_600_000_000
    assert abs(true_us - days * DAY_US) in (0, 3_600_000_000)


# --- 5: downtime is the union of outages, clipped to each month -----------------------------------------------

MONTH_STARTS_2026 = [date(2025, 12, 1)] + [date(2026, m, 1) for m in range(1, 9)]


@st.composite
def outage_scenarios(draw):
    zone = draw(st.sampled_from(ZONES))
    tz = ZoneInfo(zone)
    boundaries = [local_us(d, time(0), tz) for d in MONTH_STARTS_2026]
    lo, hi = boundaries[0], boundaries[-1]
    anchor = st.one_of(
        st.tuples(st.sampled_from(boundaries), st.integers(-3 * DAY_US, 3 * DAY_US)).map(sum),
        st.integers(lo, hi),
    )
    length = st.one_of(st.just(0), st.integers(1, 6 * 3_600_000_000), st.integers(1, 12 * DAY_US),
                       st.integers(1, 45 * DAY_US))
    impact = st.sampled_from(["outage", "outage", "outage", "degraded", "maintenance"])
    incidents = draw(st.lists(
        st.tuples(anchor, length, impact, st.integers(0, 9).map(lambda k: k == 0)), max_size=20))
    active_from = draw(st.dates(date(2025, 11, 1), date(2026, 3, 31)))
    as_of = draw(st.one_of(st.sampled_from(boundaries[2:]), st.integers(boundaries[2], hi + 10 * DAY_US)))
    return zone, active_from, as_of, [(s, None if ongoing else s + n, imp) for s, n, imp, ongoing in incidents]


def union_within(intervals: list[tuple[int, int]], start: int, end: int) -> int:
    """Length of the union of [s, e) intervals inside [start, end): clip, sort, merge."""
    clipped = sorted((max(s, start), min(e, end)) for s, e in intervals if min(e, end) > max(s, start))
    total, current_s, current_e = 0, None, None
    for s, e in clipped:
        if current_e is None or s > current_e:
            if current_e is not None:
                total += current_e - current_s
            current_s, current_e = s, e
        else:
            current_e = max(current_e, e)
    if current_e is not None:
        total += current_e - current_s
    return total


@SETTINGS
@given(outage_scenarios())
def test_monthly_downtime_is_the_union_of_outages_clipped_to_the_month(scenario):
    zone, active_from, as_of_us, incidents = scenario
    config = parse_config({"calendar": {"timezone": zone}})
    ref = Reference(config)
    with fresh_store() as con:
        add(con, config, "clients", {"client_id": "ent", "name": "E", "tier": "enterprise"})
        add(con, config, "environments", {"environment_id": "env", "name": "Env", "kind": "dedicated",
                                          "deployment": "dedicated_cloud", "client_id": "ent",
                                          "active_from": active_from.isoformat()})
        if incidents:
            add(con, config, "incidents", *[
                {"incident_id": f"i{k}", "environment_id": "env", "impact": imp, "started_at": iso(s),
                 "ended_at": "" if e is None else iso(e)} for k, (s, e, imp) in enumerate(incidents)])
        rows = uptime_rows(con, config, from_us(as_of_us))
    # An outage exists once it has started by T; one without an end, or ending after T, lasts until T.
    outages = [(s, as_of_us if e is None else min(e, as_of_us))
               for s, e, imp in incidents if imp == "outage" and s <= as_of_us]
    active_us = local_us(active_from, time(0), ref.zone)
    expected = {}
    for month, start, end in ref.months(active_from, ref.local(as_of_us).date()):
        expected[month] = union_within(outages, max(start, active_us), end)
    got = {month: downtime for _, month, _, _, _, downtime in rows}
    assert got == expected
