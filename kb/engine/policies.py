"""Which target each case has (rules: policies and priorities), as SQL over whole tables.

A policy is rows of (metric, priority, within, calendar, valid_from). The tier
policies ``enterprise``, ``custom`` and ``free`` always exist: a tier policy no
stored row names holds what ``[sla]`` says (a first response within N business
days, or by the end of the next business day for ``free``, for every priority),
so a store without policies gives the numbers it always gave.

A case takes the policy of its client's contract in force on the local date of
receipt (else its tier's), and for each metric the row for its priority (exact,
else ``*``) whose ``valid_from`` is the latest on or before that date. The rows
are few, so they are first laid out as ``rule_spans``: per policy, metric and
priority, the rule from one date to the next; a case then finds its rule by an
equality join plus a date range, never a per-case search.

A contract that names no policy may still set ``response_business_days``: it
replaces the ``Nd`` of its tier policy's first-response rows, as it always did.
"""

from __future__ import annotations

from kb import formats
from kb.config import Config, SlaConfig
from kb.db.schema import PRIORITIES
from kb.db.sqltext import one_of
from kb.engine.targets import Target

TIER_POLICIES = ("enterprise", "custom", "free")
# A policy row's ``within``: N of a unit (its rule's kind, the most N may be), or the end of the next business day.
WITHIN_UNITS = {"h": ("hours", 10_000), "d": ("days", 60)}
NEXT_DAY_CLOSE = "next_day_close"
RULE_KINDS = (*(kind for kind, _ in WITHIN_UNITS.values()), NEXT_DAY_CLOSE)


def rule_of(within: str) -> tuple[str, int | None] | None:
    """A ``within`` as the engine's rule, (kind, amount): ``('hours', 4)``, ``('days', 2)``,
    ``('next_day_close', None)``; None when it is not one."""
    if within == NEXT_DAY_CLOSE:
        return NEXT_DAY_CLOSE, None
    unit, digits = within[-1:], within[:-1]
    if unit not in WITHIN_UNITS or not digits.isascii() or not digits.isdigit() or len(digits) > 5:
        return None
    kind, most = WITHIN_UNITS[unit]
    return (kind, int(digits)) if 1 <= int(digits) <= most else None


def within_ok_sql(v: str) -> str:
    """SQL: the text ``v`` is a ``within`` (as ``rule_of`` reads one)."""
    units = " OR ".join(f"(regexp_full_match({v}, '[0-9]{{1,5}}{unit}') "
                        f"AND try_cast(rtrim({v}, '{unit}') AS INTEGER) BETWEEN 1 AND {most})"
                        for unit, (_, most) in WITHIN_UNITS.items())
    return f"{v} = '{NEXT_DAY_CLOSE}' OR {units}"


def within_rule_sql(within: str) -> tuple[str, str]:
    """SQL of a valid ``within``'s rule as ``rule_of`` gives it: its kind and its amount."""
    kinds = " ".join(f"WHEN {within} LIKE '%{unit}' THEN '{kind}'" for unit, (kind, _) in WITHIN_UNITS.items())
    return (f"CASE WHEN {within} = '{NEXT_DAY_CLOSE}' THEN '{NEXT_DAY_CLOSE}' {kinds} END",
            f"CASE WHEN {within} <> '{NEXT_DAY_CLOSE}' THEN CAST(left({within}, length({within}) - 1) AS BIGINT) END")


def tier_rules(sla: SlaConfig) -> tuple[tuple[str, str, int | None], ...]:
    """What ``[sla]`` makes each tier policy while no stored row names it: (policy, kind, amount) of its one
    row, a first response for every priority on the support calendar."""
    return (("enterprise", "days", sla.enterprise_response_business_days),
            ("custom", "days", sla.custom_response_business_days),
            ("free", "next_day_close", None))


def policy_rules_sql(config: Config) -> str:
    """SELECT of every row of every policy, with the rule parsed: the stored rows, and for each tier policy no
    stored row names what ``[sla]`` and its dated changes say (``from_config``: one row per version, valid
    from its date). Columns: policy_id, metric, priority, kind ('hours' / 'days' / 'next_day_close'),
    amount, calendar (its name), valid_from, from_config."""
    values = ", ".join(f"('{policy}', '{kind}', {'NULL' if amount is None else int(amount)}, "
                       f"DATE '{since.isoformat()}')"
                       for since, sla in config.sla_changes.versions for policy, kind, amount in tier_rules(sla))
    kind, amount = within_rule_sql("p.within")
    return f"""
        SELECT p.policy_id, p.metric, p.priority, {kind} AS kind, {amount} AS amount,
               p.calendar, p.valid_from, FALSE AS from_config
        FROM policies p
        UNION ALL
        SELECT d.policy_id, 'first_response', '*', d.kind, d.amount, 'support', d.valid_from, TRUE
        FROM (VALUES {values}) d(policy_id, kind, amount, valid_from)
        WHERE d.policy_id NOT IN (SELECT policy_id FROM policies)"""


