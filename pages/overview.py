from functools import partial

import altair as alt
import pandas as pd
import streamlit as st

from kb import formats, marks, ui
from kb.engine import periods
from kb.engine.targets import BY_METRIC, TARGETS, Target
from kb.reads import met, overview, uptime

ui.page_header("Overview", "Are we keeping the Support Service Terms this month, and who is owed what?")

store, snap = ui.open_app().store, ui.snapshot()
store.ready(snap)  # every case and uptime, side by side
ui.as_of_caption(snap)
months = periods.months_of(store.config.calendar, snap.as_of)
this_label, last_label = formats.month_label(months.this), formats.month_label(months.last)
zone = store.config.calendar.zone

shares, by_tier, by_priority = overview.met_by_month(store, snap, months, ((), ("tier",), ("priority",)))
open_now = overview.open_case_counts(store, snap)
environments = overview.environments_below_target(store, snap, months).set_index("month")
refunds = overview.refund_exposure(store, snap, months)
owed = overview.credits_owed(store, snap, months)


def goal(target: Target) -> float:
    """The share of the target's deadlines the team aims to meet (``[sla]`` in support.toml)."""
    return float(store.config.sla.met_target_pct(target.metric))


def share(frame: pd.DataFrame, target: Target, month: str):
    """The row of ``frame`` (one of ``overview.met_by_month``'s, for a single tier or priority at most) for
    ``target`` in ``month``."""
    return next(frame[(frame.metric == target.metric) & (frame.month == month)].itertuples())


def share_against_target(row, target: Target) -> str:
    """'33.33 % · 1 of 3 met · below target', or 'none due yet'."""
    says, color = ui.against_target(row, goal(target))
    return says if color == "gray" else f"{formats.percent(row.pct_met)} · {says}"


def this_month_by(frame: pd.DataFrame, group: str) -> pd.DataFrame:
    """One row per tier or priority (``group``), one column per target: its share this month in words."""
    rows = frame[frame.month == months.this]
    said = rows.assign(said=[share_against_target(row, BY_METRIC[row.metric]) for row in rows.itertuples()])
    table = said.pivot(index=group, columns="metric", values="said").reindex(
        index=list(overview.GROUP_VALUES[group]), columns=[t.metric for t in TARGETS])
    return formats.in_words(table.reset_index())


