"""API tokens: made once and shown once, stored as a SHA-256 hash, looked up by it, revoked by id.

A token is ``kb_`` and 43 URL-safe random characters (256 bits); the table ``api_tokens`` keeps its
hash, never the token. Creating and revoking one are writes like any other: an admin's, audited in
the same transaction. ``last_used_at`` is bookkeeping, not data: it is written at most once a minute
per token, outside the store's write lock, and neither audited nor counted as a change of the data.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import duckdb

from kb.access import Actor, require
from kb.config import ROLES
from kb.db import audit
from kb.db.connection import transaction
from kb.intake.importing import Problem, Rejected
from kb.timestamps import now_utc

PREFIX = "kb_"
NAME_MAX = 100


@dataclass(frozen=True)
class Created:
    token_id: str
    name: str
    role: str
    token: str  # shown once, stored nowhere


@dataclass(frozen=True)
class Holder:
    """Whom a valid token stands for."""

    token_id: str
    name: str
    role: str

    @property
    def actor(self) -> Actor:
        return Actor(f"token:{self.name}", self.role)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def create_token(con, actor: Actor, *, name: str, role: str) -> Created:
    """Make a token for ``role``, named ``name`` (who or what uses it); raise Rejected on a bad name or role."""
    require(actor, "configure")
    name = (name or "").strip()
    problems = []
    if not name or not name.isprintable() or len(name) > NAME_MAX:
        problems.append(Problem(None, "name", f"must be 1 to {NAME_MAX} printable characters"))
    if role not in ROLES:
        problems.append(Problem(None, "role", f"must be one of {', '.join(ROLES)}"))
    if problems:
        raise Rejected(problems)
    token = new_token()
    token_id = "tok-" + secrets.token_hex(4)
    with transaction(con):
        same = con.execute("SELECT token_id FROM api_tokens WHERE lower(name) = lower(?) AND revoked_at IS NULL",
                           [name]).fetchall()
        if same:  # a name tells apart who uses which token: on the page, in the audit trail, when revoking
            raise Rejected([Problem(None, "name", f"is the name of token {same[0][0]} already: "
                                                  "pick another, or revoke that one first")])
        con.execute("INSERT INTO api_tokens (token_id, name, role, token_hash, created_at, created_by) "
                    "VALUES (?, ?, ?, ?, ?, ?)", [token_id, name, role, token_hash(token), now_utc(), actor.email])
        audit.record(con, actor, "create", "api_tokens", token_id, None,
                     {"name": name, "role": role, "created_by": actor.email})
    return Created(token_id, name, role, token)


def revoke_token(con, actor: Actor, token_id: str) -> bool:
    """Revoke a token by id (audited); False when it was revoked already; Rejected when there is none."""
    require(actor, "configure")
    with transaction(con):
        rows = con.execute("SELECT name, role, revoked_at FROM api_tokens WHERE token_id = ?",
                           [token_id]).fetchall()
        if not rows:
            raise Rejected([Problem(None, "token_id", f"no token {token_id!r}")])
        name, role, revoked_at = rows[0]
        if revoked_at is not None:
            return False
        revoked = now_utc()
        con.execute("UPDATE api_tokens SET revoked_at = ? WHERE token_id = ?", [revoked, token_id])
        audit.record(con, actor, "revoke", "api_tokens", token_id, {"name": name, "role": role, "revoked_at": None},
                     {"name": name, "role": role, "revoked_at": revoked})
    return True


def holder_of(con, token: str) -> Holder | None:
    """Whom ``token`` stands for; None when it is unknown or revoked."""
    if not token.startswith(PREFIX):
        return None
    rows = con.execute("SELECT token_id, name, role FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
                       [token_hash(token)]).fetchall()
    return Holder(*rows[0]) if rows else None


_USE_EVERY_SECONDS = 60.0
_last_noted: dict[str, float] = {}
_noted_lock = threading.Lock()


def note_use(con, token_id: str, when: datetime | None = None) -> None:
    """Set ``last_used_at``, at most once a minute per token; a conflicting update is simply skipped."""
    moment = time.monotonic()
    with _noted_lock:
        if moment - _last_noted.get(token_id, -_USE_EVERY_SECONDS) < _USE_EVERY_SECONDS:
            return
        _last_noted[token_id] = moment
    try:
        con.execute("UPDATE api_tokens SET last_used_at = ? WHERE token_id = ?", [when or now_utc(), token_id])
    except duckdb.TransactionException:
        pass
