"""``[mail]`` (rules §9): the team's own addresses, the IMAP mailboxes polled for cases, and the servers whose
Authentication-Results are trusted."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from kb.config.reading import ConfigError, ascii_names, positive_int, string


@dataclass(frozen=True)
class MailboxConfig:
    """One ``[[mail.mailboxes]]``: an IMAP account polled for cases; its password comes from the environment."""

    name: str
    url: str  # imap://host[:port] or imaps://host[:port]
    user: str
    password_env: str
    folders: tuple[str, ...] = ("INBOX",)
    sent_folders: tuple[str, ...] = ("Sent",)  # the team's own messages: trusted as the team's (rules §9)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "imaps"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (993 if self.tls else 143)


@dataclass(frozen=True)
class MailConfig:
    """``[mail]`` (rules §9): the team's addresses and the mailboxes that are the source of cases."""

    support_addresses: tuple[str, ...] = ()  # addresses, or "@domain" for a whole domain; lower-case
    poll_seconds: int = 60
    mailboxes: tuple[MailboxConfig, ...] = ()
    trusted_authserv_ids: tuple[str, ...] = ()  # servers whose Authentication-Results vouch for the team; lower-case


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAIL_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")
_MAILBOX_NAME = re.compile(r"[A-Za-z0-9._\-@+:]{1,64}")
_AUTHSERV_ID = re.compile(r"[A-Za-z0-9._-]{1,255}")
_FOLDER_NAME = re.compile(r"[ -~]{1,255}")


def mail_config(table: dict) -> MailConfig:
    """``[mail]``: ``support_addresses`` (addresses or ``@domain``), ``poll_seconds``, and
    ``[[mail.mailboxes]]`` with name, url (imap:// or imaps://), user, password_env and folders. A password
    in the file is refused: it comes from the environment variable that ``password_env`` names."""
    keys = ("support_addresses", "poll_seconds", "mailboxes", "trusted_authserv_ids")
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise ConfigError(f"mail.{unknown[0]}: unknown key (mail has {', '.join(keys)})")
    addresses = table.get("support_addresses", [])
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        raise ConfigError("mail.support_addresses must be a list of addresses or \"@domain\" entries")
    support = []
    for address in addresses:
        entry = address.strip().lower()
        if not (_MAIL_ADDRESS.fullmatch(entry) or (entry.startswith("@") and _MAIL_ADDRESS.fullmatch("x" + entry))):
            raise ConfigError(f"mail.support_addresses: {address!r} is neither an address nor \"@domain\"")
        support.append(entry)
    boxes = table.get("mailboxes", [])
    if not isinstance(boxes, list) or not all(isinstance(b, dict) for b in boxes):
        raise ConfigError("mail.mailboxes must be an array of tables ([[mail.mailboxes]])")
    mailboxes = []
    for number, box in enumerate(boxes, 1):
        where = f"mail.mailboxes[{number}]"
        if "password" in box:
            raise ConfigError(f"{where}.password: a password does not belong in the file; put it in an "
                              "environment variable and name that variable in password_env")
        unknown = sorted(set(box) - {"name", "url", "user", "password_env", "folders", "sent_folders"})
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown key (name, url, user, password_env, folders, "
                              "sent_folders)")
        name = string(box, f"{where}.name", "name", "")
        if not _MAILBOX_NAME.fullmatch(name):
            raise ConfigError(f"{where}.name = {name!r} must be 1-64 characters of A-Z a-z 0-9 . _ - @ + :")
        if name in {m.name for m in mailboxes}:
            raise ConfigError(f"{where}.name = {name!r} is used by another mailbox")
        where = f"mail.mailboxes.{name}"
        url = string(box, f"{where}.url", "url", "")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ConfigError(f"{where}.url = {url!r} is not a URL like imaps://imap.example.com:993") from None
        if parts.scheme not in ("imap", "imaps") or not parts.hostname:
            raise ConfigError(f"{where}.url = {url!r} must be imap://host[:port] or imaps://host[:port]")
        if parts.username or parts.password:
            raise ConfigError(f"{where}.url: no user or password in the URL; use user and password_env")
        user = string(box, f"{where}.user", "user", "")
        if not user:
            raise ConfigError(f"{where}.user is empty")
        password_env = string(box, f"{where}.password_env", "password_env", "")
        if not _ENV_NAME.fullmatch(password_env):
            raise ConfigError(f"{where}.password_env = {password_env!r} must name an environment variable")
        folders = box.get("folders", ["INBOX"])
        if not isinstance(folders, list) or not folders or not all(isinstance(f, str) and f.strip() for f in folders):
            raise ConfigError(f"{where}.folders must be a non-empty list of folder names, e.g. [\"INBOX\", \"Sent\"]")
        sent = ascii_names(box, f"{where}.sent_folders", "sent_folders", ["Sent"], _FOLDER_NAME,
                            'folder names in printable ASCII, e.g. ["Sent"]')
        mailboxes.append(MailboxConfig(name, url, user, password_env, tuple(dict.fromkeys(f.strip() for f in folders)),
                                       sent))
    return MailConfig(
        support_addresses=tuple(dict.fromkeys(support)),
        poll_seconds=positive_int(table, "mail.poll_seconds", "poll_seconds", 60, at_most=86_400),
        mailboxes=tuple(mailboxes),
        trusted_authserv_ids=tuple(a.lower() for a in ascii_names(
            table, "mail.trusted_authserv_ids", "trusted_authserv_ids", [], _AUTHSERV_ID,
            'authserv-ids: host names such as "mx.example.com" (letters, digits, ".", "-", "_")')),
    )
