"""Every case's targets and their states as of an instant (rules §3, 4 and policies): ``case_sla``.

One set-based query over all cases. ``base_ctes`` gives the cases that exist at
T (a response or resolution stamped after T has not happened yet; a voided case
was logged in error and never counts) with the rule of each target their
policy and priority give them (``kb/engine/policies.py``). Each per-case target
of the registry (``kb/engine/targets.py``) then adds its clock
(``kb/engine/sla_clock.py``); the per-question target comes from
``case_questions`` (``kb/engine/questions.py``), summarised per case.

``sla_state``, ``first_response_due``, ``business_hours_left`` and
``business_hours_to_response`` are the first response's, as the data contract
and the pages have always named them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kb.config import Config
from kb.db.schema import CATEGORIES, PRIORITIES, TIERS
from kb.db.sqltext import instant, one_of, quote
from kb.engine.business_time import elapsed_us, local_day
from kb.engine.policies import policy_ctes, ruled_select
from kb.engine.sla_clock import clock_ctes, hours_left, hours_paused, hours_taken, target_state
from kb.engine.targets import CASE_TARGETS, FIRST_RESPONSE, NEXT_RESPONSE, STATES, TARGETS, Target


def at_risk_us(config: Config, as_of: datetime) -> int:
    """``at_risk_business_hours`` in force on the local date of T, in microseconds."""
    day = as_of.astimezone(config.calendar.zone).date()
    return int(config.sla_changes.on(day).at_risk_business_hours * 3600 * 1_000_000)


def base_ctes(config: Config, as_of: datetime, targets: tuple[Target, ...],
               cases: Listed | None = None) -> str:
    """CTE definitions (no WITH): ``as_of``, ``clock_now`` (per calendar, the business time elapsed at T),
    the policies' ``rule_spans``, ``existing`` cases and ``ruled``: those cases with the rule of each of
    ``targets``, and their ``case_pauses``. With ``cases`` (case ids, or a ``CasesIn``), only those.

    ``existing`` and ``ruled`` are computed again for each of their readers, not materialised: at a million
    cases, keeping their rows (every column of every case) held 260–350 MB each as long as the query ran, for
    the few columns the pauses and the questions read; computed again, they read only those columns, and the
    query takes as long (1.8 s, peak 0.66 GB against 1.1 GB, at a million cases with three targets)."""
    now = elapsed_us("a.t", "c.cal", "k")
    receipt_day = local_day("c.received_at", "0", "rd")  # in the support calendar's zone
    return f"""
    as_of AS (
        SELECT {instant(as_of)} AS t
    ),
    clock_now AS (
        SELECT c.cal, {now.value} AS cum_us FROM calendars c CROSS JOIN as_of a {now.join}
    ),
    their_contracts AS (
        SELECT * FROM contracts WHERE TRUE {only_clients(cases)}
    ),
    {policy_ctes(config, "their_contracts")},
    existing AS NOT MATERIALIZED (
        SELECT c.case_id, c.client_id, cl.name AS client_name, cl.tier, c.category,
               coalesce(c.priority, 'normal') AS priority, c.subject, c.requester, c.assignee, c.breach_reason,
               c.message_id, c.received_at, {receipt_day.value} AS receipt_day,
               CASE WHEN c.first_response_at <= p.t THEN c.first_response_at END AS first_response_at,
               CASE WHEN c.resolved_at <= p.t THEN c.resolved_at END AS resolved_at
        FROM {cases.relation if isinstance(cases, CasesIn) else "cases"} c JOIN clients cl USING (client_id)
             CROSS JOIN as_of p {receipt_day.join}
        WHERE c.received_at <= p.t AND c.voided_at IS NULL  -- a voided case was logged in error: never counts
          {only(cases, "c.case_id")}
    ),
    ruled AS NOT MATERIALIZED ({ruled_select("existing", targets)}
    ),
    case_pauses AS (
        SELECT * FROM pauses WHERE TRUE {only(cases, "case_id")}
    )"""


@dataclass(frozen=True)
class CasesWhere:
    """In place of case ids: the cases whose own row (the ``cases`` table, and the CTE ``as_of``) meets
    ``condition``."""

    condition: str


@dataclass(frozen=True)
class CasesIn:
    """In place of case ids: the rows of ``cases`` registered on the connection as ``relation``, which the
    queries read in place of the table (``kb.engine.asof`` lists a ``CasesWhere``, or a long list of ids, so)."""

    relation: str


Listed = Sequence[str] | CasesIn  # which cases a query computes: their ids, or a relation of them
Cases = Listed | CasesWhere  # … or a condition, which ``kb.engine.asof`` lists first
UNRESOLVED = CasesWhere("resolved_at IS NULL OR resolved_at > (SELECT t FROM as_of)")  # the queue's


def only(cases: Listed | None, case_id_sql: str) -> str:
    """``AND`` the condition that ``case_id_sql`` is one of ``cases``, if given: the ids, as a list of literals,
    which DuckDB filters the table scan with (a join to a relation of ids would come after the scan), or those
    a ``CasesIn`` lists."""
    if cases is None:
        return ""
    if isinstance(cases, CasesIn):
        return f"AND {case_id_sql} IN (SELECT case_id FROM {cases.relation})"
    return f"AND {case_id_sql} IN ({', '.join(quote(case_id) for case_id in cases) or 'NULL'})"


def only_clients(cases: Listed | None) -> str:
    """``AND`` the condition that ``client_id`` is the client of one of ``cases``, if given."""
    if isinstance(cases, CasesIn):
        return f"AND client_id IN (SELECT client_id FROM {cases.relation})"
    return f"AND client_id IN (SELECT client_id FROM cases WHERE TRUE {only(cases, 'case_id')})" if cases else ""


def calendar_name(config: Config, cal_sql: str) -> str:
    """The name of the calendar whose key in the lookup tables is ``cal_sql`` (``support``, ``24x7``)."""
    names = " ".join(f"WHEN {cal} THEN '{name}'" for cal, name in enumerate(config.calendar_names))
    return f"CASE {cal_sql} {names} END"


def _clocks(targets: tuple[Target, ...]) -> tuple[str, str, str]:
    """The clock CTEs of ``targets``, each on the last one's rows from ``ruled`` (``kb.engine.sla_clock``); the
    name of the last; and the joins giving each target's business time elapsed at T on its calendar, as
    ``n_<metric>.cum_us``, to a row ``r`` of it."""
    ctes, last = [], "ruled"
    for target in targets:
        target_ctes, last = clock_ctes(target, last, "ruled")
        ctes.append(target_ctes)
    now_joins = " ".join(f"LEFT JOIN clock_now n_{t.metric} ON n_{t.metric}.cal = r.{t.col('cal')}" for t in targets)
    return ",".join(ctes), last, now_joins


def deadlines_sql(config: Config, as_of: datetime, cases: Listed,
                  targets: tuple[Target, ...] = (FIRST_RESPONSE,)) -> str:
    """SELECT of what ``case_sla`` says of ``targets`` (targets of the case, default the first response) for the
    cases ``cases`` as of ``as_of``, without the other targets (a quicker query, for the confirmation of a case
    just logged, and a month's closing): ``case_id``, ``client_id``, ``tier``, ``client_name``, ``policy_id``,
    ``category``, ``received_at``, and for each target the column that stops it (``first_response_at``,
    ``resolved_at``) and its ``due``, ``state``, ``kind``, ``amount``, ``calendar`` and ``by_contract``."""
    if any(t.per != "case" for t in targets):
        raise ValueError("deadlines_sql computes targets of the case, not of its questions")
    clocks, last, now_joins = _clocks(targets)
    risk = at_risk_us(config, as_of)
    columns = ", ".join(
        f"""r.{t.stops}, r.{t.col('due')},
           {target_state(t, "r", "a.t", f"n_{t.metric}.cum_us", risk)} AS {t.col('state')},
           r.{t.col('kind')}, r.{t.col('amount')},
           {calendar_name(config, 'r.' + t.col('cal'))} AS {t.col('calendar')}, r.{t.col('by_contract')}"""
        for t in targets)
    return f"""
    WITH {base_ctes(config, as_of, targets, cases)},
    {clocks}
    SELECT r.case_id, r.client_id, r.tier, r.client_name, r.policy_id, r.category, r.received_at, {columns}
    FROM {last} r CROSS JOIN as_of a {now_joins}
    """


def _running_due(target: Target, row: str) -> str:
    """The target's deadline while its clock runs (not stopped, not paused), else null."""
    return (f"CASE WHEN {row}.{target.col('state')} IN ('pending', 'at_risk', 'breached') "
            f"AND {row}.{target.stops} IS NULL THEN {row}.{target.col('due')} END")


def case_sla_sql(config: Config, as_of: datetime, cases: Listed | None = None) -> str:
    """SELECT of one row per case that exists at ``as_of`` (of the ids ``cases`` only, if given), with every
    target's deadline and state (and a pausable one's business hours paused), the latest client question's,
    and the next thing due of any target. Reads ``case_questions``."""
    clocks, last, now_joins = _clocks(CASE_TARGETS)
    risk = at_risk_us(config, as_of)
    states = []
    for target in CASE_TARGETS:
        now = f"n_{target.metric}.cum_us"
        states.append(f"""{target_state(target, "r", "a.t", now, risk)} AS {target.col('state')},
               {hours_left(target, "r", now)} AS {target.col('hours_left')},
               {hours_taken(target, "r")} AS {target.col('hours_taken')}""")
        if target.pausable:
            states.append(f"{hours_paused(target, 'r', now)} AS {target.col('hours_paused')}")
    columns = ("due", "state", "hours_left", "hours_taken", "kind", "amount", "by_contract")
    targets_out = ", ".join(
        [f"s.{t.col(c)}" for t in CASE_TARGETS for c in columns]
        + [f"s.{t.col('hours_paused')}" for t in CASE_TARGETS if t.pausable]
        + [f"{calendar_name(config, 's.' + t.col('cal'))} AS {t.col('calendar')}" for t in CASE_TARGETS])
    nr = NEXT_RESPONSE
    running = [(f"'{t.metric}'", _running_due(t, "s"), f"s.{t.col('state')}", f"s.{t.col('hours_left')}")
               for t in CASE_TARGETS]
    running.append((f"'{nr.metric}'", "s.next_response_open_due", "s.next_response_open_state",
                    "s.next_response_open_hours_left"))
    next_due = f"least({', '.join(due for _, due, _, _ in running)})"

    def of_next_due(position: int) -> str:
        """The metric (0), state (2) or hours left (3) of the target whose deadline is ``next_due``."""
        return "CASE " + " ".join(f"WHEN {choice[1]} = {next_due} THEN {choice[position]}"
                                  for choice in running) + " END"
    return f"""
    WITH {base_ctes(config, as_of, CASE_TARGETS, cases)},
    {clocks},
    states AS (
        SELECT r.*, {", ".join(states)}
        FROM {last} r CROSS JOIN as_of a {now_joins}
    ),
    asked AS (
        SELECT case_id, count(*) FILTER (WHERE responded_at IS NULL) AS questions_open,
               arg_max({nr.col('due')}, asked_at) AS {nr.col('due')},
               arg_max({nr.col('state')}, asked_at) AS {nr.col('state')},
               min({nr.col('due')}) FILTER (WHERE responded_at IS NULL) AS next_response_open_due,
               arg_min({nr.col('state')}, {nr.col('due')}) FILTER (WHERE responded_at IS NULL)
                   AS next_response_open_state,
               arg_min({nr.col('hours_left')}, {nr.col('due')}) FILTER (WHERE responded_at IS NULL)
                   AS next_response_open_hours_left
        FROM case_questions GROUP BY case_id
    ),
    paused_now AS (
        SELECT DISTINCT p.case_id FROM case_pauses p, as_of a
        WHERE p.paused_at <= a.t AND (p.resumed_at IS NULL OR p.resumed_at > a.t)
    ),
    summed AS (
        SELECT r.*, coalesce(q.questions_open, 0) AS questions_open, q.{nr.col('due')}, q.{nr.col('state')},
               q.next_response_open_due, q.next_response_open_state, q.next_response_open_hours_left,
               w.case_id IS NOT NULL AND r.resolved_at IS NULL AS waiting_on_client
        FROM states r LEFT JOIN asked q ON q.case_id = r.case_id LEFT JOIN paused_now w ON w.case_id = r.case_id
    )
    -- a question's state is text where case_questions is read from Arrow (kb.engine.asof): the ENUM again
    SELECT s.case_id, s.client_id, s.client_name, {case_kinds("s")}, s.policy_id, s.subject,
           s.requester, s.assignee, s.breach_reason, s.message_id, s.received_at, s.first_response_at,
           s.resolved_at, s.{FIRST_RESPONSE.col('state')} AS sla_state,
           s.{FIRST_RESPONSE.col('hours_left')} AS business_hours_left,
           s.{FIRST_RESPONSE.col('hours_taken')} AS business_hours_to_response,
           {targets_out},
           s.{nr.col('due')}, {one_of("s." + nr.col('state'), STATES)} AS {nr.col('state')}, s.questions_open,
           s.next_response_open_due,
           s.waiting_on_client,
           {next_due} AS next_due,
           {one_of(of_next_due(0), [t.metric for t in TARGETS])} AS next_due_metric,
           {one_of(of_next_due(2), STATES)} AS next_due_state,
           {of_next_due(3)} AS next_due_hours_left
    FROM summed s
    """


def case_kinds(row: str) -> str:
    """The ``tier``, ``category`` and ``priority`` columns of ``row``, each one of its few values
    (``kb.db.sqltext.one_of``)."""
    return (f"{one_of(row + '.tier', TIERS)} AS tier, {one_of(row + '.category', CATEGORIES)} AS category, "
            f"{one_of(row + '.priority', PRIORITIES)} AS priority")
