"""Who may do what: roles from ``support.toml``, the permission each write needs, and whether the sign-in that
vouches for an address (``[auth]`` in ``.streamlit/secrets.toml``, the provider's claims) can be trusted."""

from __future__ import annotations

import getpass
import re
from collections.abc import Mapping
from dataclasses import dataclass

from kb.config import ROLES, Config

# Each role can do what the roles before it can, and more.
PERMISSIONS = {
    "viewer": {"read"},
    "staff": {"log_case", "record_response", "resolve_case", "log_incident", "close_incident", "log_check"},
    "lead": {"assign_case", "edit_clients", "import", "correct", "close_month", "apply_credit"},
    "admin": {"audit", "configure", "reopen_month"},
}


# One address: a local part without '@' or white space, then one domain.
MAILBOX = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class PermissionDenied(PermissionError):
    """The actor's role does not allow this action."""


@dataclass(frozen=True)
class Actor:
    email: str
    role: str

    def may(self, permission: str) -> bool:
        granted = set()
        for role in ROLES[: ROLES.index(self.role) + 1]:
            granted |= PERMISSIONS[role]
        return permission in granted


def require(actor: Actor, permission: str) -> None:
    if not actor.may(permission):
        raise PermissionDenied(f"{actor.email} ({actor.role}) may not {permission.replace('_', ' ')}")


def role_for(config: Config, email: str) -> str | None:
    """The role granted to an address, directly or through its ``@domain``; None if none, and None
    for anything that is not one plain address (two ``@``, spaces, nothing before the ``@``)."""
    email = email.strip().lower()
    if not MAILBOX.fullmatch(email):
        return None
    if email in config.roles:
        return config.roles[email]
    domain = "@" + email.rpartition("@")[2]
    return config.roles.get(domain)


def team_addresses(config: Config) -> list[str]:
    """The addresses (not the @domains) given a role of staff or above under ``[roles]``."""
    return [who for who, role in config.roles.items()
            if not who.startswith("@") and ROLES.index(role) >= ROLES.index("staff")]


def command_line_actor() -> Actor:
    """Whoever runs ``python -m kb`` has the file in hand, so acts as admin."""
    return Actor(f"cli:{getpass.getuser()}", "admin")


def address_verified(claims: Mapping[str, object]) -> bool:
    """The provider vouches for the signed-in address: its ``email_verified`` claim is JSON ``true`` (or the
    text ``"true"``, in any case, as some providers send it). Missing, ``"false"``, ``"0"``, ``1``, ``"yes"``
    and the like do not vouch."""
    claim = claims.get("email_verified")
    return claim is True or (isinstance(claim, str) and claim.lower() == "true")


SECRETS_FILE = ".streamlit/secrets.toml"
# What ``st.login()`` needs in ``[auth]`` for its one (default) provider.
AUTH_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")
# Secrets copied from documentation: a cookie signed with one of them can be forged by anyone.
EXAMPLE_SECRETS = {"a long random string", "a-long-random-string", "changeme", "change-me", "secret", "xxx"}
MIN_COOKIE_SECRET = 32


def auth_problem(auth: object) -> str | None:
    """What makes an ``[auth]`` section (None: there is none) unusable for sign-in; None when it can be used."""
    if auth is None:
        return f"{SECRETS_FILE} has no [auth] section"
    if not isinstance(auth, Mapping):
        return f"[auth] in {SECRETS_FILE} is not a table"
    missing = [key for key in AUTH_KEYS if not (isinstance(auth.get(key), str) and auth[key].strip())]
    if missing:
        return f"[auth] in {SECRETS_FILE} needs {', '.join(missing)}, each a non-empty string"
    secret = auth["cookie_secret"]
    if secret.strip().lower() in EXAMPLE_SECRETS or len(secret) < MIN_COOKIE_SECRET:
        return (f"[auth] cookie_secret in {SECRETS_FILE} must be a random string of at least {MIN_COOKIE_SECRET} "
                "characters, not an example (make one with "
                "`python3 -c \"import secrets; print(secrets.token_urlsafe(48))\"`)")
    return None
