"""The service's background jobs: scheduled backups, alerts, monthly statements, polling the mailboxes.

``Jobs(store)`` runs each job kind in a thread of its own inside the service (its lifespan calls
``start()`` and, on SIGTERM, ``stop()``). A kind is a ``Job``: a name, how often, and a function of
the store; ``scheduled_jobs(config)`` lists them, so mail polling or alerts are one more entry there.

- **Schedule.** A kind is due ``every`` after its last run *started* (``job_runs``), so a restart
  neither repeats a recent run nor forgets an overdue one; one never run is due at the start (after
  ``start_delay``, so the service answers first). Its thread sleeps until then, waking early to stop.
- **One at a time.** A kind runs only in its own thread and under its own lock, so a run never
  overlaps another run of the same kind (``run_now`` answers None while one is under way). Kinds
  run independently; the writes they make go through the store's one write lock like any other.
- **Failures.** Each run is a row of ``job_runs`` (``kb.health``, which judges from them whether
  each job is well). An exception is logged with its traceback, recorded, and the kind tried again at
  its next run; it never stops the thread or the service.
- **Stopping.** ``stop()`` tells the threads, waits for a run under way to end (a backup is one
  statement, and cannot be cut), then takes the write lock, so the write in progress (a form, an
  import, a webhook) finishes, and checkpoints the database (``CHECKPOINT``), leaving no write-ahead
  log to replay at the next start.

Backups: ``kb.service.backups``.

The configuration file: a thread of its own reads it every ``config_every`` (10 s) and reloads it when it
changed (``kb.opening.reload_config``), unless it was written in the last ``SETTLED`` seconds (an editor may be
saving it); a check writes nothing (no ``job_runs`` row) unless the file changed. Each job reads the rules from
the store at every run, so a reload reaches it; which jobs run, how often, and the mailboxes' accounts are read
at start.

Mail (``[mail]`` with ``[[mail.mailboxes]]``; off without mailboxes): a job per mailbox, ``mail:<name>``,
every ``poll_seconds`` one poll of its folders (``kb.mail.imap.run_for_service``: reads on a cursor of its
own, writes each chunk through ``Store.write``, so the network waits stay outside the write lock). A mailbox
that fails (a wrong password, a lost connection) fails its own job with its reason; the other mailboxes and
the rest of the service go on. Alerts and statements the mail server did not take fail their run too (they
are sent again at the next).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from kb.alerts.deliver import send_due
from kb.config import Config
from kb.db.connection import first_line
from kb.health import Pipeline, assess, record_end, record_start
from kb.mail.imap import MailboxError, run_for_service
from kb.opening import Reload, reload_config
from kb.service.backups import run_backup
from kb.statement.mailing import send_statements
from kb.timestamps import format_for_people, now_utc

log = logging.getLogger("kb.service.jobs")
CONFIG_EVERY = 10.0  # seconds between two reads of the configuration file
SETTLED = 2.0  # seconds since the file was last written before it is read: an editor may be saving it


@dataclass(frozen=True)
class Job:
    """One kind of background job."""

    kind: str  # its name in job_runs
    title: str  # what the Configuration page calls it
    every: timedelta | None  # None: off
    run: Callable[..., str | None]  # run(store) -> what it did, for job_runs.detail


@dataclass(frozen=True)
class JobStatus:
    kind: str
    title: str
    every: timedelta | None
    last_started: datetime | None
    last_finished: datetime | None
    last_error: str | None  # of the last run; None when it succeeded (or none ran yet)
    last_detail: str | None
    last_failure: datetime | None  # when the most recent failed run started
    last_failure_error: str | None
    next_run: datetime | None  # None: off
    running: bool  # a run is under way (its row has no end yet)


def scheduled_jobs(config: Config) -> list[Job]:
    """Every background job of the service, scheduled by the configuration; each run reads the rules it needs
    from the store then (``store.config``), so a reloaded file reaches it."""
    every = config.backup.every_hours
    alerting = timedelta(minutes=1) if config.alerts else None
    return [
        Job("backup", "Scheduled backup", timedelta(hours=float(every)) if every > 0 else None,
            lambda store: run_backup(store, keep=store.config.backup.keep)),
        Job("alerts", "Alerts", alerting, lambda store: run_alerts(store, store.config)),
        Job("statements", "Monthly statements", timedelta(hours=1) if config.alerts else None,
            lambda store: run_statements(store, store.config)),
        *mail_jobs(config),
    ]


def mail_jobs(config: Config) -> list[Job]:
    """One job per mailbox, ``mail:<name>``, so that each mailbox is well or failing on its own; without
    mailboxes one job ``mail``, off. A mailbox's account is the one read at start; the team's addresses are
    the store's at each run."""
    if not config.mail.mailboxes:
        return [Job("mail", "Mail polling", None, lambda store: run_mail(store, store.config))]
    return [Job(f"mail:{box.name}", f"Mail polling: {box.name}", timedelta(seconds=config.mail.poll_seconds),
                lambda store, box=box: run_mail(store, replace(store.config,
                                                               mail=replace(store.config.mail, mailboxes=(box,)))))
            for box in config.mail.mailboxes]


