import uuid
from datetime import date

import streamlit as st

from kb import formats, ui
from kb.db.schema import IMPACTS
from kb.intake import corrections, writes
from kb.intake.importing import Rejected
from kb.intake.validation import FIRST_YEAR, LAST_YEAR
from kb.reads import log_incident
from kb.timestamps import now_utc

ui.page_header("Log incident", "Something is down, slow or under maintenance: log it, close it, or record a check.")

store, actor = ui.open_app().store, ui.actor()
zone = store.config.calendar.zone
ui.show_flash()
environments = log_incident.environments(store)
if environments.empty:
    ui.empty_state("No environments yet. Add one on Clients and contracts, or import a CSV.")
    st.stop()
labels = {r.environment_id: f"{r.name} ({formats.word('kind', r.kind)}, {r.environment_id})"
          for r in environments.itertuples()}
now = now_utc().astimezone(zone)
minute = now.time().replace(second=0, microsecond=0)
# Dates start empty and keep to the years the store holds: a date typed outside them, or not understood,
# leaves the picker empty and the form asks for one, rather than log the incident on a default day.
DAYS = dict(value=None, min_value=date(FIRST_YEAR, 1, 1), max_value=date(LAST_YEAR, 12, 31), format="YYYY-MM-DD")
HINT = f"Local time in {zone.key}; now is {formats.instant(now, zone)}."
# The fields as the form labels them, for its problems.
FIELDS = {"environment_id": "Environment", "impact": "Impact", "started_at": "Started", "ended_at": "Ended",
          "summary": "Summary"}

# The form as it starts, for each of its widgets: a saved form is cleared to this for the next incident.
BLANK = {"inc_environment": None, "inc_impact": IMPACTS[0], "inc_start_day": None, "inc_start_time": minute,
         "inc_ongoing": True, "inc_end_day": None, "inc_end_time": minute, "inc_summary": ""}
if st.session_state.pop("inc_form_saved", False):
    st.session_state.update(BLANK)
for key in ("inc_start_time", "inc_ongoing", "inc_end_time"):  # times: now in the support zone, not the server's
    st.session_state.setdefault(key, BLANK[key])
# Each form gets a key of its own, stored with the incident it logs (``form_submissions``, as on Log case):
# submitting that form again, however late, finds that incident instead of logging it twice.
form_key = st.session_state.setdefault("incident_form_key", uuid.uuid4().hex)

# Not an st.form: ticking "Still ongoing" shows or hides the end at once.
with st.container(border=True):
    top = st.empty()
    environment_id = st.selectbox("Environment", list(labels), format_func=labels.get, key="inc_environment",
                                  index=None, placeholder="Choose an environment")
    slots = {None: top, "environment_id": st.empty()}
    impact = st.radio("Impact", IMPACTS, horizontal=True, key="inc_impact",
                      format_func=lambda value: formats.word("impact", value),
                      help="Only outages count as downtime; maintenance is excluded, degraded is shown only.")
    columns = st.columns(2)
    start_day = columns[0].date_input("Started on", key="inc_start_day", **DAYS)
    start_time = columns[1].time_input("Started at", step=60, key="inc_start_time")
    st.caption(HINT)
    slots["started_at"] = st.empty()
    ongoing = st.checkbox("Still ongoing", key="inc_ongoing")
    end_day = end_time = None
    if not ongoing:
        columns = st.columns(2)
        end_day = columns[0].date_input("Ended on", key="inc_end_day", **DAYS)
        end_time = columns[1].time_input("Ended at", step=60, key="inc_end_time")
        slots["ended_at"] = st.empty()
    summary = st.text_area("Summary (optional)", key="inc_summary", height=80)
    slots["summary"] = st.empty()
    submitted = st.button("Log incident", type="primary", icon=":material/add_alert:", key="inc_submit")

if submitted:
    asked = {"environment_id": ("choose an environment", environment_id),
             "started_at": ("pick a date", start_day)}
    if not ongoing:
        asked["ended_at"] = ("pick a date", end_day)
    try:
        writes.picked(asked)
        fields = {
            "environment_id": environment_id, "impact": impact, "summary": summary,
            "started_at": writes.wall_clock(start_day, start_time),
            "ended_at": "" if ongoing else writes.wall_clock(end_day, end_time),
        }
        saved = store.write(writes.log_incident, store.config, actor, fields, form_key)
    except Rejected as e:
        ui.show_problems(e.problems, slots, FIELDS)
    else:
        if saved.earlier:
            ui.flash(f"This form was already logged as {saved.row_id}: nothing new was stored.")
        else:
            ui.flash(f"Incident {saved.row_id} logged on {labels[environment_id]} "
                     f"({formats.word('impact', impact)}{', ongoing' if ongoing else ''}).")
        st.session_state.update(inc_form_saved=True, incident_form_key=uuid.uuid4().hex)
        st.rerun()


