"""The as-of views every report and page reads: ``case_questions``, ``case_sla``, ``env_uptime``, ``contract_refunds``.

``open_views(con, config, as_of)`` defines them as temporary views on one
connection or cursor, for one instant T; callers then write plain SQL against
them (and aggregate there, before anything reaches pandas or a chart). The
uptime and credits of a month closed at T are the rows frozen when it was
closed (``kb.engine.closings``); ``env_uptime_live`` and ``contract_refunds_live``
compute every month.

``case_rows`` computes the same rows for a few cases only: what a snapshot
takes in after a write that touched them (``kb.snapshot``); ``deadlines``
some targets alone (the first response, the resolution), for the confirmation of a case just logged.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime

import pyarrow as pa

from kb.config import Config
from kb.db.sqltext import instant
from kb.engine.calendar import attach_calendar
from kb.engine.case_sla import Cases, CasesIn, CasesWhere, Listed, case_sla_sql, deadlines_sql
from kb.engine.closings import live_view, open_frozen_view
from kb.engine.questions import case_questions_sql
from kb.engine.refunds import contract_refunds_sql
from kb.engine.targets import FIRST_RESPONSE, Target
from kb.engine.uptime import env_uptime_sql


def open_views(con, config: Config, as_of: datetime, without: Collection[str] = ()) -> None:
    """Define the as-of views on ``con`` for the instant ``as_of``; not those named in ``without``, which the
    caller has registered already (a view is bound to what it reads when defined: binding the whole query of
    one not needed costs a few hundredths of a second)."""
    attach_calendar(con, config, as_of)
    literal = instant(as_of)
    for name, sql in (("case_questions", case_questions_sql), ("case_sla", case_sla_sql)):
        if name not in without:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql(config, as_of)}")
    for name, sql in (("env_uptime", env_uptime_sql), ("contract_refunds", contract_refunds_sql)):
        if name not in without:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {live_view(name)} AS {sql(config, literal)}")
            open_frozen_view(con, name, literal)


def case_rows(con, config: Config, as_of: datetime, case_ids: Cases) -> dict[str, pa.Table]:
    """``case_questions`` and ``case_sla`` of the cases ``case_ids`` only (or ``UNRESOLVED``: those not resolved
    at ``as_of``), as of ``as_of`` (no row for one that does not exist then, or was voided): what those views
    give for them, at the cost of their rows. Registers those ``case_questions`` on ``con``, in place of any."""
    attach_calendar(con, config, as_of)
    with _listed(con, as_of, case_ids) as listed:
        questions = _rows_of(con, case_questions_sql(config, as_of, listed))
        con.execute("DROP VIEW IF EXISTS case_questions")
        con.register("case_questions", questions)
        return {"case_questions": questions, "case_sla": _rows_of(con, case_sla_sql(config, as_of, listed))}


def every_case_rows(con, config: Config, as_of: datetime) -> dict[str, pa.Table]:
    """``case_questions`` and ``case_sla`` of every case as of ``as_of``, into Arrow, each computed once: the
    questions are registered on ``con`` in place of their view, which ``case_sla`` reads (seconds, at a
    million cases)."""
    open_views(con, config, as_of)
    questions = con.sql("SELECT * FROM case_questions").to_arrow_table()
    con.execute("DROP VIEW IF EXISTS case_questions")
    con.register("case_questions", questions)
    return {"case_questions": questions, "case_sla": con.sql("SELECT * FROM case_sla").to_arrow_table()}


def deadlines(con, config: Config, as_of: datetime, case_ids: Cases,
              targets: tuple[Target, ...] = (FIRST_RESPONSE,)) -> pa.Table:
    """The deadline, state and rule of ``targets`` (default the first response) of the cases ``case_ids`` as
    of ``as_of`` (``kb.engine.case_sla.deadlines_sql``)."""
    attach_calendar(con, config, as_of)
    with _listed(con, as_of, case_ids) as listed:
        return _rows_of(con, deadlines_sql(config, as_of, listed, targets))


def _rows_of(con, sql: str) -> pa.Table:
    """The rows of one of the engine's queries for some cases, as Arrow, the query bound once: a relation
    (``con.sql``) binds it to learn its columns and again to run it, 35–55 ms of the engine's large queries
    for one case, as much as the query itself. Arrow from ``execute`` copies the rows once more, and DuckDB
    warns of it: for the rows of some cases, that costs nothing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
        return con.execute(sql).to_arrow_table()


CHOSEN = "chosen_cases"
MOST_LITERALS = 500  # more ids than this are read from a relation, not written into the query


@contextmanager
def _listed(con, as_of: datetime, cases: Cases) -> Iterator[Listed]:
    """Inside: ``cases``, with a ``CasesWhere`` or a long list of ids turned into the rows of those cases,
    registered on ``con`` as ``CHOSEN`` (until the block ends): the queries then read a relation whose size
    DuckDB knows, in place of the million rows of ``cases``. Given the condition, it guesses the size and
    builds the semi join on the wrong side (0.3 s over three million messages for the Queue's open cases);
    given ten thousand ids, it parses them."""
    if isinstance(cases, CasesWhere):
        chosen = con.sql(f"WITH as_of AS (SELECT {instant(as_of)} AS t) "
                         f"SELECT * FROM cases WHERE {cases.condition}").to_arrow_table()
    elif not isinstance(cases, CasesIn) and len(cases) > MOST_LITERALS:
        con.register(CHOSEN, pa.table({"case_id": pa.array(list(cases), pa.string())}))
        try:
            chosen = con.sql(f"SELECT * FROM cases WHERE case_id IN (SELECT case_id FROM {CHOSEN})").to_arrow_table()
        finally:
            con.unregister(CHOSEN)
    else:
        yield cases
        return
    con.register(CHOSEN, chosen)
    try:
        yield CasesIn(CHOSEN)
    finally:
        con.unregister(CHOSEN)
