"""A batch of message records → threads, new cases (with new free clients) and first responses, written in
one transaction (rules §9).

The threading runs in Python over the batch and the stored messages it touches; the writes are set-based:
new clients and new cases go through the intake rules (``kb.intake.importing.checked`` /
``write_checked``: the same validation and audit as a CSV import), the messages, the thread links of
earlier messages and the first responses of stored cases are each one statement over an Arrow table.

* **Once**: a message whose key (``Message-ID``, else a hash) is stored already, or appears twice in the
  batch, is counted as ``already`` and changes nothing, with one exception: a team message something vouches
  for (a sent folder, a trusted server's ``Authentication-Results``, ``--trust-team``) takes the place of a
  stored copy nothing vouched for (a client's message, or a team message kept unverified, such as a forgery
  carrying the real reply's Message-ID): the row becomes the vouched one (verified, its sender, date and
  thread), and its first response is recorded by the usual rule. A copy nothing vouches for never takes
  the place of a vouched one.
* **Threads**: messages are taken in the order of their instants (clients first at a tie); a message joins
  the case its ``[CS-…]`` subject tag names (if that case exists), else the case of the nearest message its
  ``In-Reply-To`` / ``References`` name (stored or in the batch). A client message that joins no case opens
  one; a team or automatic message that joins none is kept, unthreaded, and joins its case when the
  message it answers arrives later (a Sent folder read before the Inbox).
* **First response**: the earliest non-automatic team message of the thread at or after the case's receipt.
  A stored case takes a mail response only when it is earlier than the one it has (or it has none).
* **Pauses**: a client's message joining a stored case that waits on the client resumes it at the message's
  instant (``kb.intake.resuming``, by ``mail``); one that opens a case resumes nothing.
* **Trust**: a team message nothing vouches for (``MailRecord.unverified``) joins its thread and opens
  nothing, and is never a first response.
* **Closed months**: a message dated in a closed month (rules §13) is held in the quarantine with that reason: a
  case, a response or a question in it would change a month whose statements are final. Once an admin reopens
  the month, *Retry* takes it.
* **Never fatal**: a batch the store refuses (a row the intake rules refuse, a value the database will not
  hold) is stored in halves down to the messages refused; each is held aside in the quarantine
  (``mail_quarantine``) with its reason, and the rest are taken (``take``).

Over 400 lines: a batch's threads, first responses and writes are one transaction, and read best as one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from kb.access import Actor, require
from kb.config import Config
from kb.db import audit
from kb.db.answers import answer
from kb.db.connection import first_line, full_disk, local_zone, transaction
from kb.formats import count
from kb.intake.closed_months import closed_month_hit, refusal
from kb.intake.importing import Rejected, checked, staged_from_records, write_checked
from kb.intake.resuming import resume_on_client_messages
from kb.intake.writes import ID_PREFIXES, next_number
from kb.mail.messages import MailRecord, Skipped
from kb.mail.stored import (
    Node,
    clients_for,
    existing_cases,
    keys_table,
    query,
    run_with,
    stored_case_times,
    stored_cases_of,
    stored_keys,
    stored_orphans,
)
from kb.timestamps import now_utc

CASE_PREFIX = ID_PREFIXES["cases"]  # as the forms' ids, so a reply's [CS-00042] tag finds the case
SOURCE = "mail"
NEVER = datetime.max.replace(tzinfo=UTC)
# Errors that are the store's own, not a message's: the run stops and nothing is set aside (the next run
# reads the same messages again). Any other error of a message's write sets that message aside.
THE_STORES_OWN = (duckdb.IOException, duckdb.TransactionException, duckdb.ConnectionException, duckdb.FatalException,
                  duckdb.InterruptException, duckdb.OutOfMemoryException, MemoryError)


CASES_LISTED = 2000  # a batch's audit row names the cases it touched, up to this many (what a snapshot takes in)


@dataclass(frozen=True)
class Held:
    """A message the store would not take, set aside in the quarantine with the reason."""

    record: MailRecord
    reason: str

    def __str__(self) -> str:
        return str(Skipped(self.record.where, self.record.message_id, f"held in quarantine: {self.reason}"))


COUNTS = ("read", "taken", "already", "cases_opened", "responses", "resumed", "clients_made")  # of an Outcome


@dataclass
class Outcome:
    """What a batch (or a whole run: ``add``) did."""

    read: int = 0
    taken: int = 0             # new messages stored
    already: int = 0           # taken before (or twice in the batch)
    cases_opened: int = 0
    responses: int = 0         # cases whose first response was recorded (or moved earlier) from mail
    resumed: int = 0           # paused cases the client's message resumed
    clients_made: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)

    def add(self, other: Outcome) -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped.extend(other.skipped)
        self.held.extend(other.held)

    def summary(self) -> str:
        resumed = f"{count(self.resumed, 'paused case')} resumed by the client, " if self.resumed else ""
        return (f"{count(self.read, 'message')} read: {count(self.cases_opened, 'case')} opened, "
                f"{count(self.responses, 'response')} recorded, {resumed}"
                f"{count(self.clients_made, 'new free client')}, "
                f"{self.already:,} already taken, {len(self.skipped):,} skipped, "
                f"{len(self.held):,} held in quarantine")


class Refused(Exception):
    """The store would not take a batch (nothing of it was written); ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def take(con, config: Config, records: list[MailRecord], actor: Actor, *, source: str,
         also: Callable[[object], None] | None = None, now: datetime | None = None) -> Outcome:
    """Store a batch of records in one transaction; ``also(con)`` runs in the same transaction (the IMAP
    state of the UIDs read). Returns what it did; ``read`` is the number of records given.

    A batch the store refuses is stored in halves, each in a transaction of its own, down to the single
    messages it refuses: each of those is held aside in the quarantine with its reason (``Outcome.held``),
    in a last transaction with ``also``. One bad message never costs the others, and a poll moves on."""
    require(actor, "import")
    now = now or now_utc()
    outcome = Outcome(read=len(records))
    unique: dict[str, MailRecord] = {}
    for record in records:
        if record.key in unique:
            outcome.already += 1
            if _vouched_team(record) and not _vouched_team(unique[record.key]):
                unique[record.key] = record  # the vouched copy is the one kept
        else:
            unique[record.key] = record
    batch = sorted(unique.values(), key=_in_order)

    def write(part: list[MailRecord], also=None) -> Outcome:
        return _take_batch(con, config, part, actor, source=source, now=now, also=also)

    try:
        outcome.add(write(batch, also))
    except Refused as refused:
        outcome.add(_take_apart(write, batch, refused))
        with transaction(con):
            _hold(con, actor, outcome.held, source, now)
            if also is not None:
                also(con)
    return outcome


