"""A small, believable support operation to explore the dashboard with.

Deterministic: the same seed, "today" and now give the same rows; nothing is
dated after now (the clock rule would refuse it: a case the demo would receive
this afternoon is left out in the morning). It goes through the same validation
and insert path as an import, all in one transaction.

Every promise an SLA makes has something to show: a few urgent and high cases, Delta Retail on the policy
``gold`` of the rules' worked examples, and threads of messages on some cases (the client's question, the
team's first response, follow-up questions, most answered and one still open) with pauses while the team
waits on the client (resumed by the client's reply; one still waiting).
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

from kb.access import Actor
from kb.config import Config
from kb.db.connection import local_zone, transaction
from kb.db.schema import PRIORITIES
from kb.engine.calendar import is_business_day
from kb.intake.importing import add_rows, staged_from_records
from kb.timestamps import now_utc

CLIENTS = [
    ("ACME", "Acme Logistics", "enterprise", "acme.example"),
    ("BORE", "Borealis Bank", "enterprise", "borealis.example"),
    ("COBA", "Cobalt Health", "enterprise", "cobalt.example"),
    ("DELT", "Delta Retail", "enterprise", "delta.example"),
    ("EVER", "Evergreen Studio", "custom", "evergreen.example"),
    ("FJOR", "Fjord Analytics", "custom", "fjord.example"),
    ("GRAN", "Granite Apps", "custom", "granite.example"),
    ("U-1001", "Hana Kowalski", "free", ""),
    ("U-1002", "Ivan Petrov", "free", ""),
    ("U-1003", "Jia Wen", "free", ""),
    ("U-1004", "Kofi Mensah", "free", ""),
    ("U-1005", "Lena Fischer", "free", ""),
    ("U-1006", "Mateo Silva", "free", ""),
]

# Subjects by category, for the demo and for ``python -m kb generate``.
SUBJECTS: dict[str, tuple[str, ...]] = {
    "platform_issue": (
        "API gateway returns 502 on deploy", "Dashboard login loop after SSO change", "Webhook deliveries delayed",
        "Build pipeline stuck in 'queued'", "TLS certificate renewal failed", "Rate limiter rejects valid tokens",
        "Metrics missing since upgrade", "Database connection pool exhausted", "Scheduled jobs ran twice",
        "File uploads time out above 50 MB", "Audit log export is empty", "Search index out of date",
    ),
    "api_help": (
        "How to version an API without downtime", "Pagination for the orders endpoint",
        "OAuth scopes for a partner API", "Generating an SDK from our schema", "Validating nested JSON payloads",
        "Best way to batch requests", "Configuring CORS for a new front end", "Idempotency keys for payments",
        "Streaming large responses", "Mapping errors to problem+json",
    ),
    "general_coding": (
        "Python list comprehension question", "Regex for e-mail addresses", "React state not updating",
        "SQL join returns duplicates", "Sorting dates in JavaScript", "Async/await in a loop",
        "Unit testing a private method", "Git rebase went wrong",
    ),
}
ASSIGNEES = ["amy.chan", "ben.ho", "carla.ng", "dev.patel", ""]
PRIORITY_WEIGHTS = (4, 12, 74, 10)  # urgent, high, normal, low
# The policy of the rules' worked examples: Delta Retail's contract names it.
GOLD = [
    dict(policy_id="gold", metric="first_response", priority="urgent", within="4h", calendar="24x7"),
    dict(policy_id="gold", metric="first_response", priority="*", within="1d"),
    dict(policy_id="gold", metric="resolution", priority="*", within="2d"),
    dict(policy_id="gold", metric="next_response", priority="*", within="1d"),
]


def demo_records(config: Config, today: date, seed: int = 2026,
                 now: datetime | None = None) -> dict[str, list[dict[str, str]]]:
    """Rows for every table, dated relative to ``today`` (a local date in the support zone), none after
    ``now`` (default: ``kb.timestamps.now_utc()``)."""
    now = now or now_utc()
    rng = random.Random(seed)
    sla_rng = random.Random(seed + 1)  # its own stream, so the cases are the same with or without it
    zone = config.calendar.zone
    month0 = date(today.year, today.month, 1)

    def months_back(n: int) -> date:
        year, month = divmod(month0.year * 12 + month0.month - 1 - n, 12)
        return date(year, month + 1, 1)

    def local(day: date, hour: float) -> str:
        moment = datetime.combine(day, time(0), tzinfo=zone) + timedelta(hours=hour)
        return moment.isoformat(timespec="seconds")

    clients = [dict(client_id=c, name=n, tier=t, email_domain=d) for c, n, t, d in CLIENTS]
    environments = [
        dict(environment_id="ENV-ACME-PROD", name="Acme production", kind="dedicated", deployment="on_premise",
             client_id="ACME", active_from=str(months_back(14))),
        dict(environment_id="ENV-BORE-PROD", name="Borealis production", kind="dedicated",
             deployment="dedicated_cloud", client_id="BORE", active_from=str(months_back(10))),
        dict(environment_id="ENV-COBA-PROD", name="Cobalt production", kind="dedicated",
             deployment="dedicated_cloud", client_id="COBA", active_from=str(months_back(6) + timedelta(days=9))),
        dict(environment_id="ENV-DELT-PROD", name="Delta production", kind="dedicated", deployment="on_premise",
             client_id="DELT", active_from=str(months_back(4))),
        dict(environment_id="SHARED-APAC", name="Shared cloud APAC", kind="shared", deployment="shared_cloud",
             client_id="", active_from=str(months_back(24))),
        dict(environment_id="SHARED-EU", name="Shared cloud EU", kind="shared", deployment="shared_cloud",
             client_id="", active_from=str(months_back(24))),
    ]
    contracts = [
        dict(contract_id="K-ACME-1", client_id="ACME", environment_id="ENV-ACME-PROD", uptime_target_pct="99.9",
             response_business_days="1", monthly_fee="12000", currency="USD", credit_schedule="",
             starts_on=str(months_back(12)), ends_on=""),
        dict(contract_id="K-BORE-1", client_id="BORE", environment_id="ENV-BORE-PROD", uptime_target_pct="99.95",
             response_business_days="1", monthly_fee="25000", currency="USD",
             credit_schedule="99.95:10, 99.5:25, 99.0:50, 95.0:100", starts_on=str(months_back(9)), ends_on=""),
        dict(contract_id="K-COBA-1", client_id="COBA", environment_id="ENV-COBA-PROD", uptime_target_pct="99.9",
             response_business_days="2", monthly_fee="8000", currency="EUR", credit_schedule="",
             starts_on=str(months_back(5)), ends_on=""),
        dict(contract_id="K-DELT-1", client_id="DELT", environment_id="ENV-DELT-PROD", uptime_target_pct="99.5",
             response_business_days="", policy_id="gold", monthly_fee="6000", currency="USD",
             credit_schedule="99.5:10, 98.0:50", starts_on=str(months_back(3)), ends_on=""),
        dict(contract_id="K-EVER-1", client_id="EVER", environment_id="SHARED-APAC", uptime_target_pct="",
             response_business_days="1", monthly_fee="1500", currency="USD", credit_schedule="",
             starts_on=str(months_back(8)), ends_on=str(months_back(2) - timedelta(days=1))),
        dict(contract_id="K-EVER-2", client_id="EVER", environment_id="SHARED-APAC", uptime_target_pct="99.9",
             response_business_days="2", monthly_fee="1800", currency="USD", credit_schedule="",
             starts_on=str(months_back(2)), ends_on=""),
        dict(contract_id="K-FJOR-1", client_id="FJOR", environment_id="SHARED-EU", uptime_target_pct="99.9",
             response_business_days="1", monthly_fee="2000", currency="EUR", credit_schedule="",
             starts_on=str(months_back(6)), ends_on=""),
        dict(contract_id="K-GRAN-1", client_id="GRAN", environment_id="SHARED-APAC", uptime_target_pct="",
             response_business_days="", monthly_fee="900", currency="USD", credit_schedule="",
             starts_on=str(months_back(4)), ends_on=""),
    ]

    incidents = []

    def incident(environment_id: str, impact: str, day: date, start_hour: float, minutes: float | None,
                 summary: str) -> None:
        start = datetime.combine(day, time(0), tzinfo=zone) + timedelta(hours=start_hour)
        if start > now:
            return
        ended = None if minutes is None else start + timedelta(minutes=minutes)
        end = "" if ended is None or ended > now else ended.isoformat(timespec="seconds")  # else still going on
        incidents.append(dict(incident_id=f"INC-{len(incidents) + 1:05d}", environment_id=environment_id,
                              impact=impact, started_at=start.isoformat(timespec="seconds"), ended_at=end,
                              summary=summary))

    last_month = months_back(1)
    incident("ENV-BORE-PROD", "outage", last_month + timedelta(days=11), 10.0, 38, "Load balancer failover loop")
    incident("ENV-BORE-PROD", "outage", last_month + timedelta(days=11), 10.4, 20, "Database primary restart")
    incident("ENV-BORE-PROD", "maintenance", last_month + timedelta(days=20), 2.0, 180, "Quarterly patching")
    incident("ENV-ACME-PROD", "outage", months_back(2) + timedelta(days=5), 14.0, 25, "Disk full on app node")
    incident("ENV-ACME-PROD", "degraded", last_month + timedelta(days=3), 9.5, 90, "Slow search queries")
    incident("ENV-DELT-PROD", "outage", months_back(2) + timedelta(days=17), 23.0, 240, "Power loss in client DC")
    incident("ENV-COBA-PROD", "maintenance", last_month + timedelta(days=6), 1.0, 120, "Kernel upgrade")
    incident("SHARED-APAC", "outage", last_month + timedelta(days=25), 15.0, 55, "Regional network partition")
    incident("SHARED-EU", "degraded", last_month + timedelta(days=14), 11.0, 40, "Elevated API latency")
    this_month_day = max(month0, today - timedelta(days=4))
    incident("ENV-BORE-PROD", "outage", this_month_day, 11.0, 12, "Certificate expiry on ingress")
    incident("ENV-ACME-PROD", "outage", this_month_day, 16.0, 31, "Message queue stalled")
    incident("SHARED-EU", "degraded", today, 8.0, None, "Intermittent webhook delays")

    cases = []
    paying = [c for c in CLIENTS if c[2] != "free"]
    free = [c for c in CLIENTS if c[2] == "free"]
    first_day = today - timedelta(days=120)
    day = first_day
    while day <= today:
        arrivals = rng.choice([2, 3, 3, 4, 5]) if is_business_day(config.calendar, day) else rng.choice([0, 0, 1])
        for _ in range(arrivals):
            client = rng.choice(paying) if rng.random() < 0.6 else rng.choice(free)
            category = rng.choices(list(SUBJECTS), weights=[5, 4, 2 if client[2] == "free" else 1])[0]
            hour = rng.uniform(8.0, 19.0) if rng.random() < 0.85 else rng.uniform(0.0, 24.0)
            received = datetime.combine(day, time(0), tzinfo=zone) + timedelta(hours=hour)
            age_hours = (datetime.combine(today, time(12), tzinfo=zone) - received).total_seconds() / 3600
            delay = rng.lognormvariate(1.3, 1.1)  # hours; long tail past the deadline
            responded = received + timedelta(hours=delay)
            forgotten = rng.random() < 0.03  # never answered: an open breach for the queue
            answered = not forgotten and (age_hours > 30 or (age_hours > delay and rng.random() < 0.4))
            resolved = responded + timedelta(hours=rng.lognormvariate(3.0, 1.0))
            if age_hours < 0 or received > now:
                continue
            cases.append(dict(
                case_id=f"CS-{len(cases) + 1:05d}",
                client_id=client[0],
                received_at=received.isoformat(timespec="seconds"),
                category=category,
                subject=rng.choice(SUBJECTS[category]),
                requester=f"user{rng.randint(1, 40)}@{client[3] or 'mail.example'}",
                assignee=rng.choice(ASSIGNEES) if answered or rng.random() < 0.5 else "",
                first_response_at=responded.isoformat(timespec="seconds") if answered and responded <= now else "",
                resolved_at=(resolved.isoformat(timespec="seconds")
                             if answered and age_hours > 72 and resolved <= now else ""),
                priority=sla_rng.choices(PRIORITIES, weights=PRIORITY_WEIGHTS)[0],
            ))
        day += timedelta(days=1)

    # Unanswered cases spread over the last business day, so that whatever the
    # hour, the queue holds some breached, some at-risk and some pending ones.
    previous = today - timedelta(days=1)
    while not is_business_day(config.calendar, previous):
        previous -= timedelta(days=1)
    for n, hour in enumerate((9.25, 10.75, 12.25, 13.75, 15.25, 16.75)):
        client = paying[n % len(paying)]
        cases.append(dict(
            case_id=f"CS-{len(cases) + 1:05d}", client_id=client[0], received_at=local(previous, hour),
            category="platform_issue", subject=rng.choice(SUBJECTS["platform_issue"]),
            requester=f"oncall@{client[3]}", assignee=ASSIGNEES[n % len(ASSIGNEES)], first_response_at="",
            resolved_at="", priority=("urgent", "high")[n] if n < 2 else "normal",
        ))
    paying_ids = {c[0] for c in paying}
    messages, pauses = conversations([c for c in cases if c["client_id"] in paying_ids], sla_rng, now)
    return dict(clients=clients, environments=environments, policies=GOLD, contracts=contracts, cases=cases,
                pauses=pauses, messages=messages, incidents=incidents)


def conversations(cases: list[dict[str, str]], rng: random.Random,
                  now: datetime) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Messages and pauses on some answered ``cases``: the client's question at receipt and the team's first
    response; then a follow-up question from the client, either out of the blue or the reply that resumes a
    pause while the team waited on the client; the team answers it (before the case was resolved; an open case
    may be waiting for the answer still). The latest open case answered long enough ago waits on the client
    still, and the one before it has a question still open."""
    messages: list[dict[str, str]] = []
    pauses: list[dict[str, str]] = []
    answered = [c for c in cases if c["first_response_at"]]
    open_ones = [c for c in answered if not c["resolved_at"]
                 and datetime.fromisoformat(c["first_response_at"]) + timedelta(hours=2) <= now]
    waiting, asking = (open_ones[-1], open_ones[-2]) if len(open_ones) >= 2 else (None, None)

    def message(case: dict[str, str], at: datetime, direction: str) -> None:
        number = sum(m["case_id"] == case["case_id"] for m in messages) + 1
        messages.append(dict(case_id=case["case_id"], at=_at(at), direction=direction,
                             message_id=f"<{case['case_id']}.{number}@demo.example>"))

    for case in answered:
        if case is not waiting and case is not asking and rng.random() > 0.4:
            continue
        received, responded = (datetime.fromisoformat(case[k]) for k in ("received_at", "first_response_at"))
        ends = datetime.fromisoformat(case["resolved_at"]) if case["resolved_at"] else now
        message(case, received, "client")
        message(case, responded, "team")
        paused = responded + timedelta(minutes=30)
        if case is waiting:
            pauses.append(dict(case_id=case["case_id"], paused_at=_at(paused), resumed_at="",
                               reason="Waiting on the client's logs"))
            continue
        if case is asking:
            message(case, responded + (now - responded) / 2, "client")
            continue
        pausing = rng.random() < 0.35
        asked = (paused + timedelta(hours=rng.uniform(3, 40)) if pausing
                 else responded + timedelta(hours=rng.uniform(2, 30)))
        answer = asked + timedelta(hours=rng.lognormvariate(1.0, 1.0))
        if answer > ends and (asked > now or case["resolved_at"]):
            continue  # a resolved case had its questions answered
        if pausing:
            pauses.append(dict(case_id=case["case_id"], paused_at=_at(paused), resumed_at=_at(asked),
                               reason=rng.choice(["Waiting on the client's logs", "Asked for a reproduction",
                                                  "Client testing the fix"])))
        message(case, asked, "client")
        if answer <= ends:
            message(case, answer, "team")
    return messages, pauses


def _at(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def write_demo(con, config: Config, today: date, actor: Actor) -> dict[str, int]:
    """Write the demo rows into an empty store, all or nothing; returns the row count per table."""
    now = now_utc()
    counts = {}
    with local_zone(con, config.calendar.timezone), transaction(con):
        for table, records in demo_records(config, today, now=now).items():
            counts[table] = add_rows(con, config, staged_from_records(table, records), actor,
                                     permission="import", source=f"demo {table}")
        checks = con.execute(
            """
            INSERT INTO monitoring_checks
            SELECT environment_id, CAST(? AS TIMESTAMPTZ) - INTERVAL (d) DAY - INTERVAL 3 HOUR, 'monitoring-bot',
                   'synthetic probe green'
            FROM environments, range(0, 30) r(d)
            WHERE kind = 'dedicated' AND environment_id <> 'ENV-DELT-PROD'
               OR (environment_id = 'ENV-DELT-PROD' AND d >= 12)
            """,
            [now],
        ).fetchall()
    counts["monitoring_checks"] = checks[0][0]
    return counts

