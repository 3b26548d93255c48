import altair as alt
import pandas as pd
import streamlit as st

from kb import ui
from kb.access import PermissionDenied
from kb.db.schema import CATEGORIES, TIERS
from kb.intake import corrections, writes
from kb.intake.importing import Rejected
from kb.reads import mail, queue
from kb.timestamps import TimestampError, format_for_people, now_utc, parse_timestamp

ui.page_header("Queue", "Which case breaches next, and who has it?")

store, snap, actor = ui.open_app().store, ui.snapshot(), ui.actor()
zone = store.config.calendar.zone


def undo_resolve(case_id: str, resolved_at) -> None:
    """The flash's "Undo" (a callback: it runs before the next run, which no longer offers it)."""
    try:
        store.write(corrections.undo_resolve, store.config, actor, case_id, resolved_at)
        ui.flash(f"{case_id} reopened (resolution undone).")
    except (Rejected, PermissionDenied) as e:
        ui.flash(f"Nothing undone: {e}")


offer = st.session_state.pop("undo_offer", None)  # offered on the run right after a resolution only
if offer:
    columns = st.columns([5, 1], vertical_alignment="center")
    with columns[0]:
        ui.show_flash()
    columns[1].button("Undo", icon=":material/undo:", key="undo_resolve", on_click=undo_resolve, args=offer)
else:
    ui.show_flash()
ui.as_of_caption(snap)
choices = queue.filter_choices(store, snap)
client_labels = queue.client_labels(store, snap)

with st.expander("Filters: tier, state, client, category, assignee", icon=":material/filter_list:"):
    columns = st.columns(5)
    flt = queue.QueueFilter(
        tiers=tuple(columns[0].multiselect("Tier", TIERS, key="f_tier")),
        states=tuple(columns[1].multiselect("State", ["breached", "at_risk", "pending", "met"],
                                            format_func=ui.STATE_LABELS.get, key="f_state")),
        clients=tuple(columns[2].multiselect("Client", choices["clients"], key="f_client",
                                             format_func=lambda c: client_labels.get(c, c),
                                             placeholder="Type a client's name")),
        categories=tuple(columns[3].multiselect("Category", CATEGORIES, key="f_category")),
        assignees=tuple(columns[4].multiselect("Assignee", choices["assignees"],
                                               format_func=lambda a: a or "(unassigned)", key="f_assignee")),
    )

counts = queue.queue_counts(store, snap, flt)
STATE_ORDER = ["breached", "at_risk", "pending", "met", "no_sla"]


def show_lane(lane: str, total: int) -> pd.DataFrame:
    page = ui.page_picker(total, queue.PAGE_SIZE, key=f"page_{lane}")
    frame = queue.queue_page(store, snap, flt, lane=lane, page=page)
    shown = pd.DataFrame({
        "case_id": frame.case_id,
        "state": frame.sla_state.map(lambda s: [ui.STATE_LABELS[s]]),  # one coloured badge
        "time_left": [queue.time_left_text(h, answered=pd.notna(r))
                      for h, r in zip(frame.business_hours_left, frame.first_response_at, strict=True)],
        "first_response_due": pd.to_datetime(frame.first_response_due, utc=True).dt.tz_convert(zone),
        "assignee": frame.assignee.fillna("(unassigned)"),
        "client_name": frame.client_name,
        "subject": frame.subject,
        "age_hours": frame.age_hours.astype(float),
    })
    if lane != "sla":
        shown = shown.drop(columns=["state", "time_left", "first_response_due"])
    event = st.dataframe(
        shown, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key=f"grid_{lane}",
        column_config={
            "case_id": st.column_config.TextColumn("Case", pinned=True),
            "state": st.column_config.MultiselectColumn(
                "State", options=[ui.STATE_LABELS[s] for s in STATE_ORDER],
                color=[ui.STATE_COLORS[s] for s in STATE_ORDER], width=95),
            "time_left": st.column_config.TextColumn(
                "Time left", help="Business time to the first-response deadline; overdue when past it", width=125),
            "first_response_due": st.column_config.DatetimeColumn(
                "Deadline", format="ddd YYYY-MM-DD HH:mm", timezone=store.config.calendar.timezone, width=145),
            "assignee": st.column_config.TextColumn("Assignee", width=100),
            "client_name": st.column_config.TextColumn("Client", width=130),
            "subject": st.column_config.TextColumn("Subject", width=180),
            "age_hours": st.column_config.NumberColumn("Age (h)", format="%.1f", width=70,
                                                       help="Wall-clock hours since the case was received"),
        },
    )
    stamp = snap.as_of.astimezone(zone).strftime("%Y%m%dT%H%M%z")
    st.download_button(f"Download CSV ({total:,} {'case' if total == 1 else 'cases'})",
                       lambda: queue.queue_csv(store, snap, flt, lane=lane), file_name=f"queue-{lane}-{stamp}.csv",
                       mime="text/csv", icon=":material/download:", on_click="ignore", key=f"download_{lane}")
    return frame.iloc[event.selection.rows] if event.selection.rows else frame.iloc[0:0]


