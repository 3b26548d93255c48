"""``GET /metrics``: SLA health in the Prometheus text format (version 0.0.4), from the store's snapshot.

Every figure is read from ``Store.snapshot()`` (the as-of tables shared with the pages, renewed by any
write and at least once a minute), and the text is kept for as long as that snapshot is: a warm
scrape costs a lookup, not a query.
"""

from __future__ import annotations

import math
import threading

import pandas as pd

from kb.engine.periods import day_bounds, month_days, months_of
from kb.engine.targets import DECIDED, FIRST_RESPONSE, STATES, TARGETS
from kb.formats import WORDS
from kb.health import Pipeline
from kb.reads.met import every_target, met_shares
from kb.store import Snapshot, Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_cache_lock = threading.Lock()
_cache: dict[int, tuple[tuple, str]] = {}


def metrics_text(store: Store) -> str:
    """The exposition for now (or ``$SUPPORT_AS_OF``'s frozen instant, as the pages)."""
    snap = store.snapshot(frozen_as_of(store))
    key = (snap.as_of, snap.version)
    with _cache_lock:
        cached = _cache.get(id(store))
        if cached is not None and cached[0] == key:
            return cached[1]
    text = render(store, snap)
    with _cache_lock:
        _cache[id(store)] = (key, text)
    return text


def frozen_as_of(store: Store):
    """``$SUPPORT_AS_OF``'s instant, which freezes the pages and the service at it; None: now."""
    import os

    from kb.timestamps import parse_as_of

    frozen = os.environ.get("SUPPORT_AS_OF")
    return parse_as_of(frozen, store.config.calendar.zone, name="SUPPORT_AS_OF") if frozen else None


def render(store: Store, snap: Snapshot) -> str:
    months = months_of(store.config.calendar, snap.as_of)
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples) -> None:
        out.extend(_family(name, kind, help_text, samples))

    open_targets = store.query(open_by_state_sql(), snapshot=snap)
    open_cases = open_targets[open_targets.metric == FIRST_RESPONSE.metric]
    family("support_open_cases", "gauge", "Open (unresolved) cases by tier and first-response state.",
           [({"tier": r.tier, "state": r.state}, r.n) for r in open_cases.itertuples()])
    family("support_open_targets", "gauge",
           "Open targets by metric, tier and state: unresolved cases for first response and resolution, "
           "unanswered client questions for follow-ups (next_response).",
           [({"metric": r.metric, "tier": r.tier, "state": r.state}, r.n) for r in open_targets.itertuples()])

    shares = met_this_month(store, snap)
    family("support_met_ratio", "gauge",
           "Share (0-1) of the targets due this month that were met, of those decided, by metric and tier: cases "
           "for first response and resolution, client questions for follow-ups (NaN: none decided yet).",
           [({"metric": r.metric, "tier": r.tier, "month": months.this}, _ratio(r.pct_met))
            for r in shares.itertuples()])
    family("support_decided_targets", "gauge",
           "Targets due this month that are decided (met or breached), by metric, tier and outcome.",
           [({"metric": r.metric, "tier": r.tier, "month": months.this, "outcome": outcome}, getattr(r, outcome))
            for r in shares.itertuples() for outcome in DECIDED])
    first_responses = shares[shares.metric == FIRST_RESPONSE.metric]
    family("support_response_met_ratio", "gauge",
           "Share (0-1) of cases due this month whose first response met its deadline, by tier "
           "(NaN: none decided yet; support_met_ratio has every metric).",
           [({"tier": r.tier, "month": months.this}, _ratio(r.pct_met)) for r in first_responses.itertuples()])
    family("support_response_decided_cases", "gauge",
           "Cases due this month with a decided first response (met or breached), by tier and outcome.",
           [({"tier": r.tier, "month": months.this, "outcome": outcome}, getattr(r, outcome))
            for r in first_responses.itertuples() for outcome in DECIDED])

    uptime = store.query(
        "SELECT environment_id, kind, uptime_pct, budget_left_minutes, target_pct FROM env_uptime "
        "WHERE month = ? ORDER BY environment_id", [months.this], snap)
    family("support_environment_uptime_ratio", "gauge", "Uptime (0-1) of each environment this month, so far.",
           [({"environment": r.environment_id, "kind": r.kind, "month": months.this}, _ratio(r.uptime_pct))
            for r in uptime.itertuples()])
    with_target = uptime[uptime["target_pct"].notna()]
    family("support_environment_error_budget_left_minutes", "gauge",
           "Downtime left this month before the environment misses its uptime target (negative: missed).",
           [({"environment": r.environment_id, "kind": r.kind, "month": months.this}, r.budget_left_minutes)
            for r in with_target.itertuples()])

    refunds = store.query(
        "SELECT currency, sum(refund_amount) AS amount, count(*) FILTER (WHERE refund_amount > 0) AS credited "
        "FROM contract_refunds WHERE month = ? GROUP BY currency ORDER BY currency", [months.this], snap)
    family("support_projected_refunds", "gauge", "Service credits projected for this month, by currency.",
           [({"currency": r.currency, "month": months.this}, r.amount) for r in refunds.itertuples()])
    family("support_snapshot_timestamp_seconds", "gauge", "The instant these figures are computed as of.",
           [({}, snap.as_of.timestamp())])
    out += mail_quarantine_lines(store)
    return "\n".join(out) + "\n"


