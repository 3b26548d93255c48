from datetime import timedelta

import altair as alt
import pandas as pd
import streamlit as st

from kb import formats, marks, ui
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

st.subheader(f"This month ({formats.month_label(months.this)}, projected)")
current = monthly[monthly.month == months.this]
burnt = 100 * (current.budget_minutes - current.budget_left_minutes) / current.budget_minutes
ui.table(
    formats.in_words(current).assign(
        uptime_pct=current.uptime_pct.map(formats.percent), target_pct=current.target_pct.map(formats.term),
        target_met=current.target_met.map(formats.verdict),
        downtime_minutes=(current.downtime_minutes / 60).map(formats.duration),
        budget_minutes=(current.budget_minutes / 60).map(formats.duration),
        budget_left_minutes=current.budget_left_minutes.map(formats.budget_left),
        budget_used_pct=burnt.map(lambda pct: float(formats.percent_value(pct)))),
    hide_index=True, width="stretch",
    column_order=["environment_name", "uptime_pct", "target_met", "target_pct", "budget_left_minutes",
                  "budget_used_pct", "downtime_minutes", "budget_minutes", "kind", "environment_id"],
    column_config={
        "environment_name": "Environment", "environment_id": "ID", "kind": "Kind", "uptime_pct": "Uptime",
        "target_pct": "Target", "target_met": "Verdict",
        "downtime_minutes": st.column_config.TextColumn("Downtime", help="Outage time this month so far"),
        "budget_minutes": st.column_config.TextColumn("Error budget",
                                                      help="The downtime the target allows this month"),
        "budget_left_minutes": st.column_config.TextColumn("Budget left",
                                                           help="Error budget left; below zero: target missed"),
        "budget_used_pct": st.column_config.ProgressColumn("Budget burnt", format="%.2f %%", min_value=0,
                                                           max_value=100),
    },
)

st.subheader("Monthly uptime against target")
HEATMAP_ENVIRONMENTS = 40  # rows of the grid: 40 environments × 13 months stay far below 5,000 cells
shown, measured = uptime.worst_environments(store, snap, since, HEATMAP_ENVIRONMENTS)
# Each cell's uptime written in it where a cell is wide enough for "99.95 %" (Vega's own width signal: it follows the
# window); on a phone the colours say it, and a tap on a cell its numbers.
MONTH_CELL_PX = 58


def uptime_grid() -> alt.LayerChart:
    """Uptime per month of the environments ``shown``: a cell each, red where the month missed its target."""
    grid, order = ui.with_month_labels(monthly[monthly.environment_id.isin(shown)])
    grid = formats.in_words(grid).assign(
        on_target=grid.target_met.map(formats.verdict), uptime=grid.uptime_pct.map(formats.percent),
        target=grid.target_pct.map(formats.term), downtime=(grid.downtime_minutes / 60).map(formats.duration),
        budget_left=grid.budget_left_minutes.map(formats.budget_left))
    base = alt.Chart().encode(  # the data once, on the layers together (below)
        x=alt.X("month_label:O", title=None, sort=order,
                axis=alt.Axis(labelAngle=0, orient="top", labelOverlap=True)),  # (a phone shows every other month)
        y=alt.Y("environment_name:N", title=None, axis=alt.Axis(labelLimit=220)),
        tooltip=[alt.Tooltip("environment_name:N", title="Environment"), alt.Tooltip("environment_id:N", title="ID"),
                 alt.Tooltip("month_label:O", title="Month"),
                 alt.Tooltip("uptime:N", title="Uptime"), alt.Tooltip("target:N", title="Target"),
                 alt.Tooltip("downtime:N", title="Downtime"), alt.Tooltip("budget_left:N", title="Budget left"),
                 alt.Tooltip("status:N", title="Status")],
    )
    cells = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color("on_target:N", title="Month", scale=alt.Scale(domain=["On target", "Below target"],
                                                                      range=["#c8e6c9", "#ef9a9a"])),
        opacity=alt.Opacity("status:N", title="Status", scale=alt.Scale(
            domain=[formats.word("status", s) for s in ("final", "projected")], range=[1.0, 0.55])),
    )
    labels = base.mark_text(fontSize=11, opacity=alt.ExprRef(
        f"width / {max(1, len(order))} >= {MONTH_CELL_PX} ? 1 : 0")).encode(text=alt.Text("uptime:N"))
    return alt.layer(cells, labels, data=grid).properties(height=max(140, 34 * grid.environment_id.nunique()))


