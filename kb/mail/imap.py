"""Polling the configured IMAP mailboxes (``[[mail.mailboxes]]``) by UID, with the state kept in the store.

For each mailbox and folder the store keeps ``imap_state``: the folder's UIDVALIDITY and the last UID
taken. A poll opens each folder read-only (EXAMINE: no flag changes on the server), asks for the UIDs
above the last one, fetches them in chunks (``UID FETCH … (UID INTERNALDATE BODY.PEEK[])``) and stores
each chunk with ``kb.mail.intake.take``, whose transaction also moves ``last_uid`` to the chunk's last
UID: a poll that stops anywhere (killed, connection lost) leaves every chunk either taken with its
state or not at all, and the next poll goes on from there, reading nothing twice and skipping nothing.
A message the store refuses is held aside in the quarantine with its reason and the state moves past it,
so that no message can stop a folder. A message read from one of the mailbox's ``sent_folders`` is the
team's own: it counts as the team's (rules §9).
A new UIDVALIDITY (the folder was rebuilt) reads the folder again from the start; the "once" rule keeps
what was taken already from counting twice.

A mailbox that fails (no password in the environment, a refused login, a lost connection, a folder that
does not exist) is reported and recorded (``imap_state.last_error`` and a ``job_runs`` row of kind
``mail``); the other mailboxes go on.
"""

from __future__ import annotations

import imaplib
import os
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from kb.access import Actor
from kb.config import Config, MailboxConfig
from kb.db.connection import transaction
from kb.mail.intake import Outcome, take
from kb.mail.messages import parse_message, support_matcher
from kb.timestamps import now_utc

CHUNK = 200               # messages fetched and stored per transaction
TIMEOUT_SECONDS = 30
FETCH_HEAD = re.compile(rb"UID (\d+)")
INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
CONNECTION_ERRORS = (imaplib.IMAP4.error, OSError, EOFError, ssl.SSLError, socket.timeout)


class MailboxError(RuntimeError):
    """A mailbox that cannot be read now; the message says why."""


@dataclass
class FolderReport:
    mailbox: str
    folder: str
    fetched: int = 0       # messages fetched from the server in this poll
    last_uid: int = 0
    error: str | None = None


@dataclass
class PollReport:
    folders: list[FolderReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)   # "mailbox: reason", one per failed mailbox or folder
    outcome: Outcome = field(default_factory=Outcome)
    seconds: float = 0.0


def poll(con, config: Config, actor: Actor, *, chunk: int = CHUNK, now: datetime | None = None,
         write: Callable | None = None, record_run: bool = True) -> PollReport:
    """Read what is new in every configured mailbox and folder; never raises for a mailbox's failure.

    ``con`` reads the state; every write runs as ``write(action)`` (default: ``action(con)``), e.g.
    ``Store.write`` in the service, so that the network waits happen outside its write lock; those of the
    poller's own state (where each folder was read to, its errors, its runs) as ``write(action,
    record_only=True)``: no page reads them.
    ``record_run``: add a ``job_runs`` row of kind ``mail`` (the service's job runner adds its own).
    """
    started = time.perf_counter()
    report = PollReport()
    begun = now_utc()
    write = write or (lambda action, record_only=False: action(con))
    is_team = support_matcher(config.mail.support_addresses, config.mail.trusted_authserv_ids)
    for box in config.mail.mailboxes:
        try:
            _poll_mailbox(con, write, config, box, is_team, actor, report, chunk=chunk, now=now)
        except MailboxError as e:
            report.errors.append(f"{box.name}: {e}")
            write(lambda c, box=box, e=e: _record_error(c, box, box.folders, str(e)), record_only=True)
    report.seconds = time.perf_counter() - started
    if record_run:
        write(lambda c: _record_run(c, begun, report.errors), record_only=True)
    return report


