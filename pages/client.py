import altair as alt
import pandas as pd
import streamlit as st

from kb import formats, marks, ui
from kb.engine.targets import TARGETS
from kb.reads import client as reads
from kb.reads.clients import client_labels
from kb.reads.met import share_in_words
from kb.statement.content import statement_at
from kb.statement.render import statement_pdf

ui.page_header("Client", "Is this client getting what we promised: responses, resolutions, uptime, credits?")
LABELS = {target.metric: target.label for target in TARGETS}

store, snap = ui.open_app().store, ui.snapshot()
store.ready(snap)  # every case and uptime, side by side
ui.as_of_caption(snap)
config, zone = store.config, store.config.calendar.zone
labels = client_labels(store, snap)
if not labels:
    ui.empty_state("No clients yet. Add them on Clients and contracts, or import them.")
    st.stop()
client_id = st.selectbox("Client", list(labels), format_func=labels.get, key="client_page_client")
months = reads.months_back(snap.as_of, zone, 12)

st.subheader("Open cases")
cases = reads.open_cases(store, snap, client_id)
if cases.empty:
    st.caption("No open case.")
else:
    shown = formats.in_words(ui.local_times(cases, "next_due", "received_at")).assign(
        next_due_metric=cases.next_due_metric.map(lambda metric: LABELS.get(metric, formats.EMPTY)),
        assignee=cases.assignee.map(formats.assignee))
    ui.table(shown, hide_index=True, width="stretch", column_order=[
        "case_id", "next_due_metric", "next_due_state", "next_due", "priority", "subject", "assignee", "received_at"],
        column_config={
        "case_id": "Case", "priority": "Priority", "subject": "Subject", "received_at": "Received",
        "assignee": "Assignee", "next_due_state": "State", "next_due": "Due",
        "next_due_metric": st.column_config.TextColumn(
            "Next due", help="The target whose deadline comes first among those still running: the first "
                             "response, a client's follow-up question, or the resolution (— when none runs)")})

met = reads.met_by_month(store, snap, client_id, months)
st.subheader(f"Targets met in {formats.month_label(months[0])}")
for column, target, row in zip(st.columns(len(TARGETS)), TARGETS,
                               reads.met_in_month(met, months[0]).itertuples(), strict=True):
    column.metric(target.label, formats.percent(row.pct_met) if row.decided else formats.EMPTY,
                  delta=share_in_words(row.met, row.decided), delta_color="off", delta_arrow="off")
st.caption("Of the targets due this month so far and decided (met or breached): first responses and resolutions "
           "count cases, follow-up responses count the client's questions.")


def met_chart() -> alt.LayerChart:
    """% met of every target by month, a bar per target."""
    labelled, order = ui.with_month_labels(met.assign(
        target=met.metric.map(LABELS), pct_text=met.pct_met.map(formats.percent),
        share=[share_in_words(m, d) for m, d in zip(met.met, met.decided, strict=True)]))
    targets = [target.label for target in TARGETS]
    bars = alt.Chart(labelled, height=200).mark_bar().encode(
        x=alt.X("month_label:O", sort=order, title=None, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("target:N", sort=targets),
        y=alt.Y("pct_met:Q", title="% met", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("target:N", sort=targets, title="Target", scale=marks.color_scale(ui.TARGET_COLORS, LABELS)),
        tooltip=[alt.Tooltip("month_label:O", title="Month"), alt.Tooltip("target:N", title="Target"),
                 alt.Tooltip("pct_text:N", title="% met"), alt.Tooltip("share:N", title="Decided")])
    return alt.layer(bars, marks.zero_marks(bars))


left, right = st.columns(2)
with left:
    st.subheader("Targets met, by month")
    if met.empty:
        st.caption("No decided target in the last twelve months.")
    else:
        ui.remembered_chart(snap, ("client", client_id, "met by month"), met_chart, width="stretch")
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
        "budget_left": environments.budget_left_minutes.map(formats.budget_left),
        "status": environments.status.map(lambda s: formats.word("status", s)),
        "environment_id": environments.environment_id,
    }), hide_index=True, width="stretch", column_order=[
        "environment", "uptime", "verdict", "budget_left", "target", "downtime", "status", "kind", "environment_id"],
        column_config={
        "environment": "Environment", "kind": "Kind", "uptime": "Uptime", "target": "Target", "verdict": "Verdict",
        "downtime": "Downtime", "budget_left": "Error budget left", "status": "Status", "environment_id": "Id"})

