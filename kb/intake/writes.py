"""Changes to existing rows and the forms' new rows, each in one transaction with its audit row.

Every function takes a connection (a cursor), the configuration, and the
actor, and checks the actor's role before it touches anything. Problems are
raised as ``Rejected`` naming the field, and nothing is written.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from kb.access import Actor, require
from kb.config import Config
from kb.db import audit
from kb.intake.importing import Problem, Rejected, add_rows, row_of, staged_from_records
from kb.intake.validation import KEYS, SQL_TYPES, TABLES
from kb.timestamps import TimestampError, format_for_people, now_utc, parse_timestamp

ID_PREFIXES = {"cases": "CS-", "incidents": "INC-"}


FUTURE_TOLERANCE = timedelta(minutes=5)  # clocks differ a little; a case from tomorrow is a typo


def log_case(con, config: Config, actor: Actor, fields: dict[str, str]) -> str:
    """Add one case from the form; returns its new id. Unlike an import of history, a case
    logged now cannot have been received, or answered, in the future."""
    _refuse_future(config, fields, ("received_at", "first_response_at", "resolved_at"))
    return _log(con, config, actor, "cases", "log_case", fields)


def log_incident(con, config: Config, actor: Actor, fields: dict[str, str]) -> str:
    """Add one incident from the form; returns its new id."""
    return _log(con, config, actor, "incidents", "log_incident", fields)


RESUBMIT_SECONDS = 10


def _refuse_future(config: Config, fields: dict[str, str], columns: tuple[str, ...]) -> None:
    late = now_utc() + FUTURE_TOLERANCE
    problems = []
    for column in columns:
        try:
            moment = parse_timestamp(fields[column], config.calendar.zone) if fields.get(column) else None
        except TimestampError:
            continue  # the row's own rules name a timestamp that does not parse
        if moment is not None and moment > late:
            problems.append(Problem(None, column, f"is in the future ({_shown(config, moment)})"))
    if problems:
        raise Rejected(problems)


def _log(con, config: Config, actor: Actor, table: str, permission: str, fields: dict[str, str]) -> str:
    """Add the row, unless the same actor added the very same one seconds ago (a double-clicked
    submit): then return that row's id instead of storing it twice."""
    require(actor, permission)
    key = KEYS[table]
    earlier = _same_recentrow_of(con, config, actor, table, fields)
    if earlier:
        return earlier
    new_id = next_id(con, table, key)
    add_rows(con, config, staged_from_records(table, [{**fields, key: new_id}]), actor,
             permission=permission, source="form")
    return new_id


def _same_recentrow_of(con, config: Config, actor: Actor, table: str, fields: dict[str, str]) -> str | None:
    key, *columns = TABLES[table]
    staged = staged_from_records(table, [fields])
    values = {c.name: staged.columns[c.name][0] for c in columns}
    matches = " AND ".join(
        f"t.\"{c.name}\" IS NOT DISTINCT FROM try_cast(NULLIF(trim(?), '') AS {SQL_TYPES[c.kind]})"
        if c.kind in SQL_TYPES else
        (f"t.\"{c.name}\" IS NOT DISTINCT FROM (CASE WHEN trim(?, ' \t\r\n') = '' THEN NULL ELSE ? END)"
         if c.keeps_spaces else f"t.\"{c.name}\" IS NOT DISTINCT FROM NULLIF(trim(?), '')")
        for c in columns)
    params = [v for c in columns for v in ([values[c.name]] * (2 if c.keeps_spaces else 1))]
    con.execute(f"SET TimeZone = '{config.calendar.timezone}'")
    try:
        rows = con.execute(
            f"""SELECT t.{key.name} FROM {table} t JOIN audit_log a
                  ON a.table_name = '{table}' AND a.action = 'add' AND a.row_id = t.{key.name}
                 WHERE a.actor = ? AND a.logged_at > now() - INTERVAL {RESUBMIT_SECONDS} SECOND AND {matches}
                 ORDER BY a.audit_id DESC LIMIT 1""",
            [actor.email, *params],
        ).fetchall()
    finally:
        con.execute("SET TimeZone = 'UTC'")
    return rows[0][0] if rows else None


