"""One raw message → one plain record: who sent it, team or client, automatic or not, its thread links, its
case tag and the instant the rules use (rules §9). Nothing here touches the store.

Only the header section is parsed (``Headers``, a small reader: Python's parser costs ten times more and
reads nothing this needs); the body is looked at for two things: the hash
that stands for a missing ``Message-ID``, and whether a multipart message's parts can be found at all.
Every header is read defensively (encoded words in unknown charsets, raw 8-bit bytes, folded lines):
a message is either a ``MailRecord`` or a ``Skipped`` with the reason, never an exception.

Over 400 lines: the header reader and the record built from it are one defensive parse of input from
outside, best read (and checked) together.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from email.utils import getaddresses, parsedate_tz

from kb.mail.authresults import passes_for
from kb.mail.sources import RawMessage
from kb.timestamps import FIRST_YEAR, LAST_YEAR, now_utc

FUTURE_GRACE = timedelta(minutes=5)  # as the clock rule of kb.intake.validation
AUTOMATIC_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
SYSTEM_SENDERS = {"mailer-daemon", "postmaster"}
CASE_TAG = re.compile(r"\[(CS-[A-Za-z0-9._@+:\-]{1,61})\]")
MSG_ID = re.compile(r"<([^<>\s]+)>")
ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")
# Characters an id may hold (rules §8), less ':' which a client id made from an address uses as its escape.
ID_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-@+")
MAX_REFERENCES = 100
NO_SUBJECT = "(no subject)"
# Control characters (NUL included) that are not white space: removed from every text a header gives.
CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")
INVISIBLE = {"Zs", "Zl", "Zp", "Cf"}  # as kb.intake.validation.BLANK_TEXT: a text of these only is empty

FOLDED = re.compile(r"\n[ \t]+")
HEADER_NAME = re.compile(r"[!-9;-~]+")
BOUNDARY = re.compile(r'boundary\s*=\s*(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)
NAMED_ADDRESS = re.compile(r'\s*(?:"([^"\\]*)"|([^"<>()@,;:\\]*?))\s*<([^<>\s@]+@[^<>\s@]+)>\s*')
BARE_ADDRESS = re.compile(r'\s*<?([^<>\s@()",;:\\]+@[^<>\s@()",;:\\]+)>?\s*')


@dataclass(frozen=True)
class MailRecord:
    key: str                      # Message-ID (without <>), else "sha256:" + a hash of headers and body
    message_id: str | None
    mailbox: str
    folder: str
    from_address: str             # lower-case; for an automatic message without one, what its From says
    from_name: str | None
    is_team: bool
    is_automatic: bool
    automatic_reason: str | None
    instant: datetime | None      # UTC: a client's message received, a team message's Date:
    subject: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    case_tag: str | None          # CS-… named in the subject as [CS-…]
    where: str                    # where it was read, for reports

    links: tuple[str, ...] = ()   # the Message-IDs it names, nearest first: In-Reply-To, then References backwards
    unverified: bool = False      # claims to be the team's, and nothing vouches for it: counts for nothing
    vouched: bool = False         # read where the team's own messages are (a sent folder, --trust-team)
    uid: int | None = None        # its IMAP UID
    raw: bytes = field(default=b"", repr=False, compare=False)  # as read: kept when it has to be held aside


@dataclass(frozen=True)
class Skipped:
    where: str
    message_id: str | None
    reason: str

    def __str__(self) -> str:
        named = f" <{self.message_id}>" if self.message_id else ""
        return f"{self.where}{named}: {self.reason}"


@dataclass(frozen=True)
class Team:
    """Who the team is (called with an address: whether it is the team's, an exact address or its domain after
    ``@`` as an ``@domain`` entry, case-insensitive), and whose ``Authentication-Results`` vouch for it."""

    exact: frozenset[str]
    domains: frozenset[str]
    authserv_ids: frozenset[str] = frozenset()

    def __call__(self, address: str) -> bool:
        address = address.lower()
        return address in self.exact or address.rpartition("@")[2] in self.domains

    def authenticated(self, msg: Headers, address: str) -> bool:
        """Whether a trusted server saw DKIM or SPF pass for the domain of ``address`` (rules §9)."""
        return passes_for(msg.get_all("Authentication-Results"), self.authserv_ids, address.rpartition("@")[2])


def support_matcher(support_addresses: tuple[str, ...], trusted_authserv_ids: tuple[str, ...] = ()) -> Team:
    """The ``Team`` of ``[mail] support_addresses`` and ``trusted_authserv_ids``."""
    entries = [a.strip().lower() for a in support_addresses]
    return Team(frozenset(a for a in entries if not a.startswith("@")),
                frozenset(a[1:] for a in entries if a.startswith("@")),
                frozenset(a.lower() for a in trusted_authserv_ids))


def client_id_for(address: str) -> str:
    """The client id made from a sender's address (rules §9: the address, lower-case).

    An id holds 1–64 characters of ``A–Z a–z 0–9 . _ - @ + :`` (rules §8). A plain address is its own id;
    any other character (``'``, ``!``, ``%``, quotes, non-ASCII letters, ``:`` itself) is written as ``:``
    and two hex digits per UTF-8 byte (``o'brien@x.example`` → ``o:27brien@x.example``); ``:`` cannot
    appear in an unquoted address, so two addresses never share an id. One longer than 64 characters
    keeps its first 47 and ends with ``:`` and 16 hex digits of its SHA-256.
    """
    address = address.strip().lower()
    made = "".join(c if c in ID_SAFE else "".join(f":{b:02x}" for b in c.encode("utf-8", "surrogatepass"))
                   for c in address)
    if len(made) > 64:
        made = made[:47] + ":" + hashlib.sha256(address.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return made


def parse_archived(chunk: list[RawMessage], *, team: Team, now: datetime, vouched: bool) -> list[MailRecord | Skipped]:
    """``parse_message`` of each message ``mail import`` read from a file (``kb.mail.archive``, which calls this in
    its parser processes: they import this module alone, which imports little, not DuckDB or pandas)."""
    return [parse_message(item.data, team, mailbox="import", folder=item.folder, where=item.where,
                          from_line=item.from_line, now=now, vouched=vouched) for item in chunk]


def parse_message(raw: bytes, is_team: Team, *, mailbox: str, folder: str, where: str,
                  internaldate: datetime | None = None, from_line: bytes | None = None,
                  now: datetime | None = None, vouched: bool = False, uid: int | None = None) -> MailRecord | Skipped:
    """The record of one raw message (``bytes`` as stored), or why it cannot be used.

    ``is_team``: from ``support_matcher``. ``internaldate``: IMAP's INTERNALDATE; ``from_line``: the
    mbox ``From `` line it came under (its date is the receipt, UTC when it names no zone). ``vouched``: read
    where only the team's own messages are (a sent folder, an import with ``--trust-team``).
    """
    try:
        record = _parse(raw, is_team, mailbox=mailbox, folder=folder, where=where, internaldate=internaldate,
                        from_line=from_line, now=now or now_utc(), vouched=vouched)
        return replace(record, uid=uid, raw=raw) if isinstance(record, MailRecord) else record
    except Exception as e:  # noqa: BLE001 - a message must never stop the others (rules §9, "never fatal")
        return Skipped(where, None, f"broken MIME: the message cannot be parsed ({type(e).__name__}: {e})")


def _parse(raw: bytes, is_team: Team, *, mailbox, folder, where, internaldate, from_line, now,
           vouched) -> MailRecord | Skipped:
    if not raw.strip():
        return Skipped(where, None, "empty message")
    head, body = _split(raw)
    msg = Headers(head)
    message_id = _first_id(_plain(_header(msg, "Message-ID")))
    in_reply_to = tuple(_ids(_plain(_header(msg, "In-Reply-To"))))[:MAX_REFERENCES]
    references = tuple(_ids(_plain(_header(msg, "References"))))[-MAX_REFERENCES:]
    subject = _clean(_text(_header(msg, "Subject")) or "") or NO_SUBJECT

    address, name = _sender(_header(msg, "From"))
    sender_local = (_sender(_header(msg, "Sender"))[0] or "").partition("@")[0]
    automatic = _automatic(msg, address, sender_local)

    if msg.content_type.startswith("multipart/"):
        boundary = msg.boundary
        if not boundary:
            broken = "broken MIME: a multipart message without a boundary"
        elif b"--" + boundary.encode("utf-8", "surrogateescape") not in body:
            broken = f"broken MIME: the multipart boundary {boundary!r} never appears in the body"
        else:
            broken = None
        if broken and not automatic:
            return Skipped(where, message_id, broken)

    if not address:
        if not automatic:
            return Skipped(where, message_id, "no sender: the From header holds no address")
        address = _clean(_text(_header(msg, "From")) or "") or "(none)"
    team = bool(address) and "@" in address and is_team(address)

    date = _date(_header(msg, "Date"))
    if team:
        instant = date
    else:
        instant = (_aware(internaldate) or _from_line_date(from_line) or _received_date(msg) or date)
    if instant is None and not automatic:
        what = "a Date header" if team else "a receipt date (no From line date, Received or Date header)"
        return Skipped(where, message_id, f"no date: a {'team' if team else 'client'} message without {what}")
    if instant is not None and instant > now + FUTURE_GRACE and not automatic:
        return Skipped(where, message_id, f"dated in the future ({instant.isoformat(timespec='seconds')})")

    key = message_id or "sha256:" + _hash(msg, body)
    tag = CASE_TAG.search(subject)
    return MailRecord(
        key=key, message_id=message_id, mailbox=mailbox, folder=folder, from_address=address,
        from_name=name or None, is_team=team, is_automatic=automatic is not None, automatic_reason=automatic,
        instant=instant, subject=subject, in_reply_to=in_reply_to, references=references,
        case_tag=tag.group(1) if tag else None, where=where,
        links=tuple(dict.fromkeys(in_reply_to + tuple(reversed(references)))),
        unverified=team and not (vouched or is_team.authenticated(msg, address)), vouched=vouched,
    )


# --- headers ------------------------------------------------------------------------------------------------


class Headers:
    """A message's header section: folded lines joined, names case-insensitive, the first of each name by
    ``get``, all by ``get_all``. Bytes are read as UTF-8, the others kept as surrogates (``_text`` reads them
    as Latin-1). A line that is no header ends the section, as Python's parser does."""

    def __init__(self, head: bytes):
        self._values: dict[str, list[str]] = {}
        text = FOLDED.sub(" ", head.decode("utf-8", "surrogateescape").replace("\r\n", "\n"))
        for line in text.split("\n"):
            name, colon, value = line.partition(":")
            name = name.rstrip()
            if not colon or not HEADER_NAME.fullmatch(name):
                if line.strip() or colon:
                    break
                continue
            self._values.setdefault(name.lower(), []).append(value.strip())
        kind = (self.get("Content-Type") or "").split(";")[0].strip().lower()
        self.content_type = kind if "/" in kind else "text/plain"
        found = BOUNDARY.search(self.get("Content-Type") or "")
        self.boundary = (found.group(1) if found.group(1) is not None else found.group(2)) if found else None

    def get(self, name: str) -> str | None:
        values = self._values.get(name.lower())
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        return self._values.get(name.lower(), [])


def _header(msg: Headers, name: str) -> str | None:
    return msg.get(name)


def _text(value: str | None) -> str | None:
    """A header's text: encoded words decoded, raw 8-bit bytes read as UTF-8 (else Latin-1)."""
    if value is None:
        return None
    if "=?" not in value and value.isascii():
        return value
    try:
        text = str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError, AssertionError, TypeError):
        text = value
    return _unescaped(text)


def _unescaped(text: str) -> str:
    """Raw 8-bit bytes the header reader kept as surrogates, read as UTF-8 (else Latin-1)."""
    if not any("\udc80" <= c <= "\udcff" for c in text):
        return text
    data = text.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _plain(value: str | None) -> str | None:
    """A header's raw text (ids, addresses) without control characters, raw bytes read as text."""
    return None if value is None else CONTROL.sub("", _unescaped(value))


def _clean(text: str) -> str:
    """One line of visible text: control characters (NUL included, which the intake rules refuse) removed,
    white space made single spaces; "" when nothing visible is left (white space, zero-width and other format
    characters only, as the intake rules read an empty cell)."""
    line = " ".join(CONTROL.sub("", text).split())
    return line if any(unicodedata.category(c) not in INVISIBLE for c in line) else ""


def _ids(value: str | None) -> list[str]:
    if not value:
        return []
    found = MSG_ID.findall(value)
    if found:
        return found
    return [t.strip("<>") for t in value.split() if "@" in t]


def _first_id(value: str | None) -> str | None:
    ids = _ids(value)
    if ids:
        return ids[0]
    stripped = (value or "").strip().strip("<>").strip()
    return stripped if stripped and not any(c.isspace() for c in stripped) else None


def _sender(value: str | None) -> tuple[str | None, str | None]:
    """(address in lower case, display name) of the first address in a From-like header.

    The raw header is split into display name and address first; only the display name is then decoded
    (RFC 2047), so an address that appears only inside an encoded word (``=?utf-8?q?ceo=40x.example?=``) is
    no address, and a decoded name (``Eve=0D=0ABcc=3A``) stays a name, on one line."""
    if not value:
        return None, None
    raw = _plain(value)
    fast = NAMED_ADDRESS.fullmatch(raw)
    if fast:
        return fast.group(3).lower(), _name(fast.group(1) or fast.group(2))
    fast = BARE_ADDRESS.fullmatch(raw)
    if fast:
        return fast.group(1).lower(), None
    for name, address in getaddresses([raw]):
        address = address.strip().strip("<>").strip()
        if ADDRESS.fullmatch(address):
            return address.lower(), _name(name)
    return None, None


def _name(raw: str | None) -> str | None:
    """A display name as read from a header: encoded words decoded, on one line; None when nothing visible."""
    return _clean(_text(raw) or "") or None


def _automatic(msg: Headers, address: str | None, sender_local: str) -> str | None:
    """Why a message is automatic (rules §9), or None."""
    submitted = _header(msg, "Auto-Submitted")
    if submitted is not None and submitted.split(";")[0].strip().lower() != "no":
        return f"Auto-Submitted: {_clean(submitted)[:40]}"
    precedence = (_header(msg, "Precedence") or "").strip().lower()
    if precedence in AUTOMATIC_PRECEDENCE:
        return f"Precedence: {precedence}"
    for name in ("X-Autoreply", "X-Autorespond"):
        if msg.get(name) is not None:
            return name
    if msg.get("List-Id") is not None:
        return "List-Id"
    from_local = (address or (_header(msg, "From") or "")).partition("@")[0].strip().strip("<>\"' ").lower()
    from_words = {w.strip("<>\"'()").lower() for w in (_header(msg, "From") or "").replace("@", " ").split()}
    if from_local in SYSTEM_SENDERS or sender_local.lower() in SYSTEM_SENDERS or (
            not address and from_words & SYSTEM_SENDERS):
        return "sender MAILER-DAEMON or postmaster"
    if msg.content_type == "multipart/report":
        return "delivery report (multipart/report)"
    return None


# --- dates --------------------------------------------------------------------------------------------------


def _date(value: str | None) -> datetime | None:
    """An RFC 5322 date as an aware UTC instant (UTC when it names no zone); None when it does not parse or
    lies outside the years the store accepts."""
    if not value:
        return None
    try:
        parts = parsedate_tz(_clean(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parts is None:
        return None
    try:
        moment = datetime(*parts[:6], tzinfo=UTC)
        offset = parts[9] or 0
        if abs(offset) > 14 * 3600:
            return None
        moment -= timedelta(seconds=offset)
    except (ValueError, OverflowError):
        return None
    return moment if FIRST_YEAR <= moment.year <= LAST_YEAR else None


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _from_line_date(line: bytes | None) -> datetime | None:
    """The date of an mbox ``From sender date`` line (asctime, UTC unless it names a zone)."""
    if not line:
        return None
    text = line.decode("latin-1").strip()
    parts = text.split(None, 2)
    if len(parts) < 3 or parts[0] != "From":
        return None
    return _date(parts[2])


def _received_date(msg: Headers) -> datetime | None:
    """The date of the topmost ``Received:`` header (after its last ``;``)."""
    received = msg.get_all("Received") or []
    if not received:
        return None
    top = str(received[0])
    if ";" not in top:
        return None
    return _date(top.rpartition(";")[2])


# --- identity -----------------------------------------------------------------------------------------------


def _split(raw: bytes) -> tuple[bytes, bytes]:
    """The raw header section and body."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    if not ends:
        return raw, b""
    end = min(ends)
    separator = 4 if raw[end:end + 4] == b"\r\n\r\n" else 2
    return raw[:end], raw[end + separator:]


HASHED_HEADERS = ("From", "To", "Cc", "Date", "Subject", "In-Reply-To", "References")


def _hash(msg: Headers, body: bytes) -> str:
    """A hash of a message without a Message-ID: the headers that say what it is (not the trace headers a
    server or mail client adds per copy) and its body, line endings and trailing white space normalised, so
    that every copy of one message (an mbox, a Maildir, IMAP) hashes alike."""
    digest = hashlib.sha256()
    for name in HASHED_HEADERS:
        value = msg.get(name)
        text = " ".join(str(value).split()) if value is not None else ""
        digest.update(f"{name.lower()}:{text}\n".encode("utf-8", "surrogateescape"))
    digest.update(b"\n")
    digest.update(b"\n".join(line.rstrip() for line in body.replace(b"\r\n", b"\n").rstrip().split(b"\n")))
    return digest.hexdigest()
