"""Credit schedules: which share of the monthly fee comes back for a month's uptime.

A schedule is written as in the contracts, ``"99.9:10, 99.0:30, 95.0:100"``: uptime
below 99.9 % gives 10 % of the monthly fee, below 99.0 % gives 30 %, below 95.0 %
gives 100 %. The largest matching credit applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from kb.timestamps import NumberError, parse_number


class CreditScheduleError(ValueError):
    """A credit schedule that cannot be read."""


@dataclass(frozen=True)
class CreditTier:
    below_pct: Decimal
    credit_pct: Decimal


def parse_credit_schedule(text: str) -> tuple[CreditTier, ...]:
    """The tiers of a schedule, highest threshold first; raises CreditScheduleError."""
    if not text or not text.strip():
        raise CreditScheduleError("a credit schedule needs at least one 'uptime:credit' pair")
    tiers = []
    for part in text.split(","):
        below, sep, credit = part.partition(":")
        if not sep:
            raise CreditScheduleError(f"{part.strip()!r} is not 'uptime:credit' (e.g. '99.9:10')")
        try:  # as the contracts write numbers: no '１０' or '١٠', no NaN or inf, at most 4 decimals
            tier = CreditTier(parse_number(below.strip()), parse_number(credit.strip()))
        except NumberError:
            raise CreditScheduleError(f"{part.strip()!r} is not two numbers 'uptime:credit' written with the "
                                      "digits 0-9 and at most 4 decimals (e.g. '99.9:10')") from None
        if not (0 < tier.below_pct <= 100):
            raise CreditScheduleError(f"uptime threshold {below.strip()} is not in (0, 100]")
        if not (0 <= tier.credit_pct <= 100):
            raise CreditScheduleError(f"credit {credit.strip()} is not in [0, 100]")
        tiers.append(tier)
    thresholds = [t.below_pct for t in tiers]
    if len(set(thresholds)) != len(thresholds):
        raise CreditScheduleError("an uptime threshold appears twice")
    return tuple(sorted(tiers, key=lambda t: t.below_pct, reverse=True))
