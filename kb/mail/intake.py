"""A batch of message records → threads, new cases (with new free clients) and first responses, written in
one transaction (rules §9).

The threading runs in Python over the batch and the stored messages it touches; the writes are set-based:
new clients and new cases go through the intake rules (``kb.intake.importing.checked`` /
``write_checked``: the same validation and audit as a CSV import), the messages, the thread links of
earlier messages and the first responses of stored cases are each one statement over an Arrow table.

* **Once**: a message whose key (``Message-ID``, else a hash) is stored already, or appears twice in the
  batch, is counted as ``already`` and changes nothing.
* **Threads**: messages are taken in the order of their instants (clients first at a tie); a message joins
  the case its ``[CS-…]`` subject tag names (if that case exists), else the case of the nearest message its
  ``In-Reply-To`` / ``References`` name (stored or in the batch). A client message that joins no case opens
  one; a team or automatic message that joins none is kept, unthreaded, and joins its case when the
  message it answers arrives later (a Sent folder read before the Inbox).
* **First response**: the earliest non-automatic team message of the thread at or after the case's receipt.
  A stored case takes a mail response only when it is earlier than the one it has (or it has none).
* **Never fatal**: a row the intake rules still refuse (it should not happen: the records are checked when
  parsed) drops its message, reported with the reason, and the batch is written again without it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

from kb.access import Actor, require
from kb.config import Config
from kb.db import audit
from kb.db.connection import local_zone, transaction
from kb.db.sqltext import quote
from kb.intake.importing import Rejected, checked, staged_from_records, write_checked
from kb.intake.writes import ID_PREFIXES, next_number
from kb.mail.messages import CASE_TAG, MailRecord, Skipped, client_id_for
from kb.timestamps import now_utc

CASE_PREFIX = ID_PREFIXES["cases"]  # as the forms' ids, so a reply's [CS-00042] tag finds the case
SOURCE = "mail"
NEVER = datetime.max.replace(tzinfo=UTC)
MAX_ATTEMPTS = 6


@dataclass
class Outcome:
    """What a batch (or a whole run: ``add``) did."""

    read: int = 0
    taken: int = 0             # new messages stored
    already: int = 0           # taken before (or twice in the batch)
    cases_opened: int = 0
    responses: int = 0         # cases whose first response was recorded (or moved earlier) from mail
    clients_made: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    def add(self, other: Outcome) -> None:
        for name in ("read", "taken", "already", "cases_opened", "responses", "clients_made"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped.extend(other.skipped)

    def summary(self) -> str:
        return (f"{self.read:,} messages read: {self.cases_opened:,} cases opened, {self.responses:,} responses "
                f"recorded, {self.clients_made:,} new free clients, {self.already:,} already taken, "
                f"{len(self.skipped):,} skipped")


@dataclass
class _Node:
    """A message in the threading: one of the batch, or a stored one without a case that names one of it."""

    key: str
    message_id: str | None
    is_team: bool
    is_automatic: bool
    instant: datetime | None
    links: tuple[str, ...]
    case_tag: str | None
    record: MailRecord | None = None
    case_id: str | None = None


class _Drop(Exception):
    def __init__(self, skipped: list[Skipped], keys: set[str]):
        self.skipped, self.keys = skipped, keys


def take(con, config: Config, records: list[MailRecord], actor: Actor, *, source: str,
         also: Callable[[object], None] | None = None, now: datetime | None = None) -> Outcome:
    """Store a batch of records in one transaction; ``also(con)`` runs in the same transaction (the IMAP
    state of the UIDs read). Returns what it did; ``read`` is the number of records given."""
    require(actor, "import")
    now = now or now_utc()
    outcome = Outcome(read=len(records))
    unique: dict[str, MailRecord] = {}
    for record in records:
        if record.key in unique:
            outcome.already += 1
        else:
            unique[record.key] = record
    batch = list(unique.values())
    for _ in range(MAX_ATTEMPTS):
        try:
            with local_zone(con, config.calendar.timezone), transaction(con):
                done = _write(con, config, batch, actor, source=source, now=now)
                if also is not None:
                    also(con)
        except _Drop as drop:
            outcome.skipped.extend(drop.skipped)
            batch = [r for r in batch if r.key not in drop.keys]
            continue
        outcome.taken += done.taken
        outcome.already += done.already
        outcome.cases_opened += done.cases_opened
        outcome.responses += done.responses
        outcome.clients_made += done.clients_made
        return outcome
    raise RuntimeError("the mail batch was refused again and again; nothing of it was written")


def _write(con, config: Config, batch: list[MailRecord], actor: Actor, *, source: str, now: datetime) -> Outcome:
    done = Outcome()
    if not batch:
        return done
    stored = _stored_keys(con, [r.key for r in batch])
    done.already = sum(r.key in stored for r in batch)
    batch = [r for r in batch if r.key not in stored]
    if not batch:
        return done

    nodes = [_Node(r.key, r.message_id, r.is_team, r.is_automatic, r.instant, r.links, r.case_tag, r) for r in batch]
    batch_ids = {r.message_id for r in batch if r.message_id}
    orphans = _stored_orphans(con, batch_ids)
    nodes += orphans
    links = {link for n in nodes for link in n.links}
    case_of = _stored_cases_of(con, links)
    tagged = _existing_cases(con, {n.case_tag for n in nodes if n.case_tag})

    # Threads, in the order of the instants.
    number = next_number(con, "cases", "case_id")
    openers: dict[str, _Node] = {}
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

    # First responses: the earliest non-automatic team message at or after receipt, per case.
    received = {case: opener.instant for case, opener in openers.items()}
    touched = {n.case_id for n in nodes if n.case_id and n.case_id not in openers and n.is_team}
    stored_cases = _stored_case_times(con, touched)
    received.update({case: times[0] for case, times in stored_cases.items()})
    first: dict[str, tuple[datetime, str]] = {}
    for node in nodes:
        at = received.get(node.case_id) if node.case_id else None
        if node.is_team and not node.is_automatic and at is not None and node.instant is not None \
                and node.instant >= at and (node.case_id not in first or node.instant < first[node.case_id][0]):
            first[node.case_id] = (node.instant, node.key)

    # New free clients, then the cases, through the intake rules.
    client_of, new_clients = _clients_for(con, openers)
    if new_clients:
        _checked_insert(con, config, "clients", new_clients, actor, source, now,
                        lambda line: [openers[c].record for c, o in openers.items()
                                      if client_id_for(o.record.from_address) == new_clients[line - 2]["client_id"]])
        _register_and_run(con, "mail_new_clients", _keys_table({c["client_id"] for c in new_clients}),
                          f"UPDATE clients SET source = '{SOURCE}' FROM mail_new_clients WHERE client_id = v")
        done.clients_made = len(new_clients)
    case_rows, case_list = [], []
    for case, opener in openers.items():
        record = opener.record
        response = first.get(case)
        case_rows.append({
            "case_id": case, "client_id": client_of[record.from_address],
            "received_at": _iso(record.instant), "category": "platform_issue", "subject": record.subject,
            "requester": record.from_address, "assignee": None,
            "first_response_at": _iso(response[0]) if response else None, "resolved_at": None,
        })
        case_list.append(record)
    if case_rows:
        _checked_insert(con, config, "cases", case_rows, actor, source, now, lambda line: [case_list[line - 2]])
        _register_and_run(con, "mail_new_cases", pa.table({
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
        _register_and_run(con, "mail_responses", pa.table({
            "case_id": pa.array([u[0] for u in updates], pa.string()),
            "at": pa.array([u[1] for u in updates], pa.timestamp("us", tz="UTC")),
        }), "UPDATE cases SET first_response_at = r.at FROM mail_responses r WHERE cases.case_id = r.case_id")
        _audit_rows(con, actor, [
            (case, {"first_response_at": _iso(before)}, {"first_response_at": _iso(at), "message": key})
            for case, at, key, before in updates])
        done.responses += len(updates)

    # The messages, and the stored ones that found their thread.
    batch_nodes = [n for n in nodes if n.record is not None]
    _register_and_run(con, "mail_messages", _messages_table(batch_nodes, now),
                      "INSERT INTO messages (message_key, message_id, case_id, mailbox, folder, from_address, "
                      "from_name, is_team, is_automatic, automatic_reason, received_at, subject, links, taken_at) "
                      "SELECT * FROM mail_messages")
    threaded = [n for n in orphans if n.case_id]
    if threaded:
        _register_and_run(con, "mail_threaded", pa.table({
            "message_key": pa.array([n.key for n in threaded], pa.string()),
            "case_id": pa.array([n.case_id for n in threaded], pa.string()),
        }), "UPDATE messages SET case_id = t.case_id FROM mail_threaded t WHERE messages.message_key = t.message_key")
    done.taken = len(batch_nodes)
    audit.record(con, actor, "mail", "messages", None, None, {
        "source": source, "messages": done.taken, "cases_opened": done.cases_opened,
        "responses": done.responses, "clients_made": done.clients_made})
    return done


# --- reading what is stored ---------------------------------------------------------------------------------


def _keys_table(values) -> pa.Table:
    return pa.table({"v": pa.array(sorted(values), pa.string())})


def _query(con, name: str, table: pa.Table, sql: str) -> list[tuple]:
    con.register(name, table)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.unregister(name)


def _register_and_run(con, name: str, table: pa.Table, sql: str) -> None:
    con.register(name, table)
    try:
        con.execute(sql)
    finally:
        con.unregister(name)


def _stored_keys(con, keys: list[str]) -> set[str]:
    rows = _query(con, "mail_keys", _keys_table(set(keys)),
                  "SELECT message_key FROM messages JOIN mail_keys ON message_key = v")
    return {r[0] for r in rows}


def _stored_orphans(con, batch_ids: set[str]) -> list[_Node]:
    """Stored messages without a case that name one of the batch's Message-IDs."""
    if not batch_ids:
        return []
    rows = _query(con, "mail_ids", _keys_table(batch_ids), """
        SELECT message_key, message_id, is_team, is_automatic, received_at, links, subject FROM messages
        WHERE case_id IS NULL AND message_key IN (
            SELECT DISTINCT message_key FROM (SELECT message_key, unnest(links) AS link FROM messages
                                              WHERE case_id IS NULL) JOIN mail_ids ON link = v)""")
    nodes = []
    for key, message_id, team, automatic, at, links, subject in rows:
        tag = CASE_TAG.search(subject or "")
        nodes.append(_Node(key, message_id, team, automatic, at, tuple(links or ()), tag.group(1) if tag else None))
    return nodes


