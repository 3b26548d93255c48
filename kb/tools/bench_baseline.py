"""The per-row Python baseline of ``python -m kb bench``: the deadlines and states of a sample of cases computed
one at a time with ``businesstimedelta`` (the usual way without SQL), timed and projected to every case, and
checked against the SQL's answers. See ``kb/tools/bench.py`` and ``docs/performance.md``.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from pathlib import Path

from kb.config import Config


def measure_baseline(db: Path, config: Config, sample: int, total: int) -> dict:
    """Deadlines and states of a sample of cases on their tier's policy (what ``[sla]`` says), one row at a
    time in Python with ``businesstimedelta`` (the usual way to do it), projected to every case; and how many
    agree with the SQL."""
    import businesstimedelta as btd
    import pytz

    from kb.db import connection
    from kb.engine.asof import open_views
    from kb.engine.calendar import holiday_dates
    from kb.timestamps import now_utc

    cal, sla = config.calendar, config.sla
    as_of = now_utc()
    con = connection.connect(db)
    try:
        cur = connection.cursor(con)
        open_views(cur, config, as_of)
        every = max(1, total // sample)
        picked = cur.execute(
            f"""SELECT c.case_id, cl.tier, c.category, c.client_id, c.received_at, c.first_response_at,
                       s.first_response_due, s.sla_state
                FROM (SELECT *, row_number() OVER (ORDER BY case_id) AS n FROM cases) c
                JOIN clients cl USING (client_id) JOIN case_sla s USING (case_id)
                WHERE n % {every} = 0 AND s.policy_id = cl.tier  -- the baseline knows [sla]'s tier rules only
                LIMIT {sample}""").fetchall()
        contracts = cur.execute("SELECT client_id, starts_on, ends_on, response_business_days FROM contracts "
                                "WHERE response_business_days IS NOT NULL").fetchall()
        first_year = min(p[4] for p in picked).year - 1
        cur.close()
    finally:
        con.close()

    zone = pytz.timezone(cal.timezone)
    closed = holiday_dates(cal, range(first_year, as_of.year + 3))
    working = [d for d in range(7) if d not in cal.weekend]
    rules = btd.Rules([btd.WorkDayRule(start_time=cal.opens, end_time=cal.closes, working_days=working, tz=zone),
                       btd.HolidayRule(sorted(closed), tz=zone)])
    by_client: dict[str, list] = {}
    for client_id, starts, ends, days in contracts:
        by_client.setdefault(client_id, []).append((starts, ends or date(9999, 12, 31), days))
    day_hours = cal.business_day_seconds / 3600
    at_risk = timedelta(hours=float(sla.at_risk_business_hours))

    def is_open_day(day: date) -> bool:
        return day in cal.working_days or (day.weekday() not in cal.weekend and day not in closed)

    def deadline_and_state(tier, category, client_id, received, responded):
        local_day = received.astimezone(zone).date()
        if tier == "free" and category == "general_coding":
            return None, "no_sla"
        if tier == "free":
            day = local_day + timedelta(days=1)
            while not is_open_day(day):
                day += timedelta(days=1)
            due = zone.localize(datetime.combine(day, cal.closes))
        else:
            days = min((n for s, e, n in by_client.get(client_id, ()) if s <= local_day <= e), default=None)
            if days is None:
                days = sla.enterprise_response_business_days if tier == "enterprise" \
                    else sla.custom_response_business_days
            due = received + btd.BusinessTimeDelta(rules, hours=days * day_hours)
        responded = responded if responded is not None and responded <= as_of else None
        if responded is not None:
            return due, "met" if responded <= due else "breached"
        if as_of > due:
            return due, "breached"
        left = rules.difference(as_of, due).timedelta
        return due, "at_risk" if left <= at_risk else "pending"

    begin = time.perf_counter()
    computed = [deadline_and_state(tier, category, client_id, received, responded)
                for _, tier, category, client_id, received, responded, _, _ in picked]
    per_row = (time.perf_counter() - begin) / len(picked)
    agree = sum(1 for (due, state), row in zip(computed, picked, strict=True)
                if due == row[6] and state == row[7])
    return {"sample": len(picked), "per_row_s": per_row, "projected": per_row * total, "agree": agree}
