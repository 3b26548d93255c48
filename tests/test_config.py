"""Configuration: the shipped file loads, and each bad value is named with its key."""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal

import pytest

from kb.config import ConfigError, load_config, parse_config
from kb.credits import CreditScheduleError, parse_credit_schedule
from kb.formats import schedule


def test_shipped_configuration_is_the_specs():
    config = load_config()
    assert config.calendar.timezone == "Asia/Hong_Kong"
    assert (config.calendar.opens, config.calendar.closes) == (time(9), time(18))
    assert config.calendar.weekend == (5, 6)
    assert config.calendar.business_day_seconds == 9 * 3600
    assert config.sla.default_uptime_target_pct == Decimal("99.9")
    assert config.sla.at_risk_business_hours == 2


@pytest.mark.parametrize(("raw", "message"), [
    ({"calendar": {"timezone": "Mars/Olympus"}}, "calendar.timezone = 'Mars/Olympus' is not an IANA time zone"),
    ({"calendar": {"business_hours": ["18:00", "09:00"]}}, "close 09:00 is not after open 18:00"),
    ({"calendar": {"business_hours": ["9am", "6pm"]}}, "calendar.business_hours: '9am' is not a time of day"),
    ({"calendar": {"weekend": ["Sat", "Sunday"]}}, "calendar.weekend: 'Sunday' is not a weekday name"),
    ({"calendar": {"holidays_country": "XX"}}, "calendar.holidays_country = 'XX' is not a country code"),
    ({"calendar": {"holidays_country": "GB", "holidays_subdivision": "ZZZ"}},
     "calendar.holidays_subdivision = 'ZZZ' is not a subdivision of 'GB'"),
    ({"calendar": {"extra_holidays": ["2026-02-30"]}}, "calendar.extra_holidays: '2026-02-30' is not an ISO date"),
    ({"sla": {"default_credit_schedule": "99.9=10"}}, "sla.default_credit_schedule = '99.9=10'"),
    ({"calendar": {"timezone": "localtime"}}, "calendar.timezone = 'localtime' is not an IANA time zone"),
    ({"calendar": {"timezone": "right/UTC"}}, "calendar.timezone = 'right/UTC' is not an IANA time zone"),
    ({"calendar": {"timezone": "posix/Europe/London"}}, "'posix/Europe/London' is not an IANA time zone"),
    ({"sla": {"default_credit_schedule": "99.9:１０"}}, "written with the digits 0-9"),
    ({"sla": {"default_credit_schedule": "99.9:١٠"}}, "written with the digits 0-9"),
    ({"sla": {"default_credit_schedule": "NaN:10"}}, "sla.default_credit_schedule = 'NaN:10'"),
    ({"sla": {"default_credit_schedule": "99.9:inf"}}, "sla.default_credit_schedule = '99.9:inf'"),
    ({"sla": {"default_uptime_target_pct": 120}}, "= 120 must be a percentage in (0, 100]"),
    ({"sla": {"default_uptime_target_pct": float("nan")}}, "sla.default_uptime_target_pct = nan must be a finite"),
    ({"sla": {"default_uptime_target_pct": float("inf")}}, "sla.default_uptime_target_pct = inf must be a finite"),
    ({"sla": {"default_uptime_target_pct": 0.00001}}, "sla.default_uptime_target_pct = 1e-05 must be a percentage"),
    ({"sla": {"response_target_pct": 0}}, "sla.response_target_pct = 0 must be a percentage in (0, 100]"),
    ({"sla": {"enterprise_response_business_days": 0}}, "sla.enterprise_response_business_days = 0 must be"),
    ({"sla": {"at_risk_business_hours": "two"}}, "sla.at_risk_business_hours = 'two' must be a number"),
    ({"roles": {"owner": ["a@b.c"]}}, "roles.owner: unknown role"),
])
def test_bad_values_are_named(raw, message):
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert message in str(error.value)


def test_unreadable_file_is_named(tmp_path):
    path = tmp_path / "support.toml"
    path.write_text("[calendar\ntimezone = 1")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_credit_schedule_reads_in_words():
    assert schedule("99.9:10, 99.0:30, 95.0:100") == (
        "below 99.90 % uptime → 10.00 % of the fee; below 99.00 % uptime → 30.00 % of the fee; "
        "below 95.00 % uptime → 100.00 % of the fee")
    assert schedule("", "99.995:10") == "below 99.995 % uptime → 10.00 % of the fee (default)"
    assert [t.below_pct for t in parse_credit_schedule("95:100, 99.9:10")] == [Decimal("99.9"), Decimal("95")]


