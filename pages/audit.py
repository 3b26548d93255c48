import streamlit as st

from kb import ui
from kb.reads import audit

ui.page_header("Audit trail", "Who changed what, and when?", "Every write is recorded here, in the same transaction.")

store = ui.open_app().store
choices = audit.filter_choices(store)
columns = st.columns(3)
actors = columns[0].multiselect("Who", choices["actors"], key="audit_actor")
tables = columns[1].multiselect("Table", choices["tables"], key="audit_table")
actions = columns[2].multiselect("Action", choices["actions"], key="audit_action")

rows = audit.audit_rows(store, actors, tables, actions, limit=1000)
if rows.empty:
    ui.empty_state("Nothing recorded yet.")
else:
    st.dataframe(ui.local_times(rows, "logged_at"), hide_index=True, width="stretch",
                 column_config={"audit_id": "#", "logged_at": "When", "actor": "Who", "action": "Action",
                                "table_name": "Table", "row_id": "Row", "before": "Before", "after": "After"})
    st.caption("Latest first, at most 1,000 rows; `python -m kb export audit` writes all of it.")
