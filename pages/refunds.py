import altair as alt
import streamlit as st

from kb import ui
from kb.credits import credit_schedule_in_words
from kb.engine import periods
from kb.reads import refunds

ui.page_header("Refund exposure",
               "What do we owe in service credits, to whom, and who is closest to the next credit tier?")

store, snap = ui.open_app().store, ui.snapshot()
ui.as_of_caption(snap)
months = periods.months_of(store.config.calendar, snap.as_of)
since = months.year_ago

by_month = refunds.refunds_by_month(store, snap, since)
if by_month.empty:
    ui.empty_state("No service credits owed in the last twelve months.")
else:
    for currency, rows in by_month.groupby("currency"):
        st.subheader(f"Credits by month, {currency}")
        rows, order = ui.with_month_labels(rows)
        chart = alt.Chart(rows).mark_bar().encode(
            x=alt.X("month_label:O", title=None, sort=order, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("sum(refund_amount):Q", title=f"Credit ({currency})"),
            color=alt.Color("client_name:N", title="Client"),
            opacity=alt.Opacity("status:N", title="Status", scale=alt.Scale(domain=["final", "projected"],
                                                                            range=[1.0, 0.45])),
            tooltip=[alt.Tooltip("month_label:O", title="Month"), alt.Tooltip("client_name:N", title="Client"),
                     alt.Tooltip("refund_amount:Q", title=f"Credit ({currency})", format=",.2f"),
                     alt.Tooltip("status:N", title="Status")],
        ).properties(height=240)
        st.altair_chart(chart, width="stretch")

st.subheader("Credits and the terms behind them")
lines = refunds.refund_lines(store, snap, since)
if lines.empty:
    ui.empty_state("No contract missed its uptime in the last twelve months.")
else:
    lines["schedule_in_words"] = lines.credit_schedule.map(credit_schedule_in_words)
    lines["month"] = lines.month.map(ui.month_label)
    lines["uptime_target_pct"] = lines.uptime_target_pct.fillna(float(store.config.sla.default_uptime_target_pct))
    st.dataframe(
        lines, hide_index=True, width="stretch",
        column_order=["month", "client_name", "environment_name", "uptime_pct", "uptime_target_pct",
                      "downtime_minutes", "credit_pct", "refund_amount", "currency", "status", "monthly_fee",
                      "schedule_in_words", "contract_id"],
        column_config={
            "month": "Month", "contract_id": "Contract", "client_name": "Client", "environment_name": "Environment",
            "uptime_pct": st.column_config.NumberColumn("Uptime %", format="%.4f"),
            "uptime_target_pct": st.column_config.NumberColumn("Target %", format="%.3f"),
            "downtime_minutes": st.column_config.NumberColumn("Down (min)", format="%.1f"),
            "credit_pct": st.column_config.NumberColumn("Credit %", format="%.0f"),
            "refund_amount": st.column_config.NumberColumn("Credit", format="%.2f"),
            "currency": "Currency", "status": "Status",
            "monthly_fee": st.column_config.NumberColumn("Monthly fee", format="%.2f"),
            "schedule_in_words": st.column_config.TextColumn("Credit schedule", width="large"),
        },
    )

st.subheader(f"Closest to the next credit tier ({ui.month_label(months.this)})")
closest = refunds.closest_to_next_tier(store, snap, months.this)
if closest.empty:
    ui.empty_state("No contract covers this month.")
else:
    st.dataframe(
        closest, hide_index=True, width="stretch",
        column_order=["client_name", "environment_name", "uptime_pct", "downtime_minutes", "credit_pct",
                      "next_credit_pct", "minutes_to_next_tier", "extra_refund", "currency", "contract_id"],
        column_config={
            "contract_id": "Contract", "client_name": "Client", "environment_name": "Environment",
            "uptime_pct": st.column_config.NumberColumn("Uptime % so far", format="%.4f"),
            "downtime_minutes": st.column_config.NumberColumn("Down (min)", format="%.1f"),
            "credit_pct": st.column_config.NumberColumn("Credit now %", format="%.0f"),
            "next_credit_pct": st.column_config.NumberColumn("Next tier %", format="%.0f"),
            "minutes_to_next_tier": st.column_config.NumberColumn(
                "Min. to next tier", format="%.1f", help="Downtime still to go before the next credit tier"),
            "extra_refund": st.column_config.NumberColumn("Extra credit", format="%.2f",
                                                          help="What the next tier would add to the credit"),
            "currency": "Currency",
        },
    )
