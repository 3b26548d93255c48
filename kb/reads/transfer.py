"""A report of the data contract (SPEC 7) as CSV for any instant, and what an import says, for the Import and
export page."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from kb.intake.validation import singular
from kb.reads.exports import write_report
from kb.store import ImportJob, Store


def report_csv(store: Store, name: str, as_of: datetime) -> tuple[int, bytes]:
    """The row count of report ``name`` (see ``kb.reads.exports.REPORTS``) as of ``as_of``, and its CSV: the bytes
    ``python -m kb export`` writes (DuckDB's CSV writer, spreadsheet-safe), computed on a cursor of its own, so
    that the pages' snapshot of now stays as it is. Written to a temporary file and read back whole: a million
    cases' report is some 400 MB of CSV, where it was several times that as a DataFrame and its text."""
    handle, target = tempfile.mkstemp(prefix="kb-export-", suffix=".csv")
    os.close(handle)
    try:
        with store.reader() as cur:
            rows = write_report(cur, store.config, name, as_of, target)
        return rows, Path(target).read_bytes()
    finally:
        os.unlink(target)


def imported_text(job: ImportJob) -> str:
    """What a finished import that wrote its rows says: "Imported 12 cases from x.csv." """
    noun = job.table if job.written != 1 else singular(job.table)
    return f"Imported {job.written:,} {noun.replace('_', ' ')} from {job.source}."
