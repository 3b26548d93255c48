"""Corrections of stored cases and incidents, by a person, each in one transaction with its audit row.

* ``correct_case``: change a case's client, category, priority or its received / first response /
  resolution times. The corrected row is checked by the very rules a new row passes
  (``kb.intake.importing.checked`` with ``updating``: the client exists, the category and priority are known,
  a response or resolution is not before receipt, nothing is in the future), then written with one audit row
  (action ``correct``) holding the fields before and after. Its deadline and state follow at once: the
  store's version bump renews every page's numbers.
* ``void_case`` / ``void_incident``: a record logged in error leaves every computation and export
  (``kb/engine``), with a required reason; the row and its audit rows stay.
* ``undo_resolve``: reopen a case resolved a moment ago (the queue's "Undo"), audited.
* ``record_breach_reason``: a short text on a breached case, audited, counted on the performance page.
* ``merge_client``: fold a free client that mail made for an unknown sender (``clients.source = 'mail'``)
  into an existing client: its cases (voided ones too), environments and contracts move to the target, the
  mail-made client is removed, audited (one ``merge`` row on the client, one on each case moved). The
  deadlines follow at once (the target's tier and contracts), as with ``correct_case``.

None of them changes a closed month (``kb.intake.closed_months``): a case received in one, or an incident
overlapping one, is not corrected, voided, unresolved or merged away until an admin reopens the month.

Changing a case's client, category, priority or times, and voiding, need the permission ``correct`` (leads).
A breach reason needs ``record_response`` (whoever answers cases can say why one was late); merging clients
needs ``edit_clients`` (leads).
Problems are raised as ``Rejected`` naming the field, and nothing is written.
"""

from __future__ import annotations

import logging
from datetime import datetime

import duckdb

from kb.access import Actor, require
from kb.config import Config
from kb.db import audit
from kb.db.connection import local_zone, transaction
from kb.engine.asof import deadlines
from kb.intake.closed_months import row_spans
from kb.intake.importing import Problem, Rejected, checked, refuse_closed, row_of, staged_from_records
from kb.intake.validation import TABLES, update_sql
from kb.timestamps import now_utc

log = logging.getLogger("kb.intake.corrections")

MERGED = "merged"  # clients.source of a mail-made client merged away whose row could not be removed yet
CORRECTABLE_CASE_FIELDS = ("client_id", "category", "priority", "received_at", "first_response_at", "resolved_at")
REASON_MAX_CHARS = 500
BREACH_REASON_MAX_CHARS = 200


def correct_case(con, config: Config, actor: Actor, case_id: str, changes: dict[str, object]) -> dict[str, tuple]:
    """Apply ``changes`` (field → new value: text, an aware datetime, or None to clear an optional time)
    to the case; returns {field: (before, after)} of what changed. Rejected when nothing changes, the
    case is voided, or the corrected row breaks a rule of a new row."""
    require(actor, "correct")
    unknown = sorted(set(changes) - set(CORRECTABLE_CASE_FIELDS))
    if unknown:
        raise ValueError(f"cannot correct {', '.join(unknown)} (only {', '.join(CORRECTABLE_CASE_FIELDS)})")
    with local_zone(con, config.calendar.timezone), transaction(con):
        before = row_of(con, "cases", "case_id", case_id)
        if before["voided_at"] is not None:
            raise Rejected([Problem(None, "case_id", f"case {case_id} is voided; it cannot be corrected")])
        record = {c.name: _text(before[c.name]) for c in TABLES["cases"]}
        record.update({name: _text(value) for name, value in changes.items()})
        staged = staged_from_records("cases", [record])
        with checked(con, config, staged, updating=True):
            con.execute(update_sql("cases", "staging"))
            after = row_of(con, "cases", "case_id", case_id)
            changed = {name: (before[name], after[name]) for name in CORRECTABLE_CASE_FIELDS
                       if before[name] != after[name]}
            if not changed:
                raise Rejected([Problem(None, None, "nothing to change: the values are those stored")])
            audit.record(con, actor, "correct", "cases", case_id,
                         {name: old for name, (old, _) in changed.items()},
                         {name: new for name, (_, new) in changed.items()})
    return changed


