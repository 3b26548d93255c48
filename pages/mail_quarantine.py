import pandas as pd
import streamlit as st

from kb import ui
from kb.access import PermissionDenied
from kb.mail import quarantine
from kb.reads import mail
from kb.timestamps import format_for_people

ui.page_header("Mail quarantine", "Which messages could intake not store, and what becomes of them?",
               "A message the store refuses is set aside here by itself, with the reason; the rest of its batch is "
               "taken and polling moves on. Retry one (after a fix) to run the intake on it again, or discard it "
               "for good. Both are audited.")

store, actor = ui.open_app().store, ui.actor()
zone = store.config.calendar.zone
ui.show_flash()

held = mail.quarantine(store)
if held.empty:
    ui.empty_state("No message is held: mail intake stored everything it read.")
    st.stop()


def when(value) -> str:
    return "" if pd.isna(value) else format_for_people(pd.Timestamp(value).to_pydatetime(), zone)


st.subheader(f"Held ({len(held):,}), the oldest first")
st.dataframe(pd.DataFrame({
    "message": held.message_key,
    "read_from": held.read_from,
    "sender": held.from_address,
    "subject": held.subject.fillna(""),
    "received": [when(v) for v in held.received_at],
    "reason": held.reason,
    "first_seen": [when(v) for v in held.first_seen_at],
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
