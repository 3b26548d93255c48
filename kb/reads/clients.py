"""The clients, environments and contracts tables, a page at a time, and every policy with who uses it, for the
Clients and contracts page."""

from __future__ import annotations

import pandas as pd

from kb import formats
from kb.db.schema import PRIORITIES, TIERS
from kb.db.sqltext import quote
from kb.engine.policies import TIER_POLICIES, policy_rules_sql
from kb.engine.targets import BY_METRIC, TARGETS
from kb.reads.paging import limit_offset
from kb.store import Snapshot, Store
from kb.timestamps import now_utc

PAGE_SIZE = 1000  # rows of a table sent to the browser at once
ORDER = {  # each table shown, in the order its rows are listed
    "clients": "tier, name, client_id",
    "environments": "kind, name, environment_id",
    "contracts": "client_id, starts_on, contract_id",
}


def client_labels(store: Store, snap: Snapshot) -> dict[str, str]:
    """Every client's id and how a client picker (Log case, Client) names it, by name: 'Cobalt Apps (Enterprise,
    COBALT)'. Written by the query, and remembered until the next write: a million cases' store has some 25,000
    clients."""
    tiers = " ".join(f"WHEN {quote(tier)} THEN {quote(formats.word('tier', tier))}" for tier in TIERS)
    clients = store.snapshot_query(f"""SELECT client_id, name || ' (' || CASE tier {tiers} END || ', ' || client_id
                                              || ')' AS label
                                       FROM clients ORDER BY name, client_id""", None, snap)
    return dict(zip(clients.client_id.tolist(), clients.label.tolist(), strict=True))


def row_count(store: Store, snap: Snapshot, table: str) -> int:
    """How many rows ``table`` (one of ``ORDER``) holds."""
    return int(store.snapshot_query(f"SELECT count(*) AS n FROM {_checked(table)}", None, snap).n[0])


NAMES = {  # the names a table's rows refer to by id, shown beside them
    "clients": "",
    "environments": ", (SELECT name FROM clients c WHERE c.client_id = t.client_id) AS client_name",
    "contracts": ", (SELECT name FROM clients c WHERE c.client_id = t.client_id) AS client_name"
                 ", (SELECT name FROM environments e WHERE e.environment_id = t.environment_id) AS environment_name",
}


def rows_page(store: Store, snap: Snapshot, table: str, page: int) -> pd.DataFrame:
    """Page ``page`` (from 0, ``PAGE_SIZE`` rows) of ``table`` in its order, every column, and the names of
    the client and environment a row refers to (``client_name``, ``environment_name``)."""
    return store.snapshot_query(f"SELECT t.*{NAMES[_checked(table)]} FROM (SELECT * FROM {table} "
                                f"ORDER BY {ORDER[table]} {limit_offset(page, PAGE_SIZE)}) t ORDER BY {ORDER[table]}",
                                None, snap)


def _checked(table: str) -> str:
    if table not in ORDER:
        raise ValueError(f"unknown table {table!r} (one of {', '.join(ORDER)})")
    return table


def policy_rows(store: Store, snap: Snapshot) -> pd.DataFrame:
    """Every row of every policy (``kb.engine.policies.policy_rules_sql``: the stored ones, and the tier policies
    ``[sla]`` makes, ``from_config``) in the order people read them: by policy, target (as ``TARGETS`` lists
    them), priority (urgent first, any last) and date; with ``target``, the row in words ("urgent: first
    response within 4 hours, around the clock")."""
    metrics = " ".join(f"WHEN '{t.metric}' THEN {n}" for n, t in enumerate(TARGETS))
    priorities = " ".join(f"WHEN '{p}' THEN {n}" for n, p in enumerate(PRIORITIES))
    rows = store.snapshot_query(f"""SELECT * FROM ({policy_rules_sql(store.config)})
                                    ORDER BY policy_id, CASE metric {metrics} END,
                                             CASE priority {priorities} ELSE 99 END, valid_from""", None, snap)
    rows["target"] = [formats.policy_row(r.priority, BY_METRIC[r.metric].label, r.kind, r.amount, r.calendar,
                                         r.valid_from) for r in rows.itertuples()]
    return rows


SHOWN_CONTRACTS = 3  # contracts named beside a policy; the rest are counted


def policy_users(store: Store, snap: Snapshot) -> dict[str, str]:
    """Who takes their targets from each policy, in words, by policy: the contracts that name it ("Delta Retail
    (K3), Cobalt (K7) and 4 more contracts"), and for a tier policy the clients of the tier whose contract in
    force today names no policy ("every Enterprise client without a policy of its own (3 clients)")."""
    named = store.snapshot_query(f"""
        SELECT k.policy_id, count(*) AS contracts,
               list(c.name || ' (' || k.contract_id || ')' ORDER BY c.name, k.contract_id)[1:{SHOWN_CONTRACTS}]
                   AS shown
        FROM contracts k JOIN clients c ON c.client_id = k.client_id
        WHERE k.policy_id IS NOT NULL GROUP BY k.policy_id""", None, snap)
    today = now_utc().astimezone(store.config.calendar.zone).date()
    by_tier = store.snapshot_query("""
        SELECT c.tier, count(*) AS clients FROM clients c
        WHERE NOT EXISTS (SELECT 1 FROM contracts k WHERE k.client_id = c.client_id AND k.policy_id IS NOT NULL
                          AND $today BETWEEN k.starts_on AND coalesce(k.ends_on, DATE '9999-12-31'))
        GROUP BY c.tier""", {"today": today}, snap)
    users: dict[str, list[str]] = {policy: [] for policy in TIER_POLICIES}
    for tier in TIER_POLICIES:
        clients = by_tier.clients[by_tier.tier == tier].sum()
        users[tier].append(f"every {formats.word('tier', tier)} client without a policy of its own "
                           f"({formats.count(clients, 'client') if clients else 'none today'})")
    for r in named.itertuples():
        more = r.contracts - len(r.shown)
        users.setdefault(r.policy_id, []).append(
            ", ".join(r.shown) + (f" and {formats.count(more, 'more contract')}" if more else ""))
    return {policy: "; ".join(words) for policy, words in users.items()}


def policy_ids(store: Store, snap: Snapshot) -> list[str]:
    """Every policy a contract may name: the tier policies and every policy a stored row names."""
    stored = store.snapshot_query("SELECT DISTINCT policy_id FROM policies", None, snap).policy_id.tolist()
    return sorted(set(TIER_POLICIES) | set(stored))