def _stored_cases_of(con, links: set[str]) -> dict[str, str]:
    """Message-ID → case, for the stored messages the batch names."""
    if not links:
        return {}
    rows = _query(con, "mail_links", _keys_table(links),
                  "SELECT message_id, case_id FROM messages JOIN mail_links ON message_id = v "
                  "WHERE case_id IS NOT NULL")
    return dict(rows)


def _existing_cases(con, tags: set[str]) -> dict[str, datetime | None]:
    if not tags:
        return {}
    rows = _query(con, "mail_tags", _keys_table(tags),
                  "SELECT case_id, received_at FROM cases JOIN mail_tags ON case_id = v WHERE voided_at IS NULL")
    return dict(rows)


def _stored_case_times(con, cases: set[str]) -> dict[str, tuple[datetime, datetime | None]]:
    """case → (received_at, first_response_at) of stored, not voided cases."""
    if not cases:
        return {}
    rows = _query(con, "mail_cases", _keys_table(cases),
                  "SELECT case_id, received_at, first_response_at FROM cases JOIN mail_cases ON case_id = v "
                  "WHERE voided_at IS NULL")
    return {case: (received, response) for case, received, response in rows}


def _clients_for(con, openers: dict[str, _Node]) -> tuple[dict[str, str], list[dict]]:
    """address → client_id for every opener, and the new free clients to make (rules §9: by email_domain,
    else the client whose id is the address, else a new free client)."""
    addresses: dict[str, MailRecord] = {}
    for opener in openers.values():
        addresses.setdefault(opener.record.from_address, opener.record)
    if not addresses:
        return {}, []
    table = pa.table({
        "address": pa.array(list(addresses), pa.string()),
        "domain": pa.array([a.rpartition("@")[2] for a in addresses], pa.string()),
        "cid": pa.array([client_id_for(a) for a in addresses], pa.string()),
    })
    rows = _query(con, "mail_senders", table, """
        WITH by_domain AS (SELECT lower(ltrim(trim(email_domain), '@')) AS domain, min(client_id) AS client_id
                           FROM clients WHERE email_domain IS NOT NULL GROUP BY ALL)
        SELECT s.address, coalesce(d.client_id, c.client_id)
        FROM mail_senders s LEFT JOIN by_domain d ON d.domain = s.domain LEFT JOIN clients c ON c.client_id = s.cid""")
    client_of = {address: client for address, client in rows if client}
    new: dict[str, dict] = {}
    for address, record in addresses.items():
        if address not in client_of:
            cid = client_id_for(address)
            client_of[address] = cid
            new.setdefault(cid, {"client_id": cid, "name": record.from_name or address, "tier": "free",
                                 "email_domain": None})
    return client_of, list(new.values())


