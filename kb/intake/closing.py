"""Closing a month, reopening it, and marking its credits applied (rules §13), each in one transaction with its
audit row.

* ``close_month`` (leads): from the first business day after the month (the support calendar), freeze what the
  month's uptime, credits and statements hold as computed now: its ``env_uptime`` rows (``closed_uptime``), its
  ``contract_refunds`` rows (``closed_refunds``), the first responses of the cases received in it
  (``closed_cases``), every target due in it (``closed_targets``) and every client's name and tier
  (``closed_clients``, its statement's heading), under the next version of its closing (``month_closings``).
  Five INSERT … SELECT from the clients, the as-of views and every case's rows, whatever the month holds.
  From then on the as-of views read the month from these rows (``kb.engine.closings``) and every write that
  would change it is refused (``kb.intake.closed_months``).
* ``reopen_month`` (admins, with a reason): the closing in force is marked reopened; its rows stay, and
  closing the month again freezes a new version beside them.
* ``apply_credit`` (leads): the final credit of a contract in a closed month is marked applied with a reference
  (an invoice or credit-note number), once; the Overview no longer counts it as owed.

Problems are raised as ``Rejected`` naming the field (``month``, ``reason``, ``reference``), and nothing is
written.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa

from kb import formats
from kb.access import Actor, require
from kb.config import Config
from kb.db import audit
from kb.db.connection import transaction
from kb.db.sqltext import instant
from kb.engine.asof import deadlines, every_case_rows, open_views
from kb.engine.case_sla import CasesWhere
from kb.engine.closings import live_view
from kb.engine.periods import first_business_day, month_span
from kb.engine.targets import dated_sql
from kb.intake.corrections import short_text
from kb.intake.importing import Problem, Rejected
from kb.timestamps import now_utc

CaseTables = Callable[..., dict[str, pa.Table]]  # (con, config, as_of): every case's case tables
MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])", re.ASCII)
REASON_MAX_CHARS = 500
REFERENCE_MAX_CHARS = 100


@dataclass(frozen=True)
class Closed:
    """What a closing froze."""

    month: str
    version: int
    environments: int
    contracts: int
    cases: int
    targets: int  # due in the month, of every kind (a case's first response and resolution, a client's question)

    def in_words(self) -> str:
        """'(version 2): the uptime of 3 environments, …, 120 cases received and 130 targets due in it are
        final', what the command line and the Service credits page say after the month's name."""
        return (f"(version {self.version}): the uptime of {formats.count(self.environments, 'environment')}, "
                f"the credits of {formats.count(self.contracts, 'contract')}, "
                f"{formats.count(self.cases, 'case')} received and {formats.count(self.targets, 'target')} "
                "due in it are final")


def month_text(month: str) -> str:
    """``month`` as 'YYYY-MM' (trimmed); Rejected naming it when it is not one."""
    text = (month or "").strip()
    if not MONTH.fullmatch(text):
        raise Rejected([Problem(None, "month", f"{formats.text(month)!r} is not a month like 2026-11")])
    return text


def first_day_to_close(config: Config, month: str) -> date:
    """The first business day after ``month`` ('YYYY-MM'), in the support calendar: the day it can be closed."""
    year, number = int(month[:4]), int(month[5:])
    return first_business_day(config.calendar, year + (number == 12), number % 12 + 1)


def close_month(con, config: Config, actor: Actor, month: str, now: datetime | None = None,
                case_tables: CaseTables | None = None) -> Closed:
    """Freeze ``month``'s uptime, credits and statements' cases and targets as computed at ``now`` (default:
    now). ``case_tables(con, config, now)``: every case's ``case_sla`` and ``case_questions`` (default: computed
    by the engine; the dashboard and the command line open the rows kept beside the database,
    ``kb.kept.every_case``)."""
    require(actor, "close_month")
    month, now = month_text(month), now or now_utc()
    opens = first_day_to_close(config, month)
    if now.astimezone(config.calendar.zone).date() < opens:
        raise Rejected([Problem(None, "month", f"{month} cannot be closed before {formats.day(opens)}, the first "
                                               "business day after it")])
    with transaction(con):
        latest = _latest_closing(con, month)
        if latest is not None and latest["reopened_at"] is None:
            raise Rejected([Problem(None, "month", f"{month} is closed already (version {latest['version']}, "
                                                   f"on {formats.instant(latest['closed_at'], config.calendar.zone)} "
                                                   f"by {latest['closed_by']})")])
        version = 1 if latest is None else latest["version"] + 1
        open_views(con, config, now)
        frozen = {"month": month, "version": version}
        environments = _frozen(con, "INSERT INTO closed_uptime SELECT $version, * FROM "
                                    f"{live_view('env_uptime')} WHERE month = $month", frozen)
        contracts = _frozen(con, "INSERT INTO closed_refunds SELECT $version, * FROM "
                                 f"{live_view('contract_refunds')} WHERE month = $month", frozen)
        start, end = month_span(config.calendar, month)
        con.register("month_cases", deadlines(con, config, now, CasesWhere(
            f"received_at >= {instant(start)} AND received_at < {instant(end)}")))  # this month's alone
        cases = _frozen(con, """INSERT INTO closed_cases
                                SELECT $month, $version, case_id, client_id, received_at, first_response_due,
                                       first_response_at, first_response_state
                                FROM month_cases""", frozen)
        every_case = (case_tables or every_case_rows)(con, config, now)
        con.register("month_case_sla", every_case["case_sla"])
        con.register("month_case_questions", every_case["case_questions"])
        dated = dated_sql("month_case_sla", "month_case_questions")
        targets = _frozen(con, f"INSERT INTO closed_targets SELECT $month, $version, * FROM ({dated}) "
                               "WHERE due >= $start AND due < $end", {**frozen, "start": start, "end": end})
        con.execute("INSERT INTO closed_clients SELECT $month, $version, client_id, name, tier FROM clients", frozen)
        con.execute("INSERT INTO month_closings (month, version, closed_at, closed_by, targets_kept) "
                    "VALUES (?, ?, ?, ?, TRUE)", [month, version, now, actor.email])
        closed = Closed(month, version, environments, contracts, cases, targets)
        audit.record(con, actor, "close_month", "month_closings", month, None,
                     {"version": version, "closed_at": now, "environments": environments, "contracts": contracts,
                      "cases": cases, "targets": targets})
    return closed


def reopen_month(con, config: Config, actor: Actor, month: str, reason: str, now: datetime | None = None) -> int:
    """Reopen ``month`` for writes, for ``reason``; the version reopened. Its frozen rows are kept."""
    require(actor, "reopen_month")
    month, now = month_text(month), now or now_utc()
    reason = short_text(reason, "reason", REASON_MAX_CHARS)
    with transaction(con):
        latest = _closing_in_force(con, month)
        con.execute("UPDATE month_closings SET reopened_at = ?, reopened_by = ?, reopen_reason = ? "
                    "WHERE month = ? AND version = ?", [now, actor.email, reason, month, latest["version"]])
        audit.record(con, actor, "reopen_month", "month_closings", month,
                     {"version": latest["version"], "closed_at": latest["closed_at"]},
                     {"version": latest["version"], "reopened_at": now, "reopen_reason": reason})
    return latest["version"]


def apply_credit(con, config: Config, actor: Actor, contract_id: str, month: str, reference: str,
                 now: datetime | None = None) -> None:
    """Mark the final credit of ``contract_id`` for ``month`` (closed) applied, with ``reference``."""
    require(actor, "apply_credit")
    month, now = month_text(month), now or now_utc()
    reference = short_text(reference, "reference", REFERENCE_MAX_CHARS)
    with transaction(con):
        latest = _closing_in_force(con, month, ": its credits are not final yet; close it first")
        credit = con.execute("SELECT refund_amount, currency FROM closed_refunds "
                             "WHERE month = ? AND version = ? AND contract_id = ?",
                             [month, latest["version"], contract_id]).fetchall()
        if not credit or not credit[0][0]:
            raise Rejected([Problem(None, "contract_id", f"contract {contract_id!r} owes no credit for {month}")])
        applied = con.execute("SELECT reference, applied_at FROM credit_applications WHERE contract_id = ? "
                              "AND month = ?", [contract_id, month]).fetchall()
        if applied:
            raise Rejected([Problem(None, "contract_id", (
                f"the {month} credit of contract {contract_id} was applied already ({applied[0][0]}, "
                f"{formats.instant(applied[0][1], config.calendar.zone)})"))])
        amount, currency = credit[0]
        con.execute("INSERT INTO credit_applications VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [contract_id, month, latest["version"], amount, currency, now, actor.email, reference])
        audit.record(con, actor, "apply_credit", "credit_applications", f"{contract_id} {month}", None,
                     {"contract_id": contract_id, "month": month, "amount": amount, "currency": currency,
                      "reference": reference})


def _latest_closing(con, month: str) -> dict | None:
    cursor = con.execute("SELECT * FROM month_closings WHERE month = ? ORDER BY version DESC LIMIT 1", [month])
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    return dict(zip(names, rows[0], strict=True)) if rows else None


def _closing_in_force(con, month: str, why: str = "") -> dict:
    """The closing of ``month`` in force (its latest, not reopened); else Rejected: "``month`` is not closed",
    followed by ``why``."""
    latest = _latest_closing(con, month)
    if latest is None or latest["reopened_at"] is not None:
        raise Rejected([Problem(None, "month", f"{month} is not closed{why}")])
    return latest


def _frozen(con, insert: str, params: dict) -> int:
    """Run one INSERT … SELECT; the rows it froze."""
    return con.execute(insert, params).fetchall()[0][0]
