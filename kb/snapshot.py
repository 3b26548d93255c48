"""The as-of views computed whole into Arrow tables, and kept current after a write by what it changed.

Computing ``case_sla`` for a million cases takes seconds, so a page never
waits for it after a form's write: a write changes a handful of rows. Every
committed write is described by a ``Change``, read from the audit rows it
wrote (``change_of``): the cases it touched (a case, its pauses, a message
of it), the clients whose cases it touched (a client or one of its contracts
edited) and the policies (a policy row added or removed), whether it touched
uptime (incidents, contracts, environments, clients, a month's closing:
uptime and credits are whole-table and cheap, computed again; a closing also
changes the decided targets "% met" counts), or anything
else (the rules, an import, a row no audit row names): the whole snapshot is
computed again.

``patched`` replaces the rows of the touched cases, computed for those cases
only (``kb.engine.asof.case_rows``); past ``MOST_CASES`` of them (a tier's
policy edited touches every case of the tier) it computes every case again. The tables are kept as slices of
``SLICE_ROWS`` rows, so taking a case's old row out copies one slice, never
the million rows around it.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kb.config import Config
from kb.engine.asof import case_rows, open_views
from kb.engine.case_sla import UNRESOLVED
from kb.engine.targets import CASE_TARGETS, DECIDED, QUESTION_TARGETS

SNAPSHOT_TABLES = ("case_questions", "case_sla", "env_uptime", "contract_refunds")
TABLES = (*SNAPSHOT_TABLES, "open_case_sla")  # in the order they are computed
READS = {"case_sla": ("case_questions",), "contract_refunds": ("env_uptime",)}  # what each is computed from
CASE_TABLES = ("case_questions", "case_sla", "open_case_sla")  # rows keyed by case_id
UPTIME_TABLES = ("env_uptime", "contract_refunds")
# The decided targets of every case (what "% met" counts), a part of the case tables: a write that touched only
# cases with no target decided before or after (a case logged, a question asked) leaves them as they were.
DECIDED_TARGETS = "decided targets"
SLICE_ROWS = 8192
MEMO_ROWS = 200_000  # rows a snapshot's remembered aggregates hold at most together (a few tens of MB)
Frames = pd.DataFrame | list[pd.DataFrame] | dict  # (a dict: a chart's spec, ``kb.ui.remembered_chart``)
MOST_CASES = 2000  # past this many touched cases, computing every case again is as quick
MOST_MOVING = 0.25  # past this share of cases moving with time, computing every case again is as quick
UNRELATED = frozenset({  # written by the service's own bookkeeping: no snapshot table reads them
    "alert_deliveries", "api_tokens", "mail_quarantine", "monitoring_checks", "credit_applications",
    "sent_statements",
})


@dataclass(frozen=True)
class Change:
    """What one committed write changed, as far as the snapshot is concerned: the rows of ``cases``, of every
    case of ``clients`` and of every case whose target comes from one of ``policies``; uptime and credits."""

    cases: frozenset[str] = frozenset()
    uptime: bool = False
    everything: bool = False
    clients: frozenset[str] = frozenset()
    policies: frozenset[str] = frozenset()
    closings: bool = False  # a month closed or reopened: the decided targets due in it are read from its closing

    @property
    def empty(self) -> bool:
        """It changed no row of any snapshot table (a monitoring check, a token: ``UNRELATED`` tables alone)."""
        return not (self.everything or self.cases or self.uptime or self.clients or self.policies or self.closings)


EVERYTHING = Change(everything=True)
AuditRow = tuple[str, str | None, str | None, str | None]  # (table_name, row_id, before, after)


def change_of(audit_rows: Iterable[AuditRow]) -> Change:
    """The change a write made, from the ``(table_name, row_id, before, after)`` of the audit rows it wrote. A
    write that wrote none, or named no row, changes everything as far as anyone can tell; but a mail batch's row
    names every case the batch touched (``cases``, up to ``kb.mail.intake.CASES_LISTED``), its new clients
    and cases among them. A contract's row names its client (before and after: an edit may move it); one
    that does not changes everything."""
    rows = list(audit_rows)
    listed = [json.loads(after)["cases"] for table, row_id, _, after in rows
              if table == "messages" and row_id is None and after and '"cases"' in after]
    cases, clients, policies, uptime, closings = set().union(*listed), set(), set(), False, False
    for table, row_id, before, after in rows:
        if table in UNRELATED or (listed and row_id is None and table in ("cases", "clients", "messages")):
            continue
        if table in ("incidents", "month_closings", "environments") and row_id:  # uptime and credits alone
            uptime = True
            closings = closings or table == "month_closings"
        elif table in ("cases", "pauses") and row_id:
            cases.add(row_id)
        elif table == "messages" and row_id and after and json.loads(after).get("case_id"):
            cases.add(json.loads(after)["case_id"])
        elif table == "clients" and row_id:  # a merge names the client it merged into
            clients.update(filter(None, (row_id, _values(after).get("merged_into"))))
            uptime = True
        elif table == "contracts" and row_id and _values(after).get("client_id"):
            clients.update(filter(None, (_values(before).get("client_id"), _values(after)["client_id"])))
            uptime = True
        elif table == "policies" and row_id:
            policies.add(row_id)
        else:
            return EVERYTHING
    return Change(frozenset(cases), uptime, clients=frozenset(clients), policies=frozenset(policies),
                  closings=closings) if rows else EVERYTHING


def _values(recorded: str | None) -> dict:
    """An audit row's ``before`` or ``after``: the values it recorded ({} for none)."""
    values = json.loads(recorded) if recorded else None
    return values if isinstance(values, dict) else {}