def open_by_state_sql() -> str:
    """Open targets by metric, tier and state, every combination (0 when none): per case target, the
    unresolved cases (``open_case_sla``) by its state; per question target, the unanswered questions."""
    rows = []
    for target in TARGETS:
        source = "open_case_sla" if target.per == "case" else "case_questions WHERE responded_at IS NULL"
        rows.append(f"SELECT '{target.metric}' AS metric, tier, {target.col('state')} AS state FROM {source}")
    return f"""
        SELECT m.metric, t.tier, s.state, count(o.metric) AS n
        FROM {_ranked("m", "metric", (t.metric for t in TARGETS))} CROSS JOIN {_ranked("t", "tier", WORDS["tier"])}
        CROSS JOIN {_ranked("s", "state", STATES)}
        LEFT JOIN ({" UNION ALL ".join(rows)}) o ON o.metric = m.metric AND o.tier = t.tier AND o.state = s.state
        GROUP BY m.metric, m.rank, t.tier, t.rank, s.state, s.rank ORDER BY m.rank, t.rank, s.rank"""


def met_this_month(store: Store, snap: Snapshot) -> pd.DataFrame:
    """``met_shares`` by tier over the month holding T: a row for every tier and metric (0 of 0 where nothing
    was decided), tiers as the rules list them, metrics in ``TARGETS`` order."""
    calendar = store.config.calendar
    start, end = day_bounds(calendar, *month_days(calendar, snap.as_of))
    shares = met_shares(store, snap, start, end, by=("tier",))
    return pd.concat([every_target(shares[shares.tier == tier]).assign(tier=tier) for tier in WORDS["tier"]],
                     ignore_index=True)


def _ranked(alias: str, column: str, values) -> str:
    """``values`` as a one-column table ``alias(column, rank)``, ranked in their order."""
    rows = ", ".join(f"('{value}', {rank})" for rank, value in enumerate(values))
    return f"(VALUES {rows}) {alias}({column}, rank)"


def mail_quarantine_lines(store: Store) -> list[str]:
    """``support_mail_quarantined_messages``: messages held in the mail quarantine, by mailbox (each configured
    mailbox, 0 when it holds none; ``import`` for ``mail import``)."""
    from kb.reads.mail import held_by_folder

    held = dict.fromkeys((box.name for box in store.config.mail.mailboxes), 0)
    for (mailbox, _folder), n in held_by_folder(store).items():
        held[mailbox] = held.get(mailbox, 0) + n
    return _family("support_mail_quarantined_messages", "gauge",
                   "Messages set aside in the mail quarantine, waiting for an admin to retry or discard them.",
                   [({"mailbox": mailbox}, n) for mailbox, n in sorted(held.items())])


def pipeline_text(store: Store, pipelines: list[Pipeline]) -> str:
    """How each background job and webhook is doing (``kb.health``), and what waits to be delivered.
    Read live at each scrape: these move with every run, not with the snapshot."""
    with store.reader() as cur:
        alerts, statements = cur.execute(
            "SELECT count(*) FILTER (WHERE kind <> 'statement'), count(*) FILTER (WHERE kind = 'statement') "
            "FROM alert_deliveries WHERE sent_at IS NULL AND withdrawn_at IS NULL").fetchall()[0]
    success = [({"job": p.job}, p.record.last_success.timestamp() if p.record.last_success else math.nan)
               for p in pipelines]
    return "\n".join([
        *_family("support_job_last_success_timestamp_seconds", "gauge",
                 "When each background job (per mailbox for mail) or webhook last succeeded (NaN: not yet).", success),
        *_family("support_job_consecutive_failures", "gauge",
                 "Failed runs (or refused deliveries) of each job or webhook since its last success.",
                 [({"job": p.job}, p.record.consecutive_failures) for p in pipelines]),
        *_family("support_job_failing", "gauge", "1 when the job or webhook is failing (what /healthz names).",
                 [({"job": p.job}, int(p.failing)) for p in pipelines]),
        *_family("support_undelivered_alerts", "gauge",
                 "Alert deliveries recorded but not taken by the mail or webhook server yet.", [({}, alerts)]),
        *_family("support_undelivered_statements", "gauge",
                 "Monthly statements recorded but not taken by the mail server yet.", [({}, statements)]),
    ]) + "\n"


def _family(name: str, kind: str, help_text: str, samples) -> list[str]:
    """One metric family in the exposition format: its help, its type, a line per (labels, value) sample."""
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}",
            *(f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples)]


def _ratio(pct) -> float:
    return math.nan if pct is None or _isnan(pct) else float(pct) / 100


def _isnan(value) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def _number(value) -> str:
    if value is None or _isnan(value):
        return "NaN"
    number = float(value)
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    escaped = (f'{key}="{str(value).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
               .replace("\n", "\\n") for key, value in labels.items())
    return "{" + ",".join(escaped) + "}"
