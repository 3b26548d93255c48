"""The schema version of the database in use, the service's background jobs and the polled mailboxes, for the
Configuration page."""

from __future__ import annotations

import pandas as pd

from kb.db.connection import schema_version as _schema_version
from kb.store import Store
from kb.timestamps import format_for_people


def schema_version(store: Store) -> int:
    """The schema version the database file is at."""
    with store.reader() as cur:
        return _schema_version(cur)


def background_jobs(store: Store) -> tuple[pd.DataFrame, bool]:
    """Per job kind: how often, last run, its result, next run and last error, times in the support zone
    (from ``job_runs``); and whether the jobs run in this process (the service) at all."""
    from kb.service import jobs as service_jobs

    zone = store.config.calendar.zone
    here = service_jobs.running()
    if here is not None:
        statuses = here.status()
    else:
        with store.reader() as cur:
            statuses = service_jobs.job_status(cur, service_jobs.scheduled_jobs(store.config))
    rows = []
    for s in statuses:
        if s.running:
            result = "running"
        elif s.last_started is None:
            result = "never run"
        elif s.last_finished is None:
            result = "interrupted (the process stopped during it)"
        elif s.last_error:
            result = f"failed: {s.last_error}"
        else:
            result = f"ok: {s.last_detail}" if s.last_detail else "ok"
        rows.append({
            "job": s.title,
            "every": _every(s.every),
            "last run": format_for_people(s.last_started, zone),
            "result": result,
            "next run": format_for_people(s.next_run, zone) if here is not None else "",
            "last error": (f"{format_for_people(s.last_failure, zone)}: {s.last_failure_error}"
                           if s.last_failure is not None else ""),
        })
    return pd.DataFrame(rows, columns=["job", "every", "last run", "result", "next run", "last error"]), \
        here is not None


def _every(every) -> str:
    """How often a job runs: 'off', '6 h', '5 min', '30 s'."""
    if every is None:
        return "off"
    seconds = every.total_seconds()
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min" if seconds % 60 == 0 else f"{seconds:g} s"


MAILBOX_COLUMNS = ["mailbox", "folder", "configured", "last UID", "last poll", "last error"]


def mailboxes(store: Store) -> pd.DataFrame:
    """Each mailbox and folder, configured (``[[mail.mailboxes]]``) or polled before (``imap_state``): the last
    UID taken, when it was last polled (support zone) and its last error (empty when the last poll went well)."""
    from kb.reads.mail import mailbox_state

    zone = store.config.calendar.zone
    state = {(r.mailbox, r.folder): r for r in mailbox_state(store).itertuples()}
    configured = [(box.name, folder) for box in store.config.mail.mailboxes for folder in box.folders]
    rows = []
    for key in configured + sorted(set(state) - set(configured)):
        r = state.get(key)
        rows.append({
            "mailbox": key[0], "folder": key[1], "configured": "yes" if key in configured else "no (removed)",
            "last UID": "" if r is None else str(int(r.last_uid)),
            "last poll": "never" if r is None or pd.isna(r.polled_at) else format_for_people(r.polled_at, zone),
            "last error": "" if r is None or r.last_error is None or pd.isna(r.last_error) else str(r.last_error),
        })
    return pd.DataFrame(rows, columns=MAILBOX_COLUMNS)
