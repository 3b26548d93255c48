"""First-response deadlines and SLA states (rules §3 and 4), to the second."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from kb.config import parse_config
from tests.fixtures import HKT, SPEC_CONFIG, add, local, views

CLIENTS = (
    dict(client_id="ENT", name="Enterprise Co", tier="enterprise"),
    dict(client_id="CUS", name="Custom Co", tier="custom"),
    dict(client_id="FREE", name="Free User", tier="free"),
)


def deadlines(con, config, cases, as_of="2027-01-01 00:00", zone=HKT):
    """{case_id: (local due, state)} for cases given as (id, client, received, category[, response])."""
    add(con, config, "clients", *CLIENTS)
    add(con, config, "cases", *[
        dict(case_id=c[0], client_id=c[1], received_at=c[2], category=c[3], subject="s",
             first_response_at=c[4] if len(c) > 4 else "")
        for c in cases
    ])
    rows = views(con, config, local(as_of, zone)).execute(
        "SELECT case_id, first_response_due, sla_state FROM case_sla").fetchall()
    return {cid: (due.astimezone(zone).replace(tzinfo=None) if due else None, state) for cid, due, state in rows}


SPEC_EXAMPLES = [
    ("ENT", "2026-11-20 15:00", "platform_issue", "2026-11-23 15:00"),
    ("ENT", "2026-11-24 19:00", "platform_issue", "2026-11-25 18:00"),
    ("ENT", "2026-11-23 09:00", "platform_issue", "2026-11-23 18:00"),
    ("ENT", "2026-11-26 14:00", "platform_issue", "2026-11-30 14:00"),
    ("FREE", "2026-11-20 15:00", "platform_issue", "2026-11-23 18:00"),
    ("FREE", "2026-11-22 10:00", "api_help", "2026-11-23 18:00"),
    ("FREE", "2026-11-24 07:00", "platform_issue", "2026-11-25 18:00"),
]


@pytest.mark.parametrize(("client", "received", "category", "due"), SPEC_EXAMPLES)
def test_spec_worked_examples(con, client, received, category, due):
    result = deadlines(con, SPEC_CONFIG, [("C1", client, received, category)])
    assert result["C1"][0] == datetime.fromisoformat(due)


@pytest.mark.parametrize("received", ["2026-11-20 15:00", "2026-11-22 03:00", "2026-11-24 07:00"])
def test_free_general_coding_has_no_deadline_and_never_breaches(con, received):
    result = deadlines(con, SPEC_CONFIG, [("C1", "FREE", received, "general_coding")])
    assert result["C1"] == (None, "no_sla")


def test_custom_general_coding_still_has_a_deadline(con):
    result = deadlines(con, SPEC_CONFIG, [("C1", "CUS", "2026-11-23 10:00", "general_coding")])
    assert result["C1"][0] == datetime(2026, 11, 24, 10, 0)


def test_public_holidays_come_from_the_holidays_package(con):
    # 2026-12-25 (Fri) is Christmas Day and 2026-12-26 (Sat) its weekday substitute in HK... both closed.
    config = parse_config({})
    result = deadlines(con, config, [("C1", "ENT", "2026-12-24 15:00", "platform_issue"),
                                     ("C2", "FREE", "2026-12-24 15:00", "api_help")])
    assert result["C1"][0] == datetime(2026, 12, 28, 15, 0)
    assert result["C2"][0] == datetime(2026, 12, 28, 18, 0)


def test_no_holiday_country_means_only_weekends_close(con):
    config = parse_config({"calendar": {"holidays_country": ""}})
    result = deadlines(con, config, [("C1", "ENT", "2026-12-24 15:00", "platform_issue")])
    assert result["C1"][0] == datetime(2026, 12, 25, 15, 0)


def test_working_day_opens_a_weekend_day(con):
    config = parse_config({"calendar": {"working_days": ["2026-11-21"]}})
    result = deadlines(con, config, [("C1", "ENT", "2026-11-20 15:00", "platform_issue")])
    assert result["C1"][0] == datetime(2026, 11, 21, 15, 0)


@pytest.mark.parametrize(("received", "due"), [
    ("2026-11-23 09:00", "2026-11-23 18:00"),  # exactly at open: a whole day, ends at that close
    ("2026-11-23 18:00", "2026-11-24 18:00"),  # exactly at close: clock starts at next opening
    ("2026-11-23 17:59:59", "2026-11-24 17:59:59"),
    ("2026-11-21 11:00", "2026-11-23 18:00"),  # Saturday
    ("2026-11-27 10:00", "2026-11-30 18:00"),  # the extra holiday
    ("2026-11-23 08:59:59", "2026-11-23 18:00"),
])
def test_enterprise_edges(con, received, due):
    result = deadlines(con, SPEC_CONFIG, [("C1", "ENT", received, "platform_issue")])
    assert result["C1"][0] == datetime.fromisoformat(due)


def test_receipt_in_another_zone_is_read_by_its_offset(con):
    # 07:00 UTC is 15:00 in Hong Kong on Friday 2026-11-20: the rules' first example.
    result = deadlines(con, SPEC_CONFIG, [("C1", "ENT", "2026-11-20T07:00:00Z", "platform_issue"),
                                          ("C2", "ENT", "2026-11-20T02:00:00-05:00", "platform_issue")])
    assert result["C1"][0] == datetime(2026, 11, 23, 15, 0)
    assert result["C2"][0] == datetime(2026, 11, 23, 15, 0)


def test_free_tier_next_business_day_across_the_extra_holiday(con):
    result = deadlines(con, SPEC_CONFIG, [("C1", "FREE", "2026-11-26 23:30", "platform_issue")])
    assert result["C1"][0] == datetime(2026, 11, 30, 18, 0)


def test_contract_sets_response_business_days_at_receipt(con):
    add(con, SPEC_CONFIG, "clients", *CLIENTS)
    add(con, SPEC_CONFIG, "environments", dict(environment_id="E", name="E", kind="dedicated",
                                               deployment="on_premise", client_id="ENT", active_from="2026-01-01"))
    add(con, SPEC_CONFIG, "contracts", dict(contract_id="K", client_id="ENT", environment_id="E",
                                            response_business_days=3, monthly_fee=100, currency="USD",
                                            starts_on="2026-11-01", ends_on="2026-11-30"))
    add(con, SPEC_CONFIG, "cases",
        dict(case_id="IN", client_id="ENT", received_at="2026-11-23 10:00", category="api_help", subject="s"),
        dict(case_id="AFTER", client_id="ENT", received_at="2026-12-01 10:00", category="api_help", subject="s"))
    rows = dict(views(con, SPEC_CONFIG, local("2027-01-01 00:00")).execute(
        "SELECT case_id, first_response_due FROM case_sla").fetchall())
    assert rows["IN"] == local("2026-11-26 10:00")  # 3 business days, under the contract
    assert rows["AFTER"] == local("2026-12-02 10:00")  # contract ended: the tier default of 1


def test_custom_tier_default_from_configuration(con):
    config = parse_config({"sla": {"custom_response_business_days": 2}})
    result = deadlines(con, config, [("C1", "CUS", "2026-11-23 10:00", "platform_issue")])
    assert result["C1"][0] == datetime(2026, 11, 25, 10, 0)


def test_dst_month_deadline_keeps_local_opening_hours(con):
    # New York leaves DST on Sunday 2026-11-01: Friday 15:00 EDT + 1 business day = Monday 15:00 EST.
    zone = ZoneInfo("America/New_York")
    config = parse_config({"calendar": {"timezone": "America/New_York", "holidays_country": "US"}})
    result = deadlines(con, config, [("C1", "ENT", "2026-10-30 15:00", "platform_issue"),
                                     ("C2", "ENT", "2026-03-06 17:00", "platform_issue")], zone=zone)
    assert result["C1"][0] == datetime(2026, 11, 2, 15, 0)
    assert result["C2"][0] == datetime(2026, 3, 9, 17, 0)  # across the start of DST on 2026-03-08
    due = views(con, config, local("2027-01-01 00:00", zone)).execute(
        "SELECT first_response_due FROM case_sla WHERE case_id = 'C1'").fetchall()[0][0]
    assert due == datetime(2026, 11, 2, 20, 0, tzinfo=UTC)  # 15:00 EST is 20:00 UTC


STATE_CASES = [
    # (id, client, received, category, first response): as of Wed 2026-11-25 16:30 HKT
    ("MET", "ENT", "2026-11-24 10:00", "platform_issue", "2026-11-25 10:00"),
    ("MET-EXACT", "ENT", "2026-11-24 10:00", "platform_issue", "2026-11-25 10:00:00"),
    ("LATE", "ENT", "2026-11-24 10:00", "platform_issue", "2026-11-25 10:00:01"),
    ("OVERDUE", "ENT", "2026-11-24 10:00", "platform_issue"),
    ("RISK", "ENT", "2026-11-24 18:30", "platform_issue"),  # due 18:00 today: 1.5 h left
    ("RISK-EDGE", "ENT", "2026-11-24 18:30", "api_help"),
    ("PENDING", "ENT", "2026-11-25 14:00", "platform_issue"),  # due tomorrow 14:00: 6.5 business hours left
    ("FUTURE-REPLY", "ENT", "2026-11-25 14:00", "platform_issue", "2026-11-25 17:00"),  # reply after T
    ("NOT-YET", "ENT", "2026-11-25 17:00", "platform_issue"),
    ("DEPRIORITIZED", "FREE", "2026-11-20 10:00", "general_coding"),
]


def test_states_as_of_an_instant(con):
    result = deadlines(con, SPEC_CONFIG, STATE_CASES, as_of="2026-11-25 16:30")
    states = {cid: state for cid, (_, state) in result.items()}
    assert states == {
        "MET": "met", "MET-EXACT": "met", "LATE": "breached", "OVERDUE": "breached", "RISK": "at_risk",
        "RISK-EDGE": "at_risk", "PENDING": "pending", "FUTURE-REPLY": "pending", "DEPRIORITIZED": "no_sla",
    }
    assert "NOT-YET" not in result  # received after T: does not exist yet


def test_at_risk_boundary_is_inclusive(con):
    # Due 2026-11-25 18:00; exactly 2 business hours before is 16:00.
    cases = [("C1", "ENT", "2026-11-24 18:30", "platform_issue")]
    assert deadlines(con, SPEC_CONFIG, cases, as_of="2026-11-25 15:59:59")["C1"][1] == "pending"
    con.execute("DELETE FROM cases; DELETE FROM clients")
    assert deadlines(con, SPEC_CONFIG, cases, as_of="2026-11-25 16:00")["C1"][1] == "at_risk"


def test_at_risk_counts_business_time_not_wall_time(con):
    # Due Monday 10:00; on Friday 17:30 only 0.5 + 1 = 1.5 business hours are left.
    config = parse_config({"calendar": {"holidays_country": ""}})
    result = deadlines(con, config, [("C1", "ENT", "2026-11-20 10:00", "platform_issue")],
                       as_of="2026-11-20 17:30")
    assert result["C1"] == (datetime(2026, 11, 23, 10, 0), "at_risk")
    hours = con.execute("SELECT business_hours_left FROM case_sla").fetchall()[0][0]
    assert hours == pytest.approx(1.5, abs=1e-9)


def test_breached_the_second_after_the_deadline(con):
    cases = [("C1", "ENT", "2026-11-23 09:00", "platform_issue")]
    result = deadlines(con, SPEC_CONFIG, cases, as_of="2026-11-23 18:00:00")
    assert result["C1"][1] == "at_risk"
    views(con, SPEC_CONFIG, local("2026-11-23 18:00:01"))
    assert con.execute("SELECT sla_state FROM case_sla").fetchall()[0][0] == "breached"


def test_every_generated_case_gets_a_deadline(con):
    add(con, SPEC_CONFIG, "clients", *CLIENTS)
    con.execute(
        """
        INSERT INTO cases (case_id, client_id, received_at, category, subject)
        SELECT 'G' || i, CASE i % 3 WHEN 0 THEN 'ENT' WHEN 1 THEN 'CUS' ELSE 'FREE' END,
               TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_minutes(i * 17), 'platform_issue', 'generated'
        FROM range(20000) t(i)
        """
    )
    views(con, SPEC_CONFIG, local("2026-12-31 00:00"))
    missing = con.execute("SELECT count(*) FROM case_sla WHERE first_response_due IS NULL").fetchall()[0][0]
    assert missing == 0
    assert con.execute("SELECT count(*) FROM case_sla").fetchall()[0][0] == 20000
    first = con.execute("SELECT first_response_due FROM case_sla WHERE case_id = 'G0'").fetchall()[0][0]
    # 2026-01-01 00:00 UTC is 08:00 on New Year's Day in Hong Kong: the clock starts Fri 09:00.
    assert first.astimezone(HKT) == local("2026-01-02 18:00")
