import streamlit as st

from kb import ui
from kb.access import require
from kb.config import ROLES
from kb.intake.importing import Rejected
from kb.reads.tokens import token_rows
from kb.service import tokens

ui.page_header("API tokens", "Which programs may use the service's API, and as which role?",
               "A token is shown once, when it is made; only its hash is kept. Send it as "
               "`Authorization: Bearer TOKEN` to `/api/v1/…` and `/metrics` (README, \"The service and its API\").")

store = ui.open_app().store
actor = ui.actor()
require(actor, "configure")
ui.show_flash()

with st.form("new_token", clear_on_submit=True, border=True):
    st.subheader("New token")
    columns = st.columns([3, 1])
    name = columns[0].text_input("Name", max_chars=tokens.NAME_MAX,
                                 placeholder="who or what uses it, e.g. grafana, nightly export")
    role = columns[1].selectbox("Role", ROLES, index=0, format_func=str.capitalize)
    created = st.form_submit_button("Create token", icon=":material/key:", type="primary")
    problems = st.empty()
if created:
    try:
        made = store.write(tokens.create_token, actor, name=name, role=role)
    except Rejected as e:
        ui.show_problems(e.problems, {None: problems}, {"name": "Name", "role": "Role"})
    else:
        st.success(ui.plain(f"Token {made.token_id} made for {made.name} ({made.role}). Copy it now: it is not "
                            "shown again."), icon=":material/check_circle:")
        st.code(made.token, language=None)

rows = token_rows(store)
st.subheader("Tokens")
if rows.empty:
    ui.empty_state("No tokens yet.")
else:
    ui.table(ui.local_times(rows, "created_at", "last_used_at", "revoked_at"), hide_index=True, width="stretch",
                 column_config={"token_id": "Id", "name": "Name", "role": "Role", "created_at": "Created",
                                "created_by": "By", "last_used_at": "Last used", "revoked_at": "Revoked"})
    active = rows[rows["revoked_at"].isna()]
    if not active.empty:
        tokens_by_id = active.set_index("token_id")
        labels = {r.token_id: f"{r.token_id} · {r.name} ({r.role})" for r in active.itertuples()}
        columns = st.columns([3, 1], vertical_alignment="bottom")
        chosen = columns[0].selectbox("Token to revoke", list(labels), format_func=labels.get, key="revoke_token",
                                      index=None, placeholder="Choose a token")
        if columns[1].button("Revoke…", icon=":material/block:", key="revoke_button", disabled=chosen is None):
            st.session_state["revoke_asked"] = chosen
        asked = st.session_state.get("revoke_asked")
        if asked is not None and asked == chosen:
            token = tokens_by_id.loc[asked]
            st.warning(ui.plain(f"Revoke token '{token['name']}' ({token['role']} role)? This cannot be undone: "
                                "a program that sends it is refused from then on."), icon=":material/warning:")
            confirm, cancel = st.columns(2)
            if cancel.button("Keep it", key="revoke_cancel"):
                del st.session_state["revoke_asked"]
                st.rerun()
            if confirm.button(f"Revoke token '{token['name']}'", type="primary", icon=":material/block:",
                              key="revoke_confirm"):
                del st.session_state["revoke_asked"]
                try:
                    store.write(tokens.revoke_token, actor, asked)
                except Rejected as e:
                    ui.show_problems(e.problems, {None: st.empty()}, {"token_id": "Token to revoke"})
                else:
                    ui.flash(f"Token '{token['name']}' ({asked}) revoked: it is refused from now on.")
                    st.rerun()
