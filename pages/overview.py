import altair as alt
import streamlit as st

from kb import ui
from kb.engine import periods
from kb.reads import overview

ui.page_header("Overview", "Are we keeping the Support Service Terms this month?")

store, snap = ui.open_app().store, ui.snapshot()
ui.as_of_caption(snap)
months = periods.months_of(store.config.calendar, snap.as_of)
target = float(store.config.sla.response_target_pct)

performance = overview.response_performance(store, snap, months)
open_now = overview.open_case_counts(store, snap)
environments = overview.environments_below_target(store, snap, months).set_index("month")
refunds = overview.refund_exposure(store, snap, months)

st.subheader("First responses")
columns = st.columns(4)
for column, tier in zip(columns, ("enterprise", "custom", "free"), strict=False):
    rows = performance[performance.tier == tier].set_index("month")
    now, before = rows.loc[months.this], rows.loc[months.last]
    decided = int(now.met + now.breached)
    column.metric(
        f"{tier.capitalize()}: met this month",
        "no cases due yet" if decided == 0 else f"{now.pct_met:.1f} %",
        delta=None if decided == 0 or before.pct_met != before.pct_met else f"{now.pct_met - before.pct_met:+.1f} pts",
        help=f"Cases due in {months.this} answered in time, of {decided} decided; target {target:g} %. "
             f"Last month: {'-' if before.pct_met != before.pct_met else f'{before.pct_met:.1f} %'}.",
        border=True,
    )
columns[3].metric("Open cases breached now", open_now["breached"], border=True,
                  help="Unanswered cases past their deadline.")

columns = st.columns(4)
columns[0].metric("At risk now", open_now["at_risk"], border=True,
                  help=f"Unanswered, at most {store.config.sla.at_risk_business_hours} business hours left.")
columns[1].metric("Pending", open_now["pending"], border=True, help="Unanswered, more time left.")
columns[2].metric("Open cases", open_now["open"], border=True, help="Not resolved yet, answered or not.")

st.subheader("Uptime and refunds")
columns = st.columns(4)
if months.this in environments.index:
    this = environments.loc[months.this]
    last = environments.loc[months.last] if months.last in environments.index else None
    columns[0].metric(
        "Environments below target", f"{int(this.below_target)} of {int(this.environments)}",
        delta=None if last is None else int(this.below_target - last.below_target), delta_color="inverse",
        help="Dedicated environments missing their uptime target this month so far (projected), "
             "against last month (final).", border=True)
    columns[1].metric(
        "Lowest error budget left", f"{this.lowest_budget_left_minutes:,.1f} min",
        help=f"{this.lowest_budget_environment}, this month.", border=True)
else:
    columns[0].metric("Environments below target", "none measured", border=True)

for column, month, when in ((columns[2], months.last, "last month"), (columns[3], months.this, "this month")):
    rows = refunds[(refunds.month == month) & (refunds.refund_amount > 0)]
    text = " + ".join(f"{r.currency} {r.refund_amount:,.0f}" for r in rows.itertuples()) or "none"
    column.metric(f"Refunds {when}", text, border=True,
                  help=f"Service credits owed for {month} ({'final' if month == months.last else 'projected'}): "
                       f"{int(rows.contracts_credited.sum())} contract(s) credited.")

st.subheader("Met this month and last, by tier")
chart_data = performance.dropna(subset=["pct_met"])
if chart_data.empty:
    ui.empty_state("No case has come due in these two months yet.")
else:
    bars = alt.Chart(chart_data).mark_bar().encode(
        x=alt.X("month:N", title=None),
        y=alt.Y("pct_met:Q", title="% of due cases met", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("tier:N", title="Tier", scale=ui.color_scale(ui.TIER_COLORS)),
        xOffset="tier:N",
        tooltip=[alt.Tooltip("tier:N", title="Tier"), alt.Tooltip("month:N", title="Month"),
                 alt.Tooltip("pct_met:Q", title="% met", format=".1f"), alt.Tooltip("met:Q", title="Met"),
                 alt.Tooltip("breached:Q", title="Breached")],
    )
    rule = alt.Chart().mark_rule(strokeDash=[4, 4], color="#424242").encode(y=alt.datum(target))
    st.altair_chart((bars + rule).properties(height=260), width="stretch")
