"""``python -m kb mail import`` handed to the running service (``--server``, else the service holding ``--db``):
the files are read here and their messages sent as an archive (``kb.mail.sources.archive_parts``) to
``POST /api/v1/mail/import`` (``kb/service/mail_api.py``), a part of at most ``PART_BYTES`` a request, which
stores them as the command would here."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from kb.mail.archive import import_source
from kb.mail.commands import reported
from kb.mail.intake import Outcome
from kb.mail.sources import ARCHIVE_TYPE, SourceError, archive_parts, read_paths
from kb.service.handoff import Client

PART_BYTES = 32 * 1024 ** 2  # of archive a request: well under the 256 MB body the service takes by default


def import_through(service: Client, paths: list[Path], *, trust_team: bool, now: datetime | None) -> int:
    """Send the messages under ``paths`` to ``service`` and print what it did, as ``mail import`` prints it
    here; exit code 0 unless nothing could be read. ``now``: the instant the command takes as now, if given."""
    started = time.perf_counter()
    failed: list[SourceError | str] = []  # the paths not read here, then the lines the service could not read
    query = {"trust_team": "true" if trust_team else "false", "source": import_source(paths, trust_team),
             **({"now": now.isoformat()} if now else {})}
    total = Outcome()
    for part in archive_parts(read_paths(paths), failed, PART_BYTES):
        done = service.json("POST", "/api/v1/mail/import", query=query, body=part, content_type=ARCHIVE_TYPE)
        # the service's lines of what it skipped and held, counted and printed as the command's own would be
        total.add(Outcome(**done["outcome"], skipped=done["skipped"], held=done["held"]))
        failed.extend(done["failed"])
    return reported(total, failed, started, by=f" by the service at {service.url}")