@pytest.mark.parametrize("text", ["", "99.9", "abc:10", "101:10", "99:120", "99:10, 99:20", "99.9:１０", "٩٩:10",
                                  "NaN:10", "99:inf", "99.9:1e1", "99.99999:10"])
def test_bad_credit_schedules(text):
    with pytest.raises(CreditScheduleError):
        parse_credit_schedule(text)


@pytest.mark.parametrize(("raw", "message"), [
    ({"sla": {"default_uptime_target_pct": "٩٠"}}, "sla.default_uptime_target_pct = '٩٠' must be a number written "
                                                  "with the digits 0-9"),
    ({"sla": {"response_target_pct": "９５"}}, "sla.response_target_pct = '９５' must be a number written"),
    ({"sla": {"at_risk_business_hours": "２"}}, "sla.at_risk_business_hours = '２' must be a number written"),
    ({"sla": {"at_risk_business_hours": "1_000"}}, "sla.at_risk_business_hours = '1_000' must be a number written"),
    ({"sla": {"at_risk_business_hours": "-1"}}, "sla.at_risk_business_hours = '-1' must be a number written"),
    ({"sla": {"enterprise_response_business_days": "١"}}, "sla.enterprise_response_business_days = '١' must be"),
    ({"backup": {"every_hours": "２４"}}, "backup.every_hours = '２４' must be a number written with the digits 0-9"),
    ({"backup": {"keep": "７"}}, "backup.keep = '７' must be a whole number"),
    ({"mail": {"poll_seconds": "٦٠"}}, "mail.poll_seconds = '٦٠' must be a whole number"),
    ({"monitoring": {"stale_after_days": "７"}}, "monitoring.stale_after_days = '７' must be a whole number"),
    ({"calendar": {"business_hours": ["٠٩:٣٠", "18:00"]}}, "calendar.business_hours: '٠٩:٣٠' is not a time of day"),
    ({"calendar": {"business_hours": ["09:00", "１８:００"]}}, "calendar.business_hours: '１８:００' is not a time"),
    ({"calendar": {"business_hours": ["9:00", "18:00"]}}, "calendar.business_hours: '9:00' is not a time of day"),
    ({"calendar": {"business_hours": [" 09:00", "18:00"]}}, "calendar.business_hours: ' 09:00' is not a time"),
    ({"calendar": {"extra_holidays": ["２０２６-１２-２４"]}},
     "calendar.extra_holidays: '２０２６-１２-２４' is not an ISO date"),
    ({"calendar": {"working_days": ["20261224"]}}, "calendar.working_days: '20261224' is not an ISO date"),
    ({"alerts": {"digest_at": "٠٩:٠٠"}}, "alerts.digest_at: '٠٩:٠٠' is not a time of day"),
    ({"alerts": {"quiet_hours": ["２０:００", "08:00"]}}, "alerts.quiet_hours: '２０:００' is not a time of day"),
    ({"sla": {"default_credit_schedule": "٩٩.٩:10"}}, "sla.default_credit_schedule = '٩٩.٩:10'"),
])
def test_numbers_times_and_dates_in_other_digits_are_refused(raw, message):
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert message in str(error.value)


def test_numbers_times_and_dates_in_ascii_digits_are_read():
    config = parse_config({
        "calendar": {"business_hours": ["09:30", "18:00"], "extra_holidays": ["2026-12-24"]},
        "sla": {"default_uptime_target_pct": "99.95", "response_target_pct": 90, "at_risk_business_hours": "1.5"},
        "backup": {"every_hours": "12", "keep": 3},
        "alerts": {"digest_at": "08:45", "quiet_hours": ["20:00", "08:00"]},
    })
    assert (config.calendar.opens, config.calendar.closes) == (time(9, 30), time(18))
    assert config.calendar.extra_holidays == (date(2026, 12, 24),)
    assert config.sla.default_uptime_target_pct == Decimal("99.95")
    assert config.sla.response_target_pct == Decimal(90)
    assert config.sla.at_risk_business_hours == Decimal("1.5")
    assert (config.backup.every_hours, config.backup.keep) == (Decimal(12), 3)
    assert config.alerts.digest_at == time(8, 45)
    assert config.alerts.quiet_hours == (time(20), time(8))
