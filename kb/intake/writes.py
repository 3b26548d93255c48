"""Changes to existing rows and the forms' new rows, each in one transaction with its audit row.

Every function takes a connection (a cursor), the configuration, and the
actor, and checks the actor's role before it touches anything. Problems are
raised as ``Rejected`` naming the field, and nothing is written; nothing dated
in a closed month is written (``kb.intake.closed_months``).

A form's date and time are local wall-clock text (``wall_clock``), read like an
import's cells by ``kb.timestamps.parse_timestamp``: a time the clocks skip is
refused with a message naming the gap, a time they pass twice is its first
occurrence. A picker left empty (or holding what it could not read: Streamlit
empties a date typed outside its bounds rather than keep it) is refused by
``picked``, never replaced by a default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from kb.access import Actor, require, team_addresses
from kb.config import Config
from kb.db import audit
from kb.db.answers import answer
from kb.db.connection import local_zone, transaction
from kb.intake.importing import (
    Problem,
    Rejected,
    checked,
    refuse_closed,
    row_of,
    staged_from_records,
    write_checked,
)
from kb.intake.validation import KEYS, future_reason, same_values, typed_rows_sql
from kb.timestamps import TimestampError, format_for_people, now_utc, parse_timestamp

ID_PREFIXES = {"cases": "CS-", "incidents": "INC-"}
QUEUE_MESSAGE_PREFIX = "queue:"  # the key of a response recorded on the Queue: queue:<case>:<instant in UTC>
RESUBMIT_SECONDS = 10  # the same row from the same person this soon after is a double-clicked submit


@dataclass(frozen=True)
class Logged:
    """What a form's submission stored: the row's id, and whether that row was there already (the same
    form submitted again, or a double click), so nothing new was stored."""

    row_id: str
    earlier: bool = False


def log_case(con, config: Config, actor: Actor, fields: dict[str, str], form_key: str | None = None) -> Logged:
    """Add one case from the form (``form_key``: the key of that form, see ``_log``)."""
    return _log(con, config, actor, "cases", "log_case", fields, form_key)


def log_incident(con, config: Config, actor: Actor, fields: dict[str, str], form_key: str | None = None) -> Logged:
    """Add one incident from the form, or a monitor's webhook (``form_key``: the key of that form, see ``_log``)."""
    return _log(con, config, actor, "incidents", "log_incident", fields, form_key)


def _log(con, config: Config, actor: Actor, table: str, permission: str, fields: dict[str, str],
         form_key: str | None = None) -> Logged:
    """Add the row, unless this very form (``form_key``, kept in ``form_submissions``) was submitted before,
    however long ago, or the same actor added the very same row seconds ago (a double-clicked submit): then
    return that row's id, marked ``earlier``, instead of storing it twice. "The very same" is decided on the
    values as they would be stored, in the transaction that would store them."""
    require(actor, permission)
    (key,) = KEYS[table]
    with local_zone(con, config.calendar.timezone), transaction(con):
        if form_key:
            submitted = con.execute("SELECT row_id FROM form_submissions WHERE form_key = ? AND table_name = ?",
                                    [form_key, table]).fetchall()
            if submitted:
                return Logged(submitted[0][0], earlier=True)
        if table == "cases":
            on_the_team(con, config, fields.get("assignee"))
        new_id = next_id(con, table, key)
        staged = staged_from_records(table, [{**fields, key: new_id}])
        with checked(con, config, staged):
            earlier = _recent_twin(con, actor, table)
            if earlier is not None:
                return Logged(earlier, earlier=True)
            write_checked(con, config, staged, actor, permission=permission, source="form")
            if form_key:
                con.execute("INSERT INTO form_submissions VALUES (?, ?, ?, ?)", [form_key, table, new_id, now_utc()])
    return Logged(new_id)


def picked(asked: dict[str, tuple[str, object]]) -> None:
    """Rejected naming every form field left empty. ``asked`` maps a column to (what to ask for, the
    widget's value): ``{"client_id": ("choose a client", client_id)}``; the form names the field."""
    problems = [Problem(None, column, ask) for column, (ask, value) in asked.items() if value is None]
    if problems:
        raise Rejected(problems)


def wall_clock(day: date, clock: time) -> str:
    """A form's date and time as local text, ``2026-11-25 11:00``, for the rules to read as an import's."""
    return f"{day.isoformat()} {clock.strftime('%H:%M')}"


