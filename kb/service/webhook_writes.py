"""What the monitoring webhooks write (rules §10): the incidents an Alertmanager delivery or an Uptime Kuma
heartbeat opens and closes, through the forms' own rules (``kb.intake``), audited, each delivery recorded in
``webhook_events`` with what it did (``outcome``).

An Alertmanager delivery (up to a thousand alerts) is decided and checked outside the write lock, on a
reader (``plan_alerts``, a few set-based queries, then ``kb.intake.importing.checked`` over all its new
incidents at once), then written in one short transaction as the only writer, after deciding it again
there: when what it would do has changed meanwhile (another delivery, a person closing an incident), it
is checked again. So no form waits behind a delivery's checks. An alert that would open or close an incident
in a closed month (rules §13) is set aside by itself, like one of an unknown environment, and taken when it
comes again after an admin reopened the month.

An Uptime Kuma heartbeat changes a monitor's state at the heartbeat's own time: ``down`` opens an outage
unless the monitor was down already just before it, ``up`` ends the outage it was in. Heartbeats arriving
out of order come out as if they had arrived in order: an older ``down`` arriving after a newer ``up`` is an
outage that ended at that ``up``; an ``up`` arriving after a newer ``down`` ends the outage at the ``up`` and
opens the next one at that ``down``.

Over 400 lines: Alertmanager and Uptime Kuma write the same incidents under the same rule (decide on a
reader, decide again as the writer), and read best side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from kb.access import Actor
from kb.config import Config
from kb.db import audit
from kb.db.connection import local_zone, transaction
from kb.intake.closed_months import closed_months, refusal
from kb.intake.importing import Problem, Rejected, checked, refuse_closed, staged_from_records
from kb.intake.validation import future_reason, typed_rows_sql
from kb.intake.writes import close_incident, end_problem, log_check, log_incident, next_number
from kb.store import Store, WriteFailed
from kb.timestamps import now_utc

ALERTMANAGER = "alertmanager"
UPTIME_KUMA = "uptime-kuma"
KUMA_STATES = {0: "down", 1: "up", 2: "pending", 3: "maintenance"}
PLAN_ATTEMPTS = 3  # decisions changed by other writes between the check and the commit: checked again
SET_ASIDE = ("unknown environment", "closed month")  # outcomes of alerts set aside, taken when they come again


class UnknownEnvironment(Exception):
    """A heartbeat names an environment that is not in the store."""


class PlanChanged(Exception):
    """What a delivery would do changed between its check and its commit."""


@dataclass(frozen=True)
class AlertChange:
    """One alert of an Alertmanager delivery, checked."""

    environment_id: str
    subject: str  # fingerprint@startsAt: the incident it is
    firing: bool
    impact: str
    started_at: datetime
    ended_at: datetime | None
    summary: str

    @property
    def state(self) -> str:
        return "firing" if self.firing else "resolved"

    @property
    def event_key(self) -> str:
        return f"{self.subject}:{self.state}"


@dataclass(frozen=True)
class Heartbeat:
    """One Uptime Kuma heartbeat, checked."""

    environment_id: str
    subject: str  # "monitor 12": the monitor it is about
    status: int
    at: datetime
    monitor: str
    message: str

    @property
    def state(self) -> str:
        return KUMA_STATES[self.status]

    @property
    def event_key(self) -> str:
        return f"{self.subject}@{self.at.isoformat()}:{self.state}"


# --- Alertmanager ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Known:
    """An incident an earlier delivery about the same alert opened."""

    incident_id: str
    started_at: datetime
    ended_at: datetime | None
    impact: str
    voided: bool


@dataclass
class AlertPlan:
    """What a delivery does. A new incident is referred to by its place in ``new`` (its id is given at
    the commit); an existing one by its id."""

    new: list[dict] = field(default_factory=list)  # the incidents to log: form fields, without their id
    closes: list[tuple[str, datetime]] = field(default_factory=list)  # (incident_id, ended_at)
    events: list[tuple[AlertChange, int | str | None, str]] = field(default_factory=list)  # (alert, incident, outcome)
    replayed: int = 0  # alerts whose delivery was taken before

    def add(self, change: AlertChange, *, ended: bool) -> int:
        self.new.append({"environment_id": change.environment_id, "impact": change.impact,
                         "started_at": change.started_at.isoformat(), "summary": change.summary,
                         "ended_at": change.ended_at.isoformat() if ended else None})
        return len(self.new) - 1


def apply_alerts(store: Store, actor: Actor, changes: list[AlertChange]) -> dict:
    """Apply an Alertmanager delivery: checked on a reader, committed in one short transaction. Returns
    what it did; Rejected (naming the alert) when an incident it would log or close breaks a rule."""
    for _ in range(PLAN_ATTEMPTS):
        with store.reader() as cur, local_zone(cur, store.config.calendar.timezone):
            plan = plan_alerts(cur, store.config, changes)
            rows = _checked_incidents(cur, store.config, plan)
        _check_closes(store, plan)
        if not plan.events:  # a replay: nothing to write
            return _answer(plan, [])
        try:
            return _answer(plan, store.write(_commit_alerts, store.config, actor, changes, plan, rows))
        except PlanChanged:
            continue
    raise WriteFailed("The incidents changed while the delivery was checked, again and again; nothing was "
                      "written, try again.")


def plan_alerts(con, config: Config, changes: list[AlertChange]) -> AlertPlan:
    """Decide what each alert does, from four queries over the whole delivery (no query per alert)."""
    known_environments = _known_environments(con, {c.environment_id for c in changes})
    taken = _taken_keys(con, ALERTMANAGER, [c.event_key for c in changes])
    incidents: dict[str, Known | int] = _known_incidents(con, {c.subject for c in changes})
    closed = closed_months(con, config)
    plan = AlertPlan()
    for change in changes:
        if change.event_key in taken:
            plan.replayed += 1
            continue
        taken.add(change.event_key)
        if change.environment_id not in known_environments:
            plan.events.append((change, None, f"unknown environment {change.environment_id!r}"))
            continue
        incident = incidents.get(change.subject)
        if incident is None:  # a firing opens it; a resolution whose firing never came logs it whole
            month = closed.hit((change.started_at, change.ended_at))
            if month:
                plan.events.append((change, None, _closed_month(month)))
                continue
            incidents[change.subject] = plan.add(change, ended=not change.firing)
            plan.events.append((change, incidents[change.subject], "opened" if change.firing else "opened and closed"))
        elif change.firing:  # repeated, or the resolution came first
            plan.events.append((change, _ref(incident), "unchanged"))
        elif isinstance(incident, int):  # opened by this very delivery
            plan.new[incident]["ended_at"] = change.ended_at.isoformat()
            plan.events.append((change, incident, "closed"))
        elif incident.voided:  # a false alarm, voided by a person: nothing comes back
            plan.events.append((change, incident.incident_id, "voided"))
        elif incident.ended_at is not None:  # a person closed it already: it stays as they left it
            plan.events.append((change, incident.incident_id, "unchanged"))
        elif month := closed.hit((change.ended_at, None)):  # it would stop counting from its end on
            plan.events.append((change, None, _closed_month(month)))
        else:
            plan.closes.append((incident.incident_id, change.ended_at))
            plan.events.append((change, incident.incident_id, "closed"))
    return plan


def _closed_month(month: str) -> str:
    """The outcome of an alert set aside because it would change ``month``, which is closed."""
    return f"{SET_ASIDE[1]}: {refusal(month)}"


def _ref(incident: Known | int) -> str | int:
    return incident if isinstance(incident, int) else incident.incident_id


def _checked_incidents(con, config: Config, plan: AlertPlan) -> pa.Table | None:
    """The plan's new incidents checked by every rule of a new row, at once, and typed as they will be
    stored (with stand-in ids); Rejected naming the alert."""
    if not plan.new:
        return None
    first = next_number(con, "incidents", "incident_id")
    staged = staged_from_records("incidents", [{**fields, "incident_id": f"INC-{first + n:05d}"}
                                               for n, fields in enumerate(plan.new)])
    alert_of = {ref: n for n, (_, ref, _) in enumerate(plan.events) if isinstance(ref, int)}
    try:
        with checked(con, config, staged):
            return con.sql(typed_rows_sql("incidents", "staging")).to_arrow_table()
    except Rejected as e:
        raise Rejected([Problem(None, f"alerts[{alert_of[p.line - 2]}].{p.column}" if p.line else p.column,
                                p.reason) for p in e.problems]) from None


def _check_closes(store: Store, plan: AlertPlan) -> None:
    """Rejected when an alert would end its incident before it started, or in the future."""
    if not plan.closes:
        return
    ids = [incident for incident, _ in plan.closes]
    with store.reader() as cur:
        stored = {row[0]: {"started_at": row[1], "impact": row[2]} for row in cur.execute(
            "SELECT incident_id, started_at, impact FROM incidents WHERE incident_id IN (SELECT unnest(?))",
            [ids]).fetchall()}
    problems = [Problem(None, f"incident {incident}: endsAt", reason) for incident, at in plan.closes
                if (reason := end_problem(store.config, stored[incident], at))]
    if problems:
        raise Rejected(problems)


def _commit_alerts(con, config: Config, actor: Actor, changes: list[AlertChange], plan: AlertPlan,
                   rows: pa.Table | None) -> list[tuple[AlertChange, str | None, str]]:
    """Write a checked plan as the only writer, when deciding it again gives the same plan; its events, with
    the ids of the incidents they opened."""
    with local_zone(con, config.calendar.timezone), transaction(con):
        if plan_alerts(con, config, changes) != plan:
            raise PlanChanged
        ids = _insert_incidents(con, actor, rows)
        _close_incidents(con, actor, plan.closes)
        resolved = [(change, ids[ref] if isinstance(ref, int) else ref, outcome)
                    for change, ref, outcome in plan.events]
        _record_alerts(con, resolved)
    return resolved


def _answer(plan: AlertPlan, resolved: list[tuple[AlertChange, str | None, str]]) -> dict:
    """The webhook's answer: the incidents opened, closed and left voided, the alerts that changed nothing,
    the unknown environments whose alerts were set aside, and the alerts set aside for a closed month."""
    return {
        "opened": [incident for _, incident, outcome in resolved if outcome.startswith("opened")],
        "closed": [incident for _, incident, outcome in resolved if outcome.endswith("closed")],
        "unchanged": plan.replayed + sum(outcome == "unchanged" for _, _, outcome in resolved),
        "voided": [incident for _, incident, outcome in resolved if outcome == "voided"],
        "unknown_environments": sorted({change.environment_id for change, _, outcome in resolved
                                        if outcome.startswith("unknown")}),
        "closed_months": [{"alert": change.subject, "reason": outcome.removeprefix(f"{SET_ASIDE[1]}: ")}
                          for change, _, outcome in resolved if outcome.startswith(SET_ASIDE[1])],
    }


def _insert_incidents(con, actor: Actor, rows: pa.Table | None) -> list[str]:
    """Insert the checked incidents under the next free ids, each with its audit row; their ids."""
    if rows is None:
        return []
    first = next_number(con, "incidents", "incident_id")
    ids = [f"INC-{first + n:05d}" for n in range(rows.num_rows)]
    names = ", ".join(f'"{name}"' for name in rows.column_names)
    numbered = rows.set_column(rows.column_names.index("incident_id"), "incident_id", pa.array(ids, pa.string()))
    con.from_arrow(numbered).query("new_incidents",
                                   f"INSERT INTO incidents ({names}) SELECT {names} FROM new_incidents")
    result = con.execute("SELECT * FROM incidents WHERE incident_id IN (SELECT unnest(?)) ORDER BY incident_id", [ids])
    columns = [d[0] for d in result.description]
    audit.record_rows(con, actor, "add", "incidents",
                      [(row[0], None, dict(zip(columns, row, strict=True))) for row in result.fetchall()])
    return ids


def _close_incidents(con, actor: Actor, closes: list[tuple[str, datetime]]) -> None:
    if not closes:
        return
    ends = pa.table({"incident_id": [incident for incident, _ in closes],
                     "ended_at": pa.array([at for _, at in closes], pa.timestamp("us", "UTC"))})
    con.from_arrow(ends).query("ends", "UPDATE incidents SET ended_at = ends.ended_at FROM ends "
                                       "WHERE incidents.incident_id = ends.incident_id")
    audit.record_rows(con, actor, "close", "incidents",
                      [(incident, {"ended_at": None}, {"ended_at": at}) for incident, at in closes])


def _record_alerts(con, events: list[tuple[AlertChange, str | None, str]]) -> None:
    """Record each alert of the delivery with what it did; an alert set aside before (unknown environment)
    is recorded anew."""
    rows = pa.table({
        "source": [ALERTMANAGER] * len(events),
        "event_key": [change.event_key for change, _, _ in events],
        "received_at": pa.array([now_utc()] * len(events), pa.timestamp("us", "UTC")),
        "subject": [change.subject for change, _, _ in events],
        "incident_id": pa.array([incident for _, incident, _ in events], pa.string()),
        "occurred_at": pa.array([change.started_at if change.firing else change.ended_at for change, _, _ in events],
                                pa.timestamp("us", "UTC")),
        "state": [change.state for change, _, _ in events],
        "outcome": [outcome for _, _, outcome in events],
    })
    con.from_arrow(rows).query("delivered", f"INSERT INTO webhook_events ({', '.join(rows.column_names)}) "
                                            "SELECT * FROM delivered ON CONFLICT (source, event_key) DO UPDATE SET "
                                            "received_at = excluded.received_at, incident_id = excluded.incident_id, "
                                            "outcome = excluded.outcome")


def _known_environments(con, wanted: set[str]) -> set[str]:
    return {row[0] for row in con.execute(
        "SELECT environment_id FROM environments WHERE environment_id IN (SELECT unnest(?))", [sorted(wanted)]
    ).fetchall()}


def _taken_keys(con, source: str, keys: list[str]) -> set[str]:
    """The deliveries among ``keys`` taken before (not those set aside: ``SET_ASIDE``)."""
    taken = " AND ".join(f"coalesce(outcome, '') NOT LIKE '{outcome}%'" for outcome in SET_ASIDE)
    return {row[0] for row in con.execute(
        f"SELECT event_key FROM webhook_events WHERE source = ? AND event_key IN (SELECT unnest(?)) AND {taken}",
        [source, keys]).fetchall()}


def _known_incidents(con, subjects: set[str]) -> dict[str, Known]:
    """The incident an earlier delivery opened for each alert (voided ones too: they stay voided)."""
    rows = con.execute(
        """SELECT DISTINCT ON (e.subject) e.subject, i.incident_id, i.started_at, i.ended_at, i.impact,
                  i.voided_at IS NOT NULL
             FROM webhook_events e JOIN incidents i USING (incident_id)
            WHERE e.source = ? AND e.subject IN (SELECT unnest(?))
            ORDER BY e.subject, i.started_at DESC""", [ALERTMANAGER, sorted(subjects)]).fetchall()
    return {row[0]: Known(*row[1:]) for row in rows}


# --- Uptime Kuma -----------------------------------------------------------------------------------------

def apply_heartbeat(con, config: Config, actor: Actor, beat: Heartbeat) -> dict:
    """Apply an Uptime Kuma heartbeat in one transaction: the check, and the outage it opens or ends."""
    result = {"opened": [], "closed": [], "checks": 0, "unchanged": 0, "voided": []}
    with local_zone(con, config.calendar.timezone), transaction(con):
        if _taken_keys(con, UPTIME_KUMA, [beat.event_key]):
            result["unchanged"] = 1
            return result
        if not _known_environments(con, {beat.environment_id}):
            raise UnknownEnvironment(repr(beat.environment_id))
        future = future_reason(beat.at, config.calendar.zone)
        if future:
            raise Rejected([Problem(None, "heartbeat.time", future)])
        if beat.state in ("down", "up"):
            refuse_closed(con, config, "heartbeat.time", (beat.at, beat.at))
        before = _state_before(con, beat.subject, beat.at)
        incident, outcome = None, "checked"
        if beat.state == "down" and before != "down":
            incident, ended = _outage_from(con, config, actor, beat.subject, beat.environment_id, beat.at,
                                           _down_summary(beat))
            result["opened"].append(incident)
            result["closed"] += [incident] if ended else []
            outcome = "opened and closed" if ended else "opened"
        elif beat.state == "up" and before == "down":
            incident, outcome = _end_outage(con, config, actor, beat)
            if outcome in ("closed", "voided"):
                result[outcome].append(incident)
            result["opened"] += _reopen_after(con, config, actor, beat)
        note = f"Uptime Kuma: {beat.monitor} {beat.state}" + (f": {beat.message}" if beat.message else "")
        log_check(con, config, actor, beat.environment_id, beat.at, note)
        result["checks"] = 1
        con.execute("INSERT INTO webhook_events (source, event_key, received_at, subject, incident_id, occurred_at, "
                    "state, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [UPTIME_KUMA, beat.event_key, now_utc(), beat.subject, incident, beat.at, beat.state, outcome])
    return result


def _down_summary(beat: Heartbeat) -> str:
    return f"Uptime Kuma: {beat.monitor} is down" + (f": {beat.message}" if beat.message else "")


def _outage_from(con, config: Config, actor: Actor, subject: str, environment_id: str, start: datetime,
                 summary: str) -> tuple[str, bool]:
    """Log the outage a ``down`` at ``start`` begins: ended by the monitor's next ``up`` received already, or
    where its next outage begins, else ongoing. Its id, and whether it has ended."""
    ends = [at for at in (_next_beat(con, subject, start, "up"), _next_outage_start(con, subject, start)) if at]
    fields = {"environment_id": environment_id, "impact": "outage", "started_at": start.isoformat(),
              "summary": summary}
    if ends:
        fields["ended_at"] = min(ends).isoformat()
    return log_incident(con, config, actor, fields).row_id, bool(ends)


def _end_outage(con, config: Config, actor: Actor, beat: Heartbeat) -> tuple[str | None, str]:
    """End the outage an ``up`` falls in: (its incident, "closed"), or "voided" (a person voided it: nothing
    is closed), or "unchanged" (it ended already)."""
    rows = con.execute(
        """SELECT i.incident_id, i.ended_at, i.voided_at IS NOT NULL
             FROM webhook_events e JOIN incidents i USING (incident_id)
            WHERE e.source = ? AND e.subject = ? AND i.started_at <= ?
            ORDER BY i.started_at DESC LIMIT 1""", [UPTIME_KUMA, beat.subject, beat.at]).fetchall()
    if not rows:
        return None, "unchanged"
    incident, ended_at, voided = rows[0]
    if voided:
        return incident, "voided"
    if ended_at is not None:
        return incident, "unchanged"
    close_incident(con, config, actor, incident, beat.at)
    return incident, "closed"


def _reopen_after(con, config: Config, actor: Actor, beat: Heartbeat) -> list[str]:
    """When the monitor's next heartbeat received after this ``up`` is a ``down`` that opened nothing (it
    arrived while the monitor still seemed down), the outage it begins: opened now, on that heartbeat."""
    after = con.execute(
        """SELECT occurred_at, state, event_key FROM webhook_events
            WHERE source = ? AND subject = ? AND state IN ('down', 'up') AND occurred_at > ?
            ORDER BY occurred_at LIMIT 1""", [UPTIME_KUMA, beat.subject, beat.at]).fetchall()
    if not after or after[0][1] != "down" or _next_outage_start(con, beat.subject, beat.at) == after[0][0]:
        return []
    down_at, _, key = after[0]
    incident, ended = _outage_from(con, config, actor, beat.subject, beat.environment_id, down_at,
                                   f"Uptime Kuma: {beat.monitor} is down")
    con.execute("UPDATE webhook_events SET incident_id = ?, outcome = ? WHERE source = ? AND event_key = ?",
                [incident, "opened and closed" if ended else "opened", UPTIME_KUMA, key])
    return [incident]


def _state_before(con, subject: str, at: datetime) -> str | None:
    """``down`` or ``up``: the monitor's state just before ``at``, by its heartbeats' times; None: unknown."""
    rows = con.execute(
        """SELECT state FROM webhook_events WHERE source = ? AND subject = ? AND state IN ('down', 'up')
              AND occurred_at < ? ORDER BY occurred_at DESC LIMIT 1""", [UPTIME_KUMA, subject, at]).fetchall()
    return rows[0][0] if rows else None


def _next_beat(con, subject: str, after: datetime, state: str) -> datetime | None:
    return con.execute(
        "SELECT min(occurred_at) FROM webhook_events WHERE source = ? AND subject = ? AND state = ? "
        "AND occurred_at > ?",
        [UPTIME_KUMA, subject, state, after]).fetchall()[0][0]


def _next_outage_start(con, subject: str, after: datetime) -> datetime | None:
    """The start of the monitor's first incident after ``after``, if there is one."""
    return con.execute(
        """SELECT min(i.started_at) FROM webhook_events e JOIN incidents i USING (incident_id)
            WHERE e.source = ? AND e.subject = ? AND i.started_at > ?""",
        [UPTIME_KUMA, subject, after]).fetchall()[0][0]