def policy_ctes(config: Config, contracts: str = "contracts") -> str:
    """CTE definitions (no WITH, no trailing comma): ``policy_rows`` (every row of every policy, with
    ``kind`` 'hours' / 'days' / 'next_day_close', ``amount`` and ``cal``, the calendar's key), ``rule_spans``
    (policy_id, metric, priority, from_day, to_day, kind, amount, cal) and ``contract_terms`` from the
    relation ``contracts`` (the contracts of the clients whose cases are asked for, or all)."""
    priorities = ", ".join(f"('{p}')" for p in PRIORITIES)
    return f"""
    policy_rows AS (
        SELECT r.policy_id, r.metric, r.priority, r.kind, r.amount, c.cal, r.valid_from
        FROM ({policy_rules_sql(config)}) r JOIN calendars c ON c.name = r.calendar
    ),
    rule_points AS (
        SELECT DISTINCT r.policy_id, r.metric, q.priority, r.valid_from AS from_day
        FROM policy_rows r, (VALUES {priorities}) q(priority)
        WHERE r.priority IN (q.priority, '*')
    ),
    rule_spans AS (
        SELECT pt.policy_id, pt.metric, pt.priority, pt.from_day,
               coalesce(lead(pt.from_day) OVER (PARTITION BY pt.policy_id, pt.metric, pt.priority
                                                ORDER BY pt.from_day), DATE '9999-12-31') AS to_day,
               pt.rule.kind AS kind, pt.rule.amount AS amount, pt.rule.cal AS cal
        FROM (SELECT pt.policy_id, pt.metric, pt.priority, pt.from_day,
                     arg_max({{'kind': r.kind, 'amount': r.amount, 'cal': r.cal}},
                             (r.priority <> '*', r.valid_from)) AS rule
              FROM rule_points pt JOIN policy_rows r
                ON r.policy_id = pt.policy_id AND r.metric = pt.metric AND r.priority IN (pt.priority, '*')
               AND r.valid_from <= pt.from_day
              GROUP BY ALL) pt
    ),
    contract_bounds AS (
        SELECT client_id, starts_on AS bound FROM {contracts}
        UNION SELECT client_id, ends_on + 1 FROM {contracts} WHERE ends_on IS NOT NULL
    ),
    contract_terms AS (
        -- each client's dates cut where any of its contracts starts or ends, with the smallest N and the
        -- first policy named per stretch, so that a case finds at most one row by its client
        SELECT s.client_id, s.starts_on, s.ends_on, min(k.response_business_days) AS days,
               min(k.policy_id) AS policy_id
        FROM (SELECT client_id, bound AS starts_on,
                     coalesce(lead(bound) OVER (PARTITION BY client_id ORDER BY bound) - 1, DATE '9999-12-31')
                         AS ends_on
              FROM contract_bounds) s
        JOIN {contracts} k ON k.client_id = s.client_id
         AND s.starts_on BETWEEN k.starts_on AND coalesce(k.ends_on, DATE '9999-12-31')
        GROUP BY s.client_id, s.starts_on, s.ends_on
    )"""


def ruled_select(source: str, targets: tuple[Target, ...]) -> str:
    """SELECT of every row of ``source`` (cases with ``client_id``, ``tier``, ``category``, ``priority``
    and ``receipt_day``) with ``policy_id`` and, per target, its rule: ``{metric}_kind``,
    ``{metric}_amount``, ``{metric}_cal`` and ``{metric}_by_contract``. A free case in general coding has
    no target at all."""
    joins, columns = [], []
    for t in targets:
        r = f"r_{t.metric}"
        joins.append(f"""LEFT JOIN rule_spans {r} ON {r}.policy_id = coalesce(k.policy_id, e.tier)
                         AND {r}.metric = '{t.metric}' AND {r}.priority = e.priority
                         AND e.receipt_day >= {r}.from_day AND e.receipt_day < {r}.to_day""")
        kind = one_of(f"CASE WHEN NOT (e.tier = 'free' AND e.category = 'general_coding') THEN {r}.kind END",
                      RULE_KINDS)
        by_contract = "FALSE"
        if t.contract_days:
            by_contract = f"({r}.kind = 'days' AND k.policy_id IS NULL AND k.days IS NOT NULL)"
        columns.append(f"""{kind} AS {t.col('kind')},
               CASE WHEN {by_contract} THEN k.days ELSE {r}.amount END AS {t.col('amount')},
               {r}.cal AS {t.col('cal')}, coalesce({by_contract}, FALSE) AS {t.col('by_contract')}""")
    return f"""
        SELECT e.*, coalesce(k.policy_id, e.tier) AS policy_id, {', '.join(columns)}
        FROM {source} e
        LEFT JOIN contract_terms k ON k.client_id = e.client_id AND e.receipt_day BETWEEN k.starts_on AND k.ends_on
        {' '.join(joins)}"""


def target_in_words(kind, amount, calendar: str, by_contract: bool, tier: str, client_name: str,
                    policy_id: str, category: str) -> str:
    """Which first-response target a case has and why, from the engine's own columns of ``case_sla``:
    "Cobalt's contract: within 2 business days", "Enterprise default: within 1 business day",
    "Free default: by the end of the next business day", "Cobalt's policy gold: within 4 hours, around the
    clock", "General coding on the free tier: no deadline"."""
    if tier == "free" and category == "general_coding":
        return "General coding on the free tier: no deadline"
    words = formats.rule(kind, amount, calendar)
    if by_contract:
        return f"{client_name}'s contract: {words}"
    if policy_id in TIER_POLICIES:
        return f"{formats.word('tier', policy_id)} default: {words}"
    return f"{client_name}'s policy {policy_id}: {words}"
