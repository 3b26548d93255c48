"""The statement as a PDF: Typst typesets ``statement.typ`` with the statement's values as JSON input, and
vl-convert draws the daily downtime chart. Both are pip packages that carry their own fonts and engines:
no browser, no system fonts.

Names, subjects and summaries come from clients and cases: each is set on one line, inside a
bidirectional isolate when it holds right-to-left letters or direction controls, with those controls
shown as U+FFFD (``kb.alerts.text.isolated``), so a U+202E in a client's name cannot reverse the words
after it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

import altair as alt
import pandas as pd
import typst
import vl_convert

from kb import formats
from kb.alerts.text import isolated
from kb.engine.targets import TARGETS, Target
from kb.reads.met import share_in_words
from kb.statement.content import DUE_STATES, Statement

TEMPLATE = Path(__file__).with_name("statement.typ")


def statement_pdf(statement: Statement, timezone: str) -> bytes:
    """The PDF bytes of ``statement``."""
    with tempfile.TemporaryDirectory(prefix="statement-") as folder:
        (Path(folder) / "statement.typ").write_bytes(TEMPLATE.read_bytes())
        (Path(folder) / "daily.png").write_bytes(daily_chart_png(statement))
        return typst.compile(str(Path(folder) / "statement.typ"), root=folder, ignore_system_fonts=True,
                             sys_inputs={"data": json.dumps(_values(statement, timezone))})


def daily_chart_png(statement: Statement) -> bytes:
    """Downtime minutes per day of the month, one colour per environment (by name)."""
    names = dict(zip(statement.uptime.environment_id, statement.uptime.environment_name, strict=True))
    frame = statement.daily.assign(day=pd.to_datetime(statement.daily.day).dt.strftime("%d"),
                                   environment=statement.daily.environment_id.map(names))
    chart = alt.Chart(frame, width=620, height=160, title="Downtime per day (minutes)").mark_bar().encode(
        x=alt.X("day:O", title=formats.month_label(statement.month), axis=alt.Axis(labelAngle=0)),
        y=alt.Y("downtime_minutes:Q", title="minutes"),
        color=alt.Color("environment:N", title="Environment", legend=alt.Legend(orient="bottom")),
    )
    return vl_convert.vegalite_to_png(chart.to_json(), scale=2)


def _values(s: Statement, timezone: str) -> dict:
    """Every value as the text the pages show (``kb.formats``), for Typst to set as plain text; text from
    outside in a bidirectional isolate."""
    zone = ZoneInfo(timezone)
    month = formats.month_label(s.month)

    def outside(value) -> str:
        return isolated(formats.text(value))

    def when(value) -> str:
        return formats.instant(value, zone)

    def minutes(value) -> str:
        return formats.duration(None if formats.is_empty(value) else float(value) / 60)

    def met(value) -> str:
        return formats.EMPTY if formats.is_empty(value) else "met" if value else "missed"

    return {
        "client": {"id": s.client_id, "name": isolated(s.client_name), "tier": formats.word("tier", s.tier)},
        "month_name": month,
        "as_of": when(s.as_of),
        "status": formats.word("status", "final" if (s.uptime.status == "final").all() and len(s.uptime)
                               else "projected").lower(),
        "timezone": timezone,
        "totals": {k: v for k, v in s.totals.items() if k != "credits"},
        "credit_totals": [{"currency": c, "amount": formats.money(float(a), c)}
                          for c, a in s.totals["credits"].items()],
        "states": [formats.word("state", state) for state in DUE_STATES],
        "targets": [_target_values(target, s.targets[target.metric], shares, month, outside, when)
                    for target, shares in zip(TARGETS, s.met.itertuples(), strict=True)],
        "uptime": [{"environment_name": outside(r.environment_name), "target_pct": formats.term(r.target_pct),
                    "downtime": minutes(r.downtime_minutes), "uptime_pct": formats.percent(r.uptime_pct),
                    "budget_left": formats.budget_left(r.budget_left_minutes), "target_met": met(r.target_met)}
                   for r in s.uptime.itertuples()],
        "incidents": [{"incident_id": r.incident_id, "environment_name": outside(r.environment_name),
                       "impact": formats.word("impact", r.impact), "started_at": when(r.started_at),
                       "ended_at": when(r.ended_at), "counted": r.counted, "summary": outside(r.summary)}
                      for r in s.incidents.itertuples()],
        "credits": [{"contract_id": r.contract_id, "environment_name": outside(r.environment_name),
                     "uptime_pct": formats.percent(r.uptime_pct), "credit_schedule": outside(
                         formats.schedule(r.credit_schedule)), "monthly_fee": formats.money(r.monthly_fee, r.currency),
                     "credit_pct": formats.term(r.credit_pct),
                     "refund_amount": formats.money(r.refund_amount, r.currency)} for r in s.credits.itertuples()],
    }


def _target_values(target: Target, due: pd.DataFrame, shares, month: str, outside, when) -> dict:
    """One target's results: how many were due in the month, by state, the share met (``shares``: its row
    of ``Statement.met``), and each line."""
    by_state = due.state.value_counts()
    return {
        "label": target.label,
        "intro": f"{target.counted.capitalize()} whose {target.label.lower()} was due in {month}.",
        "due": formats.count(len(due), target.counted.removesuffix("s"), target.counted),
        "states": [str(by_state.get(state, 0)) for state in DUE_STATES],
        "pct_met": formats.percent(shares.pct_met) if shares.decided else formats.EMPTY,
        "share": share_in_words(shares.met, shares.decided),
        "start": formats.field_label(target.starts), "stop": formats.field_label(target.stops),
        "lines": [{"case_id": r.case_id, "subject": outside(r.subject), "started_at": when(r.started_at),
                   "due": when(r.due), "stopped_at": when(r.stopped_at), "state": formats.word("state", r.state)}
                  for r in due.itertuples()],
    }