def form_instant(day: date, clock: time, zone: ZoneInfo, column: str) -> datetime:
    """The instant of a form's local date and time, as ``parse_timestamp`` reads it; Rejected naming
    ``column`` when the clocks skip that time."""
    text = wall_clock(day, clock)
    try:
        return parse_timestamp(text, zone)
    except TimestampError as e:
        raise Rejected([Problem(None, column, str(e))]) from None


def _recent_twin(con, actor: Actor, table: str) -> str | None:
    """The id of the row ``actor`` added in the last RESUBMIT_SECONDS that holds the values of the row in
    ``staging`` (checked valid), if any. Those rows are read by their keys, listed first: a join over the
    table's keys would read every row of it."""
    (key,) = KEYS[table]
    recent = [row[0] for row in con.execute(
        f"""SELECT row_id FROM audit_log
             WHERE table_name = ? AND action = 'add' AND actor = ?
               AND logged_at > now() - INTERVAL {RESUBMIT_SECONDS} SECOND
             ORDER BY audit_id DESC""",
        [table, actor.email],
    ).fetchall()]
    if not recent:
        return None
    twins = {row[0] for row in con.execute(
        f"""SELECT t.{key} FROM {table} t, ({typed_rows_sql(table, "staging")}) s
             WHERE t.{key} IN ({", ".join("?" for _ in recent)}) AND {same_values(table, "t", "s")}""",
        recent,
    ).fetchall()}
    return next((row_id for row_id in recent if row_id in twins), None)  # the latest


def next_id(con, table: str, key: str) -> str:
    """The next free id of the form PREFIX-00042 (five digits at least)."""
    return f"{ID_PREFIXES[table]}{next_number(con, table, key):05d}"


def next_number(con, table: str, key: str) -> int:
    """The number after the highest PREFIX-<number> id of ``table`` (1 when there is none)."""
    prefix = ID_PREFIXES[table]
    return con.execute(
        f"SELECT coalesce(max(try_cast(regexp_extract({key}, '^{prefix}(\\d+)$', 1) AS BIGINT)), 0) + 1 FROM {table} "
        f"WHERE {key} LIKE '{prefix}%'"  # lets DuckDB skip row groups of other ids (a million cases: 100 ms → 1 ms)
    ).fetchall()[0][0]


def record_response(con, config: Config, actor: Actor, case_id: str, at: datetime) -> None:
    """Record the team's response to a case, sent at ``at`` (the Queue's "record a response"): a team message on
    the case's thread (``messages``, source ``queue``), and the case's first response when it has none yet.

    On a case answered already it is a follow-up reply (``replied_at``): the message alone, audited as
    ``record_reply``. A reply before the first response is refused: the first response is the earliest team
    message (rules §9), so it is that one to correct. Either is refused in the future or before the case was
    received, and when the case has a response recorded at that very instant (a double click)."""
    require(actor, "record_response")
    with transaction(con):
        case = row_of(con, "cases", "case_id", case_id)
        first = case["first_response_at"]
        key = f"{QUEUE_MESSAGE_PREFIX}{case_id}:{at.astimezone(UTC).isoformat()}"
        column = "first_response_at" if first is None else "replied_at"
        problem = _response_problem(con, config, case, at, key)
        if problem:
            raise Rejected([Problem(None, column, problem)])
        refuse_closed(con, config, column, (at, at))
        con.execute("INSERT INTO messages (message_key, case_id, is_team, is_automatic, received_at, taken_at, "
                    "unverified, source) VALUES (?, ?, true, false, ?, ?, false, 'queue')",
                    [key, case_id, at, now_utc()])
        answer(con, [case_id])
        if first is None:
            con.execute("UPDATE cases SET first_response_at = ? WHERE case_id = ?", [at, case_id])
            audit.record(con, actor, "record_response", "cases", case_id, {"first_response_at": None},
                         {"first_response_at": at, "message": key})
        else:
            audit.record(con, actor, "record_reply", "messages", key, None, {"case_id": case_id, "replied_at": at})


def _response_problem(con, config: Config, case: dict, at: datetime, key: str) -> str | None:
    """Why a response sent at ``at`` (its message ``key``) cannot be recorded on ``case``, or None."""
    future = future_reason(at, config.calendar.zone)
    if future:
        return future
    if at < case["received_at"]:
        return f"is before the case was received ({_shown(config, case['received_at'])})"
    first = case["first_response_at"]
    if first is not None and at < first:
        return (f"is before the first response of case {case['case_id']} ({_shown(config, first)}); correct the "
                "first response instead")
    if con.execute("SELECT 1 FROM messages WHERE message_key = ?", [key]).fetchall():
        return f"case {case['case_id']} already has a response recorded at {_shown(config, at)}"
    return None


