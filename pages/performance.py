from functools import partial

import altair as alt
import pandas as pd
import streamlit as st

from kb import formats, marks, ui
from kb.db.schema import TIERS
from kb.engine.targets import BY_METRIC, TARGETS, Target
from kb.reads import met, performance

ui.page_header("Response performance", "How often do we meet each target (first response, follow-ups, "
                                       "resolution) by tier, priority, assignee and client, week by week and "
                                       "month by month?")

store, snap = ui.open_app().store, ui.snapshot()
ui.as_of_caption(snap)
today = snap.as_of.astimezone(store.config.calendar.zone).date()
day_hours = store.config.calendar.business_day_seconds / 3600  # business time reads in business days
GROUP_COLORS = {"tier": ui.TIER_COLORS, "priority": ui.PRIORITY_COLORS}


def business_time(hours) -> str:
    return formats.duration(hours, day_hours)


def goal(target: Target) -> float:
    """The share of the target's deadlines the team aims to meet (``[sla]`` in support.toml)."""
    return float(store.config.sla.met_target_pct(target.metric))


def shares_in_words(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (rows of ``kb.reads.met.met_shares``) with its % met and "29 of 32 met" as text."""
    return frame.assign(pct_text=frame.pct_met.map(formats.percent),
                        share_text=[met.share_in_words(m, d) for m, d in zip(frame.met, frame.decided, strict=True)])


# The last 13 weeks, unless a link asks for a period (the Queue's link to where a breach reason is counted).
asked, problem = performance.linked_period(st.query_params, today)
if problem:
    st.warning(problem, icon=":material/link_off:")
columns = st.columns([2, 1, 1, 3])  # room for the three tiers side by side
period = columns[0].date_input("Deadlines between", asked, key="period", format="YYYY-MM-DD")
grain = columns[1].radio("Per", met.GRAINS, horizontal=True, key="grain")
by = columns[2].radio("Lines by", tuple(GROUP_COLORS), horizontal=True, key="by", format_func=str.capitalize)
tiers = columns[3].multiselect("Tiers", TIERS, default=list(TIERS), key="tiers",
                               format_func=lambda tier: formats.word("tier", tier))
if not isinstance(period, tuple) or len(period) != 2:
    st.info("Pick the last day of the period too.", icon=":material/date_range:")
    st.stop()
if not tiers:
    st.info("Pick a tier or more.", icon=":material/filter_alt:")
    st.stop()
start, end = period
chosen = tuple(tiers)

over_time = performance.met_per_period(store, snap, grain, by, start, end, chosen)
if over_time.empty:
    ui.empty_state("Nothing came due in this period.")
    st.stop()
totals = performance.met_in_period(store, snap, start, end, chosen)

# Each period is drawn at its first day (a week's Monday, a month's 1st), with a tick there; the axis has room for
# half a period on either side. Every target's chart shares the axis, so their weeks line up.
half = pd.Timedelta(days=3 if grain == "week" else 12)
firsts = sorted(pd.to_datetime(over_time.period).unique())


def on_axis(moment) -> alt.DateTime:
    moment = pd.Timestamp(moment)
    return alt.DateTime(year=moment.year, month=moment.month, date=moment.day)


x = alt.X("period:T", title=f"{grain.capitalize()} of the deadline",
          scale=alt.Scale(domain=[on_axis(firsts[0] - half - pd.Timedelta(days=1)),
                                  on_axis(firsts[-1] + half + pd.Timedelta(days=1))]),
          axis=alt.Axis(format="%b %Y" if grain == "month" else "%d %b", values=[on_axis(d) for d in firsts],
                        labelOverlap="greedy"))


def met_chart(rows: pd.DataFrame, target: Target) -> alt.LayerChart:
    """% met of one target per period, a line per tier or priority, under the team's target line."""
    data = formats.in_words(shares_in_words(rows)).assign(period=pd.to_datetime(rows.period))
    lines = alt.Chart(data).mark_line(point=True).encode(
        x=x, y=alt.Y("pct_met:Q", title=f"% of {target.counted} met", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color(f"{by}:N", title=by.capitalize(),
                        scale=marks.color_scale(marks.drawn_colors(GROUP_COLORS[by], rows.loc[rows.decided > 0, by]),
                                                formats.WORDS[by])),
        tooltip=[alt.Tooltip("period:T", title=grain.capitalize(), format="%Y-%m-%d"),
                 alt.Tooltip(f"{by}:N", title=by.capitalize()), alt.Tooltip("pct_text:N", title="% met"),
                 alt.Tooltip("share_text:N", title=target.label), alt.Tooltip("breached:Q", title="Breached")])
    return alt.layer(lines, *marks.target_rule(goal(target))).properties(height=260)


st.subheader("% met per target")
st.caption(f"Each target counts in the {grain} its deadline falls in; pending and at-risk ones are not decided "
           "yet. The dashed line is the team's own goal for that target (`[sla]` in support.toml).")
columns = st.columns(len(TARGETS))
for column, target in zip(columns, TARGETS, strict=True):
    total = next(totals[totals.metric == target.metric].itertuples(), None)
    ui.met_card(column, target.label, total, goal(target),
                f"{target.counted.capitalize()} whose {target.label.lower()} deadline fell between {start} and "
                f"{end}, in the tiers chosen, against the team's goal of {formats.term(goal(target))}.")
    rows = over_time[over_time.metric == target.metric]
    with column:
        if rows.empty:
            ui.empty_state(f"No {target.label.lower()} came due in this period.")
        else:
            ui.remembered_chart(snap, ("performance", grain, by, start, end, chosen, target.metric),
                                partial(met_chart, rows, target), width="stretch")

st.subheader("Breaches, and who they fall to")
metric = st.radio("Target", [t.metric for t in TARGETS], horizontal=True, key="metric",
                  format_func=lambda m: BY_METRIC[m].label)
target = BY_METRIC[metric]

st.markdown(f"**{target.label}: % met by assignee and by client, over the whole period**")
columns = st.columns(2)
for column, breakdown, label in ((columns[0], "assignee", "Assignee"), (columns[1], "client", "Client")):
    with column:
        frame = performance.met_by(store, snap, metric, breakdown, start, end, chosen)
        if breakdown == "assignee":
            frame = frame.assign(assignee=frame.assignee.map(formats.assignee))
        ui.table(shares_in_words(frame).assign(pct_met=frame.pct_met.map(lambda p: float(formats.percent_value(p)))),
                 hide_index=True, width="stretch", key=f"by_{breakdown}",
                 column_order=[breakdown, "pct_met", "share_text", "breached"],
                 column_config={breakdown: st.column_config.TextColumn(label),
                                "pct_met": st.column_config.ProgressColumn("% met", format="%.2f %%", min_value=0,
                                                                           max_value=100),
                                "share_text": target.counted.capitalize(),
                                "breached": st.column_config.NumberColumn("Breached", format="%d")})
        st.caption(f"Lowest % met first; {label.lower()}s with nothing due in the period are not listed.")

if target is performance.REASON_OF:
    st.markdown(f"**Why {target.label.lower()}s were breached**")
    reasons = performance.breach_reasons(store, snap, start, end, chosen)
    if reasons.empty:
        ui.empty_state("No breaches in this period.")
    else:
        ui.table(reasons, hide_index=True, width="stretch", key="breach_reasons",
                 column_config={"reason": st.column_config.TextColumn("Reason", width="large"),
                                "cases": st.column_config.NumberColumn("Breached cases", format="%d")})
        st.caption("Reasons are recorded on a case whose first response was breached, in the Queue (case details).")

st.markdown(f"**Breached {target.label.lower()}s**")
breached = performance.breached(store, snap, metric, grain, start, end, chosen)
if breached.empty:
    ui.empty_state("No breaches in this period.")
else:
    due = target.col("due")
    shown = snap.remembered(  # written out once per snapshot: its times take most of a redraw
        ("performance", "breached in words", metric, grain, start, end, chosen),
        lambda: formats.in_words(ui.local_times(breached, target.starts, due, target.stops)).assign(
            assignee=breached.assignee.map(formats.assignee), breach_reason=breached.breach_reason.map(formats.text),
            business_hours_taken=breached.business_hours_taken.map(business_time)))
    reason = ["breach_reason"] if target is performance.REASON_OF else []
    taken = ["business_hours_taken"] if target.per == "case" else []
    ui.table(
        shown, hide_index=True, width="stretch",
        column_order=["case_id", "client_name", *taken, due, *reason, "assignee", "tier", "priority", "category",
                      "subject", target.starts, target.stops, "period"],
        column_config={"period": st.column_config.DateColumn(grain.capitalize()), "case_id": "Case",
                       "client_name": "Client", "tier": "Tier", "priority": "Priority", "category": "Category",
                       "subject": "Subject", "assignee": "Assignee", due: f"{target.label} due",
                       target.starts: formats.field_label(target.starts),
                       target.stops: formats.field_label(target.stops),
                       "breach_reason": formats.field_label("breach_reason"),
                       "business_hours_taken": "Business time taken"})
    st.caption(f"{len(breached):,} {target.counted} shown, latest deadline first (at most 1,000).")
