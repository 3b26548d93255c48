"""Calendars as data and rules that change on a date (rules: calendars, dated changes), to the second."""

from __future__ import annotations

import tomllib
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kb.config import ConfigError, parse_config
from kb.db import connection
from kb.engine.calendar import attach_calendar
from tests.fixtures import HKT, add, local, views
from tests.test_calendar_properties import SETTINGS, calendars, fresh_store, from_us, iso, receipts

SPEC_13 = """
[calendar]
timezone = "Asia/Hong_Kong"
business_hours = ["09:00", "18:00"]
holidays_country = "HK"
extra_holidays = ["2026-11-27"]

[[calendar.changes]]
from = "2026-12-01"
business_hours = ["08:00", "18:00"]

[[sla.changes]]
from = "2026-12-01"
enterprise_response_business_days = 2
"""
LONDON = """
[calendars.london]
timezone = "Europe/London"
holidays_country = "GB"
holidays_subdivision = "ENG"
business_hours = ["09:00", "17:30"]
"""  # a named calendar in its own zone: a London business day is 8.5 h
BEFORE = parse_config(tomllib.loads(SPEC_13.split("[[calendar.changes]]")[0]))
AFTER = parse_config(tomllib.loads(SPEC_13))


def shown(moment: datetime | None) -> str | None:
    return moment.astimezone(HKT).strftime("%a %Y-%m-%d %H:%M") if moment else None


def cases(con, config, *received: str) -> None:
    add(con, config, "clients", dict(client_id="ENT", name="Enterprise Co", tier="enterprise"),
        dict(client_id="FREE", name="Free User", tier="free"))
    add(con, config, "cases", *[dict(case_id=f"C{i}", client_id=client, received_at=at, category="api_help",
                                     subject="s") for i, (client, at) in enumerate(r.split("@") for r in received)])


def dues(con, config, as_of: str) -> dict[str, str]:
    return {case_id: shown(due) for case_id, due in views(con, config, local(as_of)).execute(
        "SELECT case_id, first_response_due FROM case_sla ORDER BY case_id").fetchall()}


def test_spec_example_a_change_of_hours_and_of_the_tier_default_from_a_date(con):
    cases(con, AFTER, "ENT@2026-11-30 17:00", "ENT@2026-12-01 10:00")
    assert dues(con, AFTER, "2026-12-06 12:00") == {"C0": "Tue 2026-12-01 16:00", "C1": "Thu 2026-12-03 10:00"}


def test_spec_example_november_is_the_same_before_and_after_the_change(con):
    cases(con, BEFORE, "ENT@2026-11-20 15:00", "ENT@2026-11-26 14:00", "FREE@2026-11-24 07:00")
    before = views(con, BEFORE, local("2026-11-30 23:59")).execute(
        "SELECT * EXCLUDE (business_hours_left, first_response_hours_left, next_due_hours_left) FROM case_sla "
        "ORDER BY case_id").fetchall()
    after = views(con, AFTER, local("2026-11-30 23:59")).execute(
        "SELECT * EXCLUDE (business_hours_left, first_response_hours_left, next_due_hours_left) FROM case_sla "
        "ORDER BY case_id").fetchall()
    assert before == after
    assert dues(con, AFTER, "2026-11-30 23:59") == {"C0": "Mon 2026-11-23 15:00", "C1": "Mon 2026-11-30 14:00",
                                                     "C2": "Wed 2026-11-25 18:00"}


def test_a_policy_runs_on_a_named_calendar_in_its_own_zone(con):
    config = parse_config(tomllib.loads(SPEC_13 + LONDON))
    cases(con, config, "ENT@2026-11-23 18:00")  # Mon 10:00 in London
    con.execute("INSERT INTO policies (policy_id, metric, priority, within, calendar) VALUES "
                "('enterprise', 'first_response', '*', '1d', 'london'), "
                "('enterprise', 'resolution', '*', 'next_day_close', 'london')")
    due, resolution = views(con, config, local("2026-11-23 19:00")).execute(
        "SELECT first_response_due, resolution_due FROM case_sla").fetchall()[0]
    london = __import__("zoneinfo").ZoneInfo("Europe/London")
    # one London business day is 8.5 h: 7.5 h on Monday from 10:00, 1 h on Tuesday from 09:00
    assert due.astimezone(london).strftime("%a %Y-%m-%d %H:%M") == "Tue 2026-11-24 10:00"
    assert resolution.astimezone(london).strftime("%a %Y-%m-%d %H:%M") == "Tue 2026-11-24 17:30"


