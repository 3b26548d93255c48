"""The Queue: the lanes of open cases, the one selected case's panel and its actions.

Over 400 lines: the lanes, the panel and its actions share the selected case's state in the session, and
one script read top to bottom is how Streamlit reruns them.
"""

from contextlib import contextmanager

import altair as alt
import pandas as pd
import streamlit as st

from kb import formats, marks, ui
from kb.access import PermissionDenied
from kb.db.schema import CATEGORIES, PRIORITIES, TIERS
from kb.engine.calendar import business_day_hours
from kb.engine.periods import month_days
from kb.engine.targets import BY_METRIC, STATES, TARGETS
from kb.intake import corrections, pauses, writes
from kb.intake.importing import Problem, Rejected
from kb.reads import mail, queue
from kb.timestamps import TimestampError, now_utc, parse_timestamp

ui.page_header("Queue", "Which case breaches next, and who has it?")

store, snap, actor = ui.open_app().store, ui.snapshot(), ui.actor()
zone = store.config.calendar.zone
day_hours = store.config.calendar.business_day_seconds / 3600  # a business day, for business time in days
calendar_day_hours = business_day_hours(store.config)  # a business day on each calendar a target may run on


# --- Which case is open: one case id, kept in the address (a link or a reload opens it again). The grids
# tick the row holding it wherever the rows move, and its panel stays open after every action.

def selected() -> str | None:
    return st.query_params.get("case") or None


def select(case_id: str | None) -> None:
    if case_id:
        st.query_params["case"] = case_id
    else:
        st.query_params.pop("case", None)


def ticked_rows(lane: str) -> list[int]:
    state = st.session_state.get(f"grid_{lane}")
    return list(state["selection"]["rows"]) if state else []


def adopt_tick(lane: str) -> bool:
    """Whether someone ticked or cleared a row of the lane's grid since it was drawn; if so, the case of that
    row (by the ids drawn then, not by where the rows are now) is the selected one."""
    drawn = st.session_state.get(f"grid_{lane}_drawn")  # (case ids, ticked rows) as last drawn
    rows = ticked_rows(lane)
    if drawn is None or rows == drawn[1]:
        return False
    ids = drawn[0]
    select(ids[rows[0]] if rows and rows[0] < len(ids) else None)
    st.session_state[f"grid_{lane}_drawn"] = (ids, rows)
    return True


def look_up() -> None:
    """The lookup box opens the case typed, then empties itself for the next one."""
    typed = st.session_state["case_lookup"].strip()
    if typed:
        select(queue.case_id_typed(store, typed))
    st.session_state["case_lookup"] = ""


PANEL_FLASH = "case_flash"  # the confirmation of an action on the open case, shown at the top of its panel


def undo_resolve(case_id: str, resolved_at) -> None:
    """The confirmation's "Undo" (a callback: it runs before the next run, which no longer offers it)."""
    try:
        store.write(corrections.undo_resolve, store.config, actor, case_id, resolved_at)
        ui.flash(f"{case_id} reopened (resolution undone).", key=PANEL_FLASH)
    except (Rejected, PermissionDenied) as e:
        ui.flash(f"Nothing undone: {e}", key=PANEL_FLASH)


def undo_pause(case_id: str) -> None:
    """The confirmation's "Undo" after "Waiting on client" (a callback, as ``undo_resolve``)."""
    try:
        store.write(pauses.undo_pause, store.config, actor, case_id)
        ui.flash(f"{case_id} is no longer waiting on the client (pause undone).", key=PANEL_FLASH)
    except (Rejected, PermissionDenied) as e:
        ui.flash(f"Nothing undone: {e}", key=PANEL_FLASH)


UNDO = {"resolve": undo_resolve, "pause": undo_pause}  # the actions the confirmation offers to undo


ui.show_flash()
ui.as_of_caption(snap)
choices = queue.filter_choices(store, snap)
client_labels = choices["client_labels"]