st.subheader(f"Cases with a deadline ({counts['sla']:,}), next to breach first")
selected = show_lane("sla", counts["sla"]) if counts["sla"] else pd.DataFrame()
if not counts["sla"]:
    ui.empty_state("No open case with a deadline matches. Log one on the Log case page, or clear the filters.")
detail_slot = st.container()

st.subheader(f"Deprioritized: free-tier general coding ({counts['deprioritized']:,})")
st.caption("No deadline under the terms; never counted as a breach. Oldest first.")
if counts["deprioritized"]:
    chosen = show_lane("deprioritized", counts["deprioritized"])
    selected = chosen if not chosen.empty else selected

case_id = None if selected is None or selected.empty else str(selected.iloc[0].case_id)
if actor.may("correct"):
    looked_up = st.text_input("Open any case by id (resolved ones too), to correct or void it", key="case_lookup",
                              placeholder="e.g. CS-00042").strip()
    case_id = looked_up or case_id


def shown_time(value) -> str:
    return format_for_people(value, zone) if value is not None and pd.notna(value) else "—"


def done(text: str) -> None:
    ui.flash(text)
    for lane in ("sla", "deprioritized"):  # the rows move after a write: select afresh
        st.session_state.pop(f"grid_{lane}", None)
    st.rerun()


def show_rejected(e: Exception) -> None:
    """What was refused, field by field (a form's row has no file line to name)."""
    problems = e.problems if isinstance(e, Rejected) else []
    texts = [f"{p.column}: {p.reason}" if p.column else p.reason for p in problems] or [str(e)]
    for text in texts:
        st.error(ui.plain(text), icon=":material/error:")


def time_text(value) -> str:
    """A stored instant as the local text the correction fields start with (seconds kept)."""
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).tz_convert(zone).strftime("%Y-%m-%d %H:%M:%S")


def case_panel(case: dict) -> None:
    cid = case["case_id"]
    voided = pd.notna(case["voided_at"])
    state = case["sla_state"] if isinstance(case["sla_state"], str) else None
    st.markdown(f"**{ui.plain(cid)}** · {ui.plain(case['client_name'])} ({ui.plain(case['tier'])}) · "
                f"{ui.plain(case['subject'])}")
    if voided:
        st.warning(f"Voided: {ui.plain(case['void_reason'])}. It counts nowhere; the audit trail keeps it.",
                   icon=":material/block:")
    facts = {
        "State": ui.STATE_LABELS.get(state, "—") if state else "—",
        "Time left": queue.time_left_text(case["business_hours_left"], answered=pd.notna(case["first_response_at"])),
        "Deadline": shown_time(case["first_response_due"]),
        "Assignee": case["assignee"] or "(unassigned)",
        "Category": case["category"],
        "Requester": case["requester"] or "—",
        "Source": queue.case_origin(store, cid) or "—",
        "Received": shown_time(case["received_at"]),
        "First response": shown_time(case["first_response_at"]),
        "Resolved": shown_time(case["resolved_at"]),
        "Breach reason": case["breach_reason"] or "—",
    }
    st.markdown("  \n".join(f"**{k}:** {ui.plain(v) if v else '—'}" for k, v in facts.items()))
    thread_panel(cid)
    if voided:
        return
    columns = st.columns(3)
    if pd.isna(case["first_response_at"]) and actor.may("record_response"):
        if columns[0].button("Record first response now", icon=":material/reply:", key="respond"):
            store.write(writes.record_response, store.config, actor, cid, now_utc())
            done(f"First response recorded on {cid}.")
    if actor.may("assign_case"):
        with columns[1].form("assign", border=False):
            assignee = st.text_input("Assign to", value=case["assignee"] or "", key=f"assignee_{cid}")
            if st.form_submit_button("Assign", icon=":material/person:"):
                store.write(writes.assign_case, store.config, actor, cid, assignee)
                done(f"{cid} assigned to {assignee.strip() or 'nobody'}.")
    if pd.isna(case["resolved_at"]) and actor.may("resolve_case") and columns[2].button(
            "Resolve now", icon=":material/check:", key="resolve"):
        at = now_utc()
        store.write(writes.resolve_case, store.config, actor, cid, at)
        st.session_state["undo_offer"] = (cid, at)
        done(f"{cid} resolved.")
    if state == "breached" and actor.may("record_response"):
        with st.form(f"breach_{cid}", border=False):
            reason = st.text_input("Why was it breached? (short, counted on Response performance)",
                                   value=case["breach_reason"] or "", max_chars=corrections.BREACH_REASON_MAX_CHARS,
                                   key=f"breach_reason_{cid}")
            if st.form_submit_button("Save breach reason", icon=":material/edit_note:"):
                store.write(corrections.record_breach_reason, store.config, actor, cid, reason, snap.as_of)
                done(f"Breach reason of {cid} saved.")
    if actor.may("correct"):
        correction_forms(case)