def _in_order(record: MailRecord) -> tuple:
    """The threading's order: by instant, a client's message first at a tie."""
    return record.instant or NEVER, record.is_team or record.is_automatic, record.key


def _take_apart(write: Callable[[list[MailRecord]], Outcome], batch: list[MailRecord], refused: Refused) -> Outcome:
    """A refused batch stored in halves (earlier messages first, so that threads form as in one batch), down
    to the single messages refused, which are returned as ``held``."""
    if len(batch) == 1:
        return Outcome(held=[Held(batch[0], refused.reason)])
    done = Outcome()
    middle = len(batch) // 2
    for part in (batch[:middle], batch[middle:]):
        try:
            done.add(write(part))
        except Refused as again:
            done.add(_take_apart(write, part, again))
    return done


def _take_batch(con, config: Config, batch: list[MailRecord], actor: Actor, *, source: str, now: datetime,
                also: Callable[[object], None] | None) -> Outcome:
    """One transaction: the batch (and ``also``) written whole, or ``Refused`` with nothing written."""
    try:
        with local_zone(con, config.calendar.timezone), transaction(con):
            done = _write(con, config, batch, actor, source=source, now=now)
            if also is not None:
                also(con)
        return done
    except Refused:
        raise
    except Exception as error:
        if isinstance(error, THE_STORES_OWN) or full_disk(error) is not None:
            raise
        raise Refused(first_line(error)) from error


