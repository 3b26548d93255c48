"""What the store holds already that a batch of mail needs: the keys taken, the stored messages waiting for
their thread, the cases the batch's links and tags name, and the clients of its senders (rules §9). Each is
one query over an Arrow table of the batch's values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from kb.mail.messages import CASE_TAG, MailRecord, client_id_for


@dataclass
class Node:
    """A message in the threading: one of the batch, or a stored one without a case that names one of it."""

    key: str
    message_id: str | None
    is_team: bool
    is_automatic: bool
    instant: datetime | None
    links: tuple[str, ...]
    case_tag: str | None
    unverified: bool = False
    record: MailRecord | None = None
    case_id: str | None = None



def keys_table(values) -> pa.Table:
    return pa.table({"v": pa.array(sorted(values), pa.string())})


def query(con, name: str, table: pa.Table, sql: str) -> list[tuple]:
    con.register(name, table)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.unregister(name)


def run_with(con, name: str, table: pa.Table, sql: str, params: list | None = None) -> None:
    """Run one statement with ``table`` registered as ``name``."""
    con.register(name, table)
    try:
        con.execute(sql, params)
    finally:
        con.unregister(name)


def stored_keys(con, keys: list[str]) -> dict[str, bool]:
    """The keys taken already (stored messages, and messages an admin discarded from the quarantine), each with
    whether it is settled: a team message something vouched for, or a discarded one something vouched for. An
    unsettled one (a client's message, a team message kept unverified, a discarded copy nothing vouched for)
    gives way to a vouched team message with its key."""
    rows = query(con, "mail_keys", keys_table(set(keys)), """
        SELECT message_key, bool_or(settled) FROM (
            SELECT message_key, is_team AND NOT coalesce(unverified, false) AS settled
            FROM messages JOIN mail_keys ON message_key = v
            UNION ALL
            SELECT message_key, vouched FROM mail_quarantine JOIN mail_keys ON message_key = v
            WHERE status = 'discarded')
        GROUP BY message_key""")
    return dict(rows)


def stored_orphans(con, batch_ids: set[str]) -> list[Node]:
    """Stored messages without a case that name one of the batch's Message-IDs."""
    if not batch_ids:
        return []
    rows = query(con, "mail_ids", keys_table(batch_ids), """
        SELECT message_key, message_id, is_team, is_automatic, received_at, links, subject,
               coalesce(unverified, false) FROM messages
        WHERE case_id IS NULL AND message_key IN (
            SELECT DISTINCT message_key FROM (SELECT message_key, unnest(links) AS link FROM messages
                                              WHERE case_id IS NULL) JOIN mail_ids ON link = v)""")
    nodes = []
    for key, message_id, team, automatic, at, links, subject, unverified in rows:
        tag = CASE_TAG.search(subject or "")
        nodes.append(Node(key, message_id, team, automatic, at, tuple(links or ()), tag.group(1) if tag else None,
                          unverified))
    return nodes


def stored_cases_of(con, links: set[str]) -> dict[str, str]:
    """Message-ID → case, for the stored messages the batch names."""
    if not links:
        return {}
    rows = query(con, "mail_links", keys_table(links),
                  "SELECT message_id, case_id FROM messages JOIN mail_links ON message_id = v "
                  "WHERE case_id IS NOT NULL")
    return dict(rows)


def existing_cases(con, tags: set[str]) -> dict[str, datetime | None]:
    if not tags:
        return {}
    rows = query(con, "mail_tags", keys_table(tags),
                  "SELECT case_id, received_at FROM cases JOIN mail_tags ON case_id = v WHERE voided_at IS NULL")
    return dict(rows)


def stored_case_times(con, cases: set[str]) -> dict[str, tuple[datetime, datetime | None]]:
    """case → (received_at, first_response_at) of stored, not voided cases."""
    if not cases:
        return {}
    rows = query(con, "mail_cases", keys_table(cases),
                  "SELECT case_id, received_at, first_response_at FROM cases JOIN mail_cases ON case_id = v "
                  "WHERE voided_at IS NULL")
    return {case: (received, response) for case, received, response in rows}


def clients_for(con, openers: dict[str, Node]) -> tuple[dict[str, str], list[dict]]:
    """address → client_id for every opener, and the new free clients to make (rules §9: by email_domain,
    else the client whose id is the address, else a new free client)."""
    addresses: dict[str, MailRecord] = {}
    for opener in openers.values():
        addresses.setdefault(opener.record.from_address, opener.record)
    if not addresses:
        return {}, []
    table = pa.table({
        "address": pa.array(list(addresses), pa.string()),
        "domain": pa.array([a.rpartition("@")[2] for a in addresses], pa.string()),
        "cid": pa.array([client_id_for(a) for a in addresses], pa.string()),
    })
    rows = query(con, "mail_senders", table, """
        WITH by_domain AS (SELECT lower(ltrim(trim(email_domain), '@')) AS domain, min(client_id) AS client_id
                           FROM clients WHERE email_domain IS NOT NULL GROUP BY ALL)
        SELECT s.address, coalesce(d.client_id, c.client_id)
        FROM mail_senders s LEFT JOIN by_domain d ON d.domain = s.domain LEFT JOIN clients c ON c.client_id = s.cid""")
    client_of = {address: client for address, client in rows if client}
    new: dict[str, dict] = {}
    for address, record in addresses.items():
        if address not in client_of:
            cid = client_id_for(address)
            client_of[address] = cid
            new.setdefault(cid, {"client_id": cid, "name": record.from_name or address, "tier": "free",
                                 "email_domain": None})
    return client_of, list(new.values())
