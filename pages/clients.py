import pandas as pd
import streamlit as st

from kb import formats, ui
from kb.intake.importing import Rejected, add_rows, staged_from_records, update_row
from kb.intake.validation import KEYS, TABLES
from kb.reads import clients

ui.page_header("Clients and contracts", "Who are our clients, where do they run, and what did we promise them?")

store, actor = ui.open_app().store, ui.actor()
config = store.config
ui.show_flash()
may_edit = actor.may("edit_clients")


def row_form(table: str, current: dict | None) -> None:
    """A form with one text field per column, to add a row or (with ``current``) edit one."""
    (key,) = KEYS[table]
    form_key = f"edit_{current[key]}" if current else "add"  # widgets of one row's form are that row's alone
    with st.form(f"{table}_{form_key}"):
        top = st.empty()
        values, slots, labels = {}, {None: top}, {}
        columns = st.columns(3)
        for n, column in enumerate(TABLES[table]):
            label = labels[column.name] = formats.field_label(column.name) + ("" if column.required else " (optional)")
            default = "" if current is None or current.get(column.name) is None else str(current[column.name])
            if column.name == key and current is not None:
                values[key] = current[key]
                columns[n % 3].text_input(label, value=default, disabled=True, key=f"{table}_{form_key}_{column.name}")
            elif column.kind == "enum":
                values[column.name] = columns[n % 3].selectbox(
                    label, column.choices, index=column.choices.index(default) if default in column.choices else 0,
                    format_func=lambda value, name=column.name: formats.word(name, value),
                    key=f"{table}_{form_key}_{column.name}")
            else:
                values[column.name] = columns[n % 3].text_input(
                    label, value=default, key=f"{table}_{form_key}_{column.name}",
                    help="ISO date, e.g. 2026-11-01" if column.kind == "date" else None)
            slots[column.name] = columns[n % 3].empty()
        if st.form_submit_button("Save changes" if current else "Add", type="primary", key=f"{table}_submit"):
            staged = staged_from_records(table, [values])
            try:
                if current is None:
                    store.write(add_rows, config, staged, actor, permission="edit_clients", source="form")
                else:
                    store.write(update_row, config, staged, actor, permission="edit_clients")
            except Rejected as e:
                ui.show_problems(e.problems, slots, labels)
            else:
                ui.flash(f"{table.rstrip('s').capitalize()} {values[key]} {'saved' if current else 'added'}.")
                st.rerun()


def editor(table: str, frame) -> None:
    if not may_edit:
        return
    with st.expander(f"Add or edit {table}", icon=":material/edit:"):
        (key,) = KEYS[table]
        choice = st.selectbox("Row", ["(new)", *frame[key].tolist()], key=f"{table}_choice")
        current = None if choice == "(new)" else frame[frame[key] == choice].iloc[0].to_dict()
        row_form(table, current)


def page_of(table: str):
    """One page of ``table``: all of it when short, else with a page picker."""
    total = clients.row_count(store, table)
    page = ui.page_picker(total, clients.PAGE_SIZE, key=f"{table}_page")
    frame = clients.rows_page(store, table, page)
    if total > clients.PAGE_SIZE:
        first = page * clients.PAGE_SIZE
        st.caption(f"Rows {first + 1:,} to {first + len(frame):,} of {total:,}.")
    return frame


clients_tab, environments_tab, contracts_tab = st.tabs(["Clients", "Environments", "Contracts"])

LABELS = {  # short, readable headers for every table's columns (others get their name in words)
    "client_id": "Client ID", "name": "Name", "tier": "Tier", "email_domain": "Email domain",
    "environment_id": "Env. ID", "kind": "Kind", "deployment": "Deployment", "client_name": "Client",
    "active_from": st.column_config.DateColumn("Active from", format="YYYY-MM-DD"),
    "contract_id": "Contract", "environment_name": "Environment", "uptime_target_pct": "Uptime target",
    "response_business_days": "Response (business days)", "policy_id": "Policy",
    "monthly_fee": "Monthly fee", "currency": None,
    "starts_on": st.column_config.DateColumn("Starts", format="YYYY-MM-DD"),
    "ends_on": st.column_config.DateColumn("Ends", format="YYYY-MM-DD"),
    "credit_schedule_in_words": st.column_config.TextColumn("Service credits", width="large"),
    "voided_at": "Voided", "void_reason": "Void reason",
}
FIRST = {  # the columns a table shows first, in this order; the rest follow
    "clients": ["name", "tier", "email_domain", "client_id"],
    "environments": ["name", "client_name", "kind", "deployment", "active_from", "environment_id"],
    "contracts": ["client_name", "environment_name", "uptime_target_pct", "response_business_days", "policy_id",
                  "monthly_fee", "currency", "credit_schedule_in_words", "starts_on", "ends_on", "contract_id"],
}
HIDDEN = {"environments": {"client_id"}, "contracts": {"client_id", "environment_id", "credit_schedule"}}


def show_table(table: str, rows) -> None:
    """``rows`` with names beside ids, dates as dates, short headers and the ids last."""
    rows = formats.in_words(ui.dates_only(rows, *[c for c in ("active_from", "starts_on", "ends_on")
                                                  if c in rows.columns]))
    if "voided_at" in rows.columns:
        rows = ui.local_times(rows, "voided_at")
    order = [c for c in FIRST[table] if c in rows.columns]
    order += [c for c in rows.columns if c not in order and c not in HIDDEN.get(table, set())]
    config_of = {c: LABELS.get(c, c.replace("_", " ").capitalize()) for c in order}
    ui.table(rows, hide_index=True, width="stretch", column_order=order, column_config=config_of)


def plain_tab(table: str) -> None:
    rows = page_of(table)
    if rows.empty:
        ui.empty_state(f"No {table} yet.")
    else:
        show_table(table, rows)
    editor(table, rows)


with clients_tab:
    plain_tab("clients")
with environments_tab:
    plain_tab("environments")
with contracts_tab:
    contracts = page_of("contracts")
    if contracts.empty:
        ui.empty_state("No contracts yet.")
    else:
        shown = contracts.copy()
        shown["credit_schedule_in_words"] = contracts.credit_schedule.map(
            lambda text: formats.schedule(text, config.sla.default_credit_schedule))
        shown["uptime_target_pct"] = contracts.uptime_target_pct.map(
            lambda t: f"{formats.term(config.sla.default_uptime_target_pct)} (default)" if pd.isna(t)
            else formats.term(t))
        shown["monthly_fee"] = [formats.money(f, c) for f, c in zip(contracts.monthly_fee, contracts.currency,
                                                                    strict=True)]
        shown["response_business_days"] = [
            "the policy's" if isinstance(policy, str) else "tier default" if pd.isna(n) else f"{int(n)}"
            for n, policy in zip(contracts.response_business_days, contracts.policy_id, strict=True)]
        show_table("contracts", shown)
    editor("contracts", contracts)