st.subheader("Contracts")
contracts = reads.contracts(store, snap, client_id)
if contracts.empty:
    st.caption("No contract: the tier's defaults apply.")
else:
    shown = contracts.assign(
        credit_schedule=contracts.credit_schedule.map(
            lambda text: formats.schedule(text, config.sla.default_credit_schedule)),
        uptime_target_pct=contracts.uptime_target_pct.map(formats.term),
        response_business_days=[formats.EMPTY if pd.notna(policy) else "tier default" if pd.isna(n) else f"{int(n)}"
                                for n, policy in zip(contracts.response_business_days, contracts.policy_id,
                                                     strict=True)],
        policy_id=contracts.policy_id.map(formats.text),
        monthly_fee=[formats.money(f, c) for f, c in zip(contracts.monthly_fee, contracts.currency, strict=True)])
    ui.table(ui.dates_only(shown, "starts_on", "ends_on"), hide_index=True, width="stretch", column_order=[
        "environment_name", "uptime_target_pct", "policy_id", "response_business_days", "monthly_fee",
        "credit_schedule", "starts_on", "ends_on", "contract_id"], column_config={
        "contract_id": "Contract", "environment_name": "Environment", "uptime_target_pct": "Uptime target",
        "policy_id": "Policy", "response_business_days": "Response (business days)", "monthly_fee": "Monthly fee",
        "currency": None, "credit_schedule": st.column_config.TextColumn("Service credits", width="large"),
        "starts_on": "Starts", "ends_on": "Ends"})

st.subheader("Policy")
policy = reads.policy(store, snap, client_id, snap.as_of.astimezone(zone).date())
tier = policy.tier
if policy.named:
    st.caption(f"The policy {formats.plain(policy.policy_id)}, named by the contract in force today.")
elif policy.stored:
    st.caption(f"The {formats.word('tier', tier)} tier's policy: no contract in force names one.")
else:
    st.caption(f"The {formats.word('tier', tier)} tier's defaults (`[sla]` in support.toml): no contract in force "
               "names a policy.")
rules = policy.rows
ui.table(rules.assign(
    valid_from=rules.valid_from.map(lambda day: "from the start" if formats.is_empty(day) else str(day)),
    metric=rules.metric.map(LABELS),
    priority=rules.priority.map(lambda p: formats.word("priority", p)),
    rule=[formats.rule(kind, amount, calendar) + (", set by the contract" if by_contract else "")
          for kind, amount, calendar, by_contract in zip(rules.kind, rules.amount, rules.calendar,
                                                         rules.by_contract, strict=True)]),
    hide_index=True, width="stretch", column_order=["metric", "priority", "rule", "valid_from"], column_config={
    "metric": "Target", "priority": "Priority", "rule": st.column_config.TextColumn("Rule", width="large"),
    "valid_from": "From"})
if tier == "free":
    st.caption("A free case in general coding has no target at all.")

st.subheader("Monthly statement")
columns = st.columns([1, 3])
# The last finished month first (the one a statement is sent for), unless the client started this month. A month
# picked is kept for its client, beside the widget's own state, which Streamlit drops while another client's
# picker is drawn.
served = reads.months_of_client(store, snap, client_id, months)
picked = st.session_state.setdefault("client_page_months", {})
month = columns[0].selectbox(
    "Month", served, format_func=formats.month_label, key=f"client_page_month:{client_id}",
    index=served.index(picked[client_id]) if picked.get(client_id) in served else min(1, len(served) - 1))
picked[client_id] = month
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
    st.caption(f"{formats.count(content.totals['cases'], 'case')} received, "
               f"{formats.count(len(content.uptime), 'environment')}. The same numbers as the "
               "case-sla, responses, uptime and refunds exports for this client and month.")