with st.expander("Filters: tier, priority, state, client, category, assignee", icon=":material/filter_list:"):
    columns = st.columns(6)
    flt = queue.QueueFilter(
        tiers=tuple(columns[0].multiselect("Tier", TIERS, format_func=lambda t: formats.word("tier", t),
                                           key="f_tier")),
        priorities=tuple(columns[1].multiselect("Priority", PRIORITIES, key="f_priority",
                                                format_func=lambda p: formats.word("priority", p))),
        states=tuple(columns[2].multiselect("State", STATES, format_func=ui.STATE_LABELS.get, key="f_state",
                                            help="The state of the next thing due; with nothing due, Waiting "
                                                 "on client, else the case's most urgent state")),
        clients=tuple(columns[3].multiselect("Client", list(client_labels), key="f_client",
                                             format_func=lambda c: client_labels.get(c, c),
                                             placeholder="Type a client's name")),
        categories=tuple(columns[4].multiselect("Category", CATEGORIES, key="f_category",
                                                format_func=lambda c: formats.word("category", c))),
        assignees=tuple(columns[5].multiselect("Assignee", choices["assignees"],
                                               format_func=formats.assignee, key="f_assignee")),
    )
for lane in queue.LANES:
    adopt_tick(lane)

WAITING = formats.word("state", "paused")  # "Waiting on client"
# The grid's columns, in order: how each is shown. Another column is one more entry here and one more column in
# ``queue.queue_page``.
COLUMNS = {
    "case_id": st.column_config.TextColumn("Case", pinned=True),
    "state": st.column_config.MultiselectColumn(
        "State", options=[ui.STATE_LABELS[s] for s in STATES],
        color=[ui.STATE_COLORS[s] for s in STATES], width=95),
    "next_due_target": st.column_config.TextColumn(
        "Next due", width=130,
        help="The target due next: first response, follow-up response (the client's earliest unanswered "
             f"question) or resolution; {WAITING} while the case waits on the client and nothing else runs"),
    "next_due_hours_left": st.column_config.NumberColumn(
        f"Hours left (1 d = {day_hours:g} h)", format="%.1f h", width=150,
        help=f"Business hours to the next deadline, a business day being {day_hours:g} h (negative: overdue by "
             "that much), on the calendar of its target: clock hours for a target that runs around the clock "
             "(24x7); empty when nothing is due"),
    "next_due": st.column_config.DatetimeColumn(
        "Due", format="ddd YYYY-MM-DD HH:mm z ([UTC]Z)", timezone=store.config.calendar.timezone, width=250),
    "priority": st.column_config.TextColumn("Priority", width=75),
    "tier": st.column_config.TextColumn("Tier", width=85),
    "assignee": st.column_config.TextColumn("Assignee", width=100),
    "client_name": st.column_config.TextColumn("Client", width=130),
    "subject": st.column_config.TextColumn("Subject", width=180),
    "age_hours": st.column_config.NumberColumn("Hours since received", format="%.1f h", width=110,
                                               help="Wall-clock hours since the case was received"),
}
DEADLINE_COLUMNS = ("state", "next_due_target", "next_due_hours_left", "next_due")  # not in the lane without any
LANE_TITLES = {"sla": "Cases with a deadline ({:,}), next to breach first",
               "deprioritized": "Deprioritized: no deadline ({:,})"}


def next_due_target(metric, waiting: bool) -> str:
    """Which target is due next, in words; Waiting on client when none runs while the case waits on the client."""
    if isinstance(metric, str):
        return BY_METRIC[metric].label
    return WAITING if waiting else formats.EMPTY


def grid(frame: pd.DataFrame, lane: str) -> pd.DataFrame:
    """The lane's rows as the grid shows them (``COLUMNS``)."""
    shown = frame.assign(
        state=frame.state.map(lambda s: [ui.STATE_LABELS[s]]),  # one coloured badge
        next_due_target=[next_due_target(m, w) for m, w in zip(frame.next_due_metric, frame.waiting_on_client,
                                                                strict=True)],
        next_due_hours_left=frame.next_due_hours_left.astype(float),
        next_due=pd.to_datetime(frame.next_due, utc=True).dt.tz_convert(zone),
        priority=frame.priority.map(lambda p: formats.word("priority", p)),
        tier=frame.tier.map(lambda t: formats.word("tier", t)),
        assignee=frame.assignee.map(formats.assignee),
        age_hours=frame.age_hours.astype(float),
    )
    return shown[[c for c in COLUMNS if lane == "sla" or c not in DEADLINE_COLUMNS]]


