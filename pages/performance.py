import altair as alt
import pandas as pd
import streamlit as st

from kb import formats, ui
from kb.db.schema import TIERS
from kb.reads import performance

ui.page_header("Response performance", "How often do we answer in time, by tier, assignee and client, "
                                       "week by week and month by month?")

store, snap = ui.open_app().store, ui.snapshot()
ui.as_of_caption(snap)
target = float(store.config.sla.response_target_pct)
today = snap.as_of.astimezone(store.config.calendar.zone).date()
day_hours = store.config.calendar.business_day_seconds / 3600  # business time reads in business days


def business_time(hours) -> str:
    return formats.duration(hours, day_hours)


# The last 13 weeks, unless a link asks for a period (the Queue's link to where a breach reason is counted).
asked, problem = performance.linked_period(st.query_params, today)
if problem:
    st.warning(problem, icon=":material/link_off:")
columns = st.columns([2, 1, 2])
period = columns[0].date_input("Deadlines between", asked, key="period", format="YYYY-MM-DD")
grain = columns[1].radio("Per", performance.GRAINS, horizontal=True, key="grain")
tiers = columns[2].multiselect("Tiers", TIERS, default=list(TIERS), key="tiers",
                               format_func=lambda tier: formats.word("tier", tier))
if not isinstance(period, tuple) or len(period) != 2:
    st.info("Pick the last day of the period too.", icon=":material/date_range:")
    st.stop()
start, end = period

data = performance.performance_by_period(store, snap, grain, start, end)
data = data[data.tier.isin(tiers)]
if data.empty:
    ui.empty_state("No case came due in this period.")
    st.stop()
data = formats.in_words(data).assign(pct_text=data.pct_met.map(formats.percent),
                                     median_text=data.median_business_hours.map(business_time))

tooltip = [alt.Tooltip("period:T", title=grain.capitalize(), format="%Y-%m-%d"), alt.Tooltip("tier:N", title="Tier"),
           alt.Tooltip("pct_text:N", title="% met"), alt.Tooltip("met:Q", title="Met"),
           alt.Tooltip("breached:Q", title="Breached"),
           alt.Tooltip("median_text:N", title="Median business time to respond")]
tier_color = alt.Color("tier:N", title="Tier", scale=ui.color_scale(ui.TIER_COLORS, formats.WORDS["tier"]))
# Each period is drawn at its first day (a week's Monday, a month's 1st), with a tick there; a bar covers most
# of its period, centred on that day, and the axis has room for half a period on either side.
half = pd.Timedelta(days=3 if grain == "week" else 12)
data = data.assign(period=pd.to_datetime(data.period))
data = data.assign(bar_from=data.period - half, bar_to=data.period + half)
firsts = sorted(data.period.unique())


def on_axis(moment) -> alt.DateTime:
    moment = pd.Timestamp(moment)
    return alt.DateTime(year=moment.year, month=moment.month, date=moment.day)


x_title = f"{grain.capitalize()} of the deadline"
x_scale = alt.Scale(domain=[on_axis(firsts[0] - half - pd.Timedelta(days=1)),
                            on_axis(firsts[-1] + half + pd.Timedelta(days=1))])
x_axis = alt.Axis(format="%b %Y" if grain == "month" else "%d %b", values=[on_axis(d) for d in firsts],
                  labelOverlap="greedy")
x = alt.X("period:T", title=x_title, scale=x_scale, axis=x_axis)

st.subheader("% of due cases met")
lines = alt.Chart(data).mark_line(point=True).encode(
    x=x, y=alt.Y("pct_met:Q", title="% met", scale=alt.Scale(domain=[0, 100])), color=tier_color, tooltip=tooltip)
rule = alt.Chart().mark_rule(strokeDash=[4, 4], color="#424242").encode(y=alt.datum(target))
label = alt.Chart().mark_text(align="left", dx=4, dy=10, color="#424242").encode(
    y=alt.datum(target), text=alt.datum(f"target {formats.term(target)}"))