def next_id(con, table: str, key: str) -> str:
    """The next free id of the form PREFIX-00042 (five digits at least)."""
    prefix = ID_PREFIXES[table]
    number = con.execute(
        f"SELECT coalesce(max(try_cast(regexp_extract({key}, '^{prefix}(\\d+)$', 1) AS BIGINT)), 0) + 1 FROM {table} "
        f"WHERE {key} LIKE '{prefix}%'"  # lets DuckDB skip row groups of other ids (a million cases: 100 ms → 1 ms)
    ).fetchall()[0][0]
    return f"{prefix}{number:05d}"


def record_response(con, config: Config, actor: Actor, case_id: str, at: datetime) -> None:
    require(actor, "record_response")
    _update_case(con, config, actor, case_id, "first_response_at", at, "record_response")


def resolve_case(con, config: Config, actor: Actor, case_id: str, at: datetime) -> None:
    require(actor, "resolve_case")
    _update_case(con, config, actor, case_id, "resolved_at", at, "resolve")


def assign_case(con, config: Config, actor: Actor, case_id: str, assignee: str) -> None:
    require(actor, "assign_case")
    assignee = assignee.strip() or None
    with _transaction(con):
        before = row_of(con, "cases", "case_id", case_id)
        con.execute("UPDATE cases SET assignee = ? WHERE case_id = ?", [assignee, case_id])
        audit.record(con, actor, "assign", "cases", case_id, {"assignee": before["assignee"]}, {"assignee": assignee})


def close_incident(con, config: Config, actor: Actor, incident_id: str, at: datetime) -> None:
    require(actor, "close_incident")
    with _transaction(con):
        before = row_of(con, "incidents", "incident_id", incident_id)
        if before["ended_at"] is not None:
            raise Rejected([Problem(None, "ended_at", f"incident {incident_id} already ended at "
                                                      f"{_shown(config, before['ended_at'])}")])
        if at < before["started_at"]:
            raise Rejected([Problem(None, "ended_at", "is before the incident started "
                                                      f"({_shown(config, before['started_at'])})")])
        con.execute("UPDATE incidents SET ended_at = ? WHERE incident_id = ?", [at, incident_id])
        audit.record(con, actor, "close", "incidents", incident_id, {"ended_at": None}, {"ended_at": at})


def log_check(con, config: Config, actor: Actor, environment_id: str, at: datetime, note: str) -> None:
    """Record that someone looked at a dedicated environment (the terms' regular monitoring)."""
    require(actor, "log_check")
    with _transaction(con):
        row_of(con, "environments", "environment_id", environment_id)
        con.execute("INSERT INTO monitoring_checks VALUES (?, ?, ?, ?)", [environment_id, at, actor.email,
                                                                         note.strip() or None])
        audit.record(con, actor, "check", "monitoring_checks", environment_id, None,
                     {"checked_at": at, "note": note.strip() or None})


def _update_case(con, config: Config, actor: Actor, case_id: str, column: str, at: datetime, action: str) -> None:
    if at > now_utc() + FUTURE_TOLERANCE:
        raise Rejected([Problem(None, column, f"is in the future ({_shown(config, at)})")])
    with _transaction(con):
        before = row_of(con, "cases", "case_id", case_id)
        if before[column] is not None:
            raise Rejected([Problem(None, column, f"case {case_id} already has one, at "
                                                  f"{_shown(config, before[column])}")])
        if at < before["received_at"]:
            raise Rejected([Problem(None, column, "is before the case was received "
                                                  f"({_shown(config, before['received_at'])})")])
        con.execute(f"UPDATE cases SET {column} = ? WHERE case_id = ?", [at, case_id])
        audit.record(con, actor, action, "cases", case_id, {column: None}, {column: at})


def _shown(config: Config, moment: datetime) -> str:
    return format_for_people(moment, config.calendar.zone)


class _transaction:
    def __init__(self, con):
        self.con = con

    def __enter__(self):
        self.con.execute("BEGIN TRANSACTION")

    def __exit__(self, kind, error, trace):
        self.con.execute("ROLLBACK" if kind else "COMMIT")
        return False
