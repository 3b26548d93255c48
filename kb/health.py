"""The runs of the service's pipelines, and whether each is well: the background jobs (one per mailbox for
mail) and the webhooks. It sits beside the store, below the alerts that read it (``kb.alerts.due``) and the
service whose jobs and webhooks write it.

Every run and delivery is a row of ``job_runs`` (``record_start``, ``record_end``, ``record_delivery``), and
this module decides from them, once, for ``/healthz``, ``/metrics``, the admins' banner and their alert:

- **The record** of a pipeline comes from ``job_runs``: its last success, the failures since
  (``consecutive_failures``), the first of them (when the streak began) and the last error, with anything
  that looks like a secret taken out (``redact``). A run that has not finished counts neither way.
- **A scheduled job is failing** when its last ``FAILURES_TO_ALERT`` runs failed, or when it has not
  succeeded for ``late_after(every)`` (three of its periods and a grace), counted from its last success or
  from the start of the service, whichever is later: a job that has not had time to run since the start
  is not failing, and one that hangs is.
- **A webhook is failing** (``webhook:alertmanager``, ``webhook:uptime-kuma``) when a delivery from a
  sender with a valid token was refused or could not be stored since the last one that was taken
  (``recorded``: calls without a valid token are not counted, so nobody outside can make the service
  look unwell).
- **The admins are alerted** once per streak of ``FAILURES_TO_ALERT`` failures in a row (``alarming``, sent by
  ``kb.alerts.due``: the key names the job and the instant its streak began, so a new streak after a
  recovery alerts again).
- **The mail quarantine needs a person** while it holds messages (``quarantined``, per mailbox): not a failure,
  the intake held them as designed, so ``/healthz`` stays 200 and names it under ``attention``; the admins
  see a banner until none is held, and are alerted once each time the quarantine grows.
- **A configuration file that cannot be used** (``refused_config``): the service goes on with the rules it had,
  so ``/healthz`` stays 200 and names the file and its error under ``attention`` until it is fixed; the
  Configuration page shows the same.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool

from kb.db.connection import transaction

log = logging.getLogger("kb.service.health")  # the service logs it, under its name

FAILURES_TO_ALERT = 3
LATE_PERIODS = 3
GRACE = timedelta(minutes=5)
WEBHOOK = "webhook:"
UNCOUNTED = (401, 403)  # no valid token, or one that may not deliver: not the pipeline's failure


@dataclass(frozen=True)
class Record:
    """What ``job_runs`` says of one pipeline."""

    job: str
    last_success: datetime | None  # when the last successful run finished
    consecutive_failures: int  # failed runs since then
    failing_since: datetime | None  # when the first of them started
    last_error: str | None  # of the last failed run since then, secrets taken out


@dataclass(frozen=True)
class Pipeline:
    """One pipeline's health as of an instant."""

    record: Record
    every: timedelta | None  # its period; None: a webhook, judged by its last delivery
    failing: bool
    since: datetime | None  # failing since: the streak's first failure, else the last success or the start

    @property
    def job(self) -> str:
        return self.record.job

    @property
    def reason(self) -> str:
        """Why it is failing: its last error, or how long it has gone without a success."""
        if self.record.consecutive_failures:
            return self.record.last_error or "failed"
        return f"no success in {late_after(self.every).total_seconds() / 60:g} min"


def late_after(every: timedelta) -> timedelta:
    """How long a job of period ``every`` may go without a success before it is failing."""
    return LATE_PERIODS * every + GRACE


def records(con) -> dict[str, Record]:
    """Per kind in ``job_runs``: its last success and the failures since."""
    rows = con.execute(
        """WITH good AS (
               SELECT kind,
                      max(started_at) FILTER (WHERE finished_at IS NOT NULL AND error IS NULL) AS good_start,
                      arg_max(finished_at, started_at) FILTER (WHERE finished_at IS NOT NULL AND error IS NULL)
                          AS last_success
               FROM job_runs GROUP BY kind)
           SELECT g.kind, g.last_success, count(r.error), min(r.started_at), arg_max(r.error, r.started_at)
           FROM good g LEFT JOIN job_runs r
             ON r.kind = g.kind AND r.error IS NOT NULL AND (g.good_start IS NULL OR r.started_at > g.good_start)
           GROUP BY g.kind, g.last_success ORDER BY g.kind""").fetchall()
    return {kind: Record(kind, success, failures, since, redact(error) if error else None)
            for kind, success, failures, since, error in rows}


def assess(con, schedule: dict[str, timedelta], *, now: datetime, started: datetime) -> list[Pipeline]:
    """The health at ``now`` of each scheduled job (``schedule``: the enabled kinds and their periods) of a
    service that started at ``started``, and of each webhook that has had a delivery."""
    found = records(con)
    kinds = [*schedule, *(kind for kind in found if kind.startswith(WEBHOOK))]
    pipelines = []
    for kind in kinds:
        record = found.get(kind) or Record(kind, None, 0, None, None)
        every = schedule.get(kind)
        counted_from = max(record.last_success or started, started)
        if every is None:
            failing = record.consecutive_failures > 0
        else:
            failing = record.consecutive_failures >= FAILURES_TO_ALERT or now - counted_from > late_after(every)
        pipelines.append(Pipeline(record, every, failing, record.failing_since or counted_from))
    return pipelines