@st.fragment(run_every="60s")
def lane_grid(lane: str, flt: queue.QueueFilter) -> None:
    """One lane of open cases. It alone reruns every minute, so its countdowns move while the page is open."""
    if adopt_tick(lane):  # a row was ticked or cleared here: the whole page runs, to open that case's panel
        st.rerun()
    now = ui.snapshot()
    total = queue.queue_counts(store, now, flt)[lane]
    st.subheader(LANE_TITLES[lane].format(total))
    if lane == "deprioritized":
        st.caption("Free-tier general coding, and cases their policy sets no target for: no deadline, never "
                   "counted as a breach. Oldest first.")
    if not total:
        st.session_state.pop(f"grid_{lane}_drawn", None)
        if lane == "sla":
            ui.empty_state("No open case with a deadline matches. Log one on the Log case page, or clear the filters.")
        return
    page = ui.page_picker(total, queue.PAGE_SIZE, key=f"page_{lane}")
    frame = queue.queue_page(store, now, flt, lane=lane, page=page)
    ids = frame.case_id.tolist()
    ticked = [ids.index(selected())] if selected() in ids else []
    if ticked_rows(lane) != ticked:  # the rows moved, or another case was opened: tick the selected one
        st.session_state[f"grid_{lane}"] = {"selection": {"rows": ticked, "columns": []}}
    ui.table(grid(frame, lane), hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                 key=f"grid_{lane}", column_config=COLUMNS)
    st.session_state[f"grid_{lane}_drawn"] = (ids, ticked)
    stamp = now.as_of.astimezone(zone).strftime("%Y%m%dT%H%M%z")
    st.download_button(f"Download CSV ({total:,} {'case' if total == 1 else 'cases'})",
                       lambda: queue.queue_csv(store, now, flt, lane=lane), file_name=f"queue-{lane}-{stamp}.csv",
                       mime="text/csv", icon=":material/download:", on_click="ignore", key=f"download_{lane}")
    if lane == "sla":
        shown_as_of = formats.instant(now.as_of, zone)
        st.caption(f"Countdowns as of {shown_as_of}, the instant the dashboard is frozen at." if now.frozen else
                   f"Countdowns as of {shown_as_of}, renewed every minute (a case changed since then: as of its "
                   "change).")


def shown_time(value) -> str:
    return formats.instant(value, zone)


def done(text: str) -> None:
    """After an action: say what was done, at the top of the case's panel; the case stays selected (by its id)
    wherever its row moved."""
    ui.flash(text, key=PANEL_FLASH)
    st.rerun()


@contextmanager
def refused(labels: dict[str, str]):
    """Show what an action was refused, field by field, each named as its form labels it (``labels``)."""
    try:
        yield
    except Rejected as e:
        ui.show_problems(e.problems, {None: st.empty()}, labels)
    except PermissionDenied as e:
        st.error(ui.plain(str(e)), icon=":material/error:")


def panel_confirmation() -> None:
    """What the last action on the open case did; after a resolution or a pause, with its Undo beside it."""
    offer = st.session_state.pop("undo_offer", None)  # (action, its arguments): on the run right after it only
    if not offer:
        ui.show_flash(key=PANEL_FLASH)
        return
    columns = st.columns([5, 1], vertical_alignment="center")
    with columns[0]:
        ui.show_flash(key=PANEL_FLASH)
    action, args = offer
    columns[1].button("Undo", icon=":material/undo:", key=f"undo_{action}", on_click=UNDO[action], args=args)


def time_text(value) -> str:
    """A stored instant as the local text the correction fields start with (seconds kept)."""
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).tz_convert(zone).strftime("%Y-%m-%d %H:%M:%S")


