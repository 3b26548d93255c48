"""``mail import``: the messages of mbox files, Maildir folders and ``.eml`` files, read as a stream and stored
a batch at a time (``kb.mail.intake.take``), so that memory holds one batch, never the files.

A batch is 10 000 messages, or fewer when they reach 64 MB: each record keeps its message as read, to be held
aside whole in the quarantine should the store refuse it.

An import checkpoints less often (``checkpoints_deferred``): DuckDB checkpoints when its write-ahead log
passes 16 MB, in the commit of whichever batch gets there, and that checkpoint rewrote the row groups the
import had appended to. At a million cases, importing 100 000 messages (a log of 30 MB) held 30–40 MB more in
that checkpoint than in any batch (the import's peak: 333–341 MB with it, 301–305 MB without), and the import
with its closing checkpoint took 8.2–8.6 s against 7.6–8.0 s. So an import lets the log grow to 256 MiB first;
each batch is still committed, through the log, as it is taken, and the log is written into the database
when the connection closes (the command's end), or replayed by the next process to open it should this one
be killed first.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing, contextmanager
from datetime import datetime
from functools import partial
from itertools import chain
from multiprocessing import get_context

import duckdb

from kb.access import Actor
from kb.config import Config
from kb.db.sqltext import quote
from kb.mail.intake import Outcome, take
from kb.mail.messages import MailRecord, Skipped, Team, parse_archived, support_matcher
from kb.mail.sources import RawMessage, SourceError, read_paths
from kb.timestamps import now_utc

log = logging.getLogger(__name__)
BATCH = 10_000                # messages per transaction
BATCH_BYTES = 64 * 1024 ** 2  # at most this much mail per transaction
PARSERS = 2                   # processes reading messages
CHUNK = 500                   # messages a parser reads at a time
IN_FLIGHT = 2 * PARSERS       # chunks given out and not yet back
DEFERRED_CHECKPOINT = "256MiB"  # the write-ahead log an import lets grow before DuckDB checkpoints


def import_paths(con, config: Config, paths, actor: Actor, *, batch: int = BATCH, now: datetime | None = None,
                 progress: Callable[[Outcome], None] | None = None, trust_team: bool = False) -> tuple[Outcome, list]:
    """Every message under ``paths`` (mbox, Maildir, ``.eml``), stored ``batch`` messages per transaction.
    ``trust_team``: the files are the team's own archive, so its messages count as the team's (rules §9).
    Returns what was done and the paths that could not be read."""
    return import_messages(con, config, read_paths(paths), actor, source=import_source(paths, trust_team),
                           batch=batch, now=now, progress=progress, trust_team=trust_team)


def import_source(paths, trust_team: bool) -> str:
    """What the audit trail says a ``mail import`` of ``paths`` was: the command and its paths."""
    return ("mail import --trust-team " if trust_team else "mail import ") + " ".join(map(str, paths))[:200]


def import_messages(con, config: Config, items: Iterable[RawMessage | SourceError], actor: Actor, *, source: str,
                    batch: int = BATCH, now: datetime | None = None, progress: Callable[[Outcome], None] | None = None,
                    trust_team: bool = False, write: Callable | None = None,
                    parsers: bool = True) -> tuple[Outcome, list]:
    """``import_paths`` of the messages ``items`` (what ``kb.mail.sources`` reads), audited as ``source``.
    ``write``: how each batch is stored, ``write(action)`` running ``action(cursor)`` (``Store.write`` in the
    service; default: on ``con``). ``parsers``: read the messages in processes of their own (else here)."""
    now = now or now_utc()
    team = support_matcher(config.mail.support_addresses, config.mail.trusted_authserv_ids)
    write = write or (lambda action: action(con))
    total, failed = Outcome(), []
    pending: list[MailRecord] = []
    skipped: list[Skipped] = []
    size = 0

    def flush() -> None:
        nonlocal size
        records = list(pending)
        done = write(lambda cur: take(cur, config, records, actor, source=source, now=now))
        done.read += len(skipped)
        done.skipped.extend(skipped)
        total.add(done)
        pending.clear()
        skipped.clear()
        size = 0
        if progress:
            progress(total)

    parsed = _parsed(items, failed, team, now, trust_team, processes=parsers)
    with checkpoints_deferred(con), closing(parsed) as records:
        for item, record in records:
            (skipped if isinstance(record, Skipped) else pending).append(record)
            size += len(item.data)
            if len(pending) + len(skipped) >= batch or size >= BATCH_BYTES:
                flush()
        if pending or skipped:
            flush()
    return total, failed


@contextmanager
def checkpoints_deferred(con) -> Iterator[None]:
    """Inside: DuckDB checkpoints ``con``'s database past ``DEFERRED_CHECKPOINT`` of log (see above); after, at
    the threshold it had before (a setting of the whole database)."""
    before = con.execute("SELECT current_setting('checkpoint_threshold')").fetchall()[0][0]
    con.execute(f"SET checkpoint_threshold = '{DEFERRED_CHECKPOINT}'")
    try:
        yield
    finally:
        try:
            con.execute(f"SET checkpoint_threshold = {quote(before)}")
        except duckdb.Error:  # the import failed with the database (a full disk): its own error is the one said
            log.warning("the checkpoint threshold could not be set back to %s", before, exc_info=True)


def _parsed(items: Iterable[RawMessage | SourceError], failed: list, team: Team, now: datetime,
            vouched: bool, *, processes: bool = True) -> Iterator[tuple[RawMessage, MailRecord | Skipped]]:
    """Each message of ``items`` with its record (``parse_message``), in order, read by ``PARSERS`` processes
    a chunk at a time (here, when there is one chunk only, or without ``processes``); a path that could not be
    read goes to ``failed``. Closed early (the store refused a batch), it stops its parsers without waiting for
    the chunks given out."""
    parse = partial(parse_archived, team=team, now=now, vouched=vouched)
    chunks = _chunks(items, failed)
    if not processes:
        for chunk in chunks:
            yield from zip(chunk, parse(chunk), strict=True)
        return
    first, second = next(chunks, []), next(chunks, None)
    if second is None:
        yield from zip(first, parse(first), strict=True)
        return
    pool = ProcessPoolExecutor(max_workers=PARSERS, mp_context=get_context("spawn"))
    try:
        out: deque = deque()  # (chunk, future of its records), in the files' order
        for chunk in chain((first, second), chunks):
            out.append((chunk, pool.submit(parse, chunk)))
            if len(out) >= IN_FLIGHT:
                done, records = out.popleft()
                yield from zip(done, records.result(), strict=True)
        while out:
            done, records = out.popleft()
            yield from zip(done, records.result(), strict=True)
    finally:
        pool.shutdown(cancel_futures=True)


def _chunks(items: Iterable[RawMessage | SourceError], failed: list) -> Iterator[list[RawMessage]]:
    chunk: list[RawMessage] = []
    for item in items:
        if isinstance(item, SourceError):
            failed.append(item)
            continue
        chunk.append(item)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