def void_case(con, config: Config, actor: Actor, case_id: str, reason: str) -> None:
    """Void a case logged in error: it leaves every computation and export; the audit trail keeps it."""
    _void(con, config, actor, "cases", "case_id", case_id, reason)


def void_incident(con, config: Config, actor: Actor, incident_id: str, reason: str) -> None:
    """Void an incident logged in error: no downtime, hence no credit; the audit trail keeps it."""
    _void(con, config, actor, "incidents", "incident_id", incident_id, reason)


def _void(con, config: Config, actor: Actor, table: str, key: str, row_id: str, reason: str) -> None:
    require(actor, "correct")
    reason = short_text(reason, "void_reason", REASON_MAX_CHARS)
    with transaction(con):
        before = row_of(con, table, key, row_id)
        if before["voided_at"] is not None:
            raise Rejected([Problem(None, key, f"{row_id} is already voided ({before['void_reason']})")])
        refuse_closed(con, config, key, *row_spans(table, before))
        at = now_utc()
        con.execute(f"UPDATE {table} SET voided_at = ?, void_reason = ? WHERE {key} = ?", [at, reason, row_id])
        audit.record(con, actor, "void", table, row_id, {"voided_at": None, "void_reason": None},
                     {"voided_at": at, "void_reason": reason})


def undo_resolve(con, config: Config, actor: Actor, case_id: str, resolved_at: datetime) -> None:
    """Reopen a case resolved at ``resolved_at`` (the queue's "Undo" right after resolving). Refused when
    its resolution is not that one any more (someone else changed it since)."""
    require(actor, "resolve_case")
    with transaction(con):
        before = row_of(con, "cases", "case_id", case_id)
        if before["resolved_at"] is None or before["resolved_at"] != resolved_at:
            raise Rejected([Problem(None, "resolved_at", f"case {case_id} is not resolved as it was; "
                                                         "nothing undone")])
        refuse_closed(con, config, "resolved_at", (resolved_at, resolved_at))
        con.execute("UPDATE cases SET resolved_at = NULL WHERE case_id = ?", [case_id])
        audit.record(con, actor, "undo_resolve", "cases", case_id, {"resolved_at": before["resolved_at"]},
                     {"resolved_at": None})


def record_breach_reason(con, config: Config, actor: Actor, case_id: str, reason: str,
                         as_of: datetime | None = None) -> bool:
    """Say why a breached case was breached (``reason`` empty: clear it). The case must be breached as of
    ``as_of`` (default: now). Whether the reason changed (saving the one it has, or none for none, writes
    nothing)."""
    require(actor, "record_response")
    text = reason.strip()
    text = short_text(reason, "breach_reason", BREACH_REASON_MAX_CHARS) if text else None
    with transaction(con):
        before = row_of(con, "cases", "case_id", case_id)
        if before["voided_at"] is not None:
            raise Rejected([Problem(None, "case_id", f"case {case_id} is voided")])
        if text is not None:  # (the first response of this case alone: not every case's targets)
            state = deadlines(con, config, as_of or now_utc(), [case_id])["first_response_state"].to_pylist()
            if not state or state[0] != "breached":
                raise Rejected([Problem(None, "breach_reason", f"case {case_id} is not breached "
                                                                f"({state[0] if state else 'not received yet'})")])
        if before["breach_reason"] == text:
            return False
        con.execute("UPDATE cases SET breach_reason = ? WHERE case_id = ?", [text, case_id])
        audit.record(con, actor, "breach_reason", "cases", case_id, {"breach_reason": before["breach_reason"]},
                     {"breach_reason": text})
    return True