def met_by_tier(rows: pd.DataFrame, target: Target) -> alt.LayerChart:
    """% met of ``target`` last month and this, a bar per tier, under the team's target line."""
    chart_data, order = ui.with_month_labels(formats.in_words(rows).assign(
        pct_text=rows.pct_met.map(formats.percent),
        share_text=[met.share_in_words(m, d) for m, d in zip(rows.met, rows.decided, strict=True)]))
    colors = marks.drawn_colors(ui.TIER_COLORS, rows.tier[rows.decided > 0])  # a bar, or a tick at 0
    bars = alt.Chart(chart_data).mark_bar().encode(
        x=alt.X("month_label:O", title=None, sort=order, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("pct_met:Q", title=f"% of due {target.counted} met", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("tier:N", title="Tier", scale=marks.color_scale(colors, formats.WORDS["tier"])),
        xOffset=alt.XOffset("tier:N"),  # (a class: Altair reads a text through its schema, ~9 ms)
        tooltip=[alt.Tooltip("tier:N", title="Tier"), alt.Tooltip("month_label:O", title="Month"),
                 alt.Tooltip("pct_text:N", title="% met"), alt.Tooltip("share_text:N", title=target.label)],
    )
    return alt.layer(bars, marks.zero_marks(bars), *marks.target_rule(goal(target))).properties(height=260)


def show_by(frame: pd.DataFrame, group: str, label: str) -> None:
    ui.table(this_month_by(frame, group), hide_index=True, width="stretch", key=f"met_by_{group}",
             column_config={group: label, **{t.metric: f"{t.label} (target {formats.term(goal(t))})"
                                              for t in TARGETS}})


st.subheader(f"Targets met in {this_label}")
counted = ", ".join(f"{t.label.lower()}s count {t.counted}" for t in TARGETS)
st.caption(f"Each target's share of those due in {this_label} so far that were met ({counted}). The targets are "
           "the support team's own goals (`response_target_pct`, `next_response_target_pct` and "
           "`resolution_target_pct` under `[sla]` in support.toml; the last two are the first when not set), not "
           "promises of the Support Service Terms: the Terms promise each case its deadlines.")
columns = st.columns(len(TARGETS) + 1)
for column, target in zip(columns, TARGETS, strict=False):
    ui.met_card(column, target.label, share(shares, target, months.this), goal(target),
                f"{target.counted.capitalize()} due in {this_label} that met their {target.label.lower()} "
                f"deadline, against the team's goal of {formats.term(goal(target))} (pending and at-risk ones are "
                f"not decided yet). {last_label}: {share_against_target(share(shares, target, months.last), target)}.")
columns[-1].metric("Open cases", open_now["open"], border=True,
                   delta=f"{open_now['nothing_due']:,} with nothing due" if open_now["nothing_due"] else None,
                   delta_color="off", delta_arrow="off",
                   help="Not resolved yet, answered or not. The cards below count them by what is due next; those "
                        "with nothing due have no deadline running (answered, with no resolution target; or a "
                        "question without a deadline, such as a free user's general coding one).")

columns = st.columns(len(overview.DUE_STATES))
for column, state in zip(columns, overview.DUE_STATES, strict=True):
    column.metric(f"{formats.word('state', state)} now", open_now[state], border=True,
                  help="Open cases by the state of the next thing due on them: a first response, a follow-up "
                       f"response or the resolution. At risk: at most {store.config.sla.at_risk_business_hours} "
                       "business hours left; waiting on client: the resolution clock is stopped.")

st.markdown(f"**By tier, {this_label}**")
show_by(by_tier, "tier", "Tier")
if by_priority[(by_priority.month == months.this) & (by_priority.decided > 0)].priority.nunique() > 1:
    st.markdown(f"**By priority, {this_label}**")
    show_by(by_priority, "priority", "Priority")

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
             "programme contract) missing it this month so far (projected); last month is over.", border=True)
    budget = float(this.lowest_budget_left_minutes)
    columns[1].metric(
        "Lowest error budget left", formats.budget_left(budget),
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
            "budget_left": each.budget_left_minutes.map(formats.budget_left),
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
    status = formats.word("status", "final" if month == months.last else "projected").lower()
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
    ui.empty_state("No client is owed service credits: none last month or this month, and none of a closed month "
                   "waiting to be applied.")
else:
    shown = formats.in_words(owed).assign(
        month=owed.month.map(formats.month_label),
        credit=[formats.money(a, c) for a, c in zip(owed.refund_amount, owed.currency, strict=True)])
    ui.table(
        shown[["client_name", "credit", "month", "stage", "environments"]], hide_index=True, width="stretch",
        column_config={"month": "Month", "stage": st.column_config.TextColumn(
                           "Stage", help="Projected: this month, from its downtime so far. Computed: a month "
                                         "over, not closed yet. Final: its month is closed; owed until a lead "
                                         "marks it applied on Service credits."),
                       "client_name": "Client", "credit": st.column_config.TextColumn("Service credits owed"),
                       "environments": "For the uptime of"})

st.subheader("Met this month and last, by tier")
columns = st.columns(len(TARGETS))
for column, target in zip(columns, TARGETS, strict=True):
    rows = by_tier[(by_tier.metric == target.metric) & (by_tier.decided > 0)]
    with column:
        st.markdown(f"**{target.label}**")
        if rows.empty:
            ui.empty_state(f"None due in {last_label} or {this_label} yet.")
            continue
        ui.remembered_chart(snap, ("overview", "met by tier", target.metric), partial(met_by_tier, rows, target),
                            reads=met.READS, width="stretch")
