"""Monthly uptime, error budgets and service credits (rules §5 and 6)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kb.config import parse_config
from kb.reads.exports import report_sql
from tests.fixtures import SPEC_CONFIG, add, local, views

NEW_YORK = parse_config({"calendar": {"timezone": "America/New_York", "holidays_country": "US"}})


def setup_environment(con, config=SPEC_CONFIG, active_from="2026-01-01", contract=None, kind="dedicated"):
    add(con, config, "clients", dict(client_id="ENT", name="Enterprise Co", tier="enterprise"))
    add(con, config, "environments", dict(environment_id="E", name="Prod", kind=kind,
                                          deployment="on_premise" if kind == "dedicated" else "shared_cloud",
                                          client_id="ENT", active_from=active_from))
    if contract is not None:
        add(con, config, "contracts", dict(contract_id="K", client_id="ENT", environment_id="E",
                                           monthly_fee=1000, currency="USD", starts_on="2026-01-01", **contract))


def incidents(con, *rows, config=SPEC_CONFIG):
    add(con, config, "incidents", *[
        dict(incident_id=f"I{n}", environment_id="E", impact=impact, started_at=start, ended_at=end or "")
        for n, (impact, start, end) in enumerate(rows)
    ])


def uptime(con, as_of, config=SPEC_CONFIG, zone=None):
    views(con, config, local(as_of, zone or config.calendar.zone))
    return {row[0]: row[1:] for row in con.execute(
        "SELECT month, downtime_minutes, uptime_pct, budget_left_minutes, target_met, status, period_us "
        "FROM env_uptime WHERE environment_id = 'E' ORDER BY month").fetchall()}


def refunds(con):
    return {row[0]: row[1:] for row in con.execute(
        "SELECT month, uptime_pct, credit_pct, refund_amount, status FROM contract_refunds ORDER BY month"
    ).fetchall()}


def test_spec_refund_example(con):
    setup_environment(con, contract={"uptime_target_pct": "99.9"})
    incidents(con, ("outage", "2026-11-03 10:00", "2026-11-03 10:30"),
              ("outage", "2026-11-03 10:15", "2026-11-03 11:00"),
              ("maintenance", "2026-11-03 02:00", "2026-11-03 04:00"))
    november = uptime(con, "2026-12-05 00:00")["2026-11"]
    assert november[0] == 60.0
    assert november[1] == pytest.approx(99.861111, abs=1e-6)
    assert november[4] == "final"
    assert refunds(con)["2026-11"] == (pytest.approx(99.861111, abs=1e-6), Decimal("10"), Decimal("100.00"), "final")


def test_exactly_at_target_is_met(con):
    # 43 min 12 s in a 30-day month at 99.9 % is exactly the budget.
    setup_environment(con, contract={"uptime_target_pct": "99.9"})
    incidents(con, ("outage", "2026-11-10 10:00:00", "2026-11-10 10:43:12"))
    november = uptime(con, "2026-12-05 00:00")["2026-11"]
    assert november[2] == 0.0 and november[3] is True
    assert refunds(con)["2026-11"][1:3] == (Decimal("0"), Decimal("0.00"))


def test_one_second_over_target_is_missed_and_credited(con):
    setup_environment(con, contract={"uptime_target_pct": "99.9"})
    incidents(con, ("outage", "2026-11-10 10:00:00", "2026-11-10 10:43:13"))
    assert uptime(con, "2026-12-05 00:00")["2026-11"][3] is False
    assert refunds(con)["2026-11"][1:3] == (Decimal("10"), Decimal("100.00"))


def test_the_100_percent_credit_tier(con):
    setup_environment(con, contract={"uptime_target_pct": "99.9"})
    incidents(con, ("outage", "2026-11-01 00:00", "2026-11-03 00:00"))  # 2 days of 30: 93.33 %
    uptime(con, "2026-12-05 00:00")
    assert refunds(con)["2026-11"][1:3] == (Decimal("100"), Decimal("1000.00"))


def test_custom_credit_schedule_and_the_largest_matching_credit(con):
    setup_environment(con, contract={"credit_schedule": "99.5:5, 99:20, 98:60"})
    incidents(con, ("outage", "2026-11-10 00:00", "2026-11-10 09:00"))  # 540 min of 43 200: 98.75 %
    uptime(con, "2026-12-05 00:00")
    assert refunds(con)["2026-11"][1:3] == (Decimal("20"), Decimal("200.00"))


def test_overlapping_and_month_spanning_incidents(con):
    setup_environment(con)
    incidents(con, ("outage", "2026-10-31 23:00", "2026-11-01 01:00"),  # 60 min each side of midnight
              ("outage", "2026-10-31 23:30", "2026-10-31 23:45"),  # inside the first: counts once
              ("degraded", "2026-11-02 10:00", "2026-11-02 12:00"),  # shown, not downtime
              ("outage", "2026-11-05 10:00", "2026-11-05 10:10"),
              ("outage", "2026-11-05 10:10", "2026-11-05 10:20"))  # touching: 20 min
    months = uptime(con, "2026-12-05 00:00")
    assert months["2026-10"][0] == 60.0
    assert months["2026-11"][0] == 80.0


def test_ongoing_incident_lasts_until_t_and_the_month_is_projected(con):
    setup_environment(con, contract={"uptime_target_pct": "99.9"})
    incidents(con, ("outage", "2026-11-20 10:00", None))
    november = uptime(con, "2026-11-20 10:30")["2026-11"]
    assert november[0] == 30.0
    assert november[4] == "projected"
    assert november[2] == pytest.approx(13.2)
    assert refunds(con)["2026-11"][3] == "projected"


def test_incident_ending_after_t_has_not_ended_yet(con):
    setup_environment(con)
    incidents(con, ("outage", "2026-11-20 10:00", "2026-11-20 12:00"), ("outage", "2026-11-21 10:00", None))
    assert uptime(con, "2026-11-20 11:00")["2026-11"][0] == 60.0  # the second one has not started


def test_active_from_shortens_the_measured_period(con):
    setup_environment(con, active_from="2026-11-16")  # 15 days of November
    incidents(con, ("outage", "2026-11-20 10:00", "2026-11-20 10:30"))
    months = uptime(con, "2026-12-05 00:00")
    assert list(months) == ["2026-11", "2026-12"]
    assert months["2026-11"][5] == 15 * 86_400_000_000
    assert months["2026-11"][1] == pytest.approx(100 * (1 - 30 / (15 * 1440)), abs=1e-6)


def test_dst_months_have_their_true_length(con):
    setup_environment(con, NEW_YORK)
    months = uptime(con, "2026-12-05 00:00", NEW_YORK)
    assert months["2026-03"][5] == (31 * 24 - 1) * 3_600_000_000
    assert months["2026-11"][5] == (30 * 24 + 1) * 3_600_000_000
    assert months["2026-06"][5] == 30 * 24 * 3_600_000_000


def test_budget_is_against_the_true_month_length(con):
    setup_environment(con, NEW_YORK)
    months = uptime(con, "2026-12-05 00:00", NEW_YORK)
    assert months["2026-11"][2] == pytest.approx(0.001 * (30 * 24 + 1) * 60, abs=0.005)


def test_contract_with_ends_on_covers_its_months_only(con):
    setup_environment(con, contract={"ends_on": "2026-09-30"})
    uptime(con, "2026-12-05 00:00")
    assert list(refunds(con)) == [f"2026-{m:02d}" for m in range(1, 10)]
    assert {row[3] for row in refunds(con).values()} == {"final"}


def test_refunds_run_to_the_month_holding_t(con):
    setup_environment(con, contract={})
    uptime(con, "2026-03-15 12:00")
    assert list(refunds(con)) == ["2026-01", "2026-02", "2026-03"]
    assert refunds(con)["2026-03"][3] == "projected"
    assert refunds(con)["2026-02"][3] == "final"


def test_shared_environment_without_contract_has_no_target(con):
    setup_environment(con, kind="shared")
    november = uptime(con, "2026-11-20 10:30")["2026-11"]
    assert november[2] is None and november[3] is None


def test_a_contract_without_a_target_counts_at_the_default_when_it_overlaps_one_with_a_lower_target(con):
    # A (99.0 %) ends mid-November; its renewal B has no target of its own, so it holds [sla]'s 99.9 %.
    # November is covered by both: its target is the higher, 99.9 %, not A's 99.0 % alone.
    setup_environment(con)
    add(con, SPEC_CONFIG, "contracts",
        dict(contract_id="A", client_id="ENT", environment_id="E", uptime_target_pct="99.0", monthly_fee=1000,
             currency="USD", starts_on="2026-10-01", ends_on="2026-11-15"),
        dict(contract_id="B", client_id="ENT", environment_id="E", monthly_fee=2000, currency="EUR",
             starts_on="2026-11-01"))
    # 100 min of 43 200: within 99.0 % (432 min of budget), not within 99.9 % (43.2 min).
    incidents(con, ("outage", "2026-11-10 10:00", "2026-11-10 11:40"))
    views(con, SPEC_CONFIG, local("2026-12-05 00:00"))
    months = {row[0]: row[1:] for row in con.execute(
        "SELECT month, target_pct, budget_minutes, budget_left_minutes, target_met, downtime_us, period_us, target_bp "
        "FROM env_uptime WHERE environment_id = 'E' AND month >= '2026-09' ORDER BY month").fetchall()}
    assert months["2026-09"][0] == 99.9  # no contract: a dedicated environment takes the default
    assert months["2026-10"][:4] == (99.0, 446.4, 446.4, True)  # A alone: 1 % of 31 days
    target, budget, left, met, downtime_us, period_us, target_bp = months["2026-11"]
    assert target == 99.9 and target_bp == 999_000
    assert budget == 43.2 and left == -56.8
    assert met is False
    assert (downtime_us, period_us) == (100 * 60_000_000, 30 * 86_400_000_000)
    assert (1_000_000 - target_bp) * period_us == 2_592_000_000 * 1_000_000  # 43 min 12 s, exactly
    assert months["2026-12"][:3] == (99.9, 44.64, 44.64)  # B alone

    # The export: one row per contract and covered month (A through November, which holds its ends_on; B from
    # November to the month holding T), each credited by its own schedule (the default) on the month's uptime.
    export = con.execute(f"SELECT contract_id, month, credit_pct, refund_amount, currency, status "
                         f"FROM ({report_sql('refunds', SPEC_CONFIG)})").fetchall()
    assert export == [
        ("A", "2026-10", Decimal("0"), Decimal("0.00"), "USD", "final"),
        ("A", "2026-11", Decimal("10"), Decimal("100.00"), "USD", "final"),
        ("B", "2026-11", Decimal("10"), Decimal("200.00"), "EUR", "final"),
        ("B", "2026-12", Decimal("0"), Decimal("0.00"), "EUR", "projected"),
    ]
    uptime_pct = {row[0]: row[1] for row in con.execute(
        f"SELECT DISTINCT month, uptime_pct FROM ({report_sql('refunds', SPEC_CONFIG)})").fetchall()}
    assert uptime_pct["2026-11"] == Decimal("99.768519")
    # Each contract's own target as the terms behind its credits say it: B's is the default.
    assert dict(con.execute("SELECT contract_id, uptime_target_pct FROM contract_refunds "
                            "WHERE month = '2026-11'").fetchall()) == {"A": Decimal("99.0"), "B": Decimal("99.9")}


def test_a_dated_change_of_the_uptime_target_and_credits_leaves_the_months_before_it_as_they_were(con):
    setup_environment(con, contract={})  # the contract takes the defaults of [sla]
    incidents(con, ("outage", "2026-11-03 10:00", "2026-11-03 11:00"),
              ("outage", "2026-12-03 10:00", "2026-12-03 11:00"))
    changed = parse_config({"calendar": {"timezone": "Asia/Hong_Kong", "holidays_country": "HK",
                                         "extra_holidays": ["2026-11-27"]},
                            "sla": {"changes": [{"from": "2026-12-01", "default_uptime_target_pct": 99.8,
                                                 "default_credit_schedule": "99.8:5"}]}})
    before = uptime(con, "2027-01-05 00:00"), refunds(con)
    after = uptime(con, "2027-01-05 00:00", config=changed), refunds(con)
    assert after[0]["2026-11"] == before[0]["2026-11"] and after[1]["2026-11"] == before[1]["2026-11"]
    assert before[0]["2026-11"][3] is False and before[1]["2026-11"][1] == Decimal("10")
    # December, 60 minutes down of 31 days (99.866 %): missed at 99.9 %, met at 99.8 %
    assert before[0]["2026-12"][3] is False and before[1]["2026-12"][1] == Decimal("10")
    assert after[0]["2026-12"][3] is True and after[1]["2026-12"][1] == Decimal("0")
