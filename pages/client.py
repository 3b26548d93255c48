import altair as alt
import pandas as pd
import streamlit as st

from kb import formats, ui
from kb.reads import client as reads
from kb.statement.content import statement_at
from kb.statement.render import statement_pdf

ui.page_header("Client", "Is this client getting what we promised: responses, uptime, credits?")

store, snap = ui.open_app().store, ui.snapshot()
ui.as_of_caption(snap)
config, zone = store.config, store.config.calendar.zone
everyone = reads.clients(store)
if everyone.empty:
    ui.empty_state("No clients yet. Add them on Clients and contracts, or import them.")
    st.stop()
labels = {row.client_id: f"{row.name} ({row.client_id}, {formats.word('tier', row.tier)})"
          for row in everyone.itertuples()}
client_id = st.selectbox("Client", list(labels), format_func=labels.get, key="client_page_client")
months = reads.months_back(snap.as_of, zone, 12)

st.subheader("Open cases")
cases = reads.open_cases(store, snap, client_id)
if cases.empty:
    st.caption("No open case.")
else:
    day_hours = config.calendar.business_day_seconds / 3600
    shown = formats.in_words(ui.local_times(cases, "first_response_due", "received_at")).assign(
        business_hours_left=cases.business_hours_left.map(lambda hours: formats.time_left(hours, day_hours)),
        assignee=cases.assignee.map(formats.assignee))
    ui.table(shown, hide_index=True, width="stretch", column_order=[
        "case_id", "sla_state", "business_hours_left", "subject", "first_response_due", "assignee", "received_at"],
        column_config={
        "case_id": "Case", "subject": "Subject", "sla_state": "State", "first_response_due": "Due",
        "received_at": "Received", "assignee": "Assignee",
        "business_hours_left": st.column_config.TextColumn(
            "Business time left", help=f"Before the first-response deadline, in business time (a day is a "
                                       f"business day of {day_hours:g} h); — once answered")})

left, right = st.columns(2)
with left:
    st.subheader("First responses met, by month")
    met = reads.pct_met_by_month(store, snap, client_id, months[-1])
    if met.empty:
        st.caption("No decided case in the last twelve months.")
    else:
        this = met[met.month == months[0]]
        st.metric("This month", formats.percent(this.pct_met.iloc[0]) if len(this) else "no decided case",
                  delta=f"{int(this.met.iloc[0])} of "
                        f"{formats.count(this.met.iloc[0] + this.breached.iloc[0], 'case')}"
                  if len(this) else None, delta_color="off", delta_arrow="off")
        labelled, order = ui.with_month_labels(met.assign(pct_text=met.pct_met.map(formats.percent)))
        ui.chart(alt.Chart(labelled, height=200).mark_bar().encode(
            x=alt.X("month_label:O", sort=order, title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("pct_met:Q", title="% met", scale=alt.Scale(domain=[0, 100])),
            tooltip=[alt.Tooltip("month_label:O", title="Month"), alt.Tooltip("pct_text:N", title="% met"),
                     alt.Tooltip("met:Q", title="Met"), alt.Tooltip("breached:Q", title="Breached")]),
            width="stretch")
with right:
    st.subheader("Service credits owed, by month")
    credits = reads.credits_by_month(store, snap, client_id, months[-1])
    credits = credits[credits.refund_amount > 0]
    if credits.empty:
        st.caption("No service credits owed in the last twelve months.")
    else:
        ui.table(formats.in_words(credits).assign(
            month=credits.month.map(formats.month_label),
            refund_amount=[formats.money(a, c) for a, c in zip(credits.refund_amount, credits.currency, strict=True)]),
                     hide_index=True, width="stretch", column_order=["month", "refund_amount", "status"],
                     column_config={"month": "Month", "currency": None, "status": "Status",
                                    "refund_amount": "Service credits"})

st.subheader(f"Environments this month ({formats.month_label(months[0])})")
environments = reads.environments_this_month(store, snap, client_id, months[0])
if environments.empty:
    st.caption("No environment.")
else:
    ui.table(pd.DataFrame({
        "environment": environments.environment_name, "kind": environments.kind.map(lambda k: formats.word("kind", k)),
        "uptime": environments.uptime_pct.map(formats.percent), "target": environments.target_pct.map(formats.term),
        "verdict": environments.target_met.map(formats.verdict),
        "downtime": (environments.downtime_minutes / 60).map(formats.duration),
        "budget_left": (environments.budget_left_minutes / 60).map(formats.duration),
        "status": environments.status.map(lambda s: formats.word("status", s)),
        "environment_id": environments.environment_id,
    }), hide_index=True, width="stretch", column_order=[
        "environment", "uptime", "verdict", "budget_left", "target", "downtime", "status", "kind", "environment_id"],
        column_config={
        "environment": "Environment", "kind": "Kind", "uptime": "Uptime", "target": "Target", "verdict": "Verdict",
        "downtime": "Downtime", "budget_left": "Error budget left", "status": "Status", "environment_id": "Id"})

st.subheader("Contracts")
contracts = reads.contracts(store, client_id)
if contracts.empty:
    st.caption("No contract: the tier's defaults apply.")
else:
    shown = contracts.assign(
        credit_schedule=contracts.credit_schedule.map(
            lambda text: formats.schedule(text, config.sla.default_credit_schedule)),
        uptime_target_pct=contracts.uptime_target_pct.map(formats.term),
        response_business_days=contracts.response_business_days.map(
            lambda n: "tier default" if pd.isna(n) else f"{int(n)}"),
        monthly_fee=[formats.money(f, c) for f, c in zip(contracts.monthly_fee, contracts.currency, strict=True)])
    ui.table(ui.dates_only(shown, "starts_on", "ends_on"), hide_index=True, width="stretch", column_order=[
        "environment_name", "uptime_target_pct", "response_business_days", "monthly_fee", "credit_schedule",
        "starts_on", "ends_on", "contract_id"], column_config={
        "contract_id": "Contract", "environment_name": "Environment", "uptime_target_pct": "Uptime target",
        "response_business_days": "Response (business days)", "monthly_fee": "Monthly fee", "currency": None,
        "credit_schedule": st.column_config.TextColumn("Service credits", width="large"), "starts_on": "Starts",
        "ends_on": "Ends"})

st.subheader("Monthly statement")
columns = st.columns([1, 3])
# The last finished month first: the one a statement is sent for.
month = columns[0].selectbox("Month", months, index=1, format_func=formats.month_label, key="client_page_month")
sent = reads.sent_statement(store, client_id, month)
if sent is not None:  # kept as it was e-mailed, byte for byte
    columns[1].download_button("Download statement as sent", sent.pdf, file_name=f"statement-{client_id}-{month}.pdf",
                               mime="application/pdf", icon=":material/download:", on_click="ignore")
    st.caption(f"E-mailed on {formats.instant(sent.sent_at, zone)}: the PDF as sent (SHA-256 {sent.sha256}).")
elif columns[1].button("Prepare statement", icon=":material/picture_as_pdf:"):
    with st.spinner("Typesetting the statement…"):
        content = statement_at(store, snap, client_id, month)
        pdf = statement_pdf(content, config.calendar.timezone)
    st.download_button("Download statement", pdf, file_name=f"statement-{client_id}-{month}.pdf",
                       mime="application/pdf", icon=":material/download:", on_click="ignore")
    st.caption(f"{formats.count(content.totals['cases'], 'case')}, "
               f"{formats.count(len(content.uptime), 'environment')}. The same numbers as the "
               "case-sla, uptime and refunds exports for this client and month.")