def _hold(con, actor: Actor, held: list[Held], source: str, now: datetime) -> None:
    """Set messages aside in the quarantine, with one audit row; a message held already keeps its row."""
    known = {r[0] for r in query(con, "mail_held_keys", keys_table({h.record.key for h in held}),
                                 "SELECT message_key FROM mail_quarantine JOIN mail_held_keys ON message_key = v")}
    held = [h for h in held if h.record.key not in known]
    if not held:
        return
    records = [h.record for h in held]
    run_with(con, "mail_held", pa.table({
        "message_key": pa.array([r.key for r in records], pa.string()),
        "message_id": pa.array([r.message_id for r in records], pa.string()),
        "mailbox": pa.array([r.mailbox for r in records], pa.string()),
        "folder": pa.array([r.folder for r in records], pa.string()),
        "uid": pa.array([r.uid for r in records], pa.int64()),
        "read_from": pa.array([r.where for r in records], pa.string()),
        "from_address": pa.array([r.from_address for r in records], pa.string()),
        "subject": pa.array([r.subject for r in records], pa.string()),
        "received_at": pa.array([r.instant for r in records], pa.timestamp("us", tz="UTC")),
        "vouched": pa.array([r.vouched for r in records], pa.bool_()),
        "raw": pa.array([r.raw for r in records], pa.binary()),
        "reason": pa.array([h.reason for h in held], pa.string()),
    }), "INSERT INTO mail_quarantine SELECT *, ? AS first_seen_at, 'held' AS status, NULL AS decided_by, "
        "NULL AS decided_at FROM mail_held", [now])
    audit.record(con, actor, "hold", "mail_quarantine", None, None,
                 {"source": source, "messages": {h.record.key: h.reason for h in held}})


