"""``mail import``: the messages of mbox files, Maildir folders and ``.eml`` files, read as a stream and stored
a batch at a time (``kb.mail.intake.take``), so that memory holds one batch, never the files.

A batch is 10 000 messages, or fewer when they reach 64 MB: each record keeps its message as read, to be held
aside whole in the quarantine should the store refuse it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from kb.access import Actor
from kb.config import Config
from kb.mail.intake import Outcome, take
from kb.mail.messages import MailRecord, Skipped, parse_message, support_matcher
from kb.mail.sources import SourceError, read_paths
from kb.timestamps import now_utc

BATCH = 10_000                # messages per transaction
BATCH_BYTES = 64 * 1024 ** 2  # at most this much mail per transaction


def import_paths(con, config: Config, paths, actor: Actor, *, batch: int = BATCH, now: datetime | None = None,
                 progress: Callable[[Outcome], None] | None = None, trust_team: bool = False) -> tuple[Outcome, list]:
    """Every message under ``paths`` (mbox, Maildir, ``.eml``), stored ``batch`` messages per transaction.
    ``trust_team``: the files are the team's own archive, so its messages count as the team's (rules §9).
    Returns what was done and the paths that could not be read."""
    now = now or now_utc()
    team = support_matcher(config.mail.support_addresses, config.mail.trusted_authserv_ids)
    source = ("mail import --trust-team " if trust_team else "mail import ") + " ".join(map(str, paths))[:200]
    total, failed = Outcome(), []
    pending: list[MailRecord] = []
    skipped: list[Skipped] = []
    size = 0

    def flush() -> None:
        nonlocal size
        done = take(con, config, pending, actor, source=source, now=now)
        done.read += len(skipped)
        done.skipped.extend(skipped)
        total.add(done)
        pending.clear()
        skipped.clear()
        size = 0
        if progress:
            progress(total)

    for item in read_paths(paths):
        if isinstance(item, SourceError):
            failed.append(item)
            continue
        parsed = parse_message(item.data, team, mailbox="import", folder=item.folder, where=item.where,
                               from_line=item.from_line, now=now, vouched=trust_team)
        (skipped if isinstance(parsed, Skipped) else pending).append(parsed)
        size += len(item.data)
        if len(pending) + len(skipped) >= batch or size >= BATCH_BYTES:
            flush()
    if pending or skipped:
        flush()
    return total, failed
