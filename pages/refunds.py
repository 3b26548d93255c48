import altair as alt
import streamlit as st

from kb import formats, ui
from kb.engine import periods
from kb.reads import refunds

ui.page_header("Service credits", "What do we owe in service credits, to whom, and who is closest to the next "
                                  "credit tier?")

store, snap = ui.open_app().store, ui.snapshot()
ui.as_of_caption(snap)
months = periods.months_of(store.config.calendar, snap.as_of)
since = months.year_ago

by_month = refunds.refunds_by_month(store, snap, since)
if by_month.empty:
    ui.empty_state("No service credits owed in the last twelve months.")
else:
    for currency, rows in by_month.groupby("currency"):
        st.subheader(f"Service credits by month, {currency}")
        rows, order = ui.with_month_labels(formats.in_words(rows).assign(
            credit=[formats.money(a, currency) for a in rows.refund_amount]))
        chart = alt.Chart(rows).mark_bar().encode(
            x=alt.X("month_label:O", title=None, sort=order, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("sum(refund_amount):Q", title=f"Service credits ({currency})"),
            color=alt.Color("client_name:N", title="Client"),
            opacity=alt.Opacity("status:N", title="Status", scale=alt.Scale(
                domain=[formats.word("status", s) for s in ("final", "projected")], range=[1.0, 0.45])),
            tooltip=[alt.Tooltip("month_label:O", title="Month"), alt.Tooltip("client_name:N", title="Client"),
                     alt.Tooltip("credit:N", title="Service credits"),
                     alt.Tooltip("status:N", title="Status")],
        ).properties(height=240)
        ui.chart(chart, width="stretch")

st.subheader("Service credits and the terms behind them")
lines = refunds.refund_lines(store, snap, since)
if lines.empty:
    ui.empty_state("No contract missed its uptime in the last twelve months.")
else:
    ui.table(
        formats.in_words(lines).assign(
            month=lines.month.map(formats.month_label),
            uptime_pct=lines.uptime_pct.map(formats.percent),
            uptime_target_pct=lines.uptime_target_pct.map(formats.term),
            downtime_minutes=(lines.downtime_minutes / 60).map(formats.duration),
            credit_pct=lines.credit_pct.map(formats.term),
            refund_amount=[formats.money(a, c) for a, c in zip(lines.refund_amount, lines.currency, strict=True)],
            monthly_fee=[formats.money(f, c) for f, c in zip(lines.monthly_fee, lines.currency, strict=True)],
            schedule_in_words=lines.credit_schedule.map(formats.schedule)),
        hide_index=True, width="stretch",
        column_order=["client_name", "refund_amount", "month", "uptime_pct", "uptime_target_pct", "credit_pct",
                      "status", "environment_name", "downtime_minutes", "monthly_fee", "schedule_in_words",
                      "contract_id"],
        column_config={
            "month": "Month", "contract_id": "Contract", "client_name": "Client", "environment_name": "Environment",
            "uptime_pct": "Uptime", "uptime_target_pct": "Target", "downtime_minutes": "Downtime",
            "credit_pct": "Credit", "refund_amount": "Service credits", "status": "Status",
            "monthly_fee": "Monthly fee",
            "schedule_in_words": st.column_config.TextColumn("Credit schedule", width="large"),
        },
    )

st.subheader(f"Closest to the next credit tier ({formats.month_label(months.this)})")
closest = refunds.closest_to_next_tier(store, snap, months.this)
if closest.empty:
    ui.empty_state("No contract covers this month.")
else:
    ui.table(
        closest.assign(
            uptime_pct=closest.uptime_pct.map(formats.percent),
            downtime_minutes=(closest.downtime_minutes / 60).map(formats.duration),
            credit_pct=closest.credit_pct.map(formats.term),
            next_credit_pct=closest.next_credit_pct.map(formats.term),
            minutes_to_next_tier=(closest.minutes_to_next_tier / 60).map(formats.duration),
            extra_refund=[formats.money(a, c) for a, c in zip(closest.extra_refund, closest.currency, strict=True)]),
        hide_index=True, width="stretch",
        column_order=["client_name", "minutes_to_next_tier", "uptime_pct", "extra_refund", "credit_pct",
                      "next_credit_pct", "environment_name", "downtime_minutes", "contract_id"],
        column_config={
            "contract_id": "Contract", "client_name": "Client", "environment_name": "Environment",
            "uptime_pct": "Uptime so far", "downtime_minutes": "Downtime", "credit_pct": "Credit now",
            "next_credit_pct": "Next tier",
            "minutes_to_next_tier": st.column_config.TextColumn(
                "Downtime to next tier", help="Downtime still to go before the next credit tier"),
            "extra_refund": st.column_config.TextColumn("Extra service credits",
                                                        help="What the next tier would add to the service credits"),
        },
    )