def _write(con, config: Config, batch: list[MailRecord], actor: Actor, *, source: str, now: datetime) -> Outcome:
    done = Outcome()
    if not batch:
        return done
    stored = stored_keys(con, [r.key for r in batch])
    verified = {r.key for r in batch if r.key in stored and not stored[r.key] and _vouched_team(r)}
    done.already = sum(r.key in stored and r.key not in verified for r in batch)
    batch = [r for r in batch if r.key not in stored or r.key in verified]
    if not batch:
        return done
    late = closed_month_hit(con, config, *[(r.instant, r.instant) for r in batch if r.instant is not None])
    if late:
        raise Refused(f"its date: {refusal(late)}")

    nodes = [Node(r.key, r.message_id, r.is_team, r.is_automatic, r.instant, r.links, r.case_tag, r.unverified, r)
             for r in batch]
    batch_ids = {r.message_id for r in batch if r.message_id}
    orphans = [n for n in stored_orphans(con, batch_ids) if n.key not in verified]
    nodes += orphans
    links = {link for n in nodes for link in n.links}
    case_of = stored_cases_of(con, links)
    tagged = existing_cases(con, {n.case_tag for n in nodes if n.case_tag})

    # Threads, in the order of the instants.
    number = next_number(con, "cases", "case_id")
    openers: dict[str, Node] = {}
    nodes.sort(key=lambda n: (n.instant or NEVER, n.is_team or n.is_automatic, n.key))
    for node in nodes:
        case = node.case_tag if node.case_tag in tagged else None
        if case is None:
            case = next((case_of[link] for link in node.links if link in case_of), None)
        if case is None and node.record is not None and not node.is_team and not node.is_automatic:
            case = f"{CASE_PREFIX}{number:05d}"
            number += 1
            openers[case] = node
            tagged[case] = node.instant
        node.case_id = case
        if case and node.message_id:
            case_of.setdefault(node.message_id, case)
    for node in nodes:  # a team or automatic message older than the message it answers
        if node.case_id is None:
            node.case_id = next((case_of[link] for link in node.links if link in case_of), None)

    # First responses: the earliest non-automatic, trusted team message at or after receipt, per case.
    received = {case: opener.instant for case, opener in openers.items()}
    touched = {n.case_id for n in nodes if n.case_id and n.case_id not in openers and _responds(n)}
    stored_cases = stored_case_times(con, touched)
    received.update({case: times[0] for case, times in stored_cases.items()})
    first: dict[str, tuple[datetime, str]] = {}
    for node in nodes:
        at = received.get(node.case_id) if node.case_id else None
        if _responds(node) and at is not None and node.instant is not None \
                and node.instant >= at and (node.case_id not in first or node.instant < first[node.case_id][0]):
            first[node.case_id] = (node.instant, node.key)

    # New free clients, then the cases, through the intake rules.
    client_of, new_clients = clients_for(con, openers)
    if new_clients:
        _checked_insert(con, config, "clients", new_clients, actor, source, now)
        run_with(con, "mail_new_clients", keys_table({c["client_id"] for c in new_clients}),
                          f"UPDATE clients SET source = '{SOURCE}' FROM mail_new_clients WHERE client_id = v")
        done.clients_made = len(new_clients)
    case_rows = []
    for case, opener in openers.items():
        record = opener.record
        response = first.get(case)
        case_rows.append({
            "case_id": case, "client_id": client_of[record.from_address],
            "received_at": _iso(record.instant), "category": "platform_issue", "subject": record.subject,
            "requester": record.from_address, "assignee": None,
            "first_response_at": _iso(response[0]) if response else None, "resolved_at": None,
        })
    if case_rows:
        _checked_insert(con, config, "cases", case_rows, actor, source, now)
        run_with(con, "mail_new_cases", pa.table({
            "case_id": pa.array(list(openers), pa.string()),
            "message_key": pa.array([o.key for o in openers.values()], pa.string()),
        }), f"UPDATE cases SET message_id = n.message_key, source = '{SOURCE}' FROM mail_new_cases n "
            "WHERE cases.case_id = n.case_id")
        done.cases_opened = len(case_rows)
        done.responses += sum(1 for case in openers if case in first)

    # Responses of stored cases: only an earlier one than they have.
    updates = [(case, at, key, stored_cases[case][1]) for case, (at, key) in first.items()
               if case in stored_cases and (stored_cases[case][1] is None or at < stored_cases[case][1])]
    if updates:
        run_with(con, "mail_responses", pa.table({
            "case_id": pa.array([u[0] for u in updates], pa.string()),
            "at": pa.array([u[1] for u in updates], pa.timestamp("us", tz="UTC")),
        }), "UPDATE cases SET first_response_at = r.at FROM mail_responses r WHERE cases.case_id = r.case_id")
        audit.record_rows(con, actor, "record_response", "cases", [
            (case, {"first_response_at": _iso(before)}, {"first_response_at": _iso(at), "message": key})
            for case, at, key, before in updates])
        done.responses += len(updates)

    # Paused cases a client's message joins resume (a message that opens a case resumes nothing).
    replies = [n for n in nodes if n.record is not None and n.case_id and n.case_id not in openers
               and not n.is_team and not n.is_automatic]
    done.resumed = resume_on_client_messages(con, config, actor, pa.table({
        "case_id": pa.array([n.case_id for n in replies], pa.string()),
        "received_at": pa.array([n.instant for n in replies], pa.timestamp("us", tz="UTC")),
        "message_key": pa.array([n.key for n in replies], pa.string()),
    })) if replies else 0

    # The messages, the stored ones a vouched copy replaces, and the stored ones that found their thread.
    batch_nodes = [n for n in nodes if n.record is not None]
    new_nodes = [n for n in batch_nodes if n.key not in verified]
    if new_nodes:
        run_with(con, "mail_messages", _messages_table(new_nodes, now),
                 "INSERT INTO messages (message_key, message_id, case_id, mailbox, folder, from_address, from_name, "
                 "is_team, is_automatic, automatic_reason, received_at, subject, links, taken_at, unverified) "
                 "SELECT * FROM mail_messages")
    moved_from = set()  # the cases the stored copies were in (a vouched copy may thread elsewhere)
    if verified:  # replaces the stored copy, or is stored where the copy was discarded from the quarantine
        moved_from = {case_id for (case_id,) in con.execute(
            "SELECT DISTINCT case_id FROM messages WHERE case_id IS NOT NULL AND list_contains(?, message_key)",
            [sorted(verified)]).fetchall()}
        run_with(con, "mail_verified", _messages_table([n for n in batch_nodes if n.key in verified], now),
                 "INSERT INTO messages (message_key, message_id, case_id, mailbox, folder, from_address, from_name, "
                 "is_team, is_automatic, automatic_reason, received_at, subject, links, taken_at, unverified) "
                 "SELECT * FROM mail_verified ON CONFLICT (message_key) DO UPDATE SET case_id = EXCLUDED.case_id, "
                 "mailbox = EXCLUDED.mailbox, folder = EXCLUDED.folder, from_address = EXCLUDED.from_address, "
                 "from_name = EXCLUDED.from_name, is_team = EXCLUDED.is_team, is_automatic = EXCLUDED.is_automatic, "
                 "automatic_reason = EXCLUDED.automatic_reason, received_at = EXCLUDED.received_at, "
                 "subject = EXCLUDED.subject, links = EXCLUDED.links, unverified = EXCLUDED.unverified")
    threaded = [n for n in orphans if n.case_id]
    if threaded:
        run_with(con, "mail_threaded", pa.table({
            "message_key": pa.array([n.key for n in threaded], pa.string()),
            "case_id": pa.array([n.case_id for n in threaded], pa.string()),
        }), "UPDATE messages SET case_id = t.case_id FROM mail_threaded t WHERE messages.message_key = t.message_key")
    done.taken = len(batch_nodes)
    touched = ({n.case_id for n in [*batch_nodes, *threaded] if n.case_id} | set(openers) | {u[0] for u in updates}
               | moved_from)
    answer(con, touched)
    audit.record(con, actor, "mail", "messages", None, None, {
        "source": source, "messages": done.taken, "cases_opened": done.cases_opened,
        "responses": done.responses, "resumed": done.resumed, "clients_made": done.clients_made,
        **({"verified": sorted(verified)} if verified else {}),
        **({"cases": sorted(touched)} if len(touched) <= CASES_LISTED else {})})
    return done


