"""Follow-up questions and their responses as of an instant (rules: next response): ``case_questions``.

Every client message that arrives after the team's first response is a question
of its own, due its ``next_response`` target after it arrives, and answered by
the first team message at or after it (met when that is at or before the due
instant). Messages come from mail (non-automatic ones; a team message nothing
vouches for counts for nothing), imports and the Queue's "record a reply".

Which team message answers each client message is stored with the messages
(``answered_at``, kept by every write of them: ``kb/db/answers.py``), so one
join of the client messages to their cases makes every question, with no loop
per case or per message and no sort of the messages.
"""

from __future__ import annotations

from datetime import datetime

from kb.config import Config
from kb.db.answers import ASKS_OR_ANSWERS
from kb.db.sqltext import instant
from kb.engine.case_sla import Listed, at_risk_us, base_ctes, calendar_name, case_kinds, only
from kb.engine.sla_clock import clock_ctes, hours_left, target_state
from kb.engine.targets import NEXT_RESPONSE


def case_questions_sql(config: Config, as_of: datetime, cases: Listed | None = None) -> str:
    """SELECT of one row per client question asked by ``as_of`` (of the case ids ``cases`` only, if
    given): the case, ``asked_at``, ``responded_at``
    and the target's ``next_response_due``, ``_state``, ``_hours_left`` and ``_calendar`` (the name of the
    calendar its hours are counted on)."""
    target = NEXT_RESPONSE
    clock, last = clock_ctes(target, "asked", "ruled")
    now = "n.cum_us"
    return f"""
    WITH {base_ctes(config, as_of, (target,), cases)},
    asked AS (  -- a voided case's or a later case's messages find no case in ``ruled``
        SELECT r.*, m.received_at AS asked_at,
               CASE WHEN m.answered_at <= {instant(as_of)} THEN m.answered_at END AS responded_at
        FROM messages m JOIN ruled r ON r.case_id = m.case_id
        WHERE NOT m.is_team AND {ASKS_OR_ANSWERS} AND m.received_at <= {instant(as_of)}
          AND m.received_at > r.first_response_at {only(cases, "m.case_id")}
    ),
    {clock}
    SELECT q.case_id, q.client_id, q.client_name, {case_kinds("q")}, q.policy_id, q.subject,
           q.assignee, q.asked_at, q.responded_at, q.{target.col('due')},
           {target_state(target, "q", "a.t", now, at_risk_us(config, as_of))} AS {target.col('state')},
           {hours_left(target, "q", now)} AS {target.col('hours_left')},
           {calendar_name(config, 'q.' + target.col('cal'))} AS {target.col('calendar')}
    FROM {last} q CROSS JOIN as_of a LEFT JOIN clock_now n ON n.cal = q.{target.col('cal')}
    """
