"""The schema version of the database in use and the service's background jobs, for the Configuration page."""

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
        hours = s.every.total_seconds() / 3600 if s.every is not None else None
        rows.append({
            "job": s.title,
            "every": "off" if hours is None else f"{hours:g} h",
            "last run": format_for_people(s.last_started, zone),
            "result": result,
            "next run": format_for_people(s.next_run, zone) if here is not None else "",
            "last error": (f"{format_for_people(s.last_failure, zone)}: {s.last_failure_error}"
                           if s.last_failure is not None else ""),
        })
    return pd.DataFrame(rows, columns=["job", "every", "last run", "result", "next run", "last error"]), \
        here is not None
