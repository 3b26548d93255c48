"""Who may do what: roles from ``support.toml`` and the permission each write needs."""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass

from kb.config import ROLES, Config

# Each role can do what the roles before it can, and more.
PERMISSIONS = {
    "viewer": {"read"},
    "staff": {"log_case", "record_response", "resolve_case", "log_incident", "close_incident", "log_check"},
    "lead": {"assign_case", "edit_clients", "import", "correct"},
    "admin": {"audit", "configure"},
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
