from datetime import timedelta

import holidays
import pandas as pd
import streamlit as st

from kb import formats, ui
from kb.config import WEEKDAYS, config_path
from kb.engine.calendar import holiday_dates
from kb.reads import configuration
from kb.service import jobs

ui.page_header("Configuration", "Which calendar and SLA rules is the dashboard applying, and to which file?")

store = ui.open_app().store
config = store.config
calendar = config.calendar
today = pd.Timestamp.now(tz=calendar.zone).date()

columns = st.columns(2)
with columns[0]:
    st.subheader("Business calendar")
    st.markdown(
        f"- Time zone: **{calendar.timezone}**\n"
        f"- Business hours: **{calendar.opens:%H:%M}–{calendar.closes:%H:%M}** "
        f"({calendar.business_day_seconds / 3600:g} h a business day)\n"
        f"- Weekend: **{', '.join(WEEKDAYS[d] for d in calendar.weekend) or 'none'}**\n"
        f"- Public holidays: **{calendar.holidays_country or 'none'}"
        f"{' / ' + calendar.holidays_subdivision if calendar.holidays_subdivision else ''}**\n"
        f"- Extra holidays: {', '.join(map(str, calendar.extra_holidays)) or 'none'}\n"
        f"- Working days: {', '.join(map(str, calendar.working_days)) or 'none'}")
with columns[1]:
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

st.subheader("Closed days in the next 90 days")
years = range(today.year, today.year + 2)
upcoming = sorted(d for d in holiday_dates(calendar, years) if today <= d <= today + timedelta(days=90))
if upcoming:
    public = holidays.country_holidays(calendar.holidays_country, subdiv=calendar.holidays_subdivision or None,
                                       years=years) if calendar.holidays_country else {}

    def holiday_name(day) -> str:
        names = [public[day]] if day in public else []
        if day in calendar.extra_holidays:
            names.append("extra holiday (support.toml)")
        if day in calendar.working_days:
            names.append("open anyway: a working day in support.toml")
        return "; ".join(names)

    ui.table(pd.DataFrame({"date": upcoming, "weekday": [WEEKDAYS[d.weekday()] for d in upcoming],
                               "holiday": [holiday_name(d) for d in upcoming]}),
                 hide_index=True, column_config={"date": st.column_config.DateColumn("Date", format="YYYY-MM-DD"),
                                                 "weekday": "Day", "holiday": "Holiday"})
else:
    st.caption("No holidays in the next 90 days.")

st.subheader("Roles")
if config.roles:
    ui.table(pd.DataFrame(sorted(config.roles.items()), columns=["address or domain", "role"]), hide_index=True)
else:
    st.caption("No roles configured: without sign-in the dashboard runs in local mode as admin.")

st.subheader("Files")
st.markdown(f"- Configuration: `{config_path()}`\n- Database: `{store.path}` "
            f"(schema version {configuration.schema_version(store)})")

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