def thread_panel(cid: str) -> None:
    """The case's e-mail thread, oldest first (nothing for a case logged on a form or imported)."""
    thread = mail.case_thread(store, cid)
    if thread.empty:
        return
    st.markdown(f"**Thread** ({len(thread):,} message{'s' if len(thread) != 1 else ''}, oldest first)")
    st.dataframe(pd.DataFrame({
        "time": [shown_time(t) for t in thread.received_at],
        "sender": [f"{n} <{a}>" if isinstance(n, str) and n else a
                   for n, a in zip(thread.from_name, thread.from_address, strict=True)],
        "side": thread.side,
        "subject": thread.subject.fillna(""),
        "automatic": [(f"yes ({r})" if isinstance(r, str) and r else "yes") if a else "no"
                      for a, r in zip(thread.is_automatic, thread.automatic_reason, strict=True)],
        "role": ["opened the case" if o else "first response" if f else ""
                 for o, f in zip(thread.opened_case, thread.first_response, strict=True)],
    }), hide_index=True, width="stretch", key=f"thread_{cid}", column_config={
        "time": st.column_config.TextColumn(f"Time ({store.config.calendar.timezone})"),
        "sender": "From", "subject": "Subject", "automatic": "Automatic",
        "side": st.column_config.TextColumn("Team or client", help="Unverified: From names the team, but neither a "
                                            "sent folder nor the team's mail server vouches for it; it counts for "
                                            "nothing"),
        "role": "Role"})


def correction_forms(case: dict) -> None:
    cid = case["case_id"]
    with st.expander("Correct this case (client, category, times)", icon=":material/edit:"):
        with st.form(f"correct_{cid}", border=False):
            options = queue.client_options(store)
            ids = list(options)
            client = st.selectbox("Client", ids, index=ids.index(case["client_id"]), format_func=options.get,
                                  key=f"correct_client_{cid}")
            category = st.selectbox("Category", CATEGORIES, index=CATEGORIES.index(case["category"]),
                                    key=f"correct_category_{cid}")
            st.caption(f"Times in {store.config.calendar.timezone}, as YYYY-MM-DD HH:MM[:SS]; empty clears an "
                       "optional one.")
            times = {name: st.text_input(label, value=time_text(case[name]), key=f"correct_{name}_{cid}")
                     for name, label in (("received_at", "Received"), ("first_response_at", "First response"),
                                         ("resolved_at", "Resolved"))}
            if st.form_submit_button("Save correction", icon=":material/save:"):
                changes: dict[str, object] = {}
                if client != case["client_id"]:
                    changes["client_id"] = client
                if category != case["category"]:
                    changes["category"] = category
                try:
                    for name, text in times.items():
                        if text.strip() != time_text(case[name]):
                            changes[name] = parse_timestamp(text.strip(), zone) if text.strip() else None
                except TimestampError as e:
                    st.error(ui.plain(f"{name}: {e}"), icon=":material/error:")
                    return
                changed = store.write(corrections.correct_case, store.config, actor, cid, changes)
                done(f"{cid} corrected: " + ", ".join(f"{k} {shown_value(v[0])} → {shown_value(v[1])}"
                                                      for k, v in changed.items()) + ".")
    with st.expander("Void this case (logged in error)", icon=":material/block:"):
        with st.form(f"void_{cid}", border=False):
            reason = st.text_input("Reason (required, kept in the audit trail)", key=f"void_reason_{cid}",
                                   max_chars=corrections.REASON_MAX_CHARS)
            if st.form_submit_button("Void case", icon=":material/block:"):
                store.write(corrections.void_case, store.config, actor, cid, reason)
                st.session_state.pop("case_lookup", None)
                done(f"{cid} voided: it leaves the queue, every count and every export.")


def shown_value(value) -> str:
    if value is None:
        return "(none)"
    return format_for_people(value, zone) if hasattr(value, "tzinfo") else str(value)


with detail_slot:
    if case_id:
        case = queue.case_detail(store, snap, case_id)
        if case is None:
            st.warning(f"No case {ui.plain(case_id)}.", icon=":material/search_off:")
        else:
            with st.container(border=True):
                try:
                    case_panel(case)
                except (Rejected, PermissionDenied) as e:
                    show_rejected(e)
    elif counts["sla"] or counts["deprioritized"]:
        st.caption("Select a row for its details: record a response, assign, resolve, or correct the case.")

st.subheader("Open cases by age")
buckets = queue.age_buckets(store, snap, flt)
if buckets.empty:
    ui.empty_state("No open cases match.")
else:
    chart = alt.Chart(buckets).mark_bar().encode(
        x=alt.X("age_bucket:N", title="Age of open case", sort=list(queue.AGE_BUCKETS), axis=alt.Axis(labelAngle=0)),
        y=alt.Y("cases:Q", title="Open cases"),
        color=alt.Color("tier:N", title="Tier", scale=ui.color_scale(ui.TIER_COLORS)),
        tooltip=[alt.Tooltip("age_bucket:N", title="Age"), alt.Tooltip("tier:N", title="Tier"),
                 alt.Tooltip("cases:Q", title="Cases")],
    ).properties(height=220)
    st.altair_chart(chart, width="stretch")
