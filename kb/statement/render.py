"""The statement as a PDF: Typst typesets ``statement.typ`` with the statement's values as JSON input, and
vl-convert draws the daily downtime chart. Both are pip packages that carry their own fonts and engines:
no browser, no system fonts.

Names, subjects and summaries come from clients and cases: each is set on one line inside a bidirectional
isolate with its text-direction controls shown as U+FFFD (``kb.alerts.text.isolated``), so a U+202E in a
client's name cannot reverse the words after it."""

from __future__ import annotations

import json
import math
import tempfile
from datetime import datetime
from pathlib import Path

import altair as alt
import pandas as pd
import typst
import vl_convert

from kb.alerts.text import isolated
from kb.statement.content import Statement

TEMPLATE = Path(__file__).with_name("statement.typ")
# The columns whose text comes from outside (imports, forms, mail, webhooks) rather than from the rules.
FROM_OUTSIDE = frozenset({"subject", "requester", "assignee", "environment_name", "summary", "credit_schedule"})


def statement_pdf(statement: Statement, timezone: str) -> bytes:
    """The PDF bytes of ``statement``."""
    with tempfile.TemporaryDirectory(prefix="statement-") as folder:
        (Path(folder) / "statement.typ").write_bytes(TEMPLATE.read_bytes())
        (Path(folder) / "daily.png").write_bytes(daily_chart_png(statement))
        return typst.compile(str(Path(folder) / "statement.typ"), root=folder, ignore_system_fonts=True,
                             sys_inputs={"data": json.dumps(_values(statement, timezone))})


def daily_chart_png(statement: Statement) -> bytes:
    """Downtime minutes per day of the month, one colour per environment."""
    frame = statement.daily.assign(day=pd.to_datetime(statement.daily.day).dt.strftime("%d"))
    chart = alt.Chart(frame, width=620, height=160, title="Downtime per day (minutes)").mark_bar().encode(
        x=alt.X("day:O", title=statement.month, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("downtime_minutes:Q", title="minutes"),
        color=alt.Color("environment_id:N", title="Environment", legend=alt.Legend(orient="bottom")),
    )
    return vl_convert.vegalite_to_png(chart.to_json(), scale=2)


def _values(s: Statement, timezone: str) -> dict:
    """Every value as the text the exports write (same decimals), for Typst to set as plain text."""
    def text(value, decimals: int | None = None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if isinstance(value, bool):
            return "met" if value else "missed"
        return f"{value:.{decimals}f}" if decimals is not None else str(value)

    def cell(column: str, value, decimals: dict[str, int]) -> str:
        return isolated(text(value)) if column in FROM_OUTSIDE else text(value, decimals.get(column))

    def rows(frame: pd.DataFrame, decimals: dict[str, int]) -> list[dict]:
        return [{column: cell(column, value, decimals) for column, value in row.items()}
                for row in frame.astype(object).to_dict("records")]

    return {
        "client": {"id": s.client_id, "name": isolated(s.client_name), "tier": s.tier},
        "month_name": datetime.strptime(s.month, "%Y-%m").strftime("%B %Y"),
        "as_of": s.as_of.isoformat(timespec="seconds"),
        "status": "final" if (s.uptime.status == "final").all() and len(s.uptime) else "projected",
        "timezone": timezone,
        "totals": {**{k: v for k, v in s.totals.items() if k != "credits"}},
        "credit_totals": [{"currency": c, "amount": a} for c, a in s.totals["credits"].items()],
        "cases": rows(s.cases, {}),
        "uptime": rows(s.uptime, {"downtime_minutes": 2, "uptime_pct": 6, "budget_left_minutes": 2,
                                  "target_pct": 4}),
        "incidents": rows(s.incidents, {}),
        "credits": rows(s.credits, {"uptime_pct": 6, "credit_pct": 4, "refund_amount": 2, "monthly_fee": 2,
                                    "uptime_target_pct": 4}),
    }