def case_panel(case: dict) -> None:
    cid = case["case_id"]
    voided = pd.notna(case["voided_at"])
    state = case["sla_state"] if isinstance(case["sla_state"], str) else None
    paused = pd.notna(case["paused_at"])
    st.markdown(f"**{ui.plain(cid)}** · {ui.plain(case['client_name'])} ({formats.word('tier', case['tier'])}) · "
                f"{ui.plain(case['subject'])}")
    targets = queue.case_targets(store, snap, cid).set_index("metric")
    facts = {
        **next_due_facts(case, targets, paused),
        "Priority": formats.word("priority", case["priority"]),
        "First-response target": formats.text(case["target"]),
        "Assignee": formats.assignee(case["assignee"]),
        "Category": formats.word("category", case["category"]),
        "Requester": formats.text(case["requester"]),
        "Source": formats.text(queue.case_origin(store, cid) or None),
        "Received": shown_time(case["received_at"]),
        "First response": shown_time(case["first_response_at"]),
        "Resolved": shown_time(case["resolved_at"]),
        "Breach reason": formats.text(case["breach_reason"]),
    }
    if paused:
        facts["Waiting on client"] = f"since {shown_time(case['paused_at'])}" + (
            f" ({case['pause_reason']})" if isinstance(case["pause_reason"], str) else "")
    st.markdown("  \n".join(f"**{k}:** {ui.plain(v)}" for k, v in facts.items()))
    if state is not None:
        targets_table(cid, targets)
    waits_table(cid)
    thread_panel(cid)
    if voided:
        return
    # Side by side, the actions the case has now: no gap where one is not (a resolved case waits on nobody).
    unresolved = pd.isna(case["resolved_at"])
    actions = [action for action, offered in (
        (respond_form, actor.may("record_response")),
        (assign_form, actor.may("assign_case")),
        (pause_form, unresolved and not paused and actor.may("record_response")),
        (resume_button, paused and actor.may("record_response")),
        (resolve_button, unresolved and actor.may("resolve_case"))) if offered]
    for column, action in zip(st.columns(len(actions)) if actions else [], actions, strict=True):
        with column:
            action(case)
    if state == "breached" and actor.may("record_response"):
        breach_reason_form(case)
    if actor.may("correct"):
        correction_forms(case)


def day_hours_on(calendar) -> float:
    """The hours of a business day on a target's calendar (the support one's for a case without a target)."""
    return calendar_day_hours.get(calendar, day_hours)


def next_due_facts(case: dict, targets: pd.DataFrame, paused: bool) -> dict[str, str]:
    """The panel's "Next due" (which target, and when) and its "Time left"; Waiting on client, or nothing,
    when no target runs."""
    metric = case["next_due_metric"]
    if not isinstance(metric, str):
        return {"Next due": next_due_target(None, paused), "Time left": formats.EMPTY}
    row = targets.loc[metric]  # the follow-up target's row is its question due first: the one due next
    return {"Next due": f"{BY_METRIC[metric].label}, {shown_time(row.due)}",
            "Time left": formats.time_left(row.hours_left, day_hours_on(row.calendar))}


def targets_table(cid: str, targets: pd.DataFrame) -> None:
    """Every target of the case in words: its state, due instant, time left and what stands behind it."""
    shown = []
    for target in TARGETS:
        if target.metric not in targets.index:
            shown.append({"target": target.label, "state": formats.EMPTY, "due": formats.EMPTY,
                          "left": formats.EMPTY, "details": "no question from the client yet"})
            continue
        row = targets.loc[target.metric]
        left = formats.time_left(row.hours_left, day_hours_on(row.calendar))
        if row.state == "paused":
            left += ", clock stopped"
        shown.append({"target": target.label, "state": formats.word("state", row.state), "due": shown_time(row.due),
                      "left": left, "details": target_details(target, row)})
    st.markdown("**Targets**")
    ui.table(pd.DataFrame(shown), hide_index=True, key=f"targets_{cid}", column_config={
        "target": "Target", "state": "State", "due": "Due",
        "left": st.column_config.TextColumn("Time left", help="Business time on the target's calendar (a day of "
                                            f"{day_hours:g} h; around the clock for a 24x7 target)"),
        "details": "Details"})


