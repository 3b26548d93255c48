"""The one check every way in makes before it writes: does the write touch a closed month (rules §13)?

A month closed by a lead keeps its uptime, credits and statements as they were computed then, so nothing may
change what it holds until an admin reopens it. A write names the **spans** of time it changes, and
``ClosedMonths.hit`` says which closed month (if any) one of them falls in:

* an instant (a case received, a response, a resolution, a message, a wait begun or ended on the Queue) is a
  span of no length;
* an incident, or an imported wait on the client, is the span from its start to its end, and one still going
  reaches every later month;
* ending an ongoing incident changes the time from its new end on: the span from that end, with no end.

Adding a row names its spans; correcting or voiding one names its spans as stored (and as corrected), so a
case received in a closed month cannot be moved, voided or given another client, and an incident overlapping
one cannot be voided or shortened into it. ``staged_problems`` runs the check over rows staged for the intake
rules (a CSV import, a form, a correction, mail): one problem per line and column that falls in a closed
month, each naming it. Months are the support zone's calendar months, as everywhere else.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime

from kb.config import Config
from kb.db.sqltext import quote
from kb.engine.periods import month_span
from kb.intake.validation import KEYS, TABLES, cell, utc_column

Span = tuple[datetime, datetime | None]  # (from, to): an instant is (t, t); to None: still going

# The spans that place a stored or staged row in months: (the column a problem names, the column the span starts
# at, the column it ends at; empty: still going). A row without the start (no response yet) touches nothing.
ROW_SPANS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "cases": (("received_at", "received_at", "received_at"),
              ("first_response_at", "first_response_at", "first_response_at"),
              ("resolved_at", "resolved_at", "resolved_at")),
    "incidents": (("started_at", "started_at", "ended_at"),),
    "pauses": (("paused_at", "paused_at", "resumed_at"),),  # a wait moves the resolution clock of every month it spans
    "messages": (("at", "at", "at"),),
}


def refusal(month: str) -> str:
    """Why a write into ``month`` ('YYYY-MM') is refused."""
    return f"{month} is closed: its uptime, credits and statements are final; an admin may reopen it with a reason"


@dataclass(frozen=True)
class ClosedMonths:
    """The months closed now, as instants in the support zone: ``months[i]`` runs from ``starts[i]`` up to
    ``ends[i]``, in order."""

    months: tuple[str, ...] = ()
    starts: tuple[datetime, ...] = ()
    ends: tuple[datetime, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.months)

    def hit(self, *spans: Span) -> str | None:
        """The first closed month one of ``spans`` falls in, else None. A span touches a month when it starts
        before the month ends and ends after the month starts (an instant: lies in it)."""
        for start, end in spans:
            first = bisect_right(self.ends, start)  # the first month that ends after the span starts
            if first < len(self.months) and (
                    end is None or end > self.starts[first] or start >= self.starts[first]):
                return self.months[first]
        return None


def closed_months(con, config: Config) -> ClosedMonths:
    """The months whose latest closing has not been reopened."""
    months = [row[0] for row in con.execute(
        "SELECT month FROM month_closings WHERE reopened_at IS NULL ORDER BY month").fetchall()]
    spans = [month_span(config.calendar, month) for month in months]
    return ClosedMonths(tuple(months), tuple(start for start, _ in spans), tuple(end for _, end in spans))


def closed_month_hit(con, config: Config, *spans: Span) -> str | None:
    """The first closed month one of ``spans`` falls in, else None."""
    return closed_months(con, config).hit(*spans)


def row_spans(table: str, row: dict) -> list[Span]:
    """The spans of a stored row (a dict of its columns) of ``cases`` or ``incidents``."""
    return [(row[start], row[end]) for _, start, end in ROW_SPANS[table] if row[start] is not None]


def staged_problems(con, config: Config, table: str, staging: str, *, updating: bool) -> list[tuple[int, str, str]]:
    """(line, column, reason) for each staged row of ``staging`` that would change a closed month: by its own
    instants, and (``updating``) by those of the row it replaces. Only instants that were read are looked at:
    a cell that breaks a rule is reported by that rule."""
    if table not in ROW_SPANS:
        return []
    closed = closed_months(con, config)
    if not closed:
        return []
    parts = []
    for column, start, end in ROW_SPANS[table]:
        parts.append(f"""SELECT line, {quote(column)} AS column_name, CAST("{utc_column(start)}" AS TIMESTAMPTZ) AS s,
                                CAST("{utc_column(end)}" AS TIMESTAMPTZ) AS e FROM {staging}""")
        if updating:  # (cases and incidents: one id each)
            key = next(c for c in TABLES[table] if c.name == KEYS[table][0])
            parts.append(f"""SELECT staged.line, {quote(column)}, stored.{start}, stored.{end}
                             FROM (SELECT line, {cell(key)} AS row_key FROM {staging}) staged
                             JOIN {table} stored ON stored.{key.name} = staged.row_key""")
    spans = con.execute(  # only those within the closed months' reach: an import of a million rows is read once
        f"""SELECT DISTINCT * FROM ({' UNION ALL '.join(parts)})
            WHERE s < $until AND coalesce(e, 'infinity'::TIMESTAMPTZ) >= $since ORDER BY line, column_name""",
        {"since": closed.starts[0], "until": closed.ends[-1]}).fetchall()
    problems = {}
    for line, column, start, end in spans:
        month = closed.hit((start, end))
        if month and (line, column) not in problems:
            problems[line, column] = refusal(month)
    return [(line, column, reason) for (line, column), reason in problems.items()]

