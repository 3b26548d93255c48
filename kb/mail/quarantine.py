"""The mail quarantine: messages the store would not take, held aside one by one with their reason
(``kb.mail.intake.take`` holds them), until an admin retries or discards each.

* ``retry`` runs the intake again on the one message, as it was read (its bytes, mailbox, folder, instant of
  receipt and whether its source vouched for the team), e.g. after a fix: taken, it is ``retried``; refused
  again, it stays ``held`` with the new reason.
* ``discard`` drops it for good: ``discarded``, and a copy read later (another mailbox, a poll from the start)
  counts as taken already.

Both are audited (table ``mail_quarantine``), as the holding is.
"""

from __future__ import annotations

from datetime import datetime

from kb.access import Actor, require
from kb.config import Config
from kb.db import audit
from kb.db.connection import transaction
from kb.formats import count
from kb.mail.intake import take
from kb.mail.messages import Skipped, parse_message, support_matcher
from kb.timestamps import now_utc


class NotHeld(ValueError):
    """The message is not (or no longer) held in the quarantine."""


def retry(con, config: Config, actor: Actor, key: str, *, now: datetime | None = None) -> str:
    """Run the intake again on one held message; what came of it, in words."""
    require(actor, "configure")
    now = now or now_utc()
    row = _held(con, key)
    team = support_matcher(config.mail.support_addresses, config.mail.trusted_authserv_ids)
    parsed = parse_message(bytes(row["raw"]), team, mailbox=row["mailbox"], folder=row["folder"],
                           where=row["read_from"], internaldate=row["received_at"], now=now,
                           vouched=row["vouched"], uid=row["uid"])
    if isinstance(parsed, Skipped):
        return _still_held(con, actor, key, f"cannot be used: {parsed.reason}")
    done = take(con, config, [parsed], actor, source=f"mail quarantine retry {key}", now=now)
    if done.held:
        return _still_held(con, actor, key, done.held[0].reason)
    outcome = (f"taken: {count(done.cases_opened, 'case')} opened, {count(done.responses, 'response')} recorded"
               if done.taken else "taken already")
    with transaction(con):
        con.execute("UPDATE mail_quarantine SET status = 'retried', decided_by = ?, decided_at = ? "
                    "WHERE message_key = ?", [actor.email, now_utc(), key])
        audit.record(con, actor, "retry", "mail_quarantine", key, {"status": "held"},
                     {"status": "retried", "outcome": outcome})
    return outcome


def discard(con, actor: Actor, key: str) -> None:
    """Drop one held message for good."""
    require(actor, "configure")
    with transaction(con):
        _held(con, key)
        con.execute("UPDATE mail_quarantine SET status = 'discarded', decided_by = ?, decided_at = ? "
                    "WHERE message_key = ?", [actor.email, now_utc(), key])
        audit.record(con, actor, "discard", "mail_quarantine", key, {"status": "held"}, {"status": "discarded"})


def _held(con, key: str) -> dict:
    rows = con.execute("SELECT * FROM mail_quarantine WHERE message_key = ?", [key]).fetchall()
    if not rows:
        raise NotHeld(f"no message {key} in the mail quarantine")
    row = dict(zip([d[0] for d in con.description], rows[0], strict=True))
    if row["status"] != "held":
        raise NotHeld(f"{key} is {row['status']}, not held")
    return row


def _still_held(con, actor: Actor, key: str, reason: str) -> str:
    """Record a retry that did not take the message: it stays held, with the new reason."""
    with transaction(con):
        con.execute("UPDATE mail_quarantine SET reason = ? WHERE message_key = ?", [reason, key])
        audit.record(con, actor, "retry", "mail_quarantine", key, {"status": "held"},
                     {"status": "held", "reason": reason})
    return f"still held: {reason}"