ui.chart((lines + rule + label).properties(height=280), width="stretch")

columns = st.columns(2)
with columns[0]:
    st.subheader("Breaches")
    # Ranged on x (the bar covers its period), so the tiers are stacked by a transform, not by the y channel.
    bars = alt.Chart(data).transform_stack(
        stack="breached", groupby=["period"], as_=["breached_from", "breached_to"],
        sort=[alt.SortField("tier")]).mark_bar().encode(
        x=alt.X("bar_from:T", title=x_title, scale=x_scale, axis=x_axis), x2="bar_to:T",
        y=alt.Y("breached_from:Q", title="Breached cases", axis=alt.Axis(tickMinStep=1)), y2="breached_to:Q",
        color=tier_color, tooltip=tooltip)
    ui.chart(bars.properties(height=240), width="stretch")
with columns[1]:
    st.subheader("Median time to first response")
    hours = alt.Chart(data).mark_line(point=True).encode(
        x=x, y=alt.Y("median_business_hours:Q", title="Business hours"), color=tier_color, tooltip=tooltip)
    ui.chart(hours.properties(height=240), width="stretch")

st.subheader("% met by assignee and by client, over the whole period")
pct_column = st.column_config.ProgressColumn("% met", format="%.2f %%", min_value=0, max_value=100)
counts_config = {"met": st.column_config.NumberColumn("Met", format="%d"),
                 "breached": st.column_config.NumberColumn("Breached", format="%d"), "pct_met": pct_column,
                 "median_business_hours": "Median business time"}
columns = st.columns(2)
for column, by, label in ((columns[0], "assignee", "Assignee"), (columns[1], "client", "Client")):
    with column:
        frame = performance.performance_by(store, snap, by, start, end, tuple(tiers))
        frame = frame.assign(pct_met=frame.pct_met.map(lambda pct: float(formats.percent_value(pct))),
                             median_business_hours=frame.median_business_hours.map(business_time))
        ui.table(frame, hide_index=True, width="stretch", key=f"by_{by}",
                     column_config={by: st.column_config.TextColumn(label), **counts_config})
        st.caption(f"Lowest % met first; {label.lower()}s with no case due in the period are not listed.")

st.subheader("Why cases were breached")
reasons = performance.breach_reasons(store, snap, start, end, tuple(tiers))
if reasons.empty:
    ui.empty_state("No breaches in this period.")
else:
    ui.table(reasons, hide_index=True, width="stretch", key="breach_reasons",
                 column_config={"reason": st.column_config.TextColumn("Reason", width="large"),
                                "cases": st.column_config.NumberColumn("Breached cases", format="%d")})
    st.caption("Reasons are recorded on a breached case in the Queue (case details).")

st.subheader("Breached cases")
breached = performance.breached_cases(store, snap, grain, start, end, tuple(tiers))
if breached.empty:
    ui.empty_state("No breaches in this period.")
else:
    ui.table(
        formats.in_words(ui.local_times(breached, "received_at", "first_response_due", "first_response_at")).assign(
            assignee=breached.assignee.map(formats.assignee), breach_reason=breached.breach_reason.map(formats.text),
            business_hours_to_response=breached.business_hours_to_response.map(business_time)),
        hide_index=True, width="stretch",
        column_order=["case_id", "client_name", "business_hours_to_response", "first_response_due", "breach_reason",
                      "assignee", "tier", "category", "subject", "received_at", "first_response_at", "period"],
        column_config={"period": st.column_config.DateColumn(grain.capitalize()), "case_id": "Case",
                       "client_name": "Client", "tier": "Tier", "category": "Category", "subject": "Subject",
                       "assignee": "Assignee", "received_at": "Received", "first_response_due": "Response due",
                       "first_response_at": "First response", "breach_reason": "Breach reason",
                       "business_hours_to_response": "Business time to respond"})
    st.caption(f"{len(breached):,} shown, latest deadline first (at most 1,000).")