def test_a_named_calendar_changes_its_hours_on_a_date(con):
    config = parse_config(tomllib.loads(SPEC_13 + LONDON + """
[[calendars.london.changes]]
from = "2026-12-01"
business_hours = ["08:00", "16:30"]
"""))
    cases(con, config, "ENT@2026-11-30 18:00", "ENT@2026-12-01 18:00")  # Mon and Tue, 10:00 in London
    con.execute("INSERT INTO policies (policy_id, metric, priority, within, calendar) VALUES "
                "('enterprise', 'first_response', '*', '1d', 'london')")
    london = __import__("zoneinfo").ZoneInfo("Europe/London")
    dues = [due.astimezone(london).strftime("%a %Y-%m-%d %H:%M") for (due,) in views(
        con, config, local("2026-12-03 12:00")).execute("SELECT first_response_due FROM case_sla ORDER BY case_id")
        .fetchall()]
    # Monday's day is 8.5 h of the old hours: 7.5 h on Monday, then 1 h from Tuesday's new 08:00;
    # Tuesday's is 8.5 h of the new hours: 6.5 h on Tuesday, then 2 h from Wednesday's 08:00
    assert dues == ["Tue 2026-12-01 09:00", "Wed 2026-12-02 10:00"]


@pytest.mark.parametrize(("text", "message"), [
    ('[[calendar.changes]]\nfrom = "2027-01-01"\ntimezone = "UTC"', "calendar.changes[1]: timezone cannot change"),
    ('[[calendar.changes]]\nfrom = "2027-01-01"\nbusines_hours = ["08:00", "18:00"]',
     "calendar.changes[1]: unknown key 'busines_hours'"),
    ('[[calendar.changes]]\nfrom = "2027-02-01"\n[[calendar.changes]]\nfrom = "2027-01-01"',
     "calendar.changes[2].from = 2027-01-01 is not after the change before it (2027-02-01)"),
    ('[[calendar.changes]]\nfrom = "2027-01-01"\n[[calendar.changes]]\nfrom = "2027-01-01"',
     "is not after the change before it"),
    ('[[calendar.changes]]\nbusiness_hours = ["08:00", "18:00"]', "calendar.changes[1]: \"from\" is missing"),
    ('[[sla.changes]]\nfrom = "2027-01-01"\nenterprise_response_business_days = 0',
     "sla.changes[1] (from 2027-01-01): sla.enterprise_response_business_days = 0"),
    ('[[sla.changes]]\nfrom = "2027-01-01"\nfoo = 1', "sla.changes[1]: unknown key 'foo'"),
    ('[calendars.24x7]\ntimezone = "UTC"', "[calendars.24x7]: '24x7' is built in"),
    ('[calendars.london]\ntimezone = "Europe/Lodnon"', "calendars.london.timezone = 'Europe/Lodnon'"),
    ('[calendars.london]\nbusiness_hour = ["09:00", "17:00"]', "calendars.london: unknown key 'business_hour'"),
    ('[calendars.london]\ntimezone = "Europe/London"\n[[calendars.london.changes]]\nfrom = "2027-01-01"\n'
     'business_hour = ["08:00", "16:30"]', "calendars.london.changes[1]: unknown key 'business_hour'"),
])
def test_a_bad_change_or_calendar_is_refused_naming_it(text, message):
    with pytest.raises(ConfigError, match=None) as refused:
        parse_config(tomllib.loads(text))
    assert message in str(refused.value)


def test_a_named_calendar_takes_what_it_leaves_out_from_the_support_calendar():
    config = parse_config(tomllib.loads('[calendar]\nweekend = ["Fri", "Sat"]\n[calendars.dubai]\n'
                                        'timezone = "Asia/Dubai"\nholidays_country = ""'))
    assert config.calendar_names == ("support", "24x7", "dubai")
    assert config.calendars[1].versions.base.weekend == (4, 5)


# --- properties -----------------------------------------------------------------------------------------------