def waits_table(cid: str) -> None:
    """Every wait on the client the case has had, resumed ones too (the Targets say only what they moved)."""
    waits = queue.case_waits(store, snap, cid)
    if waits.empty:
        return
    st.markdown(f"**Waits on the client** ({len(waits):,})")
    ui.table(pd.DataFrame({
        "since": [shown_time(t) for t in waits.paused_at],
        "until": [shown_time(t) if pd.notna(t) else "still waiting" for t in waits.resumed_at],
        "reason": waits.reason.map(formats.text),
        "by": [f"{formats.text(p)} → {formats.text(r)}" if pd.notna(e) else formats.text(p)
               for p, r, e in zip(waits.paused_by, waits.resumed_by, waits.resumed_at, strict=True)],
    }), hide_index=True, key=f"waits_{cid}", column_config={
        "since": "Since", "until": "Until", "reason": "Reason",
        "by": st.column_config.TextColumn("By", help="Who set the case waiting → who (or what: mail, an import) "
                                                     "ended the wait")})


def target_details(target, row) -> str:
    """What stands behind one target's row: its rule, the time paused, or the client's questions."""
    if target.per == "question":  # the row is the open question due first, else the latest one
        return (f"asked {shown_time(row.asked_at)}; {formats.count(row.questions, 'question')}, "
                f"{row.questions_open or 'none'} open")
    details = formats.rule(row.kind, row.amount, row.calendar)
    if target.pausable and row.hours_paused:
        details += f"; {formats.duration(row.hours_paused, day_hours_on(row.calendar))} paused"
    return details


def respond_form(case: dict) -> None:
    """The team's response: the first one while the case has none, then each follow-up reply."""
    cid = case["case_id"]
    first = pd.isna(case["first_response_at"])
    column, label = ("first_response_at", "First response sent at") if first else ("replied_at", "Reply sent at")
    with st.form(f"respond_{cid}", border=False), refused({column: label}):
        answered = st.datetime_input(
            label, now_utc().astimezone(zone).replace(tzinfo=None, second=0, microsecond=0),
            step=60, format="YYYY-MM-DD", key=f"respond_at_{cid}",
            help=f"Local time in {zone.key}: now, or when the reply went out (not in the future, not before "
                 + ("the case was received)" if first else "the first response)"))
        if st.form_submit_button("Record first response" if first else "Record reply", icon=":material/reply:"):
            writes.picked({column: ("pick a date and time", answered)})
            at = writes.form_instant(answered.date(), answered.time(), zone, column)
            store.write(writes.record_response, store.config, actor, cid, at)
            done(f"{'First response' if first else 'Reply'} recorded on {cid}, sent {shown_time(at)}.")


def assign_form(case: dict) -> None:
    cid = case["case_id"]
    with st.form(f"assign_{cid}", border=False), refused({"assignee": "Assign to"}):
        team = queue.team(store)
        assignee = st.selectbox("Assign to", [None, *team], index=[None, *team].index(case["assignee"]),
                                format_func=formats.assignee, key=f"assignee_{cid}",
                                help="The team: staff and above under [roles] in support.toml, and anyone "
                                     "assigned a case already")
        if st.form_submit_button("Assign", icon=":material/person:"):
            store.write(writes.assign_case, store.config, actor, cid, assignee)
            done(f"{cid} assigned to {assignee or 'nobody'}.")


def pause_form(case: dict) -> None:
    """The team waits on the client from now: the resolution clock stops until the client writes or someone
    resumes the case."""
    cid = case["case_id"]
    with st.form(f"pause_{cid}", border=False), refused({"reason": "Reason (optional)"}):
        reason = st.text_input("Reason (optional)", key=f"pause_reason_{cid}", max_chars=pauses.REASON_MAX_CHARS,
                               placeholder="e.g. asked for the logs",
                               help="Resolution time stops while the case waits on the client; the client's next "
                                    "message resumes it")
        if st.form_submit_button("Waiting on client", icon=":material/pause_circle:"):
            at = now_utc()
            store.write(pauses.pause_case, store.config, actor, cid, at, reason)
            st.session_state["undo_offer"] = ("pause", (cid,))
            done(f"{cid} is waiting on the client since {shown_time(at)}.")


def resume_button(case: dict) -> None:
    cid = case["case_id"]
    with refused({"resumed_at": "Resumed"}):
        if st.button("Resume", icon=":material/play_circle:", key="resume"):
            at = now_utc()
            store.write(pauses.resume_case, store.config, actor, cid, at)
            done(f"{cid} resumed at {shown_time(at)}: no longer waiting on the client.")


