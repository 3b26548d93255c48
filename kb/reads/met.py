"""The one read of "% met": decided targets of every metric, counted by metric and whatever else is asked.

A target is decided when it is met or breached; it counts in the period its
deadline falls in. First response and resolution count cases, follow-ups count
client questions (``kb.engine.targets.decided_sql``). The Overview, Response
performance, the Client page, the monthly statement and ``/metrics`` all read
their shares here, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
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


Shape = tuple[tuple[str, ...], str | None]  # what a share is counted by: ``by`` (of ``GROUPS``) and ``grain``


def met_shares(store: Store, snap: Snapshot, start: datetime, end: datetime, *, by: tuple[str, ...] = (),
               grain: str | None = None, clients: tuple[str, ...] = (), tiers: tuple[str, ...] = ()) -> pd.DataFrame:
    """Per metric (in ``TARGETS`` order), per ``by`` (any of ``GROUPS``) and, with ``grain``, per local week or
    month of the deadline (``period``, a date): ``met``, ``breached``, ``decided`` and ``pct_met`` (None when
    nothing was decided), over deadlines in [``start``, ``end``); only ``clients`` and ``tiers`` when given.
    A month closed as of the snapshot's instant counts the targets its closing kept
    (``kb.engine.closings.decided_as_of_sql``). Remembered by the snapshot (``Snapshot.remembered``)."""
    return met_shares_of(store, snap, start, end, ((tuple(by), grain),), clients=clients, tiers=tiers)[0]


def met_shares_of(store: Store, snap: Snapshot, start: datetime, end: datetime, shapes: Sequence[Shape], *,
                  clients: tuple[str, ...] = (), tiers: tuple[str, ...] = ()) -> list[pd.DataFrame]:
    """``met_shares`` of one period counted in each of ``shapes``, each remembered as ``met_shares`` remembers
    it: a page that shows several asks for them all at once, and the decided targets are read in one pass
    (``met_share_sets_on``) rather than once for each."""
    frames: list[pd.DataFrame] = []

    def frame(index: int):
        def read() -> pd.DataFrame:
            if not frames:
                with store.reader(snap, ("case_questions", "case_sla")) as cur:
                    frames.extend(met_share_sets_on(cur, store.config, start, end, shapes, clients=clients,
                                                    tiers=tiers,
                                                    decided=decided_as_of_sql(cur, store.config, snap.as_of)))
            return frames[index]
        return read
    return [snap.remembered(("met_shares", start, end, tuple(by), grain, tuple(clients), tuple(tiers)), frame(i),
                            reads=READS) for i, (by, grain) in enumerate(shapes)]


def met_shares_on(con, config: Config, start: datetime, end: datetime, *, by: tuple[str, ...] = (),
                  grain: str | None = None, clients: tuple[str, ...] = (), tiers: tuple[str, ...] = (),
                  decided: str | None = None) -> pd.DataFrame:
    """``met_shares`` on a connection where ``case_sla`` and ``case_questions`` are open (the as-of views, or
    a snapshot's tables): the monthly statement is also made where no store is (the mailing job, the
    command line). ``decided``: the rows of ``decided_sql`` to count in place of theirs (a closed month's
    statement counts those its closing kept)."""
    return met_share_sets_on(con, config, start, end, ((tuple(by), grain),), clients=clients, tiers=tiers,
                             decided=decided)[0]


def met_share_sets_on(con, config: Config, start: datetime, end: datetime, shapes: Sequence[Shape], *,
                      clients: tuple[str, ...] = (), tiers: tuple[str, ...] = (),
                      decided: str | None = None) -> list[pd.DataFrame]:
    """``met_shares_on`` counted in each of ``shapes``, in one query (one ``GROUPING SETS``)."""
    if any(g not in GROUPS for by, _ in shapes for g in by) or any(
            grain is not None and grain not in GRAINS for _, grain in shapes):
        raise ValueError(f"by must be among {GROUPS} and grain one of {GRAINS}")
    tz = quote(config.calendar.timezone)
    grains = sorted({grain for _, grain in shapes if grain})
    periods = [f"CAST(date_trunc('{g}', timezone({tz}, due)) AS DATE) AS period_{g}" for g in grains]

    def keys_of(by: tuple[str, ...], grain: str | None) -> list[str]:
        return ["metric", *by, *([f"period_{grain}"] if grain else [])]
    columns = list(dict.fromkeys(key for shape in shapes for key in keys_of(*shape)))
    # a set's rows: grouping() has a 1 for each key it is not counted by (two shapes of the same keys, one set)
    masks = [sum(1 << (len(columns) - 1 - i) for i, column in enumerate(columns) if column not in keys_of(*shape))
             for shape in shapes]
    sets = ", ".join(f"({', '.join(keys_of(*shapes[masks.index(mask)]))})" for mask in dict.fromkeys(masks))
    only, only_params = where_in({"client_id": clients, "tier": tiers})
    rows = con.execute(
        f"""
        SELECT {', '.join(columns)}, grouping({', '.join(columns)}) AS grouped,
               count(*) FILTER (WHERE state = 'met') AS met,
               count(*) FILTER (WHERE state = 'breached') AS breached,
               count(*) AS decided,
               100.0 * count(*) FILTER (WHERE state = 'met') / count(*) AS pct_met
        FROM (SELECT *, {', '.join(periods) or 'NULL AS no_period'} FROM ({decided or decided_sql()}) d
              WHERE due >= ? AND due < ? AND {only})
        GROUP BY GROUPING SETS ({sets})
        """,
        [start, end, *only_params]).fetchdf()
    order = {t.metric: i for i, t in enumerate(TARGETS)}
    frames = []
    for (by, grain), mask in zip(shapes, masks, strict=True):  # in TARGETS order, then by the shape's own keys
        keys = keys_of(by, grain)
        frame = rows[rows.grouped == mask][[*keys, "met", "breached", "decided", "pct_met"]]
        frame = (frame.assign(target_order=frame.metric.map(order))
                 .sort_values(["target_order", *keys[1:]], kind="stable", na_position="last")
                 .drop(columns="target_order").reset_index(drop=True))
        frames.append(frame.rename(columns={f"period_{grain}": "period"}))
    return frames


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
