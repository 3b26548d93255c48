import altair as alt
import pandas as pd
import streamlit as st

from kb import ui
from kb.db.schema import CATEGORIES, TIERS
from kb.intake import writes
from kb.intake.importing import Rejected
from kb.reads import queue
from kb.timestamps import now_utc

ui.page_header("Queue", "Which open cases need a first response next, and which deadlines are at risk?")

store, snap, actor = ui.open_app().store, ui.snapshot(), ui.actor()
ui.show_flash()
ui.as_of_caption(snap)
choices = queue.filter_choices(store, snap)

with st.container(border=True):
    columns = st.columns(5)
    flt = queue.QueueFilter(
        tiers=tuple(columns[0].multiselect("Tier", TIERS, key="f_tier")),
        states=tuple(columns[1].multiselect("State", ["breached", "at_risk", "pending", "met"],
                                            format_func=ui.STATE_LABELS.get, key="f_state")),
        clients=tuple(columns[2].multiselect("Client", choices["clients"], key="f_client")),
        categories=tuple(columns[3].multiselect("Category", CATEGORIES, key="f_category")),
        assignees=tuple(columns[4].multiselect("Assignee", choices["assignees"],
                                               format_func=lambda a: a or "(unassigned)", key="f_assignee")),
    )

counts = queue.queue_counts(store, snap, flt)
buckets = queue.age_buckets(store, snap, flt)
if buckets.empty:
    ui.empty_state("No open cases match. Log one on the Log case page, or clear the filters.")
else:
    chart = alt.Chart(buckets).mark_bar().encode(
        x=alt.X("age_bucket:N", title="Age of open case", sort=list(queue.AGE_BUCKETS), axis=alt.Axis(labelAngle=0)),
        y=alt.Y("cases:Q", title="Open cases"),
        color=alt.Color("tier:N", title="Tier", scale=ui.color_scale(ui.TIER_COLORS)),
        tooltip=[alt.Tooltip("age_bucket:N", title="Age"), alt.Tooltip("tier:N", title="Tier"),
                 alt.Tooltip("cases:Q", title="Cases")],
    ).properties(height=220)
    st.altair_chart(chart, width="stretch")


def show_lane(lane: str, total: int) -> pd.DataFrame:
    page = ui.page_picker(total, queue.PAGE_SIZE, key=f"page_{lane}")
    frame = queue.queue_page(store, snap, flt, lane=lane, page=page)
    shown = ui.local_times(frame, "received_at", "first_response_due", "first_response_at")
    shown["state"] = frame.sla_state.map(ui.STATE_LABELS)
    shown["assignee"] = frame.assignee.fillna("")
    shown["age"] = frame.age_hours.map(lambda h: f"{h / 24:.1f} d" if h >= 48 else f"{h:.1f} h")
    shown = shown[["case_id", "state", "client_name", "tier", "category", "subject", "assignee", "age",
                   "received_at", "first_response_due", "business_hours_left", "first_response_at"]]
    state_styles = {ui.STATE_LABELS[k]: f"color: {color}; font-weight: 600" for k, color in ui.STATE_COLORS.items()}
    styled = shown.style.map(lambda label: state_styles.get(label, ""), subset=["state"])  # the state column only
    event = st.dataframe(
        styled, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key=f"grid_{lane}",
        column_config={
            "case_id": "Case", "state": "State", "client_name": "Client", "tier": "Tier", "category": "Category",
            "subject": "Subject", "assignee": "Assignee", "age": "Age", "received_at": "Received",
            "first_response_due": "Response due",
            "business_hours_left": st.column_config.NumberColumn("Business h left", format="%.1f"),
            "first_response_at": "First response",
        },
    )
    return frame.iloc[event.selection.rows] if event.selection.rows else frame.iloc[0:0]


st.subheader(f"Cases with a deadline ({counts['sla']:,})")
selected = show_lane("sla", counts["sla"]) if counts["sla"] else pd.DataFrame()
st.subheader(f"Deprioritized: free-tier general coding ({counts['deprioritized']:,})")
st.caption("No deadline under the terms; never counted as a breach.")
if counts["deprioritized"]:
    chosen = show_lane("deprioritized", counts["deprioritized"])
    selected = chosen if not chosen.empty else selected

if selected is not None and not selected.empty:
    case = selected.iloc[0]
    with st.container(border=True):
        st.markdown(f"**{ui.plain(case.case_id)}** · {ui.plain(case.client_name)} · {ui.plain(case.subject)}")
        columns = st.columns(3)
        done = None
        try:
            if pd.isna(case.first_response_at) and actor.may("record_response"):
                if columns[0].button("Record first response now", icon=":material/reply:", key="respond"):
                    store.write(writes.record_response, store.config, actor, case.case_id, now_utc())
                    done = f"First response recorded on {case.case_id}."
            if actor.may("assign_case"):
                with columns[1].form("assign", border=False):
                    assignee = st.text_input("Assign to", value=case.assignee or "", key=f"assignee_{case.case_id}")
                    if st.form_submit_button("Assign", icon=":material/person:"):
                        store.write(writes.assign_case, store.config, actor, case.case_id, assignee)
                        done = f"{case.case_id} assigned to {assignee.strip() or 'nobody'}."
            if actor.may("resolve_case") and columns[2].button("Resolve now", icon=":material/check:", key="resolve"):
                store.write(writes.resolve_case, store.config, actor, case.case_id, now_utc())
                done = f"{case.case_id} resolved."
        except Rejected as e:
            st.error(ui.plain(e), icon=":material/error:")
        if done:
            ui.flash(done)
            for lane in ("sla", "deprioritized"):  # the rows move after a write: select afresh
                st.session_state.pop(f"grid_{lane}", None)
            st.rerun()
else:
    st.caption("Select a row to record a first response, assign or resolve the case.")