def run_for_service(store, config: Config, actor: Actor | None = None) -> str:
    """The service's mail job: one poll through the store (reads on a cursor of their own, writes through
    ``Store.write``); returns what it did, and raises when a mailbox failed, so that the run is recorded as
    failed (the other mailboxes were read all the same)."""
    actor = actor or Actor("service:mail", "lead")
    with store.reader() as cur:
        report = poll(cur, config, actor, write=store.write, record_run=False)
    fetched = sum(f.fetched for f in report.folders)
    detail = f"{fetched} new on the server; {report.outcome.summary()}"
    if report.errors:
        raise MailboxError(f"{'; '.join(report.errors)} ({detail})")
    return detail


def _record_run(con, begun: datetime, errors: list[str]) -> None:
    with transaction(con):
        con.execute("INSERT INTO job_runs (kind, started_at, finished_at, error) VALUES ('mail', ?, ?, ?)",
                    [begun, now_utc(), "; ".join(errors) or None])


def _connect(box: MailboxConfig) -> imaplib.IMAP4:
    password = os.environ.get(box.password_env)
    if password is None:
        raise MailboxError(f"the environment variable {box.password_env} (password_env) is not set; no login tried")
    try:
        if box.tls:
            client = imaplib.IMAP4_SSL(box.host, box.port, timeout=TIMEOUT_SECONDS)
        else:
            client = imaplib.IMAP4(box.host, box.port, timeout=TIMEOUT_SECONDS)
    except CONNECTION_ERRORS as e:
        raise MailboxError(f"cannot connect to {box.host}:{box.port}: {_why(e)}") from None
    try:
        client.login(box.user, password)
    except imaplib.IMAP4.abort as e:
        _close(client)
        raise MailboxError(f"the connection to {box.host}:{box.port} was lost at login: {_why(e)}") from None
    except imaplib.IMAP4.error as e:
        _close(client)
        raise MailboxError(f"login refused for user {box.user!r} on {box.host}:{box.port} ({_why(e)}); "
                           f"check the user and the password in ${box.password_env}") from None
    except CONNECTION_ERRORS as e:
        _close(client)
        raise MailboxError(f"the connection to {box.host}:{box.port} was lost at login: {_why(e)}") from None
    return client


def _poll_mailbox(con, write, config: Config, box: MailboxConfig, is_team, actor: Actor, report: PollReport, *,
                  chunk: int, now: datetime | None) -> None:
    client = _connect(box)
    folder_name = box.folders[0]
    try:
        for folder_name in box.folders:
            folder = FolderReport(box.name, folder_name)
            report.folders.append(folder)
            try:
                _poll_folder(con, write, config, client, box, folder, is_team, actor, report.outcome, chunk=chunk,
                             now=now)
            except MailboxError as e:  # this folder only
                folder.error = str(e)
                report.errors.append(f"{box.name}/{folder_name}: {e}")
                write(lambda c, name=folder_name, e=e: _record_error(c, box, (name,), str(e)), record_only=True)
    except CONNECTION_ERRORS as e:
        what = "the server refused a command" if type(e) is imaplib.IMAP4.error else "the connection was lost"
        message = f"{what} while reading {folder_name}: {_why(e)}; the next poll goes on from the last message taken"
        report.folders[-1].error = message
        raise MailboxError(message) from None
    finally:
        _close(client)