def merge_client(con, config: Config, actor: Actor, source_id: str, target_id: str) -> dict[str, list[str]]:
    """Move every case, contract and environment of ``source_id`` (a client mail made) to ``target_id`` and
    remove ``source_id``; returns {"cases": [...], "contracts": [...], "environments": [...]} of what moved.

    Refused (``Rejected``, nothing written) when the two are the same client, either does not exist, the
    source was not made from mail, or it has an environment that incidents, checks or contracts refer to
    (DuckDB's foreign keys cannot follow such a move). The move and its audit rows are one transaction, in
    which the source is marked ``merged``. DuckDB refuses to delete a row whose references changed in the
    same transaction (its foreign keys are checked eagerly), so the emptied row is deleted right after, in a
    second transaction on the same connection (``Store.write`` holds its write lock over both); should that
    fail, the row stays marked ``merged``, referenced by nothing, and is swept by the next merge."""
    require(actor, "edit_clients")
    source_id, target_id = (source_id or "").strip(), (target_id or "").strip()
    if not source_id or not target_id:
        raise Rejected([Problem(None, "client_id",
                                "choose the client to merge and the client to merge it into")])
    if source_id == target_id:
        raise Rejected([Problem(None, "client_id", f"cannot merge client {source_id!r} into itself")])
    with transaction(con):
        source = _client(con, source_id, "client_id")
        target = _client(con, target_id, "target_client_id")
        if source["source"] != "mail":
            raise Rejected([Problem(None, "client_id", f"client {source_id!r} was not made from mail; only the free "
                                                       "clients mail made for unknown senders can be merged")])
        received = con.execute("SELECT received_at FROM cases WHERE client_id = ? AND voided_at IS NULL",
                               [source_id]).fetchall()
        refuse_closed(con, config, "client_id", *[(at, at) for (at,) in received])
        moved = {}
        for table, key in (("cases", "case_id"), ("contracts", "contract_id"), ("environments", "environment_id")):
            moved[table] = [r[0] for r in con.execute(
                f"SELECT {key} FROM {table} WHERE client_id = ? ORDER BY {key}", [source_id]).fetchall()]
            if not moved[table]:
                continue
            try:
                con.execute(f"UPDATE {table} SET client_id = ? WHERE client_id = ?", [target_id, source_id])
            except duckdb.ConstraintException:
                if table != "environments":
                    raise
                # DuckDB rewrites a row whose indexed column changes, which its foreign keys refuse while
                # incidents, checks or contracts refer to the environment.
                raise Rejected([Problem(None, "environment_id", (
                    f"client {source_id!r} has environments ({', '.join(moved[table])}) that incidents, monitoring "
                    "checks or contracts refer to; the database cannot move those to another client. Nothing "
                    "was merged"))]) from None
        con.execute("UPDATE clients SET source = ? WHERE client_id = ?", [MERGED, source_id])
        for case_id in moved["cases"]:
            audit.record(con, actor, "merge", "cases", case_id, {"client_id": source_id}, {"client_id": target_id})
        audit.record(con, actor, "merge", "clients", source_id,
                     {name: source[name] for name in ("client_id", "name", "tier", "email_domain", "source")},
                     {"merged_into": target_id, "target_name": target["name"], **moved})
    _sweep_merged(con)
    return moved


def _client(con, client_id: str, column: str) -> dict:
    rows = con.execute("SELECT client_id, name, tier, email_domain, source FROM clients WHERE client_id = ?",
                       [client_id]).fetchall()
    if not rows or rows[0][4] == MERGED:
        raise Rejected([Problem(None, column, f"no client {client_id!r}")])
    return dict(zip(("client_id", "name", "tier", "email_domain", "source"), rows[0], strict=True))


def _sweep_merged(con) -> None:
    """Delete the clients merged away (nothing refers to them any more); a failure leaves them for next time."""
    try:
        with transaction(con):
            con.execute(f"DELETE FROM clients WHERE source = '{MERGED}'")
    except duckdb.Error as e:
        log.warning("a merged client could not be removed yet (it is left marked %r): %s", MERGED, e)


def short_text(text: str, column: str, limit: int) -> str:
    """A required reason: stored as typed, but not blank, without NUL, at most ``limit`` characters."""
    stripped = (text or "").strip()
    if not stripped or not any(ch.isprintable() and not ch.isspace() for ch in stripped):
        raise Rejected([Problem(None, column, "is empty: say why")])
    if "\x00" in stripped:
        raise Rejected([Problem(None, column, "contains a NUL character (byte 0); remove it")])
    if len(stripped) > limit:
        raise Rejected([Problem(None, column, f"is {len(stripped):,} characters long; at most {limit:,}")])
    return stripped


def _text(value) -> str:
    """A stored value (or a new one) as the text a form would stage: instants in ISO 8601 with their offset."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a corrected instant needs its offset")
        return value.isoformat()
    return str(value)
