"""Closed months as of an instant (rules §13): which closing of each month is in force at T, and the uptime and
credits of a closed month read from what was frozen when it was closed.

A closing is in force at T from its ``closed_at`` until its ``reopened_at`` (if ever), so reading as of an
instant before a month was closed, or while it was reopened, computes it as any open month; reading as of a
later instant gets the rows of the version closed then, older versions included.

``env_uptime`` and ``contract_refunds`` are each the computed rows (``env_uptime_live``,
``contract_refunds_live``) of the months not closed at T, and the frozen rows (``closed_uptime``,
``closed_refunds``) of the version in force of those that are: the same columns, so every reader (pages,
exports, ``/metrics``, statements) follows without knowing. The decided targets that "% met" counts are read
the same way (``decided_as_of_sql``), and every target with a deadline (``dated_as_of_sql``): those due in a
month closed at T are the ones its closing kept (``closed_targets``).
"""

from __future__ import annotations

from datetime import datetime

from kb.config import Config
from kb.db.sqltext import instant, quote
from kb.engine.periods import month_span
from kb.engine.targets import DECIDED, TARGET_ROW, TARGETS, Target, dated_sql, decided_sql

FROZEN = {"env_uptime": "closed_uptime", "contract_refunds": "closed_refunds"}


def live_view(view: str) -> str:
    """The name of the view that computes ``view``'s rows whether or not their month is closed."""
    return f"{view}_live"


def closings_sql(as_of_literal: str) -> str:
    """SELECT of (month, version, closed_at, closed_by): each month closed at T, with the version in force (the
    latest, should clocks set for replays make two of them look in force at once)."""
    return f"""SELECT month, version, closed_at, closed_by FROM month_closings
               WHERE closed_at <= {as_of_literal} AND (reopened_at IS NULL OR reopened_at > {as_of_literal})
               QUALIFY row_number() OVER (PARTITION BY month ORDER BY version DESC) = 1"""


def frozen_or_live_sql(view: str, as_of_literal: str) -> str:
    """SELECT of ``view``'s rows as of T: computed for the months open at T, as frozen for the months closed."""
    frozen = FROZEN[view]
    return f"""
    WITH closed AS ({closings_sql(as_of_literal)})
    SELECT * FROM {live_view(view)} WHERE month NOT IN (SELECT month FROM closed)
    UNION ALL
    SELECT f.* EXCLUDE (version) FROM {frozen} f JOIN closed c USING (month, version)
    """


def open_frozen_view(con, view: str, as_of_literal: str) -> None:
    """Define ``view`` (``env_uptime`` or ``contract_refunds``) on ``con`` over its live view, opened already."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {frozen_or_live_sql(view, as_of_literal)}")


def decided_as_of_sql(con, config: Config, as_of: datetime) -> str | None:
    """``kb.engine.targets.decided_sql`` as of T with the targets due in each month closed at T read from what
    its closing kept; None when no closing in force at T kept them (``decided_sql`` itself, then: a closing
    made before closings kept targets keeps none). A target its closing kept is never counted again where its
    deadline falls now (a rule edited in place since may have moved it into another month)."""
    return _kept_or_live(con, config, as_of, decided_sql(), f"{TARGET_ROW}, started_at, due, state",
                         f"state IN {DECIDED}")


def dated_as_of_sql(con, config: Config, as_of: datetime, targets: tuple[Target, ...] = TARGETS) -> str | None:
    """``kb.engine.targets.dated_sql`` (of ``targets``) as of T, the months closed at T read from what their
    closings kept, as ``decided_as_of_sql`` reads them; None when no closing in force at T kept them. What a
    statement of an open month lists, and Response performance's breached targets."""
    metrics = ", ".join(quote(t.metric) for t in targets)
    return _kept_or_live(con, config, as_of, dated_sql(targets=targets),
                         f"{TARGET_ROW}, subject, started_at, due, stopped_at, state", f"metric IN ({metrics})")


def _kept_closings(con, config: Config, as_of: datetime) -> tuple[list[tuple[datetime, datetime]], list[str]]:
    closed = con.execute(f"""SELECT k.month, k.version FROM ({closings_sql(instant(as_of))}) k
                             JOIN month_closings m USING (month, version) WHERE m.targets_kept
                             ORDER BY k.month""").fetchall()
    spans, months = [], []
    for month, version in closed:  # consecutive closed months as one span of instants
        start, end = month_span(config.calendar, month)
        if spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
        months.append(f"({quote(month)}, {int(version)})")
    return spans, months


def _kept_or_live(con, config: Config, as_of: datetime, live: str, columns: str, kept_where: str) -> str | None:
    """The rows of ``live`` (``metric`` first, then ``columns``) due outside the months closed at T and not kept
    by their closings, and the rows those closings kept (meeting ``kept_where``); None when none kept any."""
    spans, months = _kept_closings(con, config, as_of)
    if not spans:
        return None
    kept = f"closed_targets JOIN (VALUES {', '.join(months)}) closing(month, version) USING (month, version)"
    open_months = " AND ".join(f"NOT (due >= {instant(start)} AND due < {instant(end)})" for start, end in spans)
    return f"""SELECT d.* FROM ({live}) d
               LEFT JOIN (SELECT metric, case_id, started_at FROM {kept}) k
                 ON k.metric = d.metric AND k.case_id = d.case_id AND k.started_at = d.started_at
               WHERE {open_months} AND k.case_id IS NULL
               UNION ALL
               SELECT metric, {columns} FROM {kept} WHERE {kept_where}"""
