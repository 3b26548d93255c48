"""Reading timestamps (rules §8): ISO 8601 only, real offsets, daylight-saving gaps refused, repeats taken first."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from kb.timestamps import TimestampError, parse_timestamp

LONDON = ZoneInfo("Europe/London")
HKT = ZoneInfo("Asia/Hong_Kong")


@pytest.mark.parametrize(("text", "utc"), [
    ("2026-11-23T15:00:00+08:00", datetime(2026, 11, 23, 7, tzinfo=UTC)),
    ("2026-11-23 15:00", datetime(2026, 11, 23, 7, tzinfo=UTC)),  # no offset: local time in the support zone
    ("2026-11-23T15:00:00Z", datetime(2026, 11, 23, 15, tzinfo=UTC)),
    ("2026-11-23T15:00+0800", datetime(2026, 11, 23, 7, tzinfo=UTC)),
    ("2026-11-23T15:00:00+14:00", datetime(2026, 11, 23, 1, tzinfo=UTC)),
    ("2026-11-23T15:00:00.250-05:30", datetime(2026, 11, 23, 20, 30, 0, 250000, tzinfo=UTC)),
    ("2026-11-23", datetime(2026, 11, 22, 16, tzinfo=UTC)),
])
def test_iso_timestamps_are_read(text, utc):
    assert parse_timestamp(text, HKT) == utc


@pytest.mark.parametrize(("text", "message"), [
    ("2026-11-23T15:00:00+99:00", "has the offset +99:00, which no place on Earth uses"),
    ("2026-11-23T15:00:00+14:30", "has the offset +14:30"),
    ("2026-11-23T24:00:00", "is not an ISO 8601 timestamp"),
    ("epoch", "is not an ISO 8601 timestamp"),
    ("now", "is not an ISO 8601 timestamp"),
    ("2026-11-23 15:00 Europe/London", "is not an ISO 8601 timestamp"),
    ("２０２６-11-23 10:00", "is not an ISO 8601 timestamp"),
    ("2026-02-30 10:00", "is not a real date and time"),
])
def test_what_is_not_a_timestamp_is_refused_by_name(text, message):
    with pytest.raises(TimestampError, match=re.escape(message)):
        parse_timestamp(text, HKT)


def test_a_local_time_in_the_spring_gap_is_refused_naming_the_gap():
    with pytest.raises(TimestampError) as error:
        parse_timestamp("2026-03-29 01:30", LONDON)
    assert str(error.value) == ("'2026-03-29 01:30' does not exist in Europe/London: the clocks skip it that night "
                                "(daylight saving, UTC+00:00 to UTC+01:00)")


def test_a_local_time_that_happens_twice_is_its_first_occurrence():
    assert parse_timestamp("2026-10-25 01:30", LONDON) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # BST, not GMT
    assert parse_timestamp("2026-11-01 01:30", ZoneInfo("America/New_York")) == datetime(2026, 11, 1, 5, 30,
                                                                                        tzinfo=UTC)