def combined(changes: Iterable[Change]) -> Change:
    """One change doing what all of ``changes`` did."""
    cases, clients, policies, uptime, closings = set(), set(), set(), False, False
    for change in changes:
        if change.everything:
            return EVERYTHING
        cases |= change.cases
        clients |= change.clients
        policies |= change.policies
        uptime = uptime or change.uptime
        closings = closings or change.closings
    if len(cases) > MOST_CASES:
        return EVERYTHING
    return Change(frozenset(cases), uptime, clients=frozenset(clients), policies=frozenset(policies),
                  closings=closings)


def touched_cases(cur, change: Change) -> frozenset[str] | None:
    """The cases whose rows ``change`` may have changed: its cases, every case of its clients and every case
    whose policy is one of its policies (by its client's contract, or its client's tier); None when those of
    its clients and policies are more than ``MOST_CASES`` (computing every case is then as quick)."""
    found = []
    if change.clients or change.policies:
        found = cur.execute(
            """SELECT case_id FROM cases
               WHERE client_id IN (SELECT unnest($clients))
                  OR client_id IN (SELECT client_id FROM contracts WHERE policy_id IN (SELECT unnest($policies)))
                  OR client_id IN (SELECT client_id FROM clients WHERE tier IN (SELECT unnest($policies)))
               LIMIT $most""",
            {"clients": sorted(change.clients), "policies": sorted(change.policies), "most": MOST_CASES + 1},
        ).fetchall()
    return change.cases | {case_id for (case_id,) in found} if len(found) <= MOST_CASES else None