def resolve_button(case: dict) -> None:
    cid = case["case_id"]
    with refused({"resolved_at": "Resolved"}):
        if st.button("Resolve now", icon=":material/check:", key="resolve"):
            at = now_utc()
            store.write(writes.resolve_case, store.config, actor, cid, at)
            st.session_state["undo_offer"] = ("resolve", (cid, at))
            done(f"{cid} resolved at {shown_time(at)}.")


def breach_reason_form(case: dict) -> None:
    """Why a breached case was late, counted on Response performance in the month of its deadline (linked)."""
    cid = case["case_id"]
    first, last = month_days(store.config.calendar, case["first_response_due"])
    month = ui.month_label(f"{first:%Y-%m}")
    with st.form(f"breach_{cid}", border=False), refused({"breach_reason": "Why was it breached?"}):
        reason = st.text_input(f"Why was it breached? (short; counted on Response performance, deadlines in {month})",
                               value=case["breach_reason"] or "", max_chars=corrections.BREACH_REASON_MAX_CHARS,
                               key=f"breach_reason_{cid}")
        if st.form_submit_button("Save breach reason", icon=":material/edit_note:"):
            changed = store.write(corrections.record_breach_reason, store.config, actor, cid, reason, snap.as_of)
            if not changed:
                done(f"Breach reason of {cid} unchanged: "
                     + ("it is the one already saved." if reason.strip() else "it has none."))
            elif reason.strip():
                done(f"Breach reason of {cid} saved: counted on Response performance among the breaches with "
                     f"deadlines in {month} (due {shown_time(case['first_response_due'])}).")
            else:
                done(f"Breach reason of {cid} cleared: it no longer has one.")
    st.page_link("pages/performance.py", label=f"Response performance, deadlines in {month}", icon=":material/speed:",
                 query_params={"due_from": first.isoformat(), "due_to": last.isoformat()})


