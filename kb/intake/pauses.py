"""Waiting on the client (rules §12): a case paused by a person, resumed by a person or by the client's next
message, each in one transaction with its audit row (table ``pauses``, row id the case).

A pause stops the case's resolution clock from ``paused_at`` to ``resumed_at``. The rules of the other writes
to a case hold (``kb.intake.writes``): the permission is that of recording a response (whoever answers the case
knows when the team waits on the client), nothing is dated after now with 5 minutes' grace, nothing before the
case was received, and a resume is not before its pause. Pauses of one case never overlap: a case waits on the
client once at a time, and a new pause starts after the last one ended. Nothing is dated in a closed month
(``kb.intake.closed_months``).

* ``pause_case``: an open case (not voided, not resolved, not waiting already) waits on the client from ``at``.
* ``resume_case``: the case's open pause ends at ``at``, resumed by the actor.
* ``undo_pause``: the Queue's "Undo" right after pausing removes the open pause, when the same person started it.

A client's message ends its case's pause by itself: ``kb.intake.resuming``.

Problems are raised as ``Rejected`` naming the field (``paused_at``, ``resumed_at``, ``reason``; a case in
the wrong state names none), and nothing is written.
"""

from __future__ import annotations

from datetime import datetime
from typing import NoReturn

from kb.access import Actor, require
from kb.config import Config
from kb.db import audit
from kb.db.connection import transaction
from kb.intake.importing import Problem, Rejected, refuse_closed, row_of
from kb.intake.validation import future_reason
from kb.timestamps import format_for_people

REASON_MAX_CHARS = 200


def pause_case(con, config: Config, actor: Actor, case_id: str, at: datetime, reason: str | None = None) -> None:
    """The case waits on the client from ``at``, for ``reason`` (optional, short)."""
    require(actor, "record_response")
    reason = _reason(reason)
    _not_ahead(config, "paused_at", at)
    with transaction(con):
        case = row_of(con, "cases", "case_id", case_id)
        if case["voided_at"] is not None:
            _refuse(None, f"case {case_id} is voided; it cannot wait on the client")
        if case["resolved_at"] is not None:
            _refuse(None, f"case {case_id} is resolved ({_shown(config, case['resolved_at'])}); it cannot wait on "
                          "the client")
        last = _last_pause(con, case_id)
        if last is not None and last["resumed_at"] is None:
            _refuse(None, f"case {case_id} is already waiting on the client (since "
                          f"{_shown(config, last['paused_at'])})")
        if at < case["received_at"]:
            _refuse("paused_at", f"is before case {case_id} was received ({_shown(config, case['received_at'])})")
        if last is not None and at <= last["resumed_at"]:
            _refuse("paused_at", f"is not after case {case_id}'s last pause ended "
                                 f"({_shown(config, last['resumed_at'])}); pauses of a case never overlap")
        refuse_closed(con, config, "paused_at", (at, at))
        con.execute("INSERT INTO pauses (case_id, paused_at, reason, paused_by) VALUES (?, ?, ?, ?)",
                    [case_id, at, reason, actor.email])
        audit.record(con, actor, "pause", "pauses", case_id, None, {"paused_at": at, "reason": reason})


def resume_case(con, config: Config, actor: Actor, case_id: str, at: datetime) -> None:
    """The case's open pause ends at ``at``: the team no longer waits on the client."""
    require(actor, "record_response")
    _not_ahead(config, "resumed_at", at)
    with transaction(con):
        row_of(con, "cases", "case_id", case_id)
        pause = _open_pause(con, case_id)
        if pause is None:
            _refuse(None, f"case {case_id} is not waiting on the client; nothing to resume")
        if at < pause["paused_at"]:
            _refuse("resumed_at", f"is before case {case_id} was paused ({_shown(config, pause['paused_at'])})")
        refuse_closed(con, config, "resumed_at", (at, at))
        con.execute("UPDATE pauses SET resumed_at = ?, resumed_by = ? WHERE case_id = ? AND paused_at = ?",
                    [at, actor.email, case_id, pause["paused_at"]])
        audit.record(con, actor, "resume", "pauses", case_id,
                     {"paused_at": pause["paused_at"], "resumed_at": None, "resumed_by": None},
                     {"paused_at": pause["paused_at"], "resumed_at": at, "resumed_by": actor.email})


def undo_pause(con, config: Config, actor: Actor, case_id: str) -> None:
    """Remove the case's open pause, which ``actor`` started (the Queue's "Undo" right after pausing). Refused
    when the case is not waiting on the client any more, or someone else paused it."""
    require(actor, "record_response")
    with transaction(con):
        pause = _open_pause(con, case_id)
        if pause is None or pause["paused_by"] != actor.email:
            _refuse(None, f"case {case_id} is not waiting on the client as you paused it; nothing undone")
        refuse_closed(con, config, "paused_at", (pause["paused_at"], pause["paused_at"]))
        con.execute("DELETE FROM pauses WHERE case_id = ? AND paused_at = ?", [case_id, pause["paused_at"]])
        audit.record(con, actor, "undo_pause", "pauses", case_id,
                     {"paused_at": pause["paused_at"], "reason": pause["reason"]}, None)


def _last_pause(con, case_id: str) -> dict | None:
    """The case's latest pause (open or not); pauses never overlap, so an open one is the latest."""
    cursor = con.execute("SELECT * FROM pauses WHERE case_id = ? ORDER BY paused_at DESC LIMIT 1", [case_id])
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    return dict(zip(names, rows[0], strict=True)) if rows else None


def _open_pause(con, case_id: str) -> dict | None:
    last = _last_pause(con, case_id)
    return last if last is not None and last["resumed_at"] is None else None


def _not_ahead(config: Config, column: str, at: datetime) -> None:
    """The clock rule: Rejected naming ``column`` when ``at`` is after now with the grace."""
    future = future_reason(at, config.calendar.zone)
    if future:
        _refuse(column, future)


def _reason(text: str | None) -> str | None:
    """An optional short reason, stored as typed (trimmed); blank is none."""
    stripped = (text or "").strip()
    if not stripped:
        return None
    if "\x00" in stripped:
        _refuse("reason", "contains a NUL character (byte 0); remove it")
    if len(stripped) > REASON_MAX_CHARS:
        _refuse("reason", f"is {len(stripped):,} characters long; at most {REASON_MAX_CHARS:,}")
    return stripped


def _refuse(column: str | None, reason: str) -> NoReturn:
    raise Rejected([Problem(None, column, reason)])


def _shown(config: Config, moment: datetime) -> str:
    return format_for_people(moment, config.calendar.zone)