@dataclass(frozen=True)
class Snapshot:
    """The as-of views materialized at one instant, for one store version. Each table is computed when a page
    first reads it (``Store.reader``), so a page of uptime never waits for a million cases' deadlines;
    ``frozen``: made for an instant asked for, not "now". A snapshot of "now" brought up to date after a write
    holds the rows it touched as of when that was done; after a month's closing (or reopening) it is as of
    then (``as_of``), so that the closing is in it, and its other rows stay as they were at ``rows_as_of``,
    moved on to now in the background like any."""

    as_of: datetime
    version: int
    frozen: bool
    moved_as_of: datetime | None = None  # (``rows_as_of``, when not ``as_of``)
    tables: dict[str, pa.Table] = field(repr=False, default_factory=dict)
    # The case tables of a few cases (a case's panel), computed for them while ``tables`` holds no case yet.
    of_cases: dict[tuple[str, ...], dict[str, pa.Table]] = field(repr=False, default_factory=dict)
    # Aggregates of its tables already read (``remembered``), the last read last: a page drawn again reads
    # them from here. ``reads``: of those whose page said so, which of its parts each was read from.
    memo: OrderedDict[tuple, Frames] = field(repr=False, compare=False, default_factory=OrderedDict)
    reads: dict[tuple, frozenset[str]] = field(repr=False, compare=False, default_factory=dict)
    _memo_lock: threading.Lock = field(repr=False, compare=False, default_factory=threading.Lock)

    @property
    def rows_as_of(self) -> datetime:
        """The instant the rows no write touched since are as of: when they were last moved on."""
        return self.moved_as_of or self.as_of

    def remembered(self, key: tuple, compute: Callable[[], Frames], reads: Iterable[str] | None = None) -> Frames:
        """A copy of ``compute()`` (a frame, or a list of frames, read from this snapshot's tables alone, which
        never change once computed, or a chart's spec drawn from them), computed the first time ``key`` is asked
        for. The least recently read go first once they hold more than ``MEMO_ROWS`` rows together.
        ``reads``: the parts of the snapshot ``compute`` reads (``TABLES``, or ``DECIDED_TARGETS``), when the caller
        knows them: the next snapshot, brought up to date after a write, keeps it when the write changed none
        of them (``carried``)."""
        with self._memo_lock:
            kept = self.memo.get(key)
            if kept is not None:
                self.memo.move_to_end(key)
        if kept is None:
            kept = compute()
            with self._memo_lock:
                self.memo[key] = kept
                if reads is not None:
                    self.reads[key] = frozenset(reads)
                while len(self.memo) > 1 and sum(map(_rows, self.memo.values())) > MEMO_ROWS:
                    self.reads.pop(self.memo.popitem(last=False)[0], None)
        return [frame.copy() for frame in kept] if isinstance(kept, list) else kept.copy()

    def carried(self, changed: frozenset[str]) -> dict:
        """What the next snapshot, made by a write that changed the parts ``changed`` of this one, remembers
        from it: what was read from other parts alone (``memo`` and ``reads``, for ``Snapshot(...)``)."""
        with self._memo_lock:
            keys = [key for key in self.memo if key in self.reads and not self.reads[key] & changed]
            return {"memo": OrderedDict((key, self.memo[key]) for key in keys),
                    "reads": {key: self.reads[key] for key in keys}}


def _rows(frames: Frames) -> int:
    if isinstance(frames, dict):  # a chart's spec, its data as Arrow: counted at about a hundred bytes a row
        return 1 + sum(len(data) for data in frames.get("datasets", {}).values() if isinstance(data, bytes)) // 100
    return sum(len(frame) for frame in frames) if isinstance(frames, list) else len(frames)


def unresolved(case_sla: pa.Table) -> pa.Table:
    """The rows of ``case_sla`` not resolved yet: ``open_case_sla``."""
    return case_sla.filter(pc.is_null(case_sla["resolved_at"]))


def rows_of_cases(cur, config: Config, as_of: datetime, case_ids) -> dict[str, pa.Table]:
    """Every case table (``CASE_TABLES``) of the cases ``case_ids`` alone (``kb.engine.asof.case_rows``)."""
    rows = case_rows(cur, config, as_of, case_ids)
    return {**rows, "open_case_sla": unresolved(rows["case_sla"])}


def with_inputs(names: Iterable[str]) -> list[str]:
    """``names`` and the tables they are computed from, in ``TABLES`` order."""
    wanted = set(names)
    for name in list(wanted):
        wanted.update(READS.get(name, ()))
    return [name for name in TABLES if name in wanted]


