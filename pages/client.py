import altair as alt
import streamlit as st

from kb import ui
from kb.credits import CreditScheduleError, credit_schedule_in_words
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
labels = {row.client_id: f"{row.name} ({row.client_id}, {row.tier})" for row in everyone.itertuples()}
client_id = st.selectbox("Client", list(labels), format_func=labels.get, key="client_page_client")
months = reads.months_back(snap.as_of, zone, 12)

st.subheader("Open cases")
cases = reads.open_cases(store, snap, client_id)
if cases.empty:
    st.caption("No open case.")
else:
    shown = ui.local_times(cases, "first_response_due", "received_at")
    shown["sla_state"] = cases.sla_state.map(ui.STATE_LABELS)
    st.dataframe(shown, hide_index=True, width="stretch", column_config={
        "case_id": "Case", "subject": "Subject", "sla_state": "State", "first_response_due": "Due",
        "received_at": "Received", "assignee": "Assignee",
        "business_hours_left": st.column_config.NumberColumn("Business hours left", format="%.1f")})

left, right = st.columns(2)
with left:
    st.subheader("First responses met, by month")
    met = reads.pct_met_by_month(store, snap, client_id, months[-1])
    if met.empty:
        st.caption("No decided case in the last twelve months.")
    else:
        this = met[met.month == months[0]]
        st.metric("This month", f"{this.pct_met.iloc[0]:.1f} %" if len(this) else "no decided case")
        labelled, order = ui.with_month_labels(met)
        st.altair_chart(alt.Chart(labelled, height=200).mark_bar().encode(
            x=alt.X("month_label:O", sort=order, title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("pct_met:Q", title="% met", scale=alt.Scale(domain=[0, 100])),
            tooltip=["month_label", alt.Tooltip("pct_met:Q", format=".1f"), "met", "breached"]), width="stretch")
with right:
    st.subheader("Credits owed, by month")
    credits = reads.credits_by_month(store, snap, client_id, months[-1])
    credits = credits[credits.refund_amount > 0]
    if credits.empty:
        st.caption("No credits owed in the last twelve months.")
    else:
        st.dataframe(credits.assign(refund_amount=[ui.money(a, c) for a, c in
                                                   zip(credits.refund_amount, credits.currency, strict=True)]),
                     hide_index=True, width="stretch",
                     column_config={"month": "Month", "currency": None, "status": "Status",
                                    "refund_amount": "Credit"})

st.subheader("Environments this month")
environments = reads.environments_this_month(store, snap, client_id, months[0])
if environments.empty:
    st.caption("No environment.")
else:
    st.dataframe(environments[["environment_name", *[c for c in environments.columns if c != "environment_name"]]],
                 hide_index=True, width="stretch", column_config={
        "environment_name": "Environment", "environment_id": "Id", "kind": "Kind",
        "uptime_pct": st.column_config.NumberColumn("Uptime %", format="%.4f"), "target_pct": "Target %",
        "downtime_minutes": "Downtime (min)", "budget_minutes": "Budget (min)",
        "budget_left_minutes": "Budget left (min)", "target_met": "Target met", "status": "Status"})

st.subheader("Contracts")
contracts = reads.contracts(store, client_id)
if contracts.empty:
    st.caption("No contract: the tier's defaults apply.")
else:
    def in_words(schedule) -> str:
        try:
            return credit_schedule_in_words(schedule if isinstance(schedule, str) and schedule
                                            else config.sla.default_credit_schedule)
        except CreditScheduleError as e:
            return f"unreadable: {e}"

    shown = contracts.assign(credit_schedule=contracts.credit_schedule.map(in_words),
                             monthly_fee=[ui.money(f, c) for f, c in
                                          zip(contracts.monthly_fee, contracts.currency, strict=True)])
    st.dataframe(ui.dates_only(shown, "starts_on", "ends_on"), hide_index=True, width="stretch", column_config={
        "contract_id": "Contract", "environment_id": "Environment", "uptime_target_pct": "Uptime target %",
        "response_business_days": "Response (business days)", "monthly_fee": "Monthly fee", "currency": None,
        "credit_schedule": st.column_config.TextColumn("Credits", width="large"), "starts_on": "Starts",
        "ends_on": "Ends"})

st.subheader("Monthly statement")
columns = st.columns([1, 3])
month = columns[0].selectbox("Month", months, key="client_page_month")
if columns[1].button("Prepare statement", icon=":material/picture_as_pdf:"):
    with st.spinner("Typesetting the statement…"):
        content = statement_at(store, snap, client_id, month)
        pdf = statement_pdf(content, config.calendar.timezone)
    st.download_button("Download statement", pdf, file_name=f"statement-{client_id}-{month}.pdf",
                       mime="application/pdf", icon=":material/download:", on_click="ignore")
    st.caption(f"{content.totals['cases']} cases, {len(content.uptime)} environments. The same numbers as the "
               "case-sla, uptime and refunds exports for this client and month.")
