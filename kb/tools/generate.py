"""A synthetic support operation at scale, for load and benchmarks: ``python -m kb generate``.

The shape is meant to be believable rather than pretty:

* clients: a few hundred enterprise clients (one or more dedicated environments
  each), custom-programme clients on the shared environments, and many free
  registered users; a handful of clients file most of the cases (Zipf-like);
* cases: tiers about 35 % enterprise, 15 % custom, 50 % free; categories by
  tier (free users ask more general coding questions); arrivals clustered in
  business hours on business days, with troughs at night, on weekends and on
  the calendar's public holidays (taken from ``kb.engine.calendar``), a weekly rhythm
  and a growing volume;
* first responses: a long-tailed (log-normal) delay counted in *business* time
  from receipt, so most deadlines are met and a few percent are breached;
  recent cases are still open, a few old ones were forgotten; resolutions
  follow with another long tail;
* incidents: outages with a long tail of duration (some overlap), degraded
  service, and maintenance windows at night; the latest may still be ongoing;
* contracts with varied targets, response days, fees, currencies, credit
  schedules, and renewals that change the terms;
* monitoring checks on the dedicated environments, with a few gone stale;
* the SLA's priorities, policies (one on each named calendar of the configuration), pauses and messages
  (``kb/tools/generate_sla.py``).

Everything is drawn with numpy from one seed and built as Arrow tables, so the
same seed, sizes and ``until`` give the same rows. The tables are written with
``INSERT INTO t SELECT … FROM arrow_table`` in one transaction (cases in
chunks, for the progress bar). Ids carry a ``G-`` prefix, which cannot collide
with the forms' ``CS-00001`` / ``INC-00001`` ids (``kb.intake.writes.next_id``).

Over 400 lines: every table is drawn in turn from one seeded random stream, and the order of the draws is
what makes the same seed give the same rows; it stays readable in one place.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kb.access import Actor
from kb.config import Config
from kb.db import audit
from kb.db.answers import answer
from kb.db.connection import transaction
from kb.db.schema import CATEGORIES
from kb.engine.calendar import business_days
from kb.intake.validation import KEYS, key_text
from kb.tools.demo import SUBJECTS
from kb.tools.generate_sla import SlaShape, numbered

Progress = Callable[[str, int, int], None]

TIER_SHARES = {"enterprise": 0.35, "custom": 0.15, "free": 0.50}
CATEGORY_SHARES = {  # platform_issue, api_help, general_coding
    "enterprise": (0.55, 0.37, 0.08),
    "custom": (0.45, 0.38, 0.17),
    "free": (0.30, 0.30, 0.40),
}
OUTAGE_SUMMARIES = ("Load balancer failover loop", "Database primary restart", "Disk full on app node",
                    "Certificate expiry on ingress", "Message queue stalled", "Power loss in data centre",
                    "DNS misconfiguration", "Bad deploy rolled back", "Network partition")
DEGRADED_SUMMARIES = ("Slow search queries", "Elevated API latency", "Intermittent webhook delays",
                      "Background jobs lagging", "High error rate on uploads")
MAINTENANCE_SUMMARIES = ("Quarterly patching", "Kernel upgrade", "Database version upgrade",
                         "Storage migration", "Certificate rotation")
SCHEDULES = (None, "99.95:10, 99.5:25, 99.0:50, 95.0:100", "99.5:10, 98.0:50", "99.9:5, 99.5:15, 99.0:30, 95.0:100")
CURRENCIES = ("USD", "EUR", "GBP", "HKD")
WORDS_A = ("Acme", "Borealis", "Cobalt", "Delta", "Evergreen", "Fjord", "Granite", "Harbor", "Indigo", "Juniper",
           "Kestrel", "Lumen", "Meridian", "Nimbus", "Orchid", "Pioneer", "Quartz", "Redwood", "Summit", "Tidal")
WORDS_B = ("Logistics", "Bank", "Health", "Retail", "Studio", "Analytics", "Apps", "Energy", "Insurance", "Media",
           "Foods", "Motors", "Telecom", "Travel", "Labs", "Capital", "Systems", "Pharma", "Airways", "Markets")
AGENTS = tuple(f"agent{n:02d}" for n in range(1, 41))
US = 1_000_000


def generate_tables(config: Config, *, cases: int, environments: int, years: int, seed: int,
                    until: datetime) -> dict[str, pa.Table]:
    """Every table's rows as Arrow, deterministic for the arguments. ``until`` is the last instant
    of the data (an aware datetime); nothing is dated after it."""
    if cases < 1 or environments < 2 or years < 1:
        raise ValueError("need at least 1 case, 2 environments and 1 year")
    rng = np.random.default_rng(seed)
    zone = config.calendar.zone
    until = until.astimezone(UTC).replace(microsecond=0)
    until_local = until.astimezone(zone)
    first_day = _years_before(until_local.date(), years)
    calendar = business_days(config.calendar, first_day.year - 1, until_local.year + 1)
    shape = _Shape(rng, config, calendar, first_day, until)

    clients, client_domains = shape.clients(environments, cases)
    envs = shape.environments(environments, clients)
    contracts = shape.contracts(envs, clients)
    case_table = shape.cases(cases, clients, client_domains)
    incidents = shape.incidents(envs)
    checks = shape.checks(envs)
    sla = SlaShape(seed, shape.until_us, AGENTS, tuple(c.name for c in config.calendars[1:]))
    pauses, messages = sla.threads(case_table)
    return {"clients": clients, "environments": envs, "policies": sla.policies(shape.last_day),
            "contracts": sla.contracts_with_policies(contracts),
            "cases": case_table.append_column("priority", sla.priorities(case_table.num_rows)),
            "pauses": pauses, "messages": messages, "incidents": incidents, "monitoring_checks": checks}


INSERTS = {
    "clients": "INSERT INTO clients (client_id, name, tier, email_domain) SELECT client_id, name, tier, email_domain "
               "FROM staged",
    "environments": "INSERT INTO environments SELECT environment_id, name, kind, deployment, client_id, active_from "
                    "FROM staged",
    "policies": "INSERT INTO policies (policy_id, metric, priority, within, calendar, valid_from) "
                "SELECT policy_id, metric, priority, within, calendar, valid_from FROM staged",
    "contracts": "INSERT INTO contracts (contract_id, client_id, environment_id, uptime_target_pct, "
                 "response_business_days, policy_id, monthly_fee, currency, credit_schedule, starts_on, ends_on) "
                 "SELECT contract_id, client_id, environment_id, CAST(uptime_target_pct AS DECIMAL(7, 4)), "
                 "response_business_days, policy_id, CAST(monthly_fee AS DECIMAL(18, 2)), currency, credit_schedule, "
                 "starts_on, ends_on FROM staged",
    "cases": "INSERT INTO cases (case_id, client_id, received_at, category, subject, requester, assignee, "
             "first_response_at, resolved_at, priority) SELECT case_id, client_id, received_at, category, subject, "
             "requester, assignee, first_response_at, resolved_at, priority FROM staged",
    "pauses": "INSERT INTO pauses (case_id, paused_at, resumed_at, reason, paused_by, resumed_by) "
              "SELECT case_id, paused_at, resumed_at, reason, paused_by, resumed_by FROM staged",
    "messages": "INSERT INTO messages (message_key, case_id, is_team, is_automatic, unverified, received_at, "
                "taken_at, source) SELECT message_key, case_id, is_team, FALSE, FALSE, received_at, taken_at, 'import' "
                "FROM staged",
    "incidents": "INSERT INTO incidents (incident_id, environment_id, impact, started_at, ended_at, summary) "
                 "SELECT incident_id, environment_id, impact, started_at, ended_at, summary FROM staged",
    "monitoring_checks": "INSERT INTO monitoring_checks SELECT environment_id, checked_at, checked_by, note "
                         "FROM staged",
}
CHUNK_ROWS = 100_000


def write_tables(con, tables: dict[str, pa.Table], actor: Actor, *, source: str,
                 progress: Progress | None = None) -> dict[str, int]:
    """Insert every table in one transaction, with one audit row per table; all or nothing.
    The store should be empty (ids would clash otherwise)."""
    report = progress or (lambda stage, done, total: None)
    total = sum(t.num_rows for t in tables.values())
    done = 0
    counts = {}
    with transaction(con):
        for name, table in tables.items():
            for start in range(0, table.num_rows, CHUNK_ROWS):
                chunk = table.slice(start, CHUNK_ROWS)
                con.register("staged", chunk)
                try:
                    con.execute(INSERTS[name])
                finally:
                    con.unregister("staged")
                done += chunk.num_rows
                report(f"writing {name}", done, total)
            if name == "messages":
                answer(con)
            counts[name] = table.num_rows
            if name != "monitoring_checks" and table.num_rows:
                key = KEYS[name]
                audit.record(con, actor, "import", name, None, None,
                             {"source": source, "rows": table.num_rows,
                              "first_id": key_text([table[k][0].as_py() for k in key]),
                              "last_id": key_text([table[k][-1].as_py() for k in key])})
    return counts


class ProgressBar:
    """A one-line progress bar on a terminal (redrawn in place); plain lines elsewhere."""

    def __init__(self, stream=None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.perf_counter()
        self._last_stage = None
        self._last_draw = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        fraction = 0 if total <= 0 else min(1.0, done / total)
        if not self.tty:
            if stage != self._last_stage:
                print(f"{stage}…", file=self.stream, flush=True)
                self._last_stage = stage
            return
        if done < total and now - self._last_draw < 0.1 and stage == self._last_stage:
            return
        self._last_stage, self._last_draw = stage, now
        filled = int(round(fraction * self.width))
        bar = "█" * filled + "·" * (self.width - filled)
        line = f"\r[{bar}] {fraction:5.1%}  {stage:<28} {done:>11,}/{total:,}  {now - self.started:5.1f} s"
        print(line, end="", file=self.stream, flush=True)

    def finish(self) -> None:
        if self.tty:
            print(file=self.stream, flush=True)


def generate(con, config: Config, actor: Actor, *, cases: int, environments: int, years: int, seed: int,
             until: datetime, progress: Progress | None = None) -> dict[str, int]:
    """Draw the data set and write it into the (empty) store on ``con``; returns the row counts."""
    report = progress or (lambda stage, done, total: None)
    report("drawing the data set", 0, 1)
    tables = generate_tables(config, cases=cases, environments=environments, years=years, seed=seed, until=until)
    report("drawing the data set", 1, 1)
    source = f"generate --cases {cases} --environments {environments} --years {years} --seed {seed}"
    return write_tables(con, tables, actor, source=source, progress=report)


# --- drawing ---------------------------------------------------------------------------------------------------


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years) + timedelta(days=1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28) + timedelta(days=1)


def _zipf(rng: np.random.Generator, count: int, exponent: float = 0.9) -> np.ndarray:
    """Weights of ``count`` members where a few carry most of the volume, in a random order."""
    weights = 1.0 / np.arange(1, count + 1) ** exponent
    rng.shuffle(weights)
    return weights / weights.sum()


def _pick(rng: np.random.Generator, choices, shares, size: int) -> np.ndarray:
    return rng.choice(len(choices), size=size, p=np.asarray(shares) / np.sum(shares))


def _utc_us(local: np.ndarray, zone) -> np.ndarray:
    """Local wall-clock datetime64[us] in ``zone`` → UTC epoch microseconds (DST gaps shift forward)."""
    index = pd.DatetimeIndex(local)
    aware = index.tz_localize(zone, ambiguous=np.zeros(len(index), dtype=bool), nonexistent="shift_forward")
    return aware.tz_convert("UTC").as_unit("us").asi8


def _ts(values_us: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(values_us, type=pa.timestamp("us", tz="UTC"), mask=mask)


def _days(dates: np.ndarray) -> pa.Array:
    return pa.array(dates.astype("datetime64[D]"), type=pa.date32())


def _month_start(dates: np.ndarray) -> np.ndarray:
    return dates.astype("datetime64[M]").astype("datetime64[D]")


class _Shape:
    def __init__(self, rng, config: Config, calendar: pd.DataFrame, first_day: date, until: datetime):
        self.rng, self.config, self.zone = rng, config, config.calendar.zone
        self.first_day, self.until = first_day, until
        self.until_us = int(until.timestamp() * US)
        self.last_day = until.astimezone(self.zone).date()
        self.opens_us = pd.DatetimeIndex(calendar.opens_at).as_unit("us").asi8
        self.length_us = calendar.length_us.to_numpy(dtype=np.int64)
        self.cum_us = calendar.cum_before_us.to_numpy(dtype=np.int64)
        self.business = np.array(calendar.day.tolist(), dtype="datetime64[D]")
        cal = config.calendar
        self.opens_h = cal.opens.hour + cal.opens.minute / 60
        self.closes_h = cal.closes.hour + cal.closes.minute / 60

    # clients, environments, contracts ---------------------------------------------------------------------

    def clients(self, environments: int, cases: int) -> tuple[pa.Table, np.ndarray]:
        self.shared = max(1, round(environments * 0.04))
        self.dedicated = environments - self.shared
        self.n_enterprise = max(1, round(self.dedicated / 1.6))
        self.n_custom = max(1, round(environments * 0.2))
        self.n_free = max(20, cases // 40)
        names, domains = [], []
        for n in range(self.n_enterprise + self.n_custom):
            a, b = WORDS_A[n % len(WORDS_A)], WORDS_B[(n // len(WORDS_A)) % len(WORDS_B)]
            round_ = n // (len(WORDS_A) * len(WORDS_B))
            names.append(f"{a} {b}" + (f" {round_ + 1}" if round_ else ""))
            domains.append(f"{a}-{b}{round_ or ''}.example".lower())
        tiers = ["enterprise"] * self.n_enterprise + ["custom"] * self.n_custom
        ids = ([f"G-ENT-{n:04d}" for n in range(1, self.n_enterprise + 1)]
               + [f"G-CUS-{n:04d}" for n in range(1, self.n_custom + 1)])
        free_ids = numbered("G-USR-", self.n_free, 6)
        free_names = pc.binary_join_element_wise("Registered user ", pc.utf8_slice_codeunits(free_ids, 6), "")
        self.client_ids = pa.concat_arrays([pa.array(ids, pa.string()), free_ids])
        table = pa.table({
            "client_id": self.client_ids,
            "name": pa.concat_arrays([pa.array(names, pa.string()), free_names]),
            "tier": pa.array(tiers + ["free"] * self.n_free, pa.string()),
            "email_domain": pa.array(domains + [None] * self.n_free, pa.string()),
        })
        all_domains = np.array(domains + ["mail.example"] * self.n_free, dtype=object)
        return table, all_domains

    def environments(self, count: int, clients: pa.Table) -> pa.Table:
        rng = self.rng
        dedicated, shared = self.dedicated, self.shared
        # Every enterprise client gets one dedicated environment; the rest go to the larger clients.
        owner = np.concatenate([np.arange(self.n_enterprise),
                                rng.choice(self.n_enterprise, dedicated - self.n_enterprise,
                                           p=_zipf(rng, self.n_enterprise))])[:dedicated]
        span = (np.datetime64(self.last_day) - np.datetime64(self.first_day)).astype(int)
        early = rng.random(count) < 0.5
        offset = np.where(early, rng.integers(-120, 1, count), rng.integers(0, max(span - 30, 1), count))
        active_from = np.datetime64(self.first_day) + offset.astype("timedelta64[D]")
        on_first = rng.random(count) < 0.6
        active_from = np.where(on_first, _month_start(active_from), active_from)
        self.env_active = active_from
        self.env_owner = np.concatenate([owner, np.full(shared, -1)])
        self.env_kind = np.array(["dedicated"] * dedicated + ["shared"] * shared)
        ids = numbered("G-ENV-", count, 4)
        client_names = clients["name"].to_numpy(zero_copy_only=False)
        stage = np.array(["production", "staging", "disaster recovery"])[_pick(rng, range(3), (0.7, 0.2, 0.1), count)]
        stage[: self.n_enterprise] = "production"  # each client's first environment
        names = [f"{client_names[o]} {s}" for o, s in zip(owner, stage[:dedicated], strict=True)]
        names += [f"Shared cloud {n + 1}" for n in range(shared)]
        deployment = np.where(rng.random(dedicated) < 0.4, "on_premise", "dedicated_cloud")
        self.env_ids = ids
        return pa.table({
            "environment_id": ids,
            "name": pa.array(names, pa.string()),
            "kind": pa.array(self.env_kind, pa.string()),
            "deployment": pa.array(list(deployment) + ["shared_cloud"] * shared, pa.string()),
            "client_id": pa.array([self.client_ids[int(o)].as_py() for o in owner] + [None] * shared, pa.string()),
            "active_from": _days(active_from),
        })

    def contracts(self, envs: pa.Table, clients: pa.Table) -> pa.Table:
        rng = self.rng
        rows: dict[str, list] = {k: [] for k in ("client", "env", "start", "end")}
        last_month = np.datetime64(self.last_day, "M").astype("datetime64[D]")
        for e in range(self.dedicated):
            start = _month_start(np.array([self.env_active[e]]))[0]
            if rng.random() < 0.3 and start + np.timedelta64(120, "D") < last_month:
                # A renewal with new terms, from a month in between.
                months = int((last_month - start).astype("timedelta64[D]").astype(int) // 30)
                renew = (start.astype("datetime64[M]") + np.timedelta64(int(rng.integers(2, max(months, 3))), "M"))
                renew = min(renew.astype("datetime64[D]"), last_month)
                rows["client"].append(self.env_owner[e])
                rows["env"].append(e)
                rows["start"].append(start)
                rows["end"].append(renew - np.timedelta64(1, "D"))
                start = renew
            rows["client"].append(self.env_owner[e])
            rows["env"].append(e)
            rows["start"].append(start)
            rows["end"].append(np.datetime64("NaT"))
        for c in range(self.n_custom):
            env = self.dedicated + int(rng.integers(0, self.shared))
            start = _month_start(np.array([max(self.env_active[env],
                                               np.datetime64(self.first_day) + np.timedelta64(
                                                   int(rng.integers(0, 400)), "D"))]))[0]
            rows["client"].append(self.n_enterprise + c)
            rows["env"].append(env)
            rows["start"].append(min(start, last_month))
            rows["end"].append(np.datetime64("NaT"))
        count = len(rows["client"])
        custom = np.array(rows["client"]) >= self.n_enterprise
        target = np.array([99.9, 99.95, 99.5, 99.0, np.nan])[_pick(rng, range(5), (55, 15, 15, 5, 10), count)]
        target = np.where(custom & (rng.random(count) < 0.4), np.nan, target)
        days = np.array([1, 2, 3, 0])[_pick(rng, range(4), (60, 20, 5, 15), count)]
        fee = np.round(np.exp(rng.normal(np.log(8000), 0.8, count)) * np.where(custom, 0.2, 1.0), -2)
        fee = np.maximum(fee, 100)
        schedule = _pick(rng, SCHEDULES, (50, 15, 10, 25), count)
        currency = _pick(rng, CURRENCIES, (55, 20, 10, 15), count)
        ends = np.array(rows["end"], dtype="datetime64[D]")
        return pa.table({
            "contract_id": numbered("G-K-", count, 5),
            "client_id": self.client_ids.take(pa.array(rows["client"], pa.int64())),
            "environment_id": self.env_ids.take(pa.array(rows["env"], pa.int64())),
            "uptime_target_pct": pa.array(target, pa.float64(), mask=np.isnan(target)),
            "response_business_days": pa.array(days, pa.int32(), mask=days == 0),
            "monthly_fee": pa.array(fee, pa.float64()),
            "currency": pa.array([CURRENCIES[i] for i in currency], pa.string()),
            "credit_schedule": pa.array([SCHEDULES[i] for i in schedule], pa.string()),
            "starts_on": _days(np.array(rows["start"], dtype="datetime64[D]")),
            "ends_on": pa.array(ends, pa.date32(), mask=np.isnat(ends)),
        })

    # cases ------------------------------------------------------------------------------------------------

    def _arrival_days(self, count: int) -> np.ndarray:
        rng = self.rng
        days = np.arange(np.datetime64(self.first_day), np.datetime64(self.last_day) + 1)
        business = np.isin(days, self.business)
        weekday = (days.astype("datetime64[D]").view("int64") + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        weekend = np.isin(weekday, self.config.calendar.weekend)
        rhythm = np.array([1.15, 1.05, 1.0, 0.98, 0.9, 1.0, 1.0])[weekday]
        years_in = (days - days[0]).astype(int) / 365.25
        growth = 1.3 ** years_in
        december = (days.astype("datetime64[M]").astype(int) % 12 == 11)
        weight = np.where(business, 1.0, np.where(weekend, 0.12, 0.2)) * rhythm * growth * np.where(december, 0.85, 1)
        chosen = rng.choice(len(days), size=count, p=weight / weight.sum())
        return days[chosen], business[chosen]

    def _arrival_hours(self, business: np.ndarray) -> np.ndarray:
        rng = self.rng
        count = len(business)
        in_hours = rng.random(count) < np.where(business, 0.8, 0.25)
        # Inside the opening hours: a morning and an afternoon peak.
        peak = np.where(rng.random(count) < 0.55, 0.28, 0.7)
        share = np.clip(rng.normal(peak, 0.17), 0, 0.9999)
        opening = self.opens_h + share * (self.closes_h - self.opens_h)
        # Outside: spread over the day, fewer at night.
        anyhour = np.where(rng.random(count) < 0.7, rng.uniform(6, 23, count), rng.uniform(0, 24, count))
        return np.where(in_hours, opening, anyhour)

    def _business_clock(self, instants_us: np.ndarray) -> np.ndarray:
        """Business microseconds elapsed at each instant (see kb/engine/calendar.py)."""
        i = np.searchsorted(self.opens_us, instants_us, side="right") - 1
        return self.cum_us[i] + np.clip(instants_us - self.opens_us[i], 0, self.length_us[i])

    def _after_business(self, clock_us: np.ndarray) -> np.ndarray:
        """The instant at which the business clock reaches ``clock_us`` (within a day's hours)."""
        j = np.searchsorted(self.cum_us, clock_us, side="left") - 1
        return self.opens_us[j] + (clock_us - self.cum_us[j])

    def cases(self, count: int, clients: pa.Table, domains: np.ndarray) -> pa.Table:
        rng = self.rng
        days, business = self._arrival_days(count)
        hours = self._arrival_hours(business)
        local = days.astype("datetime64[us]") + (hours * 3600 * US).astype("timedelta64[us]")
        received = _utc_us(local, self.zone)
        late = received > self.until_us  # today's arrivals after "now": spread over today so far
        if late.any():
            midnight = _utc_us(np.array([np.datetime64(self.last_day, "us")]), self.zone)[0]
            received[late] = midnight + (rng.random(late.sum()) * (self.until_us - midnight)).astype(np.int64)
        received = (received // US) * US  # to the second
        order = np.argsort(received, kind="stable")
        received = received[order]

        tier = _pick(rng, list(TIER_SHARES), list(TIER_SHARES.values()), count)
        offsets = (0, self.n_enterprise, self.n_enterprise + self.n_custom)
        sizes = (self.n_enterprise, self.n_custom, self.n_free)
        client = np.empty(count, dtype=np.int64)
        category = np.empty(count, dtype=np.int8)
        for t, name in enumerate(TIER_SHARES):
            members = tier == t
            client[members] = offsets[t] + rng.choice(sizes[t], members.sum(), p=_zipf(rng, sizes[t], 0.7))
            category[members] = _pick(rng, CATEGORIES, CATEGORY_SHARES[name], members.sum())

        # First response: log-normal business hours after receipt, by tier; free general coding is slow.
        median_h = np.array([1.2, 2.0, 3.5])[tier]
        sigma = np.array([1.1, 1.1, 1.2])[tier]
        deprioritized = (tier == 2) & (category == 2)
        median_h = np.where(deprioritized, 10.0, median_h)
        delay_h = np.minimum(np.exp(rng.normal(np.log(median_h), sigma)), 15 * 24)  # a long tail, cut at 15 days
        delay_us = (delay_h * 3600 * US).astype(np.int64)
        responded = self._after_business(self._business_clock(received) + np.maximum(delay_us, 60 * US))
        responded = (responded // US) * US
        never = np.where(deprioritized, rng.random(count) < 0.2, rng.random(count) < 0.0005)
        answered = (responded <= self.until_us) & ~never
        resolve_from = np.where(answered, responded, received)
        resolve_h = np.minimum(np.exp(rng.normal(np.log(18), 1.3, count)), 60 * 24)
        resolved = resolve_from + (resolve_h * 3600 * US).astype(np.int64)
        resolved = (resolved // US) * US
        closed = (resolved <= self.until_us) & (answered | (deprioritized & never & (rng.random(count) < 0.7)))

        subjects = [s for c in CATEGORIES for s in SUBJECTS[c]]
        first_subject = np.cumsum([0] + [len(SUBJECTS[c]) for c in CATEGORIES])[:-1]
        subject = first_subject[category] + (rng.random(count) * np.array(
            [len(SUBJECTS[c]) for c in CATEGORIES])[category]).astype(np.int64)
        person = rng.integers(1, 60, count)
        requester = pc.binary_join_element_wise(
            "user", pc.cast(pa.array(person), pa.string()), "@", pa.array(domains[client], pa.string()), "")
        agent = rng.integers(0, len(AGENTS), count)
        assigned = answered | (rng.random(count) < 0.5)
        return pa.table({
            "case_id": numbered("G-CS-", count, 7),
            "client_id": self.client_ids.take(pa.array(client)),
            "received_at": _ts(received),
            "category": pa.DictionaryArray.from_arrays(pa.array(category), pa.array(CATEGORIES)).cast(pa.string()),
            "subject": pa.DictionaryArray.from_arrays(pa.array(subject), pa.array(subjects)).cast(pa.string()),
            "requester": requester,
            "assignee": pa.DictionaryArray.from_arrays(pa.array(agent, mask=~assigned),
                                                       pa.array(AGENTS)).cast(pa.string()),
            "first_response_at": _ts(responded, ~answered),
            "resolved_at": _ts(resolved, ~closed),
        })

    # incidents and checks -----------------------------------------------------------------------------------

    def incidents(self, envs: pa.Table) -> pa.Table:
        rng = self.rng
        active_us = _utc_us(self.env_active.astype("datetime64[us]"), self.zone)
        months = np.maximum((self.until_us - active_us) / (30.44 * 86400 * US), 0)
        shared = self.env_kind == "shared"
        parts = []
        for impact, rate_dedicated, rate_shared in (("outage", 0.7, 1.5), ("degraded", 0.5, 1.0),
                                                   ("maintenance", 0.4, 0.3)):
            counts = rng.poisson(months * np.where(shared, rate_shared, rate_dedicated))
            env = np.repeat(np.arange(len(counts)), counts)
            n = len(env)
            start = active_us[env] + (rng.random(n) * (self.until_us - active_us[env])).astype(np.int64)
            if impact == "outage":
                minutes = np.exp(rng.normal(np.log(14), 1.2, n))
                burst = rng.random(n) < 0.08  # a follow-up outage overlapping the first
                extra_start = start[burst] + (rng.random(burst.sum()) * minutes[burst] * 60 * US).astype(np.int64)
                extra_minutes = np.exp(rng.normal(np.log(20), 0.8, burst.sum()))
                env = np.concatenate([env, env[burst]])
                start = np.concatenate([start, extra_start])
                minutes = np.concatenate([minutes, extra_minutes])
            elif impact == "degraded":
                minutes = rng.uniform(20, 240, n)
            else:  # at 01:00–03:00 local, one to four hours
                local_day = (pd.to_datetime(start, unit="us", utc=True).tz_convert(self.zone).tz_localize(None)
                             .normalize().to_numpy().astype("datetime64[us]"))
                local = local_day + (rng.uniform(1, 3, n) * 3600 * US).astype("timedelta64[us]")
                start = np.minimum(_utc_us(local, self.zone), self.until_us - 60 * US)
                start = np.maximum(start, active_us[env])
                minutes = rng.choice([60, 120, 180, 240], n)
            start = (start // (60 * US)) * 60 * US
            end = start + (minutes * 60 * US).astype(np.int64)
            parts.append((impact, env, start, (end // US) * US))
        impact = np.concatenate([np.full(len(p[1]), p[0]) for p in parts])
        env = np.concatenate([p[1] for p in parts])
        start = np.concatenate([p[2] for p in parts])
        end = np.concatenate([p[3] for p in parts])
        order = np.lexsort((env, start))
        impact, env, start, end = impact[order], env[order], start[order], end[order]
        summaries = {"outage": OUTAGE_SUMMARIES, "degraded": DEGRADED_SUMMARIES, "maintenance": MAINTENANCE_SUMMARIES}
        pick = rng.integers(0, 1000, len(env))
        summary = [summaries[i][p % len(summaries[i])] for i, p in zip(impact, pick, strict=True)]
        return pa.table({
            "incident_id": numbered("G-INC-", len(env), 6),
            "environment_id": self.env_ids.take(pa.array(env)),
            "impact": pa.array(impact, pa.string()),
            "started_at": _ts(start),
            "ended_at": _ts(end, end > self.until_us),
            "summary": pa.array(summary, pa.string()),
        })

    def checks(self, envs: pa.Table) -> pa.Table:
        """A daily probe on each dedicated environment for the last 60 days; a few went quiet."""
        rng = self.rng
        dedicated = np.arange(self.dedicated)
        quiet_since = np.where(rng.random(self.dedicated) < 0.05, rng.integers(8, 40, self.dedicated), 0)
        env = np.repeat(dedicated, 60)
        days_back = np.tile(np.arange(60), self.dedicated)
        keep = days_back >= quiet_since[env]
        env, days_back = env[keep], days_back[keep]
        checked = self.until_us - days_back * 86400 * US - (rng.random(len(env)) * 6 * 3600 * US).astype(np.int64)
        active_us = _utc_us(self.env_active.astype("datetime64[us]"), self.zone)
        keep = checked >= active_us[env]
        env, checked = env[keep], (checked[keep] // US) * US
        return pa.table({
            "environment_id": self.env_ids.take(pa.array(env)),
            "checked_at": _ts(checked),
            "checked_by": pa.array(np.full(len(env), "monitoring-bot"), pa.string()),
            "note": pa.array(np.full(len(env), "synthetic probe green"), pa.string()),
        })