# --- writing ------------------------------------------------------------------------------------------------


def _vouched_team(record: MailRecord) -> bool:
    """Whether a message is the team's and something vouches for it (a sent folder, a trusted server's
    ``Authentication-Results``, ``--trust-team``): it takes the place of a stored copy nothing vouched for."""
    return record.is_team and not record.unverified


def _responds(node: Node) -> bool:
    """Whether a message can be a first response: the team's, not automatic, and trusted (rules §9)."""
    return node.is_team and not node.is_automatic and not node.unverified


def _checked_insert(con, config: Config, table: str, rows: list[dict], actor: Actor, source: str,
                    now: datetime) -> None:
    """Insert rows through the intake rules; ``Refused`` names the problems of the rows refused."""
    staged = staged_from_records(table, [{k: v for k, v in r.items()} for r in rows])
    try:
        with checked(con, config, staged, now=now):
            write_checked(con, config, staged, actor, permission="import", source=source)
    except Rejected as e:
        raise Refused("refused by the intake rules: " + "; ".join(
            f"{p.column}: {p.reason}" for p in e.problems)) from None


def _messages_table(nodes: list[Node], now: datetime) -> pa.Table:
    records = [n.record for n in nodes]
    return pa.table({
        "message_key": pa.array([r.key for r in records], pa.string()),
        "message_id": pa.array([r.message_id for r in records], pa.string()),
        "case_id": pa.array([n.case_id for n in nodes], pa.string()),
        "mailbox": pa.array([r.mailbox for r in records], pa.string()),
        "folder": pa.array([r.folder for r in records], pa.string()),
        "from_address": pa.array([r.from_address for r in records], pa.string()),
        "from_name": pa.array([r.from_name for r in records], pa.string()),
        "is_team": pa.array([r.is_team for r in records], pa.bool_()),
        "is_automatic": pa.array([r.is_automatic for r in records], pa.bool_()),
        "automatic_reason": pa.array([r.automatic_reason for r in records], pa.string()),
        "received_at": pa.array([r.instant for r in records], pa.timestamp("us", tz="UTC")),
        "subject": pa.array([r.subject for r in records], pa.string()),
        "links": pa.array([list(r.links) for r in records], pa.list_(pa.string())),
        "taken_at": pa.array([now] * len(records), pa.timestamp("us", tz="UTC")),
        "unverified": pa.array([r.unverified for r in records], pa.bool_()),
    })


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")