def incident_choices(incidents, when: str) -> dict[str, str]:
    """Incident id -> 'INC-00012: Outage on Cobalt production (…) since Mon 2026-11-23 10:00 HKT (UTC+08:00)'."""
    shown = ui.local_times(incidents, "started_at")
    return {r.incident_id: f"{r.incident_id}: {formats.word('impact', r.impact)} on "
                           f"{labels.get(r.environment_id, r.environment_id)} "
                           f"{when} {r.started_at}" for r in shown.itertuples()}


st.divider()
st.subheader("Close an ongoing incident")
ongoing_incidents = log_incident.ongoing_incidents(store)
if ongoing_incidents.empty:
    st.caption("No incident is ongoing.")
else:
    described = incident_choices(ongoing_incidents, "since")
    with st.form("close_incident"):
        incident_id = st.selectbox("Incident", list(described), format_func=described.get, key="close_incident",
                                   index=None, placeholder="Choose an incident")
        incident_slot = st.empty()
        columns = st.columns(2)
        day = columns[0].date_input("Ended on", key="close_day", **DAYS)
        time_ = columns[1].time_input("Ended at", minute, step=60, key="close_time")
        st.caption(HINT)
        slot = st.empty()
        if st.form_submit_button("Close incident", icon=":material/task_alt:"):
            try:
                writes.picked({"incident_id": ("choose an incident", incident_id),
                               "ended_at": ("pick a date", day)})
                ended = writes.form_instant(day, time_, zone, "ended_at")
                store.write(writes.close_incident, store.config, actor, incident_id, ended)
            except Rejected as e:
                ui.show_problems(e.problems, {None: slot, "ended_at": slot, "incident_id": incident_slot},
                                 {"incident_id": "Incident", "ended_at": "Ended"})
            else:
                ui.flash(f"Incident {incident_id} closed at {formats.instant(ended, zone)}.")
                st.rerun()

st.divider()
st.subheader("Record a monitoring check")
dedicated = {r.environment_id: labels[r.environment_id] for r in environments.itertuples() if r.kind == "dedicated"}
if not dedicated:
    st.caption("No dedicated environments.")
else:
    with st.form("check"):
        environment_id = st.selectbox("Environment", list(dedicated), format_func=dedicated.get, key="check_env",
                                      index=None, placeholder="Choose an environment")
        note = st.text_input("What was checked (optional)", key="check_note")
        slot = st.empty()
        if st.form_submit_button("Record check", icon=":material/fact_check:"):
            try:
                writes.picked({"environment_id": ("choose an environment", environment_id)})
                store.write(writes.log_check, store.config, actor, environment_id, now_utc(), note)
            except Rejected as e:
                ui.show_problems(e.problems, {None: slot, "environment_id": slot},
                                 {"environment_id": "Environment", "note": "What was checked"})
            else:
                ui.flash(f"Check recorded on {dedicated[environment_id]}.")
                st.rerun()

if actor.may("correct"):
    st.divider()
    st.subheader("Void an incident logged in error")
    recent = log_incident.recent_incidents(store)
    if recent.empty:
        st.caption("No incident to void.")
    else:
        choices = incident_choices(recent, "from")
        with st.form("void_incident"):
            incident_id = st.selectbox("Incident", list(choices), format_func=choices.get, key="void_incident",
                                       index=None, placeholder="Choose an incident")
            reason = st.text_input("Why it was logged in error (required)", key="void_reason")
            slot = st.empty()
            if st.form_submit_button("Void incident", icon=":material/delete:"):
                try:
                    writes.picked({"incident_id": ("choose an incident", incident_id)})
                    store.write(corrections.void_incident, store.config, actor, incident_id, reason)
                except Rejected as e:
                    ui.show_problems(e.problems, {None: slot, "incident_id": slot},
                                     {"incident_id": "Incident", "void_reason": "Why it was logged in error"})
                else:
                    ui.flash(f"Incident {incident_id} voided: it no longer counts as downtime anywhere.")
                    st.rerun()
