"""Corrections of stored cases and incidents, by a person, each in one transaction with its audit row.

* ``correct_case``: change a case's client, category or its received / first response / resolution
  times. The corrected row is checked by the very rules a new row passes (``kb.intake.importing.checked``
  with ``updating``: the client exists, the category is known, a response or resolution is not before
  receipt, nothing is in the future), then written with one audit row (action ``correct``) holding the
  fields before and after. Its deadline and state follow at once: the store's version bump renews
  every page's numbers.
* ``void_case`` / ``void_incident``: a record logged in error leaves every computation and export
  (``kb/engine``), with a required reason; the row and its audit rows stay.
* ``undo_resolve``: reopen a case resolved a moment ago (the queue's "Undo"), audited.
* ``record_breach_reason``: a short text on a breached case, audited, counted on the performance page.

Changing a case's client, category or times, and voiding, need the permission ``correct`` (leads).
A breach reason needs ``record_response`` (whoever answers cases can say why one was late).
Problems are raised as ``Rejected`` naming the field, and nothing is written.
"""

from __future__ import annotations

from datetime import datetime

from kb.access import Actor, require
from kb.config import Config
from kb.db import audit
from kb.db.connection import local_zone, transaction
from kb.engine.asof import open_views
from kb.intake.importing import Problem, Rejected, checked, row_of, staged_from_records
from kb.intake.validation import TABLES, update_sql
from kb.timestamps import now_utc

CORRECTABLE_CASE_FIELDS = ("client_id", "category", "received_at", "first_response_at", "resolved_at")
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
    _void(con, actor, "cases", "case_id", case_id, reason)


def void_incident(con, config: Config, actor: Actor, incident_id: str, reason: str) -> None:
    """Void an incident logged in error: no downtime, hence no credit; the audit trail keeps it."""
    _void(con, actor, "incidents", "incident_id", incident_id, reason)


def _void(con, actor: Actor, table: str, key: str, row_id: str, reason: str) -> None:
    require(actor, "correct")
    reason = _short_text(reason, "void_reason", REASON_MAX_CHARS)
    with transaction(con):
        before = row_of(con, table, key, row_id)
        if before["voided_at"] is not None:
            raise Rejected([Problem(None, key, f"{row_id} is already voided ({before['void_reason']})")])
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
        con.execute("UPDATE cases SET resolved_at = NULL WHERE case_id = ?", [case_id])
        audit.record(con, actor, "undo_resolve", "cases", case_id, {"resolved_at": before["resolved_at"]},
                     {"resolved_at": None})


def record_breach_reason(con, config: Config, actor: Actor, case_id: str, reason: str,
                         as_of: datetime | None = None) -> None:
    """Say why a breached case was breached (``reason`` empty: clear it). The case must be breached as of
    ``as_of`` (default: now)."""
    require(actor, "record_response")
    text = reason.strip()
    text = _short_text(reason, "breach_reason", BREACH_REASON_MAX_CHARS) if text else None
    with transaction(con):
        before = row_of(con, "cases", "case_id", case_id)
        if before["voided_at"] is not None:
            raise Rejected([Problem(None, "case_id", f"case {case_id} is voided")])
        if text is not None:
            open_views(con, config, as_of or now_utc())
            state = con.execute("SELECT sla_state FROM case_sla WHERE case_id = ?", [case_id]).fetchall()
            if not state or state[0][0] != "breached":
                raise Rejected([Problem(None, "breach_reason", f"case {case_id} is not breached "
                                                                f"({state[0][0] if state else 'not received yet'})")])
        if before["breach_reason"] == text:
            return
        con.execute("UPDATE cases SET breach_reason = ? WHERE case_id = ?", [text, case_id])
        audit.record(con, actor, "breach_reason", "cases", case_id, {"breach_reason": before["breach_reason"]},
                     {"breach_reason": text})


def _short_text(text: str, column: str, limit: int) -> str:
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
