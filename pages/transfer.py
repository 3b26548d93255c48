from datetime import datetime

import streamlit as st

from kb import formats, ui
from kb.db.backup import BackupError, default_backup_path
from kb.intake.validation import TABLES
from kb.reads import transfer
from kb.timestamps import now_utc

IMPORT_JOB = "import_job"  # the id of this session's import (kb.store.Store.start_import)

ui.page_header("Import and export",
               "Bring rows in from CSV, all or nothing, and take the contract's reports out for any instant.")

store, actor = ui.open_app().store, ui.actor()
zone = store.config.calendar.zone
ui.show_flash()


@st.fragment(run_every=1.0)
def import_progress(job_id: str) -> None:
    """The running import's progress, renewed every second; the whole page again once it has ended."""
    job = store.import_job(job_id)
    if job is None or job.done:
        st.rerun()
    st.progress(job.fraction, text=f"Importing {ui.plain(job.source)}: {ui.plain(job.text)}")
    st.caption("The import goes on while you use the dashboard, on this page or another; its result shows here.")


if actor.may("import"):
    st.subheader("Import")
    # The import runs in a thread of the server, not in this script run: a click elsewhere reruns the page
    # (and would abandon an import run here) while the import goes on. Each run finds it by its id.
    job = store.import_job(st.session_state.get(IMPORT_JOB))
    running = job is not None and not job.done
    columns = st.columns([1, 3])
    table = columns[0].selectbox("Table", list(TABLES), key="import_table")
    columns[1].caption("Columns: " + ", ".join(c.name if c.required else f"[{c.name}]" for c in TABLES[table]) +
                       ". Timestamps without an offset are local time in " + zone.key + ".")
    upload = st.file_uploader("CSV file", type=["csv"], key="import_file")
    if upload is not None and st.button("Import", type="primary", icon=":material/upload:", disabled=running,
                                        help="One import at a time: wait for yours to finish." if running else None):
        if not running:
            st.session_state[IMPORT_JOB] = store.start_import(table, upload.getvalue(), upload.name, actor).id
            st.rerun()  # show it running, the Import button off
    if running:
        import_progress(job.id)
    elif job is not None:
        if job.written is not None:
            st.success(ui.plain(transfer.imported_text(job)), icon=":material/check_circle:")
        else:
            st.error(f"{ui.plain(job.source)} was not imported: nothing was written. {len(job.problems)} problem(s):",
                     icon=":material/error:")
            st.code("\n".join(str(p) for p in job.problems[:500]), language=None)
            if len(job.problems) > 500:
                st.caption(f"…and {len(job.problems) - 500:,} more.")
        if st.button("Dismiss", key="import_dismiss", icon=":material/close:"):
            del st.session_state[IMPORT_JOB]
            st.rerun()

st.subheader("Export")
now = now_utc().astimezone(zone)
columns = st.columns(3)
day = columns[0].date_input("As of day", now.date(), key="export_day", format="YYYY-MM-DD")
time_ = columns[1].time_input("As of time", now.time().replace(microsecond=0), step=60, key="export_time")
columns[2].caption(f"Local time in {zone.key}.")
as_of = datetime.combine(day, time_, tzinfo=zone)
reports = ["case-sla", "responses", "uptime", "refunds"] + (["audit"] if actor.may("audit") else [])
report = st.radio("Report", reports, horizontal=True, key="export_report")
if st.button("Prepare CSV", icon=":material/table_view:"):
    with st.spinner(f"Writing {report}…"):
        rows, data = transfer.report_csv(store, report, as_of)
    stamp = as_of.strftime("%Y%m%dT%H%M%z")
    st.download_button(f"Download {report} ({formats.count(rows, 'row')})", data,
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
            counts = store.backup(target)
        except BackupError as e:
            st.error(f"No backup was written: {e}", icon=":material/error:")
        else:
            st.success(f"Backed up to {target}: {formats.count(counts['cases'], 'case')}, "
                       f"{formats.count(counts['incidents'], 'incident')}, "
                       f"{formats.count(counts['clients'], 'client')}.", icon=":material/check_circle:")
