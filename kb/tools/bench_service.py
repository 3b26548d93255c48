"""The service's share of ``python -m kb bench``, measured in its worker process on the dashboard's store:

* ``GET /api/v1/export/case-sla`` of the whole data set through the service's routes (in process, Starlette's
  test client reading the stream as it comes): the first byte, the first row and the whole report, with the
  snapshot current, as the pages and ``/metrics`` keep it in a running service;
* logging a case through the store, as the Log case form does, while a thread does what the service's jobs
  do, back to back (``kb.service.jobs``): the alerts job's due alerts (from the snapshot), a
  ``/metrics`` scrape (the snapshot built again after every write), a mail poll's batch of new messages
  written through the store, and a scheduled backup; the writes go on until every job has run at least once.

See ``kb/tools/bench.py`` for the rest, and ``docs/performance.md``.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from kb.access import Actor
from kb.config import Config

BENCH_ACTOR = Actor("bench@example.com", "staff")
MAIL_BATCH = 100  # messages a mail poll brings in, per run of the jobs
WRITE_PAUSE_SECONDS = 0.05  # between two cases logged while the jobs run


def measure_api_export(store, runs: int) -> dict:
    """Seconds to the first byte, the first row and the end of ``GET /api/v1/export/case-sla`` (medians of
    ``runs``), and the rows it said (``X-Rows``) and sent."""
    import warnings

    from starlette.applications import Starlette

    from kb.service import api, tokens

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's note about httpx, not about this
        from starlette.testclient import TestClient

    token = store.write(tokens.create_token, Actor("bench@example.com", "admin"), name="bench export",
                        role="viewer").token

    @asynccontextmanager
    async def lifespan(_app):
        yield {"store": store}

    first_byte, first_row, whole, said, sent = [], [], [], 0, 0
    with TestClient(Starlette(routes=api.ROUTES, lifespan=lifespan)) as client:
        for _ in range(runs):
            store.snapshot()  # current, as a running service keeps it (untimed)
            byte_at = row_at = None
            lines = 0
            begin = time.perf_counter()
            with client.stream("GET", "/api/v1/export/case-sla",
                               headers={"Authorization": f"Bearer {token}"}) as response:
                if response.status_code != 200:
                    raise RuntimeError(f"the export answered {response.status_code}: {response.read()[:300]!r}")
                for piece in response.iter_raw():
                    if piece and byte_at is None:
                        byte_at = time.perf_counter() - begin
                    lines += piece.count(b"\n")
                    if lines > 1 and row_at is None:
                        row_at = time.perf_counter() - begin
            whole.append(time.perf_counter() - begin)
            first_byte.append(whole[-1] if byte_at is None else byte_at)
            first_row.append(whole[-1] if row_at is None else row_at)
            said, sent = int(response.headers["x-rows"]), lines - 1
    return {"first_byte": statistics.median(first_byte), "first_row": statistics.median(first_row),
            "whole": statistics.median(whole), "rows_said": said, "rows_sent": sent}


class _Jobs(threading.Thread):
    """What the service's jobs do, back to back, until stopped; how many times each ran."""

    KINDS = ("alerts", "metrics", "mail", "backup")

    def __init__(self, store, config: Config, folder: Path):
        super().__init__(name="bench-jobs", daemon=True)
        self.store, self.config, self.folder = store, config, folder
        self.stop = threading.Event()
        self.runs = dict.fromkeys(self.KINDS, 0)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for kind in self.KINDS:
                    if self.stop.is_set():
                        return
                    getattr(self, f"_{kind}")()
                    self.runs[kind] += 1
        except BaseException as e:  # said by the measure, which fails
            self.error = e

    def _alerts(self) -> None:  # the alerts job's reading, from the snapshot (nothing sent: no mail server here)
        from kb.alerts.due import due_alerts
        from kb.timestamps import now_utc

        with self.store.reader(self.store.snapshot()) as cur:
            due_alerts(cur, self.config, now_utc())

    def _metrics(self) -> None:  # a scrape of /metrics: the snapshot as of now, built again after a write
        from kb.service.metrics import metrics_text

        metrics_text(self.store)

    def _mail(self) -> None:  # a poll that brought MAIL_BATCH new messages, written as the mail job writes them
        from kb.mail.intake import take
        from kb.mail.messages import MailRecord, parse_message, support_matcher
        from kb.mail.sources import read_paths
        from kb.timestamps import now_utc
        from kb.tools.mbox import write_mbox

        now = now_utc()
        mbox = self.folder / "poll.mbox"
        write_mbox(mbox, self.config, messages=MAIL_BATCH, seed=1000 + self.runs["mail"], until=now, days=1)
        team = support_matcher(self.config.mail.support_addresses, self.config.mail.trusted_authserv_ids)
        records = [parse_message(raw.data, team, mailbox="bench", folder="INBOX", where=raw.where,
                                 from_line=raw.from_line, now=now) for raw in read_paths([mbox])]
        records = [r for r in records if isinstance(r, MailRecord)]  # not the ones skipped (newsletters…)
        self.store.write(take, self.config, records, Actor("service:mail", "lead"), source="bench: mail poll",
                         now=now)

    def _backup(self) -> None:  # the scheduled backup, while writes go on
        target = self.folder / "backup.duckdb"
        self.store.backup(target, replace=True)
        target.unlink(missing_ok=True)


def measure_writes_with_jobs(store, config: Config, count: int) -> dict:
    """Log cases through the store (as the Log case form does) while the jobs run in a thread: at least
    ``count``, and until every job has run once. Each write's milliseconds, and how often each job ran."""
    from kb.intake import writes

    client = store.query("SELECT client_id FROM clients WHERE tier = 'enterprise' ORDER BY client_id LIMIT 1")
    zone = config.calendar.zone
    write_ms = []
    with tempfile.TemporaryDirectory(prefix="kb-bench-jobs-") as folder:
        jobs = _Jobs(store, config, Path(folder))
        jobs.start()
        try:
            while (len(write_ms) < count or min(jobs.runs.values()) < 1) and jobs.is_alive():
                fields = {"client_id": client.client_id[0], "category": "platform_issue",
                          "subject": f"Bench case with the jobs {len(write_ms)}", "requester": "bench@example.com",
                          "assignee": "", "received_at": datetime.now(zone).replace(microsecond=0).isoformat(),
                          "first_response_at": ""}
                begin = time.perf_counter()
                store.write(writes.log_case, config, BENCH_ACTOR, fields)
                write_ms.append((time.perf_counter() - begin) * 1000)
                time.sleep(WRITE_PAUSE_SECONDS)
        finally:
            jobs.stop.set()
            jobs.join()
    if jobs.error is not None:
        raise RuntimeError(f"a job failed while cases were logged: {jobs.error!r}") from jobs.error
    return {"write_ms": write_ms, "job_runs": jobs.runs}
