"""A policy's rows and a contract's policy (rules §12), changed one at a time from the Clients and contracts page:
each change in one transaction with its audit row, by someone who may edit contracts (``edit_clients``). A
problem is raised as ``Rejected`` naming the field, and nothing is written.

A policy row is (policy_id, metric, priority, within, calendar, valid_from), one per policy, metric, priority
and date it is valid from. ``within`` is ``Nh`` (N hours on its calendar, 1–10000), ``Nd`` (N business days,
1–60) or ``next_day_close`` (the end of the next business day); an empty calendar is ``support`` and an empty
``valid_from`` the start of time, 1970-01-01. The tier policies ``enterprise``, ``custom`` and ``free`` always
exist: while no row names one it holds what ``[sla]`` says, and its first row replaces all of that.

A contract that names a policy takes every target from it, so it may not also set ``response_business_days``;
a policy that contracts name keeps at least one row, so that they never name a policy that is not there.
"""

from __future__ import annotations

from datetime import date

from kb import formats
from kb.access import Actor, require
from kb.config import Config
from kb.db import audit
from kb.db.connection import transaction
from kb.db.schema import PRIORITIES
from kb.engine.policies import TIER_POLICIES
from kb.engine.targets import BY_METRIC
from kb.intake.importing import Problem, Rejected, checked, row_of, staged_from_records, write_checked
from kb.intake.validation import quoted

COLUMNS = ("policy_id", "metric", "priority", "within", "calendar", "valid_from")
PRIORITY_CHOICES = (*PRIORITIES, "*")
UNITS = ("h", "d", "next_day_close")  # how a form asks for ``within``: a number of hours or business days, or none
START = date(1970, 1, 1)  # a row's valid_from when it holds from the start


def within(amount: str, unit: str) -> str:
    """A form's number and unit (one of ``UNITS``) as a policy row's ``within``: ``4h``, ``2d``,
    ``next_day_close``; empty when a number is wanted and none was typed."""
    if unit == "next_day_close":
        return unit
    amount = (amount or "").strip()
    return f"{amount}{unit}" if amount else ""


def add_policy_row(con, config: Config, actor: Actor, fields: dict[str, str | None]) -> dict:
    """Store one policy row from text (``COLUMNS``, as a form gives them), through the rules every policy row
    passes (``kb.intake.validation``, as in an import); return it as stored."""
    require(actor, "edit_clients")
    cells = {name: (fields.get(name) or "").strip(" \t\r\n") or None for name in COLUMNS}
    staged = staged_from_records("policies", [cells])
    with checked(con, config, staged):
        write_checked(con, config, staged, actor, permission="edit_clients", source="form")
    key = {"policy_id": cells["policy_id"], "metric": cells["metric"], "priority": cells["priority"],
           "valid_from": date.fromisoformat(cells["valid_from"]) if cells["valid_from"] else START}
    return _stored(con, key)


def remove_policy_row(con, config: Config, actor: Actor, policy_id: str, metric: str, priority: str,
                      valid_from: date) -> dict:
    """Remove one stored policy row, named by its key; return it as it was. Refused when it is the last row
    of a policy that contracts name (other than a tier policy, which then holds what ``[sla]`` says)."""
    require(actor, "edit_clients")
    key = {"policy_id": policy_id, "metric": metric, "priority": priority, "valid_from": valid_from}
    with transaction(con):
        row = _stored(con, key)
        if row is None:
            raise Rejected([Problem(None, "policy_id", f"policy {policy_id} has no {_named(key)}")])
        others = con.execute("SELECT count(*) FROM policies WHERE policy_id = ?", [policy_id]).fetchone()[0] - 1
        naming = [contract for (contract,) in con.execute(
            "SELECT contract_id FROM contracts WHERE policy_id = ? ORDER BY contract_id", [policy_id]).fetchall()]
        if not others and naming and policy_id not in TIER_POLICIES:
            raise Rejected([Problem(None, "policy_id", f"this is the last row of policy {policy_id}, and "
                                                       f"{_contracts(naming)}: give "
                                                       f"{'it' if len(naming) == 1 else 'them'} another policy "
                                                       "first")])
        con.execute("DELETE FROM policies WHERE policy_id = ? AND metric = ? AND priority = ? AND valid_from = ?",
                    [policy_id, metric, priority, valid_from])
        audit.record(con, actor, "remove", "policies", policy_id, row, None)
    return row


def set_contract_policy(con, config: Config, actor: Actor, contract_id: str, policy_id: str | None) -> None:
    """The contract takes its targets from ``policy_id`` (None: from its client's tier policy). Refused for a
    policy that does not exist, and for a contract that sets its own response business days."""
    require(actor, "edit_clients")
    with transaction(con):
        contract = row_of(con, "contracts", "contract_id", contract_id)
        if policy_id is not None:
            known = con.execute("SELECT 1 FROM policies WHERE policy_id = ?", [policy_id]).fetchall()
            if not known and policy_id not in TIER_POLICIES:
                raise Rejected([Problem(None, "policy_id", f"no policy {quoted(policy_id)}")])
            days = contract["response_business_days"]
            if days is not None:
                raise Rejected([Problem(None, "policy_id", f"contract {contract_id} sets its own response time "
                                                           f"({formats.count(days, 'business day')}); a contract "
                                                           "that names a "
                                                           "policy takes every target from it: empty its Response "
                                                           "(business days) first")])
        con.execute("UPDATE contracts SET policy_id = ? WHERE contract_id = ?", [policy_id, contract_id])
        client = {"client_id": contract["client_id"]}  # (which cases the snapshot computes again: kb.snapshot)
        audit.record(con, actor, "edit", "contracts", contract_id, {"policy_id": contract["policy_id"], **client},
                     {"policy_id": policy_id, **client})


def _stored(con, key: dict) -> dict | None:
    """The stored policy row with the key of ``key`` (policy_id, metric, priority, valid_from), or None."""
    cursor = con.execute("SELECT * FROM policies WHERE policy_id = ? AND metric = ? AND priority = ? "
                         "AND valid_from = ?", [key["policy_id"], key["metric"], key["priority"], key["valid_from"]])
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    return dict(zip(names, rows[0], strict=True)) if rows else None


def _named(row: dict) -> str:
    """A policy row by its key, in words: "row for urgent first response valid from 1970-01-01"."""
    who = "any priority" if row["priority"] == "*" else formats.word("priority", row["priority"]).lower()
    what = BY_METRIC[row["metric"]].label.lower() if row["metric"] in BY_METRIC else row["metric"]
    return f"row for {who} {what} valid from {row['valid_from']}"


def _contracts(ids: list[str]) -> str:
    """Which contracts name a policy: "contract K1 names it", "contracts K1, K2, K3 and 2 more name it"."""
    shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
    return f"contract {shown} names it" if len(ids) == 1 else f"contracts {shown} name it"