def alarming(con) -> list[Record]:
    """The pipelines whose last ``FAILURES_TO_ALERT`` runs (or more) failed in a row: the admins hear of each
    streak once."""
    return [r for r in records(con).values() if r.consecutive_failures >= FAILURES_TO_ALERT]


@dataclass(frozen=True)
class Quarantined:
    """The messages of one mailbox held in the mail quarantine, waiting for an admin to retry or discard them."""

    mailbox: str  # a [[mail.mailboxes]] name, or 'import'
    held: int
    since: datetime  # when the oldest of them was held
    newest: datetime  # when the newest was: a new held message moves it


def quarantined(con) -> list[Quarantined]:
    """Per mailbox, the messages held in the mail quarantine now; none when it holds none."""
    rows = con.execute("SELECT mailbox, count(*), min(first_seen_at), max(first_seen_at) FROM mail_quarantine "
                       "WHERE status = 'held' GROUP BY mailbox ORDER BY mailbox").fetchall()
    return [Quarantined(*row) for row in rows]


def needs_attention(held: Quarantined, zone: ZoneInfo) -> dict:
    """A mailbox's held messages as ``/healthz`` names them under ``attention``."""
    return {"what": "mail quarantine", "mailbox": held.mailbox, "held": held.held, "since": _iso(held.since, zone),
            "newest": _iso(held.newest, zone)}


def refused_config(source, zone: ZoneInfo) -> dict:
    """A configuration file the service refused (``kb.opening.ConfigFile`` with a ``problem``) as ``/healthz``
    names it under ``attention``: the rules in use are those read at ``in_use_since``."""
    return {"what": "configuration", "file": str(source.path), "error": redact(source.problem),
            "since": _iso(source.problem_since, zone), "in_use_since": _iso(source.read_at, zone)}


def described(pipeline: Pipeline, zone: ZoneInfo) -> dict:
    """A failing pipeline as ``/healthz`` names it, instants in the support zone with their offset."""
    record = pipeline.record
    return {"job": record.job, "last_success": _iso(record.last_success, zone), "since": _iso(pipeline.since, zone),
            "last_error": pipeline.reason, "consecutive_failures": record.consecutive_failures}


def _iso(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return moment.astimezone(zone).isoformat() if moment is not None else None


# --- Secrets out of error texts ------------------------------------------------------------------------------

_SECRETS = [
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@]+@"), r"\1***@"),  # user:password@ in a URL
    (re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]+"), r"\1 ***"),
    (re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth)(\s*[=:]\s*)[^\s&;,]+"),
     r"\1\2***"),
    (re.compile(r"\b(kb_|xox[a-z]-|gh[pousr]_)[\w-]+"), r"\1***"),  # this service's tokens, Slack's, GitHub's
    (re.compile(r"(?i)(hooks\.slack\.com/services/)\S+"), r"\1***"),
    # anything else long and random: 32+ URL-safe characters mixing capitals, small letters and digits
    (re.compile(r"(?<![\w-])(?=[\w-]*[A-Z])(?=[\w-]*[a-z])(?=[\w-]*\d)[\w-]{32,}"), "***"),
]


def redact(text: str) -> str:
    """``text`` with passwords in URLs, bearer tokens, ``key=value`` secrets and token-like strings as ``***``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


# --- Recording runs and deliveries ----------------------------------------------------------------------------

def record_start(con, kind: str, at: datetime) -> None:
    """A run of ``kind`` began at ``at`` (a row never finished is a run the process died in)."""
    with transaction(con):
        con.execute("INSERT INTO job_runs (kind, started_at) VALUES (?, ?)", [kind, at])


def record_end(con, kind: str, started: datetime, at: datetime, error: str | None, detail: str | None) -> None:
    """The run of ``kind`` that began at ``started`` ended at ``at``: ``error`` None when it succeeded."""
    with transaction(con):
        con.execute("UPDATE job_runs SET finished_at = ?, error = ?, detail = ? WHERE kind = ? AND started_at = ?",
                    [at, error, detail, kind, started])


def record_delivery(con, source: str, received: datetime, error: str | None) -> None:
    """One webhook delivery, taken (``error`` None) or not, as a finished run of ``webhook:<source>``."""
    with transaction(con):
        con.execute("INSERT INTO job_runs (kind, started_at, finished_at, error) VALUES (?, ?, ?, ?)",
                    [WEBHOOK + source, received, datetime.now(UTC), error])


def recorded(source: str):
    """Record what a webhook endpoint (already ``guarded``) answered to each sender with a valid token."""

    def decorate(endpoint):
        @functools.wraps(endpoint)
        async def answer(request):
            received = datetime.now(UTC)
            response = await endpoint(request)
            store = getattr(request.state, "store", None)
            if store is not None and response.status_code not in UNCOUNTED:
                error = None if response.status_code < 400 else f"{response.status_code}: {_said(response.body)}"
                try:
                    await run_in_threadpool(store.write, record_delivery, source, received, error, record_only=True)
                except Exception:  # the answer stands; the log says why its record is missing
                    log.exception("%s webhook: the delivery's outcome could not be recorded", source)
            return response

        return answer

    return decorate


def _said(body: bytes) -> str:
    """The ``error`` of a JSON answer ``{"error": …}``."""
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace")[:300]