# --- writing ------------------------------------------------------------------------------------------------


def _checked_insert(con, config: Config, table: str, rows: list[dict], actor: Actor, source: str, now: datetime,
                    records_of_line: Callable[[int], list[MailRecord]]) -> None:
    """Insert rows through the intake rules; a refused row drops its messages (``_Drop``)."""
    staged = staged_from_records(table, [{k: v for k, v in r.items()} for r in rows])
    try:
        with checked(con, config, staged, now=now):
            write_checked(con, staged, actor, permission="import", source=source)
    except Rejected as e:
        skipped, keys = [], set()
        for problem in e.problems:
            for record in records_of_line(problem.line or 2):
                skipped.append(Skipped(record.where, record.message_id,
                                       f"refused by the intake rules: {problem.column}: {problem.reason}"))
                keys.add(record.key)
        raise _Drop(skipped, keys) from None


def _audit_rows(con, actor: Actor, rows: list[tuple[str, dict, dict]]) -> None:
    """One audit row per case whose response mail recorded, in one statement."""
    _register_and_run(con, "mail_audit", pa.table({
        "row_id": pa.array([r[0] for r in rows], pa.string()),
        "before": pa.array([json.dumps(r[1], sort_keys=True) for r in rows], pa.string()),
        "after": pa.array([json.dumps(r[2], sort_keys=True) for r in rows], pa.string()),
    }), "INSERT INTO audit_log (logged_at, actor, action, table_name, row_id, before, after) "
        f"SELECT now(), {quote(actor.email)}, 'record_response', 'cases', row_id, before, after FROM mail_audit")