def run_mail(store, config: Config) -> str:
    """Poll every configured mailbox once (``kb.mail.imap.run_for_service``); raises when one failed, so the
    run is recorded as failed with its reason. Refused, as ``python -m kb mail poll`` refuses, while
    ``support_addresses`` is empty: every reply of the team would open a case."""
    if not config.mail.support_addresses:
        raise MailboxError("[mail] support_addresses is empty: without the team's addresses every reply would "
                           "open a case; nothing polled")
    return run_for_service(store, config)


def run_alerts(store, config: Config) -> str:
    """Send the alerts that are due (``kb.alerts.deliver``), read from the snapshot the pages share (at most a
    minute old, and current with every write) rather than every case computed again each minute. A cursor of
    its own rather than the write lock: sending waits on mail servers, and a form must not wait behind them."""
    with store.reader(store.snapshot()) as cur:
        report = send_due(cur, config, now_utc(), views_open=True)
    return _delivered(f"{report.recorded} recorded, {report.sent} sent", report.failed)


def run_statements(store, config: Config) -> str:
    """On the first business day of a month, e-mail last month's statements (``kb.statement.mailing``)."""
    with store.reader() as cur:
        result = send_statements(cur, config, now_utc())
    return _delivered(f"sent {', '.join(result.sent) or 'none'}", result.failed)


class NotDelivered(RuntimeError):
    """Alerts or statements recorded that the servers did not take; they go again at the next run."""


def _delivered(detail: str, failed: list[str]) -> str:
    """``detail`` of a run that sent everything; raises ``NotDelivered`` naming what was not sent."""
    if failed:
        raise NotDelivered(f"{detail}; not sent: {'; '.join(failed)}")
    return detail


# --- Reading runs -----------------------------------------------------------------------------------------

def _checkpoint(con) -> None:
    con.execute("CHECKPOINT").fetchall()


def job_status(con, jobs: list[Job], *, running: set[str] = frozenset(), started: datetime | None = None,
               start_delay: timedelta = timedelta(0)) -> list[JobStatus]:
    """Last run, next run and last error of each job, from ``job_runs`` on ``con``.

    ``started``: when this process's jobs started (None: they do not run here); a kind never run is
    then due ``start_delay`` after it."""
    rows = {row[0]: row[1:] for row in con.execute(
        """WITH last AS (SELECT * FROM job_runs
                         QUALIFY row_number() OVER (PARTITION BY kind ORDER BY started_at DESC) = 1),
                failed AS (SELECT kind, started_at, error FROM job_runs WHERE error IS NOT NULL
                           QUALIFY row_number() OVER (PARTITION BY kind ORDER BY started_at DESC) = 1)
           SELECT last.kind, last.started_at, last.finished_at, last.error, last.detail, failed.started_at, failed.error
             FROM last LEFT JOIN failed USING (kind)""").fetchall()}
    result = []
    for job in jobs:
        last, finished, error, detail, failed_at, failure = rows.get(job.kind, (None,) * 6)
        due = None
        if job.every is not None:
            due = last + job.every if last is not None else None
            if started is not None:
                due = max(due or started + start_delay, started + start_delay)
        result.append(JobStatus(
            kind=job.kind, title=job.title, every=job.every, last_started=last, last_finished=finished,
            last_error=error, last_detail=detail, last_failure=failed_at, last_failure_error=failure,
            next_run=due, running=job.kind in running,
        ))
    return result


# --- Running them -----------------------------------------------------------------------------------------