def resolve_case(con, config: Config, actor: Actor, case_id: str, at: datetime) -> None:
    """Resolve a case at ``at``, under the rules of a new row's (not before receipt, not in the future)."""
    require(actor, "resolve_case")
    future = future_reason(at, config.calendar.zone)
    if future:
        raise Rejected([Problem(None, "resolved_at", future)])
    with transaction(con):
        before = row_of(con, "cases", "case_id", case_id)
        if before["resolved_at"] is not None:
            raise Rejected([Problem(None, "resolved_at", f"case {case_id} already has one, at "
                                                         f"{_shown(config, before['resolved_at'])}")])
        if at < before["received_at"]:
            raise Rejected([Problem(None, "resolved_at", "is before the case was received "
                                                         f"({_shown(config, before['received_at'])})")])
        refuse_closed(con, config, "resolved_at", (at, at))
        con.execute("UPDATE cases SET resolved_at = ? WHERE case_id = ?", [at, case_id])
        audit.record(con, actor, "resolve", "cases", case_id, {"resolved_at": None}, {"resolved_at": at})


def team(con, config: Config) -> list[str]:
    """Who a case may be assigned to: the addresses given a role of staff or above under ``[roles]``, and anyone
    a case is assigned to already; by name."""
    assigned = con.execute("SELECT DISTINCT assignee FROM cases WHERE assignee IS NOT NULL").fetchall()
    return sorted(set(team_addresses(config)) | {name for (name,) in assigned}, key=lambda name: (name.lower(), name))


def on_the_team(con, config: Config, assignee: str | None) -> str | None:
    """``assignee`` (None or blank: nobody) when on the ``team``, else Rejected naming the field."""
    assignee = (assignee or "").strip() or None
    if assignee is not None and assignee not in team(con, config):
        raise Rejected([Problem(None, "assignee", f"{assignee!r} is not on the team (a role of staff or above "
                                                  "under [roles] in support.toml, or assigned a case already)")])
    return assignee


def assign_case(con, config: Config, actor: Actor, case_id: str, assignee: str | None) -> None:
    """Assign the case to someone on the ``team`` (None or blank: to nobody)."""
    require(actor, "assign_case")
    with transaction(con):
        assignee = on_the_team(con, config, assignee)
        before = row_of(con, "cases", "case_id", case_id)
        con.execute("UPDATE cases SET assignee = ? WHERE case_id = ?", [assignee, case_id])
        audit.record(con, actor, "assign", "cases", case_id, {"assignee": before["assignee"]}, {"assignee": assignee})


def close_incident(con, config: Config, actor: Actor, incident_id: str, at: datetime) -> None:
    """End an ongoing incident at ``at``; only a maintenance may end in the future (the clock rule)."""
    require(actor, "close_incident")
    with transaction(con):
        before = row_of(con, "incidents", "incident_id", incident_id)
        if before["ended_at"] is not None:
            raise Rejected([Problem(None, "ended_at", f"incident {incident_id} already ended at "
                                                      f"{_shown(config, before['ended_at'])}")])
        problem = end_problem(config, before, at)
        if problem:
            raise Rejected([Problem(None, "ended_at", problem)])
        refuse_closed(con, config, "ended_at", (at, None))  # the incident no longer counts from ``at`` on
        con.execute("UPDATE incidents SET ended_at = ? WHERE incident_id = ?", [at, incident_id])
        audit.record(con, actor, "close", "incidents", incident_id, {"ended_at": None}, {"ended_at": at})


def end_problem(config: Config, incident: dict, at: datetime) -> str | None:
    """Why an incident (its ``started_at`` and ``impact``) may not end at ``at``, or None: not before it
    started, and only a maintenance may end in the future (the clock rule)."""
    if at < incident["started_at"]:
        return f"is before the incident started ({_shown(config, incident['started_at'])})"
    future = future_reason(at, config.calendar.zone)
    return future if future and incident["impact"] != "maintenance" else None


def log_check(con, config: Config, actor: Actor, environment_id: str, at: datetime, note: str) -> None:
    """Record that someone looked at a dedicated environment (the terms' regular monitoring)."""
    require(actor, "log_check")
    with transaction(con):
        row_of(con, "environments", "environment_id", environment_id)
        con.execute("INSERT INTO monitoring_checks VALUES (?, ?, ?, ?)", [environment_id, at, actor.email,
                                                                         note.strip() or None])
        audit.record(con, actor, "check", "monitoring_checks", environment_id, None,
                     {"checked_at": at, "note": note.strip() or None})


def _shown(config: Config, moment: datetime) -> str:
    return format_for_people(moment, config.calendar.zone)
