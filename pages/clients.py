import pandas as pd
import streamlit as st

from kb import formats, ui
from kb.db.schema import METRICS
from kb.engine.policies import TIER_POLICIES, rule_of
from kb.engine.targets import BY_METRIC
from kb.intake import policies
from kb.intake.importing import Rejected, add_rows, staged_from_records, update_row
from kb.intake.validation import KEYS, TABLES
from kb.reads import clients

ui.page_header("Clients and contracts", "Who are our clients, where do they run, and what did we promise them?")

store, snap, actor = ui.open_app().store, ui.snapshot(), ui.actor()
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
            default = "" if current is None else form_text(current.get(column.name))
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


def form_text(value) -> str:
    """A stored value as its form field's text, which the rules read back as they read an import's cell: a date
    as an ISO date, a whole number without a decimal point (pandas holds a column with gaps as floats), nothing as
    empty."""
    if formats.is_empty(value):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


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
    total = clients.row_count(store, snap, table)
    page = ui.page_picker(total, clients.PAGE_SIZE, key=f"{table}_page")
    frame = clients.rows_page(store, snap, table, page)
    if total > clients.PAGE_SIZE:
        first = page * clients.PAGE_SIZE
        st.caption(f"Rows {first + 1:,} to {first + len(frame):,} of {total:,}.")
    return frame


TIER_DEFAULT = "tier default"
POLICY_LABELS = {"policy_id": "Policy ID", "metric": "Target", "priority": "Priority", "within": "Within",
                 "calendar": "Calendar", "valid_from": "Valid from"}
POLICY_FIELDS = ("new_policy_id", "new_policy_metric", "new_policy_priority", "new_policy_amount",
                 "new_policy_unit", "new_policy_calendar", "new_policy_valid_from")


def policy_row_form() -> None:
    """Add a row to a policy (a new one, or one there already)."""
    with st.expander("Add a policy row", icon=":material/add:"), st.form("new_policy_row"):
        st.caption("A row for enterprise, custom or free replaces what support.toml says for that tier: give "
                   "the tier policy every target it should keep.")
        problems = st.empty()
        top, bottom = st.columns(3), st.columns(4)
        fields = {
            "policy_id": top[0].text_input("Policy ID", key="new_policy_id", placeholder="e.g. gold"),
            "metric": top[1].selectbox("Target", METRICS, format_func=lambda m: BY_METRIC[m].label,
                                       key="new_policy_metric"),
            "priority": top[2].selectbox("Priority", policies.PRIORITY_CHOICES, index=len(policies.PRIORITIES),
                                         format_func=lambda p: formats.word("priority", p), key="new_policy_priority"),
        }
        amount = bottom[0].text_input("Within", key="new_policy_amount", placeholder="e.g. 4",
                                      help="A whole number; none for the end of the next business day")
        unit = bottom[1].selectbox("Unit", policies.UNITS, format_func=lambda u: formats.word("within_unit", u),
                                   key="new_policy_unit")
        fields["within"] = policies.within(amount, unit)
        fields["calendar"] = bottom[2].selectbox("Calendar", config.calendar_names, key="new_policy_calendar",
                                                 format_func=lambda c: formats.word("calendar", c))
        fields["valid_from"] = bottom[3].text_input("Valid from (optional)", key="new_policy_valid_from",
                                                    placeholder="1970-01-01",
                                                    help="ISO date, e.g. 2027-01-01; empty: from the start")
        if st.form_submit_button("Add row", type="primary", key="new_policy_submit"):
            try:
                row = store.write(policies.add_policy_row, config, actor, fields)
            except Rejected as e:
                ui.show_problems(e.problems, {None: problems}, POLICY_LABELS)
            else:
                for key in POLICY_FIELDS:
                    st.session_state.pop(key, None)
                ui.flash(f"Added to policy {row['policy_id']}: {row_in_words(row)}.")
                st.rerun()


def row_in_words(row: dict) -> str:
    return formats.policy_row(row["priority"], BY_METRIC[row["metric"]].label, *rule_of(row["within"]),
                              row["calendar"], row["valid_from"])