class Jobs:
    """The background jobs of one service process."""

    def __init__(self, store, jobs: list[Job] | None = None, *, start_delay: float = 30.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), stop_timeout: float = 600.0,
                 config_file: Path | None = None, config_every: float = CONFIG_EVERY):
        self.store = store
        self.jobs = list(jobs if jobs is not None else scheduled_jobs(store.config))
        self.start_delay = timedelta(seconds=start_delay)
        self.clock = clock
        self.stop_timeout = stop_timeout
        self.config_file = config_file  # None: the configuration file is not watched
        self.config_every = config_every
        self._locks = {job.kind: threading.Lock() for job in self.jobs}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started_at: datetime | None = None
        self._stopped = False

    # -- lifecycle

    def start(self) -> None:
        """Start one thread per job kind that is switched on."""
        if self._threads:
            return
        self._started_at = self.clock()
        for job in self.jobs:
            if job.every is None:
                log.info("background job %s is off", job.kind)
                continue
            thread = threading.Thread(target=self._loop, args=(job,), name=f"kb-job-{job.kind}", daemon=True)
            self._threads.append(thread)
            thread.start()
        if self.config_file is not None:
            thread = threading.Thread(target=self._watch_config, name="kb-config-file", daemon=True)
            self._threads.append(thread)
            thread.start()
        register(self)

    def stop(self) -> None:
        """Stop the threads (a run under way ends first), let the write in progress finish, checkpoint."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        for thread in self._threads:
            thread.join(self.stop_timeout)
            if thread.is_alive():
                log.warning("background job thread %s still runs after %ss; stopping without it",
                            thread.name, self.stop_timeout)
        if running() is self:
            register(None)
        try:
            self.store.write(_checkpoint, record_only=True)
        except Exception:
            log.exception("the checkpoint at stop failed (the write-ahead log is replayed at the next start)")

    # -- running

    def run_now(self, kind: str) -> bool | None:
        """Run ``kind`` once, now, in this thread: True when it succeeded, False when it failed (logged and
        recorded), None when a run of it is under way already."""
        job = next((j for j in self.jobs if j.kind == kind), None)
        if job is None:
            raise KeyError(f"no background job {kind!r} (one of {', '.join(j.kind for j in self.jobs)})")
        lock = self._locks[kind]
        if not lock.acquire(blocking=False):
            return None
        try:
            return self._run(job)
        finally:
            lock.release()

    def _run(self, job: Job) -> bool:
        started = self.clock()
        try:
            self.store.write(record_start, job.kind, started, record_only=True)
        except Exception:
            log.exception("background job %s: cannot record its start; not run", job.kind)
            return False
        error = detail = None
        try:
            detail = job.run(self.store)
        except Exception as e:
            log.exception("background job %s failed; it is tried again at its next run", job.kind)
            error = f"{type(e).__name__}: {first_line(e)}"
        try:
            self.store.write(record_end, job.kind, started, self.clock(), error, detail, record_only=True)
        except Exception:
            log.exception("background job %s: cannot record its end", job.kind)
        return error is None

    def _loop(self, job: Job) -> None:
        while not self._stopping.is_set():
            try:
                due = self._due(job)
            except Exception:
                log.exception("background job %s: cannot read its last run; trying again in a minute", job.kind)
                self._stopping.wait(60)
                continue
            wait = (due - self.clock()).total_seconds()
            if wait > 0:
                self._stopping.wait(min(wait, 60.0))  # wake now and then: the clock may have jumped
                continue
            self.run_now(job.kind)

    def check_config(self) -> Reload | None:
        """Reload the configuration file when it changed (``kb.opening.reload_config``); None when it was written
        less than ``SETTLED`` seconds ago, and is read at the next check."""
        try:
            written = self.config_file.stat().st_mtime
        except OSError:
            written = 0.0  # gone or unreadable: the reload says so
        if time.time() - written < SETTLED:
            return None
        return reload_config(self.store, self.config_file, noticed="file check")

    def _watch_config(self) -> None:
        while not self._stopping.wait(self.config_every):
            try:
                self.check_config()
            except Exception:
                log.exception("checking the configuration file %s failed; trying again at the next check",
                              self.config_file)

    def _due(self, job: Job) -> datetime:
        with self.store.reader() as cur:
            last = cur.execute("SELECT max(started_at) FROM job_runs WHERE kind = ?", [job.kind]).fetchall()[0][0]
        earliest = self._started_at + self.start_delay
        return earliest if last is None else max(last + job.every, earliest)

    # -- reading

    def health(self) -> list[Pipeline]:
        """Each enabled job's health, and each webhook's, now (``kb.health``)."""
        schedule = {job.kind: job.every for job in self.jobs if job.every is not None}
        now = self.clock()
        with self.store.reader() as cur:
            return assess(cur, schedule, now=now, started=self._started_at or now)

    def status(self) -> list[JobStatus]:
        """Per kind: last run, next run, last error."""
        under_way = {kind for kind, lock in self._locks.items() if lock.locked()}
        with self.store.reader() as cur:
            return job_status(cur, self.jobs, running=under_way, started=self._started_at,
                              start_delay=self.start_delay)


# The Jobs running in this process, for the Configuration page. Kept on a module without a file, as
# kb.opening does, so that Streamlit's reload of changed modules does not lose it.
_HOLDER = "_kb_running_jobs"


def register(jobs: Jobs | None) -> None:
    holder = sys.modules.setdefault(_HOLDER, types.ModuleType(_HOLDER))
    holder.jobs = jobs


def running() -> Jobs | None:
    """The background jobs running in this process, or None (the dashboard runs without the service)."""
    holder = sys.modules.get(_HOLDER)
    return getattr(holder, "jobs", None) if holder is not None else None


# --- For the Configuration page ---------------------------------------------------------------------------

def jobs_table(store) -> tuple[pd.DataFrame, bool]:
    """Per job kind: how often, last run, its result, next run and last error, times in the support zone
    (from ``job_runs``); and whether the jobs run in this process (the service) at all."""
    zone = store.config.calendar.zone
    here = running()
    if here is not None:
        statuses = here.status()
    else:
        with store.reader() as cur:
            statuses = job_status(cur, scheduled_jobs(store.config))
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
