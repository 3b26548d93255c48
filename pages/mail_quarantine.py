import pandas as pd
import streamlit as st

from kb import formats, ui
from kb.access import PermissionDenied
from kb.mail import quarantine
from kb.reads import mail

ui.page_header("Mail quarantine", "Which messages could intake not store, and what becomes of them?",
               "A message the store refuses is set aside here by itself, with the reason; the rest of its batch is "
               "taken and polling moves on. Retry one (after a fix) to run the intake on it again, or discard it "
               "for good. Both are audited.")

store, actor = ui.open_app().store, ui.actor()
zone = store.config.calendar.zone
ui.show_flash()

held = mail.quarantine(store)
if held.empty:
    if not store.config.mail.mailboxes and not mail.intake_has_run(store):
        ui.empty_state("No mailbox is configured: mail intake has not run.")
    else:
        ui.empty_state("No message is held: mail intake stored everything it read.")
    st.stop()


st.subheader(f"Held ({len(held):,}), the oldest first")
ui.table(pd.DataFrame({
    "message": held.message_key,
    "read_from": held.read_from,
    "sender": held.from_address,
    "subject": held.subject.fillna(""),
    "received": held.received_at.map(lambda v: formats.instant(v, zone)),
    "reason": held.reason,
    "first_seen": held.first_seen_at.map(lambda v: formats.instant(v, zone)),
}), hide_index=True, width="stretch", column_config={
    "message": st.column_config.TextColumn("Message (Message-ID or hash)", pinned=True),
    "read_from": "Read from", "sender": "From", "subject": "Subject",
    "received": "Received", "reason": "Why it was held", "first_seen": "Held since",
})

key = st.selectbox("Message", held.message_key.tolist(), key="quarantine_message",
                   format_func=dict(zip(held.message_key, held.message_key + " — " + held.from_address,
                                        strict=True)).get)
retry, discard = st.columns(2)
try:
    if retry.button("Retry", icon=":material/replay:", type="primary", key="quarantine_retry"):
        outcome = store.write(quarantine.retry, store.config, actor, key)
        ui.flash(f"{key}: {outcome}.")
        st.rerun()
    if discard.button("Discard", icon=":material/delete:", key="quarantine_discard"):
        store.write(quarantine.discard, actor, key)
        ui.flash(f"{key} discarded: a copy read later counts as taken already.")
        st.rerun()
except (quarantine.NotHeld, PermissionDenied) as e:
    st.error(ui.plain(str(e)), icon=":material/error:")
