import uuid
from datetime import date

import streamlit as st

from kb import formats, ui
from kb.db.schema import CATEGORIES, PRIORITIES
from kb.intake import writes
from kb.intake.importing import Rejected
from kb.intake.validation import FIRST_YEAR, LAST_YEAR
from kb.reads import log_case
from kb.reads.clients import client_labels
from kb.timestamps import now_utc

ui.page_header("Log case", "A client asked for help: log it, and see its first-response and resolution deadlines.")

store, snap, actor = ui.open_app().store, ui.snapshot(), ui.actor()
zone = store.config.calendar.zone
ui.show_flash(toast=True)  # (the forms' buttons are far below: a phone is scrolled there when it shows)
labels = client_labels(store, snap)
if not labels:
    ui.empty_state("No clients yet. Add one on Clients and contracts, or import a CSV.")
    st.stop()
team = log_case.team(store)
now = now_utc().astimezone(zone)
minute = now.time().replace(second=0, microsecond=0)
# Dates keep to the years the store holds: a date typed outside them, or not understood, leaves the picker
# empty and the form asks for one, rather than log the case on a default day. A case is received now unless
# said otherwise; a first response has no date until one is picked.
DAYS = dict(value=None, min_value=date(FIRST_YEAR, 1, 1), max_value=date(LAST_YEAR, 12, 31), format="YYYY-MM-DD")
# The fields as the form labels them, for its problems.
FIELDS = {"client_id": "Client", "category": "Category", "priority": "Priority", "subject": "Subject",
          "requester": "Requester", "assignee": "Assignee", "received_at": "Received",
          "first_response_at": "First response"}

# The form as it starts, for each of its widgets: a saved form is cleared to this for the next case.
BLANK = {"case_client": None, "case_category": CATEGORIES[0], "case_priority": "normal", "case_subject": "",
         "case_requester": "",
         "case_assignee": "", "case_received_day": now.date(), "case_received_time": minute,
         "case_responded": False, "case_response_day": None, "case_response_time": minute}
if st.session_state.pop("case_form_saved", False):
    st.session_state.update(BLANK)
for key in ("case_priority", "case_assignee", "case_received_day", "case_received_time",
            "case_response_time"):  # (the clocks: now in the support zone)
    st.session_state.setdefault(key, BLANK[key])
logged = st.session_state.pop("case_logged", None)
if logged:
    st.page_link("pages/queue.py", label=f"Open {logged} in the Queue", icon=":material/inbox:",
                 query_params={"case": logged})
# Each form gets a key of its own, stored with the case it logs: submitting that form again, however late (a
# double click, a resent request, a page left open), finds that case instead of logging it twice.
form_key = st.session_state.setdefault("case_form_key", uuid.uuid4().hex)

with st.form(f"log_case_{form_key}", clear_on_submit=False):
    top = st.empty()
    client_id = st.selectbox("Client", list(labels), format_func=labels.get, key="case_client", index=None,
                             placeholder="Choose a client")
    slots = {None: top, "client_id": st.empty()}
    category = st.selectbox("Category", CATEGORIES, key="case_category",
                            format_func=lambda c: formats.word("category", c),
                            help="Free-tier general coding questions have no deadline.")
    slots["category"] = st.empty()
    priority = st.selectbox("Priority", PRIORITIES, key="case_priority",
                            format_func=lambda p: formats.word("priority", p),
                            help="Picks the case's targets from its client's policy.")
    slots["priority"] = st.empty()
    subject = st.text_input("Subject", key="case_subject", max_chars=None)
    slots["subject"] = st.empty()
    columns = st.columns(2)
    requester = columns[0].text_input("Requester (optional)", key="case_requester")
    assignee = columns[1].selectbox("Assignee (optional)", ["", *team], key="case_assignee",
                                    format_func=formats.assignee,
                                    help="The team, as on the Queue: staff and above under [roles] in support.toml, "
                                         "and anyone assigned a case already")
    slots["assignee"] = st.empty()
    columns = st.columns(2)
    received_day = columns[0].date_input("Received on", key="case_received_day", **DAYS)
    received_time = columns[1].time_input("Received at", step=60, key="case_received_time")
    st.caption(f"Local time in {zone.key}; now is {formats.instant(now, zone)}.")
    slots["received_at"] = st.empty()
    responded = st.checkbox("Already answered", key="case_responded")
    columns = st.columns(2)
    response_day = columns[0].date_input("First response on", key="case_response_day", **DAYS)
    response_time = columns[1].time_input("First response at", step=60, key="case_response_time")
    slots["first_response_at"] = st.empty()
    submitted = st.form_submit_button("Log case", type="primary", icon=":material/add:")

if submitted:
    asked = {"client_id": ("choose a client", client_id),
             "received_at": ("pick a date", received_day)}
    if responded:
        asked["first_response_at"] = ("pick a date", response_day)
    try:
        writes.picked(asked)
        fields = {
            "client_id": client_id, "category": category, "priority": priority, "subject": subject,
            "requester": requester,
            "assignee": assignee or "", "received_at": writes.wall_clock(received_day, received_time),
            "first_response_at": writes.wall_clock(response_day, response_time) if responded else "",
        }
        saved = store.write(writes.log_case, store.config, actor, fields, form_key)
    except Rejected as e:
        ui.show_problems(e.problems, slots, FIELDS)
    else:
        said = log_case.case_deadline(store, saved.row_id).in_words(zone)
        if saved.earlier:
            ui.flash(f"This form was already logged as {saved.row_id}: nothing new was stored. {said}")
        else:
            ui.flash(f"Case {saved.row_id} logged for {labels[client_id]}. {said}")
        st.session_state.update(case_logged=saved.row_id, case_form_saved=True, case_form_key=uuid.uuid4().hex)
        st.rerun()

st.divider()
st.subheader("Record a first response")
unanswered = log_case.unanswered_cases(store, limit=500)
if unanswered.empty:
    st.caption("Every case has a first response.")
else:
    subjects = dict(zip(unanswered.case_id.tolist(), unanswered.subject.tolist(), strict=True))
    with st.form("respond"):
        case_id = st.selectbox("Case", unanswered.case_id, key="respond_case", index=None, placeholder="Choose a case",
                               format_func=lambda c: f"{c}: {subjects[c][:80]}")
        case_slot = st.empty()
        columns = st.columns(2)
        day = columns[0].date_input("Answered on", key="respond_day", **DAYS)
        time_ = columns[1].time_input("Answered at", minute, step=60, key="respond_time")
        slot = st.empty()
        if st.form_submit_button("Record response", icon=":material/reply:"):
            try:
                writes.picked({"case_id": ("choose a case", case_id),
                               "first_response_at": ("pick a date", day)})
                store.write(writes.record_response, store.config, actor, case_id,
                            writes.form_instant(day, time_, zone, "first_response_at"))
            except Rejected as e:
                ui.show_problems(e.problems, {None: slot, "first_response_at": slot, "case_id": case_slot},
                                 {"case_id": "Case", "first_response_at": "Answered"})
            else:
                ui.flash(f"First response recorded on {case_id}.")
                st.rerun()
