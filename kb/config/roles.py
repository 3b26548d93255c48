"""``[roles]``: the four roles, and which e-mail addresses and @domains hold each."""

from __future__ import annotations

from kb.config.reading import ConfigError

ROLES = ("viewer", "staff", "lead", "admin")


def roles_config(table: dict) -> dict[str, str]:
    """``[roles]`` maps a role to the e-mail addresses and @domains that hold it."""
    if not isinstance(table, dict):
        raise ConfigError("[roles] must be a table of role = [addresses]")
    granted: dict[str, str] = {}
    for role, members in table.items():
        if role not in ROLES:
            raise ConfigError(f"roles.{role}: unknown role (one of {', '.join(ROLES)})")
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ConfigError(f"roles.{role} must be a list of e-mail addresses or \"@domain\" entries")
        for member in members:
            granted[member.strip().lower()] = role
    return granted
