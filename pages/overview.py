import altair as alt
import pandas as pd
import streamlit as st

from kb import formats, ui
from kb.engine import periods
from kb.reads import overview, uptime

ui.page_header("Overview", "Are we keeping the Support Service Terms this month, and who is owed what?")

store, snap = ui.open_app().store, ui.snapshot()
ui.as_of_caption(snap)
months = periods.months_of(store.config.calendar, snap.as_of)
this_label, last_label = formats.month_label(months.this), formats.month_label(months.last)
target = float(store.config.sla.response_target_pct)
zone = store.config.calendar.zone

performance = overview.response_performance(store, snap, months)
open_now = overview.open_case_counts(store, snap)
environments = overview.environments_below_target(store, snap, months).set_index("month")
refunds = overview.refund_exposure(store, snap, months)
owed = overview.credits_owed(store, snap)


def against_target(pct: float, met: int, decided: int) -> tuple[str, str]:
    """'5 of 6 met · below target' and its colour (the target is named in the caption above the cards: a card's
    delta line is cut at its width); 'none due' and gray when nothing was decided."""
    if decided == 0 or pct != pct:
        return "", "gray"
    reached = pct >= target
    side = "meets" if reached else "below"
    return f"{met} of {decided} met · {side} target", "green" if reached else "red"


st.subheader(f"First responses due in {this_label}")
st.caption(f"Each tier's share of the cases due in {this_label} so far that were answered in time. "
           f"The {formats.term(target)} target is the support team's own goal (`response_target_pct` under "
           "`[sla]` in support.toml), not a promise of the Support Service Terms: the Terms promise each case "
           "its first response by its deadline.")
columns = st.columns(4)
for column, tier in zip(columns, ("enterprise", "custom", "free"), strict=False):
    rows = performance[performance.tier == tier].set_index("month")
    now, before = rows.loc[months.this], rows.loc[months.last]
    decided, decided_before = int(now.met + now.breached), int(before.met + before.breached)
    says, color = against_target(now.pct_met, int(now.met), decided)
    said_before, _ = against_target(before.pct_met, int(before.met), decided_before)
    column.metric(
        formats.word("tier", tier),
        formats.EMPTY if decided == 0 else formats.percent(now.pct_met),
        delta=says or "no cases due yet",
        delta_color=color, delta_arrow={"green": "up", "red": "down"}.get(color, "off"),
        help=f"Cases due in {this_label} answered in time, against the team's goal of {formats.term(target)} "
             f"(pending and at-risk cases are not decided yet). {last_label}: "
             + (f"{formats.percent(before.pct_met)}, {said_before}." if said_before else "none due."),
        border=True,
    )
columns[3].metric("Open cases breached now", open_now["breached"], border=True,
                  help="Unanswered cases past their deadline.")

columns = st.columns(4)
columns[0].metric("At risk now", open_now["at_risk"], border=True,
                  help=f"Unanswered, at most {store.config.sla.at_risk_business_hours} business hours left.")
columns[1].metric("Pending", open_now["pending"], border=True, help="Unanswered, more time left.")
columns[2].metric("Open cases", open_now["open"], border=True, help="Not resolved yet, answered or not.")

st.subheader("Uptime")
columns = st.columns(4)
if months.this in environments.index:
    this = environments.loc[months.this]
    last = environments.loc[months.last] if months.last in environments.index else None
    below = int(this.below_target)
    columns[0].metric(
        "Environments below target", f"{below} of {int(this.environments)}",
        delta=None if last is None else f"{int(last.below_target)} in {last_label}", delta_color="off",
        delta_arrow="off",
        help="Environments that carry an uptime target (every dedicated one, and shared ones under a custom "
             "programme contract) missing it this month so far (projected); last month is final.", border=True)
    budget = float(this.lowest_budget_left_minutes)
    columns[1].metric(
        "Lowest error budget left", formats.duration(budget / 60),
        delta=this.lowest_budget_environment_name, delta_color="red" if budget < 0 else "off", delta_arrow="off",
        help=f"{this.lowest_budget_environment_name} ({this.lowest_budget_environment}), {this_label}; "
             "below zero the month has missed its target.", border=True)
    lines = [f"{label}: {', '.join(rows.below_target_names)}" for label, rows in
             ((this_label, this), (last_label, last)) if rows is not None and len(rows.below_target_names)]
    if lines:
        columns[2].markdown("**Below target**  \n" + "  \n".join(ui.plain(line) for line in lines))
    each = overview.uptime_this_month(store, snap, months.this)
    ui.table(
        pd.DataFrame({
            "environment": each.environment_name, "client": each.client_name.map(formats.text),
            "uptime": each.uptime_pct.map(formats.percent), "target": each.target_pct.map(formats.term),
            "verdict": each.target_met.map(formats.verdict),
            "budget_left": (each.budget_left_minutes / 60).map(formats.duration),
        }), hide_index=True, width="stretch", key="uptime_each",
        column_order=["environment", "uptime", "verdict", "budget_left", "target", "client"],
        column_config={"environment": "Environment", "client": "Client",
                       "uptime": f"Uptime {this_label} (projected)", "target": "Target", "verdict": "Verdict",
                       "budget_left": "Error budget left"})