def computed(cur, config: Config, as_of: datetime, names: Iterable[str] = TABLES,
             have: dict[str, pa.Table] | None = None) -> dict[str, pa.Table]:
    """The tables ``names`` (and those they are computed from) as of ``as_of`` that ``have`` does not hold
    yet, computed from those it does. ``open_case_sla`` (the rows of ``case_sla`` not resolved yet, for the
    queue: a few thousand rows) is cut from ``case_sla`` when that is at hand, else computed for those cases
    alone."""
    have = dict(have or {})
    wanted = [name for name in with_inputs(names) if name not in have]
    if not wanted:
        return {}
    if any(name in SNAPSHOT_TABLES for name in wanted):  # the Queue's open cases alone need no view
        for name in SNAPSHOT_TABLES:  # each in place of its view, so each is computed once
            if name in have:
                _in_place(cur, name, have[name])
        open_views(cur, config, as_of, without=have)
    new = {}
    for name in wanted:
        if name == "open_case_sla":
            cases = have.get("case_sla", new.get("case_sla"))
            new[name] = _sliced(unresolved(cases) if cases is not None
                                else case_rows(cur, config, as_of, UNRESOLVED)["case_sla"])
        else:
            new[name] = _sliced(cur.sql(f"SELECT * FROM {name}").to_arrow_table())
            _in_place(cur, name, new[name])
    return new


def _in_place(cur, name: str, table: pa.Table) -> None:
    cur.execute(f"DROP VIEW IF EXISTS {name}")
    cur.register(name, table)


def patched(cur, config: Config, tables: dict[str, pa.Table], change: Change, as_of: datetime,
            changed: set[str] | None = None) -> dict[str, pa.Table] | None:
    """``tables`` with the rows of the cases ``change`` touched (``touched_cases``) computed again as of
    ``as_of`` (and uptime and credits computed again whole, if it touched them); a table not computed yet stays
    so. None when its clients and policies have more than ``MOST_CASES`` cases. The parts it changed are added
    to ``changed``: the tables, and ``DECIDED_TARGETS`` when a touched case had or has a decided target."""
    tables = dict(tables)
    changed = set() if changed is None else changed
    cases = touched_cases(cur, change) if any(name in tables for name in CASE_TABLES) else frozenset()
    if cases is None:
        return None
    if cases:
        fresh = rows_of_cases(cur, config, as_of, sorted(cases))
        for name in CASE_TABLES:
            if name in tables:
                tables[name], old = _replaced(tables[name], cases, fresh[name])
                if _decides(name, old) or _decides(name, fresh[name]):
                    changed.add(DECIDED_TARGETS)
    if cases or change.cases or change.clients or change.policies:
        changed.update(CASE_TABLES)
        if not any(name in tables for name in CASE_TABLES):
            changed.add(DECIDED_TARGETS)
    if change.closings:
        changed.add(DECIDED_TARGETS)
    if change.uptime:
        changed.update(UPTIME_TABLES)
        present = [name for name in UPTIME_TABLES if name in tables]
        if present:
            for name in UPTIME_TABLES:
                tables.pop(name, None)
            tables.update(computed(cur, config, as_of, present, tables))
    return tables


def _decides(name: str, rows: pa.Table) -> bool:
    """Whether ``rows`` of the case table ``name`` hold a decided target (met or breached): what "% met"
    counts (``kb.engine.targets.decided_sql``)."""
    targets = {"case_sla": CASE_TARGETS, "case_questions": QUESTION_TARGETS}.get(name, ())
    return any(pc.any(pc.is_in(rows[target.col("state")], value_set=pa.array(DECIDED))).as_py() for target in targets)


def moved_on(cur, config: Config, tables: dict[str, pa.Table], since: datetime,
             as_of: datetime) -> dict[str, pa.Table]:
    """``tables`` (a snapshot's, as of ``since``) as of the later ``as_of``, with no write between: the rows of
    the cases whose rows can change with time computed again (``moving_cases``), the others kept, and the
    other tables computed again whole (uptime and credits: a few tenths of a second). A case whose every
    clock has stopped (or has no target), with no question open and no pause running, has the same row at
    any later instant: most of a million."""
    if "case_sla" not in tables:  # (it is computed from case_questions: both are there, or it is not)
        return computed(cur, config, as_of, list(tables))
    moved = moved_case_tables(cur, config, {name: tables[name] for name in CASE_TABLES if name in tables}, since,
                              as_of)
    if moved is None:
        return computed(cur, config, as_of, list(tables))
    return {**moved, **computed(cur, config, as_of, [name for name in tables if name not in moved], moved)}


