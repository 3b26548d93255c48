from functools import partial

import altair as alt
import streamlit as st

from kb import formats, ui
from kb.engine import periods
from kb.intake import closing
from kb.intake.importing import Rejected
from kb.kept import every_case
from kb.reads import refunds
from kb.reads.client import months_back
from kb.timestamps import now_utc

ui.page_header("Service credits", "What do we owe in service credits, to whom, and who is closest to the next "
                                  "credit tier?")

store, snap, actor = ui.open_app().store, ui.snapshot(), ui.actor()
zone = store.config.calendar.zone
ui.as_of_caption(snap)
ui.show_flash()
months = periods.months_of(store.config.calendar, snap.as_of)
since = months.year_ago



def credits_chart(rows, currency: str) -> alt.Chart:
    """Service credits in ``currency`` by month, a bar stacked by client."""
    rows, order = ui.with_month_labels(formats.in_words(rows).assign(
        credit=[formats.money(a, currency) for a in rows.refund_amount]))
    return alt.Chart(rows).mark_bar().encode(
        x=alt.X("month_label:O", title=None, sort=order, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("sum(refund_amount):Q", title=f"Service credits ({currency})"),
        color=alt.Color("client_name:N", title="Client"),
        opacity=alt.Opacity("status:N", title="Status", scale=alt.Scale(
            domain=[formats.word("status", s) for s in ("final", "projected")], range=[1.0, 0.45])),
        tooltip=[alt.Tooltip("month_label:O", title="Month"), alt.Tooltip("client_name:N", title="Client"),
                 alt.Tooltip("credit:N", title="Service credits"),
                 alt.Tooltip("status:N", title="Status")],
    ).properties(height=240)


by_month = refunds.refunds_by_month(store, snap, since)
if by_month.empty:
    ui.empty_state("No service credits owed in the last twelve months.")
else:
    for currency, rows in by_month.groupby("currency"):
        st.subheader(f"Service credits by month, {currency}")
        ui.remembered_chart(snap, ("refunds", "by month", currency), partial(credits_chart, rows, currency),
                            width="stretch")

st.subheader("Service credits and the terms behind them")
lines = refunds.refund_lines(store, snap, since)
if lines.empty:
    ui.empty_state("No contract missed its uptime in the last twelve months.")
else:
    ui.table(
        formats.in_words(lines).assign(
            month=lines.month.map(formats.month_label),
            uptime_pct=lines.uptime_pct.map(formats.percent),
            uptime_target_pct=lines.uptime_target_pct.map(formats.term),
            downtime_minutes=(lines.downtime_minutes / 60).map(formats.duration),
            credit_pct=lines.credit_pct.map(formats.term),
            refund_amount=[formats.money(a, c) for a, c in zip(lines.refund_amount, lines.currency, strict=True)],
            monthly_fee=[formats.money(f, c) for f, c in zip(lines.monthly_fee, lines.currency, strict=True)],
            schedule_in_words=lines.credit_schedule.map(formats.schedule)),
        hide_index=True, width="stretch",
        column_order=["client_name", "refund_amount", "month", "uptime_pct", "uptime_target_pct", "credit_pct",
                      "status", "environment_name", "downtime_minutes", "monthly_fee", "schedule_in_words",
                      "contract_id"],
        column_config={
            "month": "Month", "contract_id": "Contract", "client_name": "Client", "environment_name": "Environment",
            "uptime_pct": "Uptime", "uptime_target_pct": "Target", "downtime_minutes": "Downtime",
            "credit_pct": "Credit", "refund_amount": "Service credits", "status": "Status",
            "monthly_fee": "Monthly fee",
            "schedule_in_words": st.column_config.TextColumn("Credit schedule", width="large"),
        },
    )

st.subheader(f"Closest to the next credit tier ({formats.month_label(months.this)})")
closest = refunds.closest_to_next_tier(store, snap, months.this)
if closest.empty:
    ui.empty_state("No contract covers this month.")
else:
    ui.table(
        closest.assign(
            uptime_pct=closest.uptime_pct.map(formats.percent),
            downtime_minutes=(closest.downtime_minutes / 60).map(formats.duration),
            credit_pct=closest.credit_pct.map(formats.term),
            next_credit_pct=closest.next_credit_pct.map(formats.term),
            minutes_to_next_tier=(closest.minutes_to_next_tier / 60).map(formats.duration),
            extra_refund=[formats.money(a, c) for a, c in zip(closest.extra_refund, closest.currency, strict=True)]),
        hide_index=True, width="stretch",
        column_order=["client_name", "minutes_to_next_tier", "uptime_pct", "extra_refund", "credit_pct",
                      "next_credit_pct", "environment_name", "downtime_minutes", "contract_id"],
        column_config={
            "contract_id": "Contract", "client_name": "Client", "environment_name": "Environment",
            "uptime_pct": "Uptime so far", "downtime_minutes": "Downtime", "credit_pct": "Credit now",
            "next_credit_pct": "Next tier",
            "minutes_to_next_tier": st.column_config.TextColumn(
                "Downtime to next tier", help="Downtime still to go before the next credit tier"),
            "extra_refund": st.column_config.TextColumn("Extra service credits",
                                                        help="What the next tier would add to the service credits"),
        },
    )


def refused(rejected: Rejected) -> None:
    for problem in rejected.problems:
        st.error(ui.plain(problem.reason), icon=":material/error:")


st.subheader("Where each credit stands")
st.caption("A credit is computed while its month is open, final once a lead closes the month (its uptime, credits "
           "and statements are then kept as they were), and applied once a lead marks it so with the reference of "
           "the invoice or credit note.")
stages = refunds.credit_stages(store, snap, since)
if stages.empty:
    ui.empty_state("No service credits in the last twelve months.")
else:
    ui.table(
        formats.in_words(stages).assign(
            month=stages.month.map(formats.month_label),
            refund_amount=[formats.money(a, c) for a, c in zip(stages.refund_amount, stages.currency, strict=True)],
            reference=stages.reference.map(formats.text),
            applied_at=stages.applied_at.map(lambda moment: formats.instant(moment, zone))),
        hide_index=True, width="stretch", key="credit_stages",
        column_order=["client_name", "refund_amount", "month", "stage", "reference", "applied_at",
                      "environment_name", "contract_id"],
        column_config={"client_name": "Client", "refund_amount": "Service credits", "month": "Month",
                       "stage": "Stage", "reference": "Reference", "applied_at": "Applied",
                       "environment_name": "Environment", "contract_id": "Contract"})
    final = stages[stages.stage == "final"]
    if actor.may("apply_credit") and not final.empty:
        with st.form("apply_credit"):
            labels = {f"{row.contract_id} {row.month}": f"{row.client_name}, {formats.month_label(row.month)}: "
                                                        f"{formats.money(row.refund_amount, row.currency)}"
                      for row in final.itertuples()}
            chosen = st.selectbox("Final credit", list(labels), format_func=labels.get, key="apply_credit_which")
            reference = st.text_input("Reference (invoice or credit note)", key="apply_credit_reference",
                                      max_chars=closing.REFERENCE_MAX_CHARS)
            if st.form_submit_button("Mark applied", icon=":material/task_alt:"):
                contract_id, month = chosen.split(" ")
                try:
                    store.write(closing.apply_credit, store.config, actor, contract_id, month, reference)
                    ui.flash(f"{labels[chosen]} marked applied ({reference.strip()}).")
                    st.rerun()
                except Rejected as e:
                    refused(e)

st.subheader("Closed months")
st.caption("A lead closes a month from the first business day after it: its uptime, service credits and "
           "statements are kept as they were computed then, and nothing that would change them is accepted (a "
           "case received in it, an incident overlapping it, a correction, an import, a webhook, mail dated in "
           "it) until an admin reopens it, with a reason. Closing it again keeps a new version beside the old.")
history = refunds.closings(store, snap)
if history.empty:
    ui.empty_state("No month has been closed yet.")
else:
    ui.table(
        formats.instants(history.assign(month=history.month.map(formats.month_label),
                                        reopened_by=history.reopened_by.map(formats.text),
                                        reopen_reason=history.reopen_reason.map(formats.text)),
                         zone, "closed_at", "reopened_at"),
        hide_index=True, width="stretch", key="closings",
        column_order=["month", "version", "closed_at", "closed_by", "reopened_at", "reopened_by", "reopen_reason"],
        column_config={"month": "Month", "version": "Version", "closed_at": "Closed", "closed_by": "Closed by",
                       "reopened_at": "Reopened", "reopened_by": "Reopened by", "reopen_reason": "Why reopened"})
closed = refunds.closed_now(store, snap)
if actor.may("close_month"):
    left, right = st.columns([2, 1], vertical_alignment="bottom")
    open_months = [m for m in months_back(now_utc(), zone, 13)[1:] if m not in closed]
    month = left.selectbox("Month to close", open_months, format_func=formats.month_label, key="close_month_which")
    if right.button("Close month", icon=":material/lock:", type="primary", disabled=month is None):
        try:
            done = store.write(closing.close_month, store.config, actor, month, case_tables=every_case)
            ui.flash(f"{formats.month_label(done.month)} is closed {done.in_words()}.")
            st.rerun()
        except Rejected as e:
            refused(e)
if actor.may("reopen_month") and closed:
    with st.form("reopen_month"):
        month = st.selectbox("Closed month", closed, format_func=formats.month_label, key="reopen_month_which")
        reason = st.text_input("Why reopen it", key="reopen_month_reason", max_chars=closing.REASON_MAX_CHARS)
        if st.form_submit_button("Reopen month", icon=":material/lock_open:"):
            try:
                version = store.write(closing.reopen_month, store.config, actor, month, reason)
                ui.flash(f"{formats.month_label(month)} is open again (version {version} is kept).")
                st.rerun()
            except Rejected as e:
                refused(e)