def _messages_table(nodes: list[_Node], now: datetime) -> pa.Table:
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
    })


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")


BATCH = 10_000  # messages per transaction when importing files


def import_paths(con, config: Config, paths, actor: Actor, *, batch: int = BATCH, now: datetime | None = None,
                 progress: Callable[[Outcome], None] | None = None) -> tuple[Outcome, list]:
    """``mail import``: every message under ``paths`` (mbox, Maildir, ``.eml``), read as a stream and stored
    ``batch`` messages per transaction. Returns what was done and the paths that could not be read."""
    from kb.mail.messages import parse_message, support_matcher
    from kb.mail.sources import SourceError, read_paths

    now = now or now_utc()
    is_team = support_matcher(config.mail.support_addresses)
    total, failed = Outcome(), []
    pending: list[MailRecord] = []
    skipped: list[Skipped] = []

    def flush() -> None:
        done = take(con, config, pending, actor, source="mail import " + " ".join(map(str, paths))[:200], now=now)
        done.read += len(skipped)
        done.skipped.extend(skipped)
        total.add(done)
        pending.clear()
        skipped.clear()
        if progress:
            progress(total)

    for item in read_paths(paths):
        if isinstance(item, SourceError):
            failed.append(item)
            continue
        parsed = parse_message(item.data, is_team, mailbox="import", folder=item.folder, where=item.where,
                               from_line=item.from_line, now=now)
        (skipped if isinstance(parsed, Skipped) else pending).append(parsed)
        if len(pending) + len(skipped) >= batch:
            flush()
    if pending or skipped:
        flush()
    return total, failed
