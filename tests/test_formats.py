"""One way to show each kind of value (``kb.formats``): money, months, percentages, durations, instants,
nothing at all, and the rules' words."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from kb import formats

HKT = ZoneInfo("Asia/Hong_Kong")


@pytest.mark.parametrize(("amount", "currency", "shown"), [
    (2500, "USD", "USD 2,500.00"), (2400.5, "EUR", "EUR 2,400.50"), (Decimal("0"), "HKD", "HKD 0.00"),
    (1234567.891, "USD", "USD 1,234,567.89"), (None, "USD", "—")])
def test_money_has_its_currency_first_and_always_cents(amount, currency, shown):
    assert formats.money(amount, currency) == shown


def test_months_read_as_words():
    assert formats.month_label("2026-11") == "Nov 2026"
    assert formats.month_label("2027-01") == "Jan 2027"


@pytest.mark.parametrize(("value", "shown"), [
    (99.9, "99.90 %"), (Decimal("99.900"), "99.90 %"), (100, "100.00 %"), (95, "95.00 %"),
    (99.861111, "99.86 %"),            # a measurement: two decimals
    (99.89999, "99.89 %"),             # rounded down: just under a 99.9 % target never reads as 99.90 %
    (99.89999999999999, "99.90 %"),    # float noise is not a measurement
    (90.625, "90.62 %"), (100 / 3, "33.33 %"), (200 / 3, "66.66 %"), (None, "—"), (float("nan"), "—")])
def test_one_precision_rule_for_percentages(value, shown):
    assert formats.percent(value) == shown


@pytest.mark.parametrize(("value", "shown"), [
    (99.9, "99.90 %"), (Decimal("95"), "95.00 %"), (Decimal("99.995"), "99.995 %"), (12.5, "12.50 %"),
    (None, "—")])
def test_a_contracts_own_figure_is_never_rounded(value, shown):
    assert formats.term(value) == shown


@pytest.mark.parametrize(("hours", "shown"), [
    (27, "1 d 3 h"), (48, "2 d"), (3, "3 h"), (3 + 20 / 60, "3 h 20 min"), (0.75, "45 min"), (0, "0 min"),
    (-16.2 / 60, "-16 min"), (None, "—")])
def test_durations(hours, shown):
    assert formats.duration(hours) == shown


def test_business_time_counts_business_days():
    assert formats.duration(12, day_hours=9) == "1 d 3 h"


@pytest.mark.parametrize(("hours", "shown"), [
    (1.5, "1 h 30 min"), (-3, "overdue 3 h"), (-612.0, "overdue 68 d"), (None, "—"), (float("nan"), "—")])
def test_time_left_before_a_deadline(hours, shown):
    assert formats.time_left(hours, day_hours=9) == shown


def test_instants_are_in_the_support_zone_with_the_offset():
    moment = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)
    assert formats.instant(moment, HKT) == "Wed 2026-11-25 16:30 HKT (UTC+08:00)"
    assert formats.instant("2026-11-23T15:00:00+08:00", HKT) == "Mon 2026-11-23 15:00 HKT (UTC+08:00)"
    assert formats.instant(None, HKT) == formats.instant(pd.NaT, HKT) == "—"
    london = ZoneInfo("Europe/London")
    assert formats.instant(datetime(2026, 7, 1, 12, 0, tzinfo=UTC), london) == "Wed 2026-07-01 13:00 BST (UTC+01:00)"
    frame = pd.DataFrame({"when": pd.to_datetime([moment, None], utc=True)})
    assert formats.instants(frame, HKT, "when").when.tolist() == ["Wed 2026-11-25 16:30 HKT (UTC+08:00)", "—"]


def test_nothing_and_nobody():
    assert [formats.text(v) for v in (None, "", "  ", float("nan"), "x")] == ["—", "—", "—", "—", "x"]
    assert [formats.assignee(v) for v in (None, "", "amy")] == ["(unassigned)", "(unassigned)", "amy"]


def test_the_rules_words():
    frame = pd.DataFrame({"category": ["platform_issue", "api_help", "general_coding"],
                          "tier": ["enterprise", "custom", "free"], "sla_state": ["at_risk", "no_sla", "met"],
                          "subject": ["api_help", "x", "y"]})
    shown = formats.in_words(frame)
    assert shown.category.tolist() == ["Platform issue", "API help", "General coding"]
    assert shown.tier.tolist() == ["Enterprise", "Custom program", "Free"]
    assert shown.sla_state.tolist() == ["At risk", "No deadline", "Met"]
    assert shown.subject.tolist() == ["api_help", "x", "y"]  # text someone typed stays as typed
    assert formats.word("impact", "maintenance") == "Maintenance"
    assert formats.verdict(True) == "On target" and formats.verdict(False) == "Below target"


def test_fields_by_their_labels():
    assert formats.field_label("client_id") == "Client ID"
    assert formats.field_label("received_at") == "Received"
    assert formats.field_label("email_domain") == "Email domain"
    assert formats.field_label("void_reason") == "Reason"


def test_credit_schedules_in_words():
    assert formats.schedule("99.9:10, 95:100") == ("below 99.90 % uptime → 10.00 % of the fee; "
                                                   "below 95.00 % uptime → 100.00 % of the fee")
    assert formats.schedule(None, "99:30") == "below 99.00 % uptime → 30.00 % of the fee (default)"
    assert formats.schedule("99.9").startswith("unreadable: ")


def test_counts_of_things_are_plural_by_the_count():
    assert formats.count(1, "environment") == "1 environment"
    assert [formats.count(n, "case") for n in (0, 2, 1234)] == ["0 cases", "2 cases", "1,234 cases"]
    assert formats.count(2, "entry", "entries") == "2 entries"


def test_the_audit_trails_codes_in_words():
    assert [formats.word("action", a) for a in ("breach_reason", "undo_resolve", "record_response")] == [
        "Breach reason", "Undo resolve", "Record response"]
    assert [formats.word("table_name", t) for t in ("api_tokens", "cases", "mail_quarantine")] == [
        "API tokens", "Cases", "Mail quarantine"]
    assert formats.word("action", "some_new_code") == "Some new code"


@pytest.mark.parametrize(("minutes", "shown"), [
    (44.64, "44 min"), (45.0, "45 min"), (44.999999999, "45 min"), (13.64, "13 min"), (120.0, "2 h"),
    (-0.4, "-1 min"), (-13.2, "-14 min"), (0.0, "0 min"), (None, "—"),
])
def test_an_error_budget_left_is_never_read_as_more_than_there_is(minutes, shown):
    assert formats.budget_left(minutes) == shown