ui.remembered_chart(snap, ("uptime", "by month"), uptime_grid)
if measured > len(shown):
    st.caption(f"The {formats.count(len(shown), 'environment')} with the most months below target, then the lowest "
               "uptime, of "
               f"{measured:,}; the table above has every one for this month.")
st.caption("Uptime per month; red where the month missed the environment's target. The current month is "
           "projected: its downtime so far against the whole month.")


def incident_timeline() -> alt.LayerChart:
    """The incidents of the last 90 days on a time axis: a bar each for its length, a dot at its start."""
    domain = ui.wall_clock_ms(pd.Series([window_start, snap.as_of])).tolist()
    spans = alt.Chart().encode(
        y=alt.Y("environment_name:N", title=None, axis=alt.Axis(labelLimit=220)),
        color=alt.Color("impact:N", title="Impact", scale=marks.color_scale(ui.IMPACT_COLORS, formats.WORDS["impact"])),
        tooltip=[alt.Tooltip("incident_id:N", title="Incident"),
                 alt.Tooltip("environment_name:N", title="Environment"),
                 alt.Tooltip("impact:N", title="Impact"), alt.Tooltip("started_at:N", title="Started"),
                 alt.Tooltip("drawn_until:N", title="Until"),
                 alt.Tooltip("length:N", title="Length"),
                 alt.Tooltip("ongoing:N", title="Ongoing"), alt.Tooltip("summary:N", title="Summary")],
    )
    x = alt.X("start:T", title=["Time in the support zone", f"({ui.zone_name()})"],
              scale=alt.Scale(type="utc", domain=domain, padding=8),  # (room for the dot of an incident of now)
              axis=alt.Axis(format="%d %b", labelAngle=0))
    # Most incidents last minutes on a 90-day axis, narrower than a pixel: a dot marks each start, the bar its
    # length.
    chart = alt.layer(spans.mark_bar(size=14).encode(x=x, x2=alt.X2("end:T")),
                      spans.mark_point(filled=True, size=90, opacity=1).encode(x=x), data=timeline)
    return chart.properties(height=max(160, 34 * incidents.environment_id.nunique()))


st.subheader("Incidents in the last 90 days")
window_start = snap.as_of - timedelta(days=90)
incidents = uptime.incidents_between(store, snap, window_start)
if incidents.empty:
    ui.empty_state("No incidents in the last 90 days.")
else:
    timeline = formats.in_words(ui.local_times(incidents, "started_at", "drawn_until"))
    # Drawn at their wall-clock time in the support zone on a UTC scale, so the browser's own zone cannot move
    # them (see ui.wall_clock_ms); the tooltips and the table say the same times in words.
    timeline["start"], timeline["end"] = ui.wall_clock_ms(incidents.started_at), ui.wall_clock_ms(incidents.drawn_until)
    timeline["length"] = ((incidents.drawn_until - incidents.started_at).dt.total_seconds() / 3600).map(
        formats.duration)
    ui.remembered_chart(snap, ("uptime", "incidents"), incident_timeline, width="stretch")
    ui.table(
        timeline[["environment_name", "impact", "length", "started_at", "ongoing", "drawn_until", "incident_id",
                  "summary"]].iloc[::-1], hide_index=True, width="stretch",
        column_config={"incident_id": "Incident", "environment_name": "Environment", "impact": "Impact",
                       "started_at": "Started", "drawn_until": "Ended (or now)", "length": "Length",
                       "ongoing": st.column_config.CheckboxColumn("Ongoing"),
                       "summary": st.column_config.TextColumn("Summary", width="large")})

st.subheader("Regular monitoring")
seen = uptime.last_seen(store, snap)
stale = int(seen.stale.sum())
days = store.config.stale_after_days
if stale:
    st.warning(f"{formats.count(stale, 'dedicated environment')} not checked and without incident for more than "
               f"{formats.count(days, 'day')}.",
               icon=":material/visibility_off:")
else:
    st.success(f"Every dedicated environment was seen in the last {formats.count(days, 'day')}.",
               icon=":material/visibility:")
ui.table(
    ui.local_times(seen, "last_checked", "last_incident", "last_seen").assign(
        days_since=(seen.days_since * 24).map(formats.duration), client_name=seen.client_name.map(formats.text)),
    hide_index=True, width="stretch",
    column_order=["environment_name", "days_since", "stale", "client_name", "last_seen", "last_checked",
                  "last_incident", "environment_id"],
    column_config={"environment_id": "ID", "environment_name": "Environment", "client_name": "Client",
                   "last_checked": "Last check", "last_incident": "Last incident", "last_seen": "Last seen",
                   "days_since": "Unseen for",
                   "stale": st.column_config.CheckboxColumn(f"Unseen {days}+ days")},
)
