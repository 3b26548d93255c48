import streamlit as st

from kb import formats, ui
from kb.reads import audit

ui.page_header("Audit trail", "Who changed what, and when?", "Every write is recorded here, in the same transaction.")

store = ui.open_app().store
choices = audit.filter_choices(store)
columns = st.columns(3)
actors = columns[0].multiselect("Who", choices["actors"], key="audit_actor")
tables = columns[1].multiselect("Table", choices["tables"], key="audit_table",
                                format_func=lambda value: formats.word("table_name", value))
actions = columns[2].multiselect("Action", choices["actions"], key="audit_action",
                                 format_func=lambda value: formats.word("action", value))

rows = audit.audit_rows(store, actors, tables, actions, limit=1000)
if rows.empty:
    ui.empty_state("Nothing recorded yet.")
else:
    zone = store.config.calendar.zone
    rows["row_id"] = rows.row_id.fillna("")
    rows["change"] = [audit.change_in_words(action, before, after, zone)
                      for action, before, after in zip(rows.action, rows.before, rows.after, strict=True)]
    rows = formats.in_words(rows)  # actions and tables in words, once the changes are read from their codes
    ui.table(ui.local_times(rows, "logged_at"), hide_index=True, width="stretch",
                 column_order=["actor", "change", "logged_at", "action", "table_name", "row_id", "audit_id"],
                 column_config={"audit_id": "#", "logged_at": "When", "actor": "Who",
                                "action": st.column_config.TextColumn("Action", width="medium"),
                                "table_name": st.column_config.TextColumn("Table", width="medium"), "row_id": "Row",
                                "change": st.column_config.TextColumn(
                                    "Change (before → after)", width="large",
                                    help="The fields a write changed, before → after, times in the support zone")})
    st.caption(f"Latest first, at most 1,000 rows, times in {ui.zone_name()}; `python -m kb export audit` writes "
               "all of it, with the recorded before and after in full.")
