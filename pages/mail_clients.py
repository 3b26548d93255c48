import pandas as pd
import streamlit as st

from kb import formats, ui
from kb.access import PermissionDenied
from kb.intake import corrections
from kb.intake.importing import Rejected
from kb.reads import mail

ui.page_header("Mail clients", "Which clients did mail make for unknown senders, and whose are they really?",
               "A client message from an address no client's email domain matches opens a case for a new free "
               "client named after the sender. Review them here: merge one into the client it belongs to (its "
               "cases follow, with that client's deadlines), or leave it as the free client it is.")

store, actor = ui.open_app().store, ui.actor()
zone = store.config.calendar.zone
ui.show_flash()

clients = mail.mail_clients(store)
if clients.empty:
    ui.empty_state("No clients made from mail to review.")
    st.stop()


st.subheader(f"Made from mail ({len(clients):,}), the most recent case first")
ui.table(pd.DataFrame({
    "client_id": clients.client_id,
    "name": clients["name"],
    "tier": clients.tier.map(lambda tier: formats.word("tier", tier)),
    "cases": clients.cases.astype(int),
    "first_case": clients.first_case_at.map(lambda v: formats.instant(v, zone)),
    "last_case": clients.last_case_at.map(lambda v: formats.instant(v, zone)),
    "domain_taken": [f"yes: {o}" if isinstance(o, str) and o else "no" for o in clients.domain_owners],
}), hide_index=True, width="stretch", column_config={
    "client_id": st.column_config.TextColumn("Client id (the sender)", pinned=True),
    "name": "Name", "tier": "Tier",
    "cases": st.column_config.NumberColumn("Cases", help="Cases of this client, voided ones left out"),
    "first_case": "First case", "last_case": "Last case",
    "domain_taken": st.column_config.TextColumn(
        "Domain already a client's", help="Another client has the sender's domain as its email domain"),
})

if actor.may("edit_clients"):
    st.subheader("Merge into an existing client")
    st.caption("Every case (and environment or contract, if any) of the mail client moves to the client chosen; "
               "the mail client is removed; the audit trail keeps both. Deadlines follow the target's tier and "
               "contracts at once. Give the target the sender's domain as its email domain on Clients and "
               "contracts so that its next messages go to it directly.")
    ids = clients.client_id.tolist()
    labels = dict(zip(clients.client_id, clients["name"] + " (" + clients.client_id + ")", strict=True))
    source = st.selectbox("Mail client", ids, format_func=labels.get, key="merge_source")
    targets = mail.merge_targets(store, source)
    owner = clients.set_index("client_id").domain_owner_id.get(source)
    target_ids = list(targets)
    target = st.selectbox("Merge into", target_ids, format_func=targets.get, key=f"merge_target_{source}",
                          index=target_ids.index(owner) if isinstance(owner, str) and owner in targets else None,
                          placeholder="Type a client's name")
    if st.button("Merge", icon=":material/merge:", type="primary", key="merge", disabled=target is None):
        try:
            moved = store.write(corrections.merge_client, store.config, actor, source, target)
        except (Rejected, PermissionDenied) as e:
            problems = e.problems if isinstance(e, Rejected) else []
            for text in [p.reason for p in problems] or [str(e)]:
                st.error(ui.plain(text), icon=":material/error:")
        else:
            n = len(moved["cases"])
            ui.flash(f"{source} merged into {target}: {n} case{'s' if n != 1 else ''} moved"
                     + (f", {len(moved['environments'])} environment(s)" if moved["environments"] else "")
                     + (f", {len(moved['contracts'])} contract(s)" if moved["contracts"] else "") + ".")
            st.session_state.pop("merge_source", None)
            st.rerun()