@SETTINGS
@given(st.data())
def test_a_change_never_moves_what_was_due_before_it(data):
    """A case whose clock ran out before the day a change takes effect keeps its deadline and state: the
    change only rules the days from its date (a case still running then is ruled by it from that day, as in
    the example above)."""
    config, base = data.draw(calendars())
    received = data.draw(receipts(config, base))
    change = base + timedelta(days=data.draw(st.integers(-3, 30)))
    raw = {"calendar": {"timezone": config.calendar.timezone, "business_hours": ["07:00", "20:00"],
                        "holidays_country": config.calendar.holidays_country,
                        "holidays_subdivision": config.calendar.holidays_subdivision,
                        "weekend": ["Sun"], "extra_holidays": [], "working_days": []}}
    unchanged = parse_config(raw)
    changed = parse_config({**raw, "calendar": {**raw["calendar"], "changes": [
        {"from": change.isoformat(), "business_hours": ["10:00", "16:00"], "weekend": ["Sat", "Sun"]}]},
        "sla": {"changes": [{"from": change.isoformat(), "enterprise_response_business_days": 3}]}})
    change_starts = datetime.combine(change, datetime.min.time(), tzinfo=config.calendar.zone)
    with fresh_store() as con:
        add(con, unchanged, "clients", {"client_id": "ent", "name": "E", "tier": "enterprise"},
            {"client_id": "free", "name": "F", "tier": "free"})
        add(con, unchanged, "cases", *[
            {"case_id": f"{c}-{i}", "client_id": c, "received_at": iso(us), "category": "api_help", "subject": "s"}
            for i, us in enumerate(received) for c in ("ent", "free")])
        as_of = from_us(max(received)) + timedelta(days=20)

        def numbers(config):
            return views(con, config, as_of).execute(
                "SELECT case_id, first_response_due, sla_state FROM case_sla ORDER BY case_id").fetchall()
        before = numbers(unchanged)
        due_before_the_change = [row for row in before if row[1] is not None and row[1] < change_starts]
        assert [row for row in numbers(changed) if row in due_before_the_change] == due_before_the_change


@SETTINGS
@given(st.data())
def test_business_time_on_24x7_is_wall_clock_time(data):
    config, base = data.draw(calendars())
    received = data.draw(receipts(config, base))
    hours = data.draw(st.integers(1, 200))
    with fresh_store() as con:
        add(con, config, "clients", {"client_id": "ent", "name": "E", "tier": "enterprise"})
        con.execute(f"INSERT INTO policies (policy_id, metric, priority, within, calendar) VALUES "
                    f"('enterprise', 'first_response', '*', '{hours}h', '24x7'), "
                    f"('enterprise', 'resolution', '*', '2d', '24x7')")
        add(con, config, "cases", *[{"case_id": f"c{i}", "client_id": "ent", "received_at": iso(us),
                                     "category": "api_help", "subject": "s"} for i, us in enumerate(received)])
        rows = views(con, config, from_us(max(received))).execute(
            "SELECT epoch_us(received_at), epoch_us(first_response_due), epoch_us(resolution_due) FROM case_sla"
        ).fetchall()
    for at, due, resolution in rows:
        assert due - at == hours * 3_600_000_000
        assert resolution - at == 48 * 3_600_000_000


def test_business_days_are_laid_out_by_the_rules_of_each_date():
    from kb.engine.calendar import dated_business_days
    days = dated_business_days(AFTER.calendars[0].versions, 2026, 2026).set_index("day")
    assert days.loc[date(2026, 11, 30), "length_us"] == 9 * 3_600_000_000
    assert days.loc[date(2026, 12, 1), "length_us"] == 10 * 3_600_000_000


def test_a_cursor_given_the_lookup_tables_inside_an_older_transaction_reads_the_shared_ones_after(con):
    """The calendars' lookup tables are made once in the in-memory catalog. A transaction that began before
    they were made cannot see them, so its cursor is given them registered; that cursor, later asked for
    other rules, must read those rules' shared tables, not the ones still registered on it."""
    cases(con, AFTER, "ENT@2026-11-30 17:00")
    cur = connection.cursor(con)
    with connection.transaction(cur):
        cur.execute("SELECT count(*) FROM duckdb_schemas()").fetchall()  # its view of every catalog has begun
        attach_calendar(cur, BEFORE, local("2026-12-06 12:00"))
        registered = cur.execute("SELECT database_name FROM duckdb_views() WHERE view_name = 'business_days' "
                                 "AND NOT internal").fetchall()
        assert registered == [("temp",)]
    attach_calendar(cur, AFTER, local("2026-12-06 12:00"))
    assert cur.execute("SELECT database_name FROM duckdb_views() WHERE view_name = 'business_days'").fetchall() == []
    (opening,), = cur.execute("SELECT strftime(timezone('Asia/Hong_Kong', opens_at), '%H:%M') FROM business_days "
                              "WHERE day = DATE '2026-12-02'").fetchall()
    assert opening == "08:00"  # AFTER's hours from December, not BEFORE's 09:00
