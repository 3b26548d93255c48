import pandas as pd
import streamlit as st

from kb import formats, opening, ui
from kb.access import require
from kb.config.effective import effective_rules, fingerprint
from kb.intake.importing import Rejected
from kb.reads import configuration
from kb.service import jobs
from kb.timestamps import format_for_people, now_utc

ui.page_header("Configuration", "Which calendar and SLA rules is the dashboard applying, and to which file?")

store = ui.open_app().store
actor = ui.actor()
require(actor, "configure")
source = opening.config_file()

st.subheader("The file")
if st.button("Reload configuration", icon=":material/refresh:",
             help="Read support.toml again now. The running service also notices a change by itself within seconds."):
    try:
        reloaded = opening.reload_config(store, noticed=f"Reload configuration by {actor.email}")
    except Rejected as e:  # the store was busy with a long write: nothing changed
        ui.show_problems(e.problems, {None: st.empty()})
    else:
        if reloaded.outcome == "reloaded":
            st.success(ui.plain("Reloaded: " + ("; ".join(reloaded.changes) if reloaded.changes else
                                                "the rules are the same (only the rest of the file changed).")),
                       icon=":material/check_circle:")
        elif reloaded.outcome == "unchanged":
            st.info("support.toml has not changed since it was read.", icon=":material/info:")
config = store.config  # after a reload, the rules now in force
zone = config.calendar.zone
if source.problem:
    st.error(ui.plain(f"support.toml as it is now cannot be used, since "
                      f"{format_for_people(source.problem_since, zone)}: {source.problem}. The rules read "
                      f"{format_for_people(source.read_at, zone)} stay in force until the file is fixed."),
             icon=":material/error:")
digest = fingerprint(effective_rules(config))
recorded = opening.last_rules(store)
st.markdown(
    f"- Configuration: `{source.path}`, read {format_for_people(source.read_at, zone)}\n"
    f"- Database: `{store.path}` (schema version {configuration.schema_version(store)})\n"
    f"- Rules in force: sha256 `{digest[:16]}…`, "
    + (f"recorded in the audit trail {format_for_people(recorded['logged_at'], zone)}"
       if recorded and recorded["sha256"] == digest
       else "not recorded yet (the service records them at start and when it reloads the file)"))
if recorded and recorded["sha256"] == digest:
    st.caption(ui.plain("What changed then: " + "; ".join(recorded["changes"])))

st.subheader("Calendars")
for calendar in configuration.calendars_in_words(store, ui.snapshot(), now_utc()):
    with st.container(border=True):
        closed = ("never closed" if calendar.closed is None
                  else "".join(f"\n  - {day}" for day in calendar.closed) or "none")
        st.markdown(
            f"**{calendar.name}** · {f'`{calendar.section}`' if calendar.section else 'built in'} · {calendar.zone}\n"
            + "".join(f"- {version}\n" for version in calendar.versions)
            + f"- Closed in the next {configuration.UPCOMING_DAYS} days (weekends aside): {closed}\n"
            + "- Used by: " + ("".join(f"\n  - {line}" for line in calendar.used_by) or "no policy"))

st.subheader("SLA defaults")
sla = config.sla
st.markdown(
    "- The tier policies, while no policy row names them (Clients and contracts, Policies):\n"
    + "".join(f"  - {line}\n" for line in configuration.tier_policies(sla))
    + "- General coding on the free tier has no deadline\n"
    f"- At risk with at most **{sla.at_risk_business_hours} business hours** left\n"
    f"- Uptime target: **{formats.term(sla.default_uptime_target_pct)}**\n"
    f"- Service credits: {formats.schedule(sla.default_credit_schedule)}\n"
    f"- Response target for the charts: **{formats.term(sla.response_target_pct)}** (the team's own goal, "
    "not a promise of the Support Service Terms)\n"
    f"- Monitoring: flag after **{formats.count(config.stale_after_days, 'day')}** unseen")
changes = configuration.sla_changes(config)
if changes:
    st.markdown("Changes on a date (`[[sla.changes]]`), each for cases received from that day on:\n"
                + "".join(f"- {line}\n" for line in changes))

st.subheader("Roles")
if config.roles:
    ui.table(pd.DataFrame(sorted(config.roles.items()), columns=["address or domain", "role"]), hide_index=True)
else:
    st.caption("No roles configured: without sign-in the dashboard runs in local mode as admin.")

st.subheader("Background jobs")
jobs_table, jobs_here = jobs.jobs_table(store)
if not jobs_here:
    st.caption("Background jobs (scheduled backups, mail polling) run only in the service, `streamlit run "
               "dashboard.py`; this dashboard was started without it, so nothing is scheduled now. Their last runs "
               "are below.")
ui.table(jobs_table, hide_index=True, column_config={
    "job": "Job", "every": "Every", "last run": "Last run", "result": "Result", "next run": "Next run",
    "last error": "Last error"})

st.subheader("Mailboxes")
boxes = configuration.mailboxes(store)
if boxes.empty:
    st.caption("No mailboxes: add `[mail]` with `[[mail.mailboxes]]` to the configuration to poll them for cases "
               "(docs/mail.md).")
else:
    ui.table(boxes, hide_index=True)
