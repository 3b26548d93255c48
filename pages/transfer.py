from datetime import datetime

import streamlit as st

from kb import ui
from kb.db.backup import BackupError, backup_to, default_backup_path
from kb.intake.importing import Rejected, add_rows, staged_from_csv
from kb.intake.validation import TABLES
from kb.reads import transfer
from kb.timestamps import now_utc

ui.page_header("Import and export",
               "Bring rows in from CSV, all or nothing, and take the contract's reports out for any instant.")

store, actor = ui.open_app().store, ui.actor()
config, zone = store.config, store.config.calendar.zone
ui.show_flash()

if actor.may("import"):
    st.subheader("Import")
    columns = st.columns([1, 3])
    table = columns[0].selectbox("Table", list(TABLES), key="import_table")
    columns[1].caption("Columns: " + ", ".join(c.name if c.required else f"[{c.name}]" for c in TABLES[table]) +
                       ". Timestamps without an offset are local time in " + zone.key + ".")
    upload = st.file_uploader("CSV file", type=["csv"], key="import_file")
    if upload is not None and st.button("Import", type="primary", icon=":material/upload:"):
        progress = st.progress(0.0, text="reading the file")
        try:
            staged = staged_from_csv(table, upload.getvalue())
            written = store.write(add_rows, config, staged, actor, permission="import", source=upload.name,
                                  progress=lambda fraction, text: progress.progress(fraction, text=text))
        except Rejected as e:
            progress.empty()
            st.error(f"{ui.plain(upload.name)} was not imported: nothing was written. {len(e.problems)} problem(s):",
                     icon=":material/error:")
            st.code("\n".join(str(p) for p in e.problems[:500]), language=None)
            if len(e.problems) > 500:
                st.caption(f"…and {len(e.problems) - 500:,} more.")
        else:
            ui.flash(f"Imported {written:,} {table} rows from {upload.name}.")
            st.rerun()

st.subheader("Export")
now = now_utc().astimezone(zone)
columns = st.columns(3)
day = columns[0].date_input("As of day", now.date(), key="export_day")
time_ = columns[1].time_input("As of time", now.time().replace(microsecond=0), step=60, key="export_time")
columns[2].caption(f"Local time in {zone.key}.")
as_of = datetime.combine(day, time_, tzinfo=zone)
reports = ["case-sla", "uptime", "refunds"] + (["audit"] if actor.may("audit") else [])
report = st.radio("Report", reports, horizontal=True, key="export_report")
if st.button("Prepare CSV", icon=":material/table_view:"):
    frame = transfer.report(store, report, as_of)
    stamp = as_of.strftime("%Y%m%dT%H%M%z")
    st.download_button(f"Download {report} ({len(frame):,} rows)", frame.to_csv(index=False).encode(),
                       file_name=f"{report}-{stamp}.csv", mime="text/csv", icon=":material/download:",
                       on_click="ignore")

if actor.may("configure"):
    st.subheader("Backup")
    target = default_backup_path(store.path)
    st.caption(f"A consistent copy of the whole database, as one DuckDB file in {target.parent}, taken while the "
               "dashboard runs. To bring one back, stop the dashboard and run `python -m kb restore FILE`. A backup "
               "holds every client's data, so it stays on the server: the dashboard never serves it as a link.")
    if st.button("Back up now", icon=":material/backup:", key="backup_now"):
        try:
            counts = store.write(backup_to, target)
        except BackupError as e:
            st.error(f"No backup was written: {e}", icon=":material/error:")
        else:
            st.success(f"Backed up to {target}: {counts['cases']:,} cases, {counts['incidents']:,} incidents, "
                       f"{counts['clients']:,} clients.", icon=":material/check_circle:")
