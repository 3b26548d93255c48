"""The one read of "% met": decided targets of every metric, counted by metric and whatever else is asked.

A target is decided when it is met or breached; it counts in the period its
deadline falls in. First response and resolution count cases, follow-ups count
client questions (``kb.engine.targets.decided_sql``). The Overview, Response
performance, the Client page, the monthly statement and ``/metrics`` all read
their shares here, so they cannot disagree.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from kb.config import Config
from kb.db.sqltext import quote, where_in
from kb.engine.closings import decided_as_of_sql
from kb.engine.targets import TARGETS, decided_sql
from kb.snapshot import DECIDED_TARGETS
from kb.store import Snapshot, Store

GROUPS = ("tier", "priority", "client_id", "category", "assignee")
GRAINS = ("week", "month")
READS = (DECIDED_TARGETS,)  # what every share is read from, for ``Snapshot.remembered``: the decided targets alone


def met_shares(store: Store, snap: Snapshot, start: datetime, end: datetime, *, by: tuple[str, ...] = (),
               grain: str | None = None, clients: tuple[str, ...] = (), tiers: tuple[str, ...] = ()) -> pd.DataFrame:
    """Per metric (in ``TARGETS`` order), per ``by`` (any of ``GROUPS``) and, with ``grain``, per local week or
    month of the deadline (``period``, a date): ``met``, ``breached``, ``decided`` and ``pct_met`` (None when
    nothing was decided), over deadlines in [``start``, ``end``); only ``clients`` and ``tiers`` when given.
    A month closed as of the snapshot's instant counts the targets its closing kept
    (``kb.engine.closings.decided_as_of_sql``). Remembered by the snapshot (``Snapshot.remembered``)."""
    def compute() -> pd.DataFrame:
        with store.reader(snap, ("case_questions", "case_sla")) as cur:
            return met_shares_on(cur, store.config, start, end, by=by, grain=grain, clients=clients, tiers=tiers,
                                 decided=decided_as_of_sql(cur, store.config, snap.as_of))
    return snap.remembered(("met_shares", start, end, tuple(by), grain, tuple(clients), tuple(tiers)), compute,
                           reads=READS)


def met_shares_on(con, config: Config, start: datetime, end: datetime, *, by: tuple[str, ...] = (),
                  grain: str | None = None, clients: tuple[str, ...] = (), tiers: tuple[str, ...] = (),
                  decided: str | None = None) -> pd.DataFrame:
    """``met_shares`` on a connection where ``case_sla`` and ``case_questions`` are open (the as-of views, or
    a snapshot's tables): the monthly statement is also made where no store is (the mailing job, the
    command line). ``decided``: the rows of ``decided_sql`` to count in place of theirs (a closed month's
    statement counts those its closing kept)."""
    unknown = [g for g in by if g not in GROUPS]
    if unknown or (grain is not None and grain not in GRAINS):
        raise ValueError(f"by must be among {GROUPS} and grain one of {GRAINS}")
    tz = quote(config.calendar.timezone)
    period = [f"CAST(date_trunc('{grain}', timezone({tz}, due)) AS DATE) AS period"] if grain else []
    keys = ["metric", *by, *(["period"] if grain else [])]
    only, only_params = where_in({"client_id": clients, "tier": tiers})
    order = "CASE metric " + " ".join(f"WHEN '{t.metric}' THEN {i}" for i, t in enumerate(TARGETS)) + " END"
    return con.execute(
        f"""
        SELECT {', '.join(keys)},
               count(*) FILTER (WHERE state = 'met') AS met,
               count(*) FILTER (WHERE state = 'breached') AS breached,
               count(*) AS decided,
               100.0 * count(*) FILTER (WHERE state = 'met') / count(*) AS pct_met
        FROM (SELECT *, {', '.join(period) or 'NULL AS period'} FROM ({decided or decided_sql()}) d
              WHERE due >= ? AND due < ? AND {only})
        GROUP BY {', '.join(keys)} ORDER BY {order}, {', '.join(keys[1:]) or '1'}
        """,
        [start, end, *only_params]).fetchdf()


def share_in_words(met: int, decided: int) -> str:
    """"29 of 32 met", or "none decided"."""
    return f"{met:,} of {decided:,} met" if decided else "none decided"


def every_target(shares: pd.DataFrame) -> pd.DataFrame:
    """One period's ``met_shares`` (no ``by``, no ``grain``) with a row for every target, in ``TARGETS`` order:
    ``metric``, ``met``, ``breached``, ``decided`` and ``pct_met``; a target nothing was decided for is 0 of 0."""
    counts = ["met", "breached", "decided"]
    every = pd.DataFrame({"metric": [t.metric for t in TARGETS]}).merge(
        shares[["metric", *counts, "pct_met"]], on="metric", how="left")
    return every.assign(**{column: every[column].fillna(0).astype(int) for column in counts})