else:
    columns[0].metric("Environments below target", "none measured", border=True)

days = store.config.stale_after_days
unwatched = uptime.last_seen(store, snap).query("stale")
if unwatched.empty:
    st.success("Every dedicated environment was checked, or had an incident logged, in the last "
               f"{formats.count(days, 'day')}.",
               icon=":material/visibility:")
else:
    names = ", ".join(f"{row.environment_name} ({formats.text(row.client_name)})" for row in unwatched.itertuples())
    st.warning(f"Not checked for more than {formats.count(days, 'day')} (`stale_after_days` under `[monitoring]`): "
               f"{ui.plain(names)}",
               icon=":material/visibility_off:")

ongoing = overview.ongoing_incidents(store, snap)
if ongoing.empty:
    st.caption("No incident is ongoing.")
else:
    st.markdown(f"**Ongoing incidents ({len(ongoing)})**")
    ui.table(
        formats.instants(formats.in_words(ongoing), zone, "started_at"), hide_index=True, width="stretch",
        key="ongoing", column_order=["environment_name", "impact", "started_at", "summary", "incident_id"],
        column_config={"environment_name": "Environment", "impact": "Impact", "started_at": "Since",
                       "summary": st.column_config.TextColumn("Summary", width="large"), "incident_id": "Incident"})

st.subheader("Service credits owed")
columns = st.columns(4)
cards = []
for month, when in ((months.last, "last month"), (months.this, "this month")):
    rows = refunds[(refunds.month == month) & (refunds.refund_amount > 0)]
    status = "final" if month == months.last else "projected"
    if rows.empty:
        cards.append((f"Service credits {when}", "none", f"{formats.month_label(month)}, {status}"))
    for row in rows.itertuples():  # one card per currency: amounts in different currencies are never added up
        cards.append((f"Service credits {when}", formats.money(row.refund_amount, row.currency),
                      f"{formats.month_label(month)}, {status}: {formats.count(row.clients_credited, 'client')}"))
for n, (label, value, note) in enumerate(cards):
    columns[n % 4].metric(label, value, delta=note, delta_color="off", delta_arrow="off", border=True,
                          help="Service credits owed by the contracts' credit schedules; the current month is "
                               "projected from its downtime so far.")
if owed.empty:
    ui.empty_state("No client is owed final service credits: none of a closed month is waiting to be applied.")
else:
    shown = formats.in_words(owed).assign(
        month=owed.month.map(formats.month_label),
        credit=[formats.money(a, c) for a, c in zip(owed.refund_amount, owed.currency, strict=True)])
    ui.table(
        shown[["client_name", "credit", "month", "status", "environments"]], hide_index=True, width="stretch",
        column_config={"month": "Month", "status": "Status", "client_name": "Client",
                       "credit": st.column_config.TextColumn("Service credits owed"),
                       "environments": "For the uptime of"})

st.subheader("Met this month and last, by tier")
chart_data = performance.dropna(subset=["pct_met"])
if chart_data.empty:
    ui.empty_state("No case has come due in these two months yet.")
else:
    chart_data, order = ui.with_month_labels(formats.in_words(chart_data).assign(
        pct_text=chart_data.pct_met.map(formats.percent)))
    bars = alt.Chart(chart_data).mark_bar().encode(
        x=alt.X("month_label:O", title=None, sort=order, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("pct_met:Q", title="% of due cases met", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("tier:N", title="Tier", scale=ui.color_scale(ui.TIER_COLORS, formats.WORDS["tier"])),
        xOffset="tier:N",
        tooltip=[alt.Tooltip("tier:N", title="Tier"), alt.Tooltip("month_label:O", title="Month"),
                 alt.Tooltip("pct_text:N", title="% met"), alt.Tooltip("met:Q", title="Met"),
                 alt.Tooltip("breached:Q", title="Breached")],
    )
    ui.chart(alt.layer(bars, *ui.target_rule(target)).properties(height=260), width="stretch")