def _poll_folder(con, write, config: Config, client: imaplib.IMAP4, box: MailboxConfig, folder: FolderReport, is_team,
                 actor: Actor, outcome: Outcome, *, chunk: int, now: datetime | None) -> None:
    typ, data = client.select(_quoted(folder.folder), readonly=True)
    if typ != "OK":
        raise MailboxError(f"folder {folder.folder!r} cannot be opened: {_text(data)}")
    uidvalidity = _number(client.response("UIDVALIDITY")[1])
    uidnext = _number(client.response("UIDNEXT")[1])
    state = con.execute("SELECT uidvalidity, last_uid FROM imap_state WHERE mailbox = ? AND folder = ?",
                        [box.name, folder.folder]).fetchall()
    last_uid = state[0][1] if state and state[0][0] == uidvalidity else 0
    folder.last_uid = last_uid
    if uidnext is not None and uidnext <= last_uid + 1:
        write(lambda c: _save_state(c, box.name, folder.folder, uidvalidity, last_uid), record_only=True)
        return
    typ, data = client.uid("SEARCH", None, f"UID {last_uid + 1}:*")
    if typ != "OK":
        raise MailboxError(f"folder {folder.folder!r}: the server refused UID SEARCH: {_text(data)}")
    uids = sorted(u for u in (int(t) for t in b" ".join(d for d in data if d).split()) if u > last_uid)
    for start in range(0, len(uids), chunk):
        part = uids[start:start + chunk]
        typ, data = client.uid("FETCH", ",".join(map(str, part)), "(UID INTERNALDATE BODY.PEEK[])")
        if typ != "OK":
            raise MailboxError(f"folder {folder.folder!r}: the server refused UID FETCH: {_text(data)}")
        vouched = folder.folder in box.sent_folders  # the team's own messages (rules §9)
        records = [parse_message(raw, is_team, mailbox=box.name, folder=folder.folder, uid=uid, vouched=vouched,
                                 where=f"{box.name}/{folder.folder} UID {uid}", internaldate=internaldate, now=now)
                   for uid, internaldate, raw in _fetched(data)]
        folder.fetched += len(records)
        good = [r for r in records if not hasattr(r, "reason")]
        skipped = [r for r in records if hasattr(r, "reason")]
        top = part[-1]
        done = write(lambda c, good=good, top=top: take(
            c, config, good, actor, source=f"imap {box.name}/{folder.folder}", now=now,
            also=lambda c2: _save_state(c2, box.name, folder.folder, uidvalidity, top)))
        done.read += len(skipped)
        done.skipped.extend(skipped)
        outcome.add(done)
        folder.last_uid = top


def _fetched(data) -> list[tuple[int, datetime | None, bytes]]:
    """(uid, internaldate, raw message) from a UID FETCH response."""
    found = []
    for item in data:
        if not isinstance(item, tuple) or len(item) < 2:
            continue
        head, raw = item[0], item[1]
        uid = FETCH_HEAD.search(head)
        if not uid:
            continue
        date = INTERNALDATE.search(head)
        found.append((int(uid.group(1)), _internaldate(date.group(1)) if date else None, raw))
    return found


def _internaldate(value: bytes) -> datetime | None:
    try:
        return datetime.strptime(value.decode("ascii").strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None


def _save_state(con, mailbox: str, folder: str, uidvalidity: int | None, last_uid: int) -> None:
    con.execute(
        "INSERT INTO imap_state (mailbox, folder, uidvalidity, last_uid, polled_at, last_error) "
        "VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT (mailbox, folder) DO UPDATE SET uidvalidity = excluded.uidvalidity, "
        "last_uid = excluded.last_uid, polled_at = excluded.polled_at, last_error = NULL",
        [mailbox, folder, uidvalidity, last_uid, now_utc()])


def _record_error(con, box: MailboxConfig, folders, error: str) -> None:
    with transaction(con):
        for folder in folders:
            con.execute(
                "INSERT INTO imap_state (mailbox, folder, uidvalidity, last_uid, polled_at, last_error) "
                "VALUES (?, ?, NULL, 0, ?, ?) ON CONFLICT (mailbox, folder) DO UPDATE SET "
                "polled_at = excluded.polled_at, last_error = excluded.last_error",
                [box.name, folder, now_utc(), error])


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number(data) -> int | None:
    try:
        return int(data[0])
    except (TypeError, ValueError, IndexError):
        return None


def _text(data) -> str:
    return " ".join(d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d) for d in (data or []) if d)


def _why(error: Exception) -> str:
    text = str(error).strip()
    return text or type(error).__name__


def _close(client: imaplib.IMAP4) -> None:
    try:
        client.logout()
    except Exception:  # noqa: BLE001 - the connection may be gone already
        try:
            client.shutdown()
        except Exception:  # noqa: BLE001
            pass


def poll_forever(open_connection: Callable[[], object], config: Config, actor: Actor,
                 on_report: Callable[[PollReport], None]) -> None:
    """``mail poll`` without ``--once``: poll, report, sleep ``poll_seconds``, until interrupted. The
    database is opened for each poll and closed after it."""
    while True:
        con = open_connection()
        try:
            on_report(poll(con, config, actor))
        finally:
            con.close()
        time.sleep(config.mail.poll_seconds)
