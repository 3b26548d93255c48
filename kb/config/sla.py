"""``[sla]``: the first-response and uptime defaults a contract does not set, the at-risk window, and the
team's own target for the share of cases met."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from kb.config.reading import ConfigError, decimal, percentage, positive_int, string
from kb.credits import CreditScheduleError, parse_credit_schedule


@dataclass(frozen=True)
class SlaConfig:
    at_risk_business_hours: Decimal = Decimal(2)
    enterprise_response_business_days: int = 1
    custom_response_business_days: int = 1
    default_uptime_target_pct: Decimal = Decimal("99.9")
    default_credit_schedule: str = "99.9:10, 99.0:30, 95.0:100"
    response_target_pct: Decimal = Decimal(95)  # the share of decided cases the team aims to meet
    next_response_target_pct: Decimal | None = None  # the same for follow-ups (questions); None: as above
    resolution_target_pct: Decimal | None = None  # and for resolutions; None: response_target_pct

    def met_target_pct(self, metric: str) -> Decimal:
        """The share of decided targets of ``metric`` the team aims to meet: ``[sla] {metric}_target_pct``,
        else ``response_target_pct`` (which is also the first response's)."""
        own = {"next_response": self.next_response_target_pct, "resolution": self.resolution_target_pct}.get(metric)
        return own if own is not None else self.response_target_pct


def sla_config(sla: dict) -> SlaConfig:
    """``[sla]``: the defaults a contract does not set, the at-risk window and the team's own target."""
    defaults_sla = SlaConfig()

    schedule = string(sla, "sla.default_credit_schedule", "default_credit_schedule",
                      defaults_sla.default_credit_schedule)
    try:
        parse_credit_schedule(schedule)
    except CreditScheduleError as e:
        raise ConfigError(f"sla.default_credit_schedule = {schedule!r}: {e}") from None
    target = percentage(sla, "sla.default_uptime_target_pct", "default_uptime_target_pct",
                        defaults_sla.default_uptime_target_pct)
    response_target = percentage(sla, "sla.response_target_pct", "response_target_pct",
                                 defaults_sla.response_target_pct)
    at_risk = decimal(sla, "sla.at_risk_business_hours", "at_risk_business_hours", defaults_sla.at_risk_business_hours)
    if at_risk < 0:
        raise ConfigError(f"sla.at_risk_business_hours = {at_risk} is negative")
    if at_risk > 10_000:
        raise ConfigError(f"sla.at_risk_business_hours = {at_risk} is more than 10000")

    return SlaConfig(
        at_risk_business_hours=at_risk,
        enterprise_response_business_days=positive_int(sla, "sla.enterprise_response_business_days",
                                                       "enterprise_response_business_days", 1, at_most=60),
        custom_response_business_days=positive_int(sla, "sla.custom_response_business_days",
                                                   "custom_response_business_days", 1, at_most=60),
        default_uptime_target_pct=target,
        default_credit_schedule=schedule,
        response_target_pct=response_target,
        **{f"{metric}_target_pct": percentage(sla, f"sla.{metric}_target_pct", f"{metric}_target_pct", Decimal(0))
           for metric in ("next_response", "resolution") if f"{metric}_target_pct" in sla},
    )
