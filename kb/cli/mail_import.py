"""``python -m kb mail import`` handed to the running service (``--server``, else the service holding ``--db``):
the files are read here and their messages sent as one archive (``kb.mail.sources.archive_lines``) to
``POST /api/v1/mail/import`` (``kb/service/mail_api.py``), which stores them as the command would here."""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from kb.mail.sources import ARCHIVE_TYPE, SourceError, archive_lines, read_paths
from kb.service.handoff import Client


def import_through(service: Client, paths: list[Path], *, trust_team: bool, now: datetime | None) -> int:
    """Send the messages under ``paths`` to ``service`` and print what it did, as ``mail import`` prints it
    here; exit code 0 unless nothing could be read. ``now``: the instant the command takes as now, if given."""
    started = time.perf_counter()
    failed: list[SourceError] = []
    source = ("mail import --trust-team " if trust_team else "mail import ") + " ".join(map(str, paths))
    with tempfile.TemporaryFile() as archive:  # the files' messages, sent whole once read
        archive.writelines(archive_lines(read_paths(paths), failed))
        archive.seek(0)
        query = {"trust_team": "true" if trust_team else "false", "source": source[:200],
                 **({"now": now.isoformat()} if now else {})}
        done = service.json("POST", "/api/v1/mail/import", query=query, body=archive.read(),
                            content_type=ARCHIVE_TYPE)
    for problem in [*map(str, failed), *done["failed"]]:
        print(f"cannot read {problem}", file=sys.stderr)
    for skipped in done["skipped"]:
        print(f"skipped {skipped}")
    for held in done["held"]:
        print(f"held {held}")
    print(f"{done['summary']} by the service at {service.url} in {time.perf_counter() - started:.1f} s")
    return 0 if done["read"] - len(done["skipped"]) > 0 else 1
