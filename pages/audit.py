import streamlit as st

from kb import ui

ui.leave_legacy_multipage()
st.title("Audit trail")
st.markdown("**Who changed what, and when?** Every write is recorded here, in the same transaction.")

store = ui.open_app().store
choices = store.query("SELECT coalesce(list(DISTINCT actor ORDER BY actor), []) AS actors, "
                      "coalesce(list(DISTINCT table_name ORDER BY table_name), []) AS tables, "
                      "coalesce(list(DISTINCT action ORDER BY action), []) AS actions FROM audit_log").iloc[0]
columns = st.columns(3)
actors = columns[0].multiselect("Who", list(choices.actors), key="audit_actor")
tables = columns[1].multiselect("Table", list(choices.tables), key="audit_table")
actions = columns[2].multiselect("Action", list(choices.actions), key="audit_action")

conditions, params = ["TRUE"], []
for column, values in (("actor", actors), ("table_name", tables), ("action", actions)):
    if values:
        conditions.append(f"{column} IN ({', '.join('?' for _ in values)})")
        params.extend(values)
rows = store.query(f"SELECT audit_id, logged_at, actor, action, table_name, row_id, before, after FROM audit_log "
                   f"WHERE {' AND '.join(conditions)} ORDER BY audit_id DESC LIMIT 1000", params)
if rows.empty:
    ui.empty_state("Nothing recorded yet.")
else:
    st.dataframe(ui.local_times(rows, "logged_at"), hide_index=True, width="stretch",
                 column_config={"audit_id": "#", "logged_at": "When", "actor": "Who", "action": "Action",
                                "table_name": "Table", "row_id": "Row", "before": "Before", "after": "After"})
    st.caption("Latest first, at most 1,000 rows; `python -m kb export audit` writes all of it.")