def moved_case_tables(cur, config: Config, tables: dict[str, pa.Table], since: datetime, as_of: datetime,
                      written: Change = Change()) -> dict[str, pa.Table] | None:
    """The case tables ``tables`` (as of ``since``) as of ``as_of``: the rows of the cases that move with time
    (``moving_cases``) and of the cases the writes since touched (``written``) computed again; None when they
    are more than ``MOST_MOVING`` of the cases, or the clients and policies the writes edited have more than
    ``MOST_CASES`` (computing every case is then as quick)."""
    cases = moving_cases(cur, tables, since, as_of) | written.cases
    if len(cases) > MOST_MOVING * tables["case_sla"].num_rows:
        return None
    return patched(cur, config, tables, Change(cases=cases, clients=written.clients, policies=written.policies),
                   as_of)


def moving_cases(cur, tables: dict[str, pa.Table], since: datetime, as_of: datetime) -> frozenset[str]:
    """The cases whose rows in ``tables["case_sla"]`` (as of ``since``) may differ as of ``as_of``: those with
    a clock still running (``{stops}`` not reached and a deadline), a question open or a pause running at
    ``since``, and those with anything stamped after ``since`` and by ``as_of`` (received, answered,
    resolved, a message, a pause begun or ended), which ``since`` could not see."""
    sla = tables["case_sla"]
    ids = set(sla.filter(running(sla))["case_id"].to_pylist())
    stamped = cur.execute(
        """SELECT case_id FROM cases
           WHERE received_at > $since AND received_at <= $as_of OR first_response_at > $since
             AND first_response_at <= $as_of OR resolved_at > $since AND resolved_at <= $as_of
           UNION SELECT case_id FROM messages WHERE received_at > $since AND received_at <= $as_of
           UNION SELECT case_id FROM pauses WHERE paused_at > $since AND paused_at <= $as_of
                                               OR resumed_at > $since AND resumed_at <= $as_of""",
        {"since": since, "as_of": as_of}).fetchall()
    return frozenset(ids | {case_id for (case_id,) in stamped if case_id is not None})


def running(sla: pa.Table) -> pa.ChunkedArray:
    """Which rows of ``sla`` (``case_sla``) may change with time alone: a clock still running (``{stops}`` not
    reached, and a deadline), a question open or a pause running."""
    moving = pc.or_(pc.greater(sla["questions_open"], 0), sla["waiting_on_client"])
    for target in CASE_TARGETS:
        moving = pc.or_(moving, pc.and_(pc.is_null(sla[target.stops]), pc.is_valid(sla[target.col("due")])))
    return pc.fill_null(moving, False)


def _sliced(table: pa.Table) -> pa.Table:
    """The same rows as slices of ``SLICE_ROWS`` (no copy)."""
    return pa.Table.from_batches(table.to_batches(max_chunksize=SLICE_ROWS), table.schema)


def _replaced(table: pa.Table, case_ids: frozenset[str], rows: pa.Table) -> tuple[pa.Table, pa.Table]:
    """``table`` without the rows of ``case_ids``, and with ``rows``: only the slices holding one of those
    cases are copied; and the rows it took out."""
    ids = pa.array(sorted(case_ids), pa.string())
    hits = pc.is_in(table["case_id"], value_set=ids).combine_chunks()  # (the set of ids hashed once)
    batches, out, start = [], [], 0
    for batch in table.to_batches():
        hit = hits.slice(start, batch.num_rows)
        start += batch.num_rows
        if hit.true_count:
            batches.append(batch.filter(pc.invert(hit)))
            out.append(batch.filter(hit))
        else:
            batches.append(batch)
    batches += rows.select(table.schema.names).cast(table.schema).to_batches()
    return pa.Table.from_batches([b for b in batches if b.num_rows], table.schema), \
        pa.Table.from_batches(out, table.schema)