def thread_panel(cid: str) -> None:
    """The case's e-mail thread, oldest first (nothing for a case logged on a form or imported)."""
    thread = mail.case_thread(store, cid)
    if thread.empty:
        return
    st.markdown(f"**Thread** ({len(thread):,} message{'s' if len(thread) != 1 else ''}, oldest first)")
    ui.table(pd.DataFrame({
        "time": [shown_time(t) for t in thread.received_at],
        "sender": thread.sender,
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


# The correction form's fields as it labels them.
CORRECTED = {"client_id": "Client", "category": "Category", "priority": "Priority", "received_at": "Received",
             "first_response_at": "First response", "resolved_at": "Resolved"}


def correction_forms(case: dict) -> None:
    cid = case["case_id"]
    with st.expander("Correct this case (client, category, priority, times)", icon=":material/edit:"):
        with st.form(f"correct_{cid}", border=False), refused(CORRECTED):
            options = queue.client_options(store)
            ids = list(options)
            client = st.selectbox("Client", ids, index=ids.index(case["client_id"]), format_func=options.get,
                                  key=f"correct_client_{cid}")
            category = st.selectbox("Category", CATEGORIES, index=CATEGORIES.index(case["category"]),
                                    format_func=lambda c: formats.word("category", c), key=f"correct_category_{cid}")
            priority = st.selectbox("Priority", PRIORITIES, index=PRIORITIES.index(case["priority"]),
                                    format_func=lambda p: formats.word("priority", p), key=f"correct_priority_{cid}")
            st.caption(f"Times in {store.config.calendar.timezone}, as YYYY-MM-DD HH:MM[:SS]; empty clears an "
                       "optional one.")
            times = {name: st.text_input(CORRECTED[name], value=time_text(case[name]), key=f"correct_{name}_{cid}")
                     for name in ("received_at", "first_response_at", "resolved_at")}
            if st.form_submit_button("Save correction", icon=":material/save:"):
                changes: dict[str, object] = {}
                if client != case["client_id"]:
                    changes["client_id"] = client
                if category != case["category"]:
                    changes["category"] = category
                if priority != case["priority"]:
                    changes["priority"] = priority
                for name, text in times.items():
                    if text.strip() != time_text(case[name]):
                        try:
                            changes[name] = parse_timestamp(text.strip(), zone) if text.strip() else None
                        except TimestampError as e:
                            raise Rejected([Problem(None, name, str(e))]) from None
                changed = store.write(corrections.correct_case, store.config, actor, cid, changes)
                done(f"{cid} corrected: " + ", ".join(
                    f"{CORRECTED.get(k, formats.field_label(k))} {shown_value(k, v[0])} → {shown_value(k, v[1])}"
                    for k, v in changed.items()) + ".")
    with st.expander("Void this case (logged in error)", icon=":material/block:"):
        with st.form(f"void_{cid}", border=False), refused({"void_reason": "Reason"}):
            reason = st.text_input("Reason (required, kept in the audit trail)", key=f"void_reason_{cid}",
                                   max_chars=corrections.REASON_MAX_CHARS)
            if st.form_submit_button("Void case", icon=":material/block:"):
                store.write(corrections.void_case, store.config, actor, cid, reason)
                done(f"{cid} voided: it leaves the queue, every count and every export.")


def shown_value(column: str, value) -> str:
    """A corrected field's value as the panel shows it."""
    if value is None:
        return "(none)"
    if hasattr(value, "tzinfo"):
        return shown_time(value)
    return formats.word(column, value) if column in formats.WORDS else str(value)


def where_it_went(case: dict, flt: queue.QueueFilter) -> str | None:
    """Why the open case is not a row of the grids as shown now, and where to find it; None when it is."""
    cid = case["case_id"]
    if pd.notna(case["voided_at"]):
        return (f"{cid} was voided ({case['void_reason']}): it has left the queue, every count and every export; "
                "the audit trail keeps it.")
    if pd.notna(case["resolved_at"]) and (not snap.frozen or case["resolved_at"] <= snap.as_of):  # (now: resolved)
        again = "by its id in the box above, or " if actor.may("correct") else ""
        return (f"{cid} was resolved ({shown_time(case['resolved_at'])}): it has left the open queue. Find it "
                f"again {again}in the case-sla export on Import and export.")
    place = queue.whereabouts(store, snap, flt, cid)
    if place is None:
        return f"{cid} was received after {shown_time(snap.as_of)}, the instant the queue is shown as of."
    if not place.shown:
        return f"{cid} is open but hidden by the filters: clear them to see it in the list."
    if place.page != st.session_state.get(f"page_{place.lane}", 1) - 1:
        return f"{cid} is on page {place.page + 1} of its list."
    return None


def case_details(case_id: str | None, flt: queue.QueueFilter) -> None:
    """The panel of the selected case, with where it went when it is not in the list."""
    if actor.may("correct"):
        st.text_input("Open any case by id (resolved ones too), to correct or void it", key="case_lookup",
                      placeholder="e.g. CS-00042", on_change=look_up)
    if not case_id:
        st.caption("Select a row for its details: record a response, assign, wait on the client, resolve, or "
                   "correct the case.")
        return
    case = queue.case_detail(store, snap, case_id)
    if case is None:
        st.warning(f"No case {ui.plain(case_id)}.", icon=":material/search_off:")
        return
    went = where_it_went(case, flt)
    if went:
        st.info(ui.plain(went), icon=":material/call_split:")
    with st.container(border=True):
        panel_confirmation()
        case_panel(case)


lane_grid("sla", flt)
case_details(selected(), flt)
lane_grid("deprioritized", flt)

st.subheader("Open cases by age")
buckets = queue.age_buckets(store, snap, flt)
if buckets.empty:
    ui.empty_state("No open cases match.")
else:
    chart = alt.Chart(formats.in_words(buckets)).mark_bar().encode(
        x=alt.X("age_bucket:N", title="Age of open case", sort=list(queue.AGE_BUCKETS), axis=alt.Axis(labelAngle=0)),
        y=alt.Y("cases:Q", title="Open cases"),
        color=alt.Color("tier:N", title="Tier", scale=marks.color_scale(ui.TIER_COLORS, formats.WORDS["tier"])),
        tooltip=[alt.Tooltip("age_bucket:N", title="Age"), alt.Tooltip("tier:N", title="Tier"),
                 alt.Tooltip("cases:Q", title="Cases")],
    ).properties(height=220)
    ui.chart(chart, width="stretch")
