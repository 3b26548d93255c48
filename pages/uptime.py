from datetime import timedelta

import altair as alt
import streamlit as st

from kb import ui
from kb.engine import periods
from kb.reads import uptime

ui.page_header("Uptime", "Is every dedicated environment within its uptime target, and is each one being watched?")

store, snap = ui.open_app().store, ui.snapshot()
ui.as_of_caption(snap)
months = periods.months_of(store.config.calendar, snap.as_of)
since = months.year_ago

monthly = uptime.monthly_uptime(store, snap, since)
if monthly.empty:
    ui.empty_state("No environment with an uptime target yet. Add environments and contracts on "
                   "Clients and contracts.")
    st.stop()

st.subheader(f"This month ({months.this}, projected)")
current = monthly[monthly.month == months.this].copy()
current["budget_used_pct"] = 100 * (current.budget_minutes - current.budget_left_minutes) / current.budget_minutes
st.dataframe(
    current[["environment_id", "environment_name", "kind", "uptime_pct", "target_pct", "downtime_minutes",
             "budget_minutes", "budget_left_minutes", "budget_used_pct", "target_met"]],
    hide_index=True, width="stretch",
    column_config={
        "environment_id": "Environment", "environment_name": "Name", "kind": "Kind",
        "uptime_pct": st.column_config.NumberColumn("Uptime %", format="%.4f"),
        "target_pct": st.column_config.NumberColumn("Target %", format="%.3f"),
        "downtime_minutes": st.column_config.NumberColumn("Downtime (min)", format="%.1f"),
        "budget_minutes": st.column_config.NumberColumn("Error budget (min)", format="%.1f"),
        "budget_left_minutes": st.column_config.NumberColumn("Budget left (min)", format="%.1f"),
        "budget_used_pct": st.column_config.ProgressColumn("Budget burnt", format="%.0f %%", min_value=0,
                                                           max_value=100),
        "target_met": st.column_config.CheckboxColumn("On target"),
    },
)

st.subheader("Monthly uptime against target")
HEATMAP_ENVIRONMENTS = 40  # rows of the grid: 40 environments × 13 months stay far below 5,000 cells
shown, measured = uptime.worst_environments(store, snap, since, HEATMAP_ENVIRONMENTS)
grid = monthly[monthly.environment_id.isin(shown)]
grid = grid.assign(on_target=grid.target_met.map({True: "on target", False: "below target"}))
base = alt.Chart(grid).encode(
    x=alt.X("month:O", title="Month", axis=alt.Axis(labelAngle=0)),
    y=alt.Y("environment_id:N", title=None),
    tooltip=[alt.Tooltip("environment_id:N", title="Environment"), alt.Tooltip("month:O", title="Month"),
             alt.Tooltip("uptime_pct:Q", title="Uptime %", format=".4f"),
             alt.Tooltip("target_pct:Q", title="Target %", format=".3f"),
             alt.Tooltip("downtime_minutes:Q", title="Downtime (min)", format=".1f"),
             alt.Tooltip("budget_left_minutes:Q", title="Budget left (min)", format=".1f"),
             alt.Tooltip("status:N", title="Status")],
)
cells = base.mark_rect(stroke="white", strokeWidth=2).encode(
    color=alt.Color("on_target:N", title="Month", scale=alt.Scale(domain=["on target", "below target"],
                                                                  range=["#c8e6c9", "#ef9a9a"])),
    opacity=alt.Opacity("status:N", title="Status", scale=alt.Scale(domain=["final", "projected"],
                                                                    range=[1.0, 0.55])),
)
labels = base.mark_text(fontSize=11).encode(text=alt.Text("uptime_pct:Q", format=".3f"))
st.altair_chart((cells + labels).properties(height=max(140, 34 * grid.environment_id.nunique())),
                width="stretch")
if measured > len(shown):
    st.caption(f"The {len(shown)} environments with the most months below target, then the lowest uptime, of "
               f"{measured:,}; the table above has every one for this month.")
st.caption("Uptime % per month; red where the month missed the environment's target. The current month is "
           "projected: its downtime so far against the whole month.")

st.subheader("Incidents in the last 90 days")
incidents = uptime.incidents_between(store, snap, snap.as_of - timedelta(days=90))
if incidents.empty:
    ui.empty_state("No incidents in the last 90 days.")
else:
    timeline = ui.local_times(incidents, "started_at", "drawn_until")
    timeline["start"], timeline["end"] = incidents.started_at, incidents.drawn_until
    spans = alt.Chart(timeline).encode(
        y=alt.Y("environment_id:N", title=None, axis=alt.Axis(labelLimit=220)),
        color=alt.Color("impact:N", title="Impact", scale=ui.color_scale(ui.IMPACT_COLORS)),
        tooltip=[alt.Tooltip("incident_id:N", title="Incident"), alt.Tooltip("environment_id:N", title="Environment"),
                 alt.Tooltip("impact:N", title="Impact"), alt.Tooltip("started_at:N", title="Started"),
                 alt.Tooltip("drawn_until:N", title="Until"), alt.Tooltip("ongoing:N", title="Ongoing"),
                 alt.Tooltip("summary:N", title="Summary")],
    )
    # Most incidents last minutes on a 90-day axis: a tick marks each start, the bar its length.
    chart = (spans.mark_bar(size=14).encode(x=alt.X("start:T", title="Time"), x2="end:T")
             + spans.mark_tick(thickness=3, size=18).encode(x="start:T"))
    st.altair_chart(chart.properties(height=max(160, 34 * incidents.environment_id.nunique())), width="stretch")
    st.dataframe(
        timeline[["incident_id", "environment_id", "impact", "started_at", "drawn_until", "ongoing", "summary"]]
        .iloc[::-1], hide_index=True, width="stretch",
        column_config={"incident_id": "Incident", "environment_id": "Environment", "impact": "Impact",
                       "started_at": "Started", "drawn_until": "Ended (or now)",
                       "ongoing": st.column_config.CheckboxColumn("Ongoing"), "summary": "Summary"})

st.subheader("Regular monitoring")
seen = uptime.last_seen(store, snap)
stale = int(seen.stale.sum())
days = store.config.stale_after_days
if stale:
    st.warning(f"{stale} dedicated environment(s) not checked and without incident for more than {days} days.",
               icon=":material/visibility_off:")
else:
    st.success(f"Every dedicated environment was seen in the last {days} days.", icon=":material/visibility:")
st.dataframe(
    ui.local_times(seen, "last_checked", "last_incident", "last_seen"), hide_index=True, width="stretch",
    column_config={"environment_id": "Environment", "environment_name": "Name", "client_id": "Client",
                   "last_checked": "Last check", "last_incident": "Last incident", "last_seen": "Last seen",
                   "days_since": st.column_config.NumberColumn("Days since", format="%.1f"),
                   "stale": st.column_config.CheckboxColumn(f"Not seen in {days} days")},
)