def removal(stored) -> None:
    """Remove a stored policy row, once asked and confirmed, naming it."""
    if stored.empty:
        return
    with st.expander("Remove a policy row", icon=":material/delete:"):
        by_key = {f"{r.policy_id}|{r.metric}|{r.priority}|{r.valid_from:%Y-%m-%d}": r for r in stored.itertuples()}
        chosen = st.selectbox("Row to remove", list(by_key), index=None, placeholder="Choose a row",
                              format_func=lambda k: f"{by_key[k].policy_id} · {by_key[k].target}",
                              key="remove_policy_row")
        if st.button("Remove…", icon=":material/delete:", key="remove_policy_ask", disabled=chosen is None):
            st.session_state["remove_policy_asked"] = chosen
        if chosen is None or st.session_state.get("remove_policy_asked") != chosen:
            return
        row = by_key[chosen]
        last_of_tier = row.policy_id in TIER_POLICIES and (stored.policy_id == row.policy_id).sum() == 1
        st.warning(formats.plain(
            f"Remove from policy {row.policy_id} the row '{row.target}'? Every case it applies to, open "
            "or closed, is measured again without it"
            + (f"; {row.policy_id} then holds what support.toml says again." if last_of_tier else ".")),
            icon=":material/warning:")
        confirm, keep = st.columns(2)
        if keep.button("Keep it", key="remove_policy_keep"):
            del st.session_state["remove_policy_asked"]
            st.rerun()
        if confirm.button("Remove this row", type="primary", icon=":material/delete:", key="remove_policy_confirm"):
            del st.session_state["remove_policy_asked"]
            try:
                store.write(policies.remove_policy_row, config, actor, row.policy_id, row.metric, row.priority,
                            row.valid_from.date())
            except Rejected as e:
                ui.show_problems(e.problems, {None: st.empty()}, POLICY_LABELS)
            else:
                ui.flash(f"Removed from policy {row.policy_id}: {row.target}.")
                st.rerun()


def policy_picker(contracts) -> None:
    """Set which policy a contract (of the page shown) takes its targets from, or its tier's."""
    if not may_edit or contracts.empty:
        return
    with st.expander("Set a contract's policy", icon=":material/rule:"):
        names = dict(zip(contracts.contract_id, contracts.contract_id + " · " + contracts.client_name + " · "
                         + contracts.environment_name.map(formats.text), strict=True))
        contract_id = st.selectbox("Contract", list(names), format_func=names.get, key="policy_contract")
        current = contracts.policy_id[contracts.contract_id == contract_id].iloc[0]
        choices = ["", *sorted(set(clients.policy_ids(store, snap)) | (set() if pd.isna(current) else {current}))]
        policy_id = st.selectbox("Policy", choices, index=0 if pd.isna(current) else choices.index(current),
                                 format_func=lambda p: p or TIER_DEFAULT, key=f"policy_of_{contract_id}")
        problems = st.empty()
        if st.button("Set policy", type="primary", key="policy_set"):
            try:
                store.write(policies.set_contract_policy, config, actor, contract_id, policy_id or None)
            except Rejected as e:
                ui.show_problems(e.problems, {None: problems}, {"policy_id": "Policy", "contract_id": "Contract"})
            else:
                ui.flash(f"Contract {contract_id} takes its targets from "
                         + (f"policy {policy_id}." if policy_id else "its client's tier policy."))
                st.rerun()


clients_tab, environments_tab, contracts_tab, policies_tab = st.tabs(["Clients", "Environments", "Contracts",
                                                                      "Policies"])

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
            "the policy's" if isinstance(policy, str) else TIER_DEFAULT if pd.isna(n) else f"{int(n)}"
            for n, policy in zip(contracts.response_business_days, contracts.policy_id, strict=True)]
        shown["policy_id"] = contracts.policy_id.map(lambda p: TIER_DEFAULT if pd.isna(p) else p)
        show_table("contracts", shown)
    editor("contracts", contracts)
    policy_picker(contracts)
with policies_tab:
    st.caption("A case takes its targets from the policy its client's contract names on the day it was received, "
               "else from its tier's; for each target, the row for its priority (else for any priority) valid "
               "from the latest date on or before that day. Without a row for a target, the case has none.")
    rows = clients.policy_rows(store, snap)
    users = clients.policy_users(store, snap)
    for policy_id, targets in rows.groupby("policy_id", sort=False):
        source = " (from support.toml)" if targets.from_config.all() else ""
        used_by = users.get(policy_id, "no contract")
        st.markdown(f"**{formats.plain(policy_id)}**{source} · used by {formats.plain(used_by)}"
                    + "".join(f"\n- {formats.plain(target)}" for target in targets.target))
    if may_edit:
        policy_row_form()
        removal(rows[~rows.from_config])
