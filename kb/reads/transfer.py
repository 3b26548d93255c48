"""A report of the data contract (SPEC 7) as a DataFrame for any instant, for the Import and export page."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from kb.intake.validation import singular
from kb.reads.exports import export_sql
from kb.store import ImportJob, Store


def report(store: Store, name: str, as_of: datetime) -> pd.DataFrame:
    """The rows of report ``name`` (see ``kb.reads.exports.REPORTS``) as of ``as_of``, spreadsheet-safe, from the
    store's snapshot at that instant; the audit trail is a plain table and needs none."""
    with store.reader(None if name == "audit" else store.snapshot(as_of)) as cur:
        return cur.execute(export_sql(cur, name, store.config)).fetchdf()


def imported_text(job: ImportJob) -> str:
    """What a finished import that wrote its rows says: "Imported 12 cases from x.csv." """
    noun = job.table if job.written != 1 else singular(job.table)
    return f"Imported {job.written:,} {noun.replace('_', ' ')} from {job.source}."
