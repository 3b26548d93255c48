"""Handing the command line's work to the running service (rules §10: import, export and backup succeed
while the dashboard runs, and never ask to stop it).

At start the service writes ``<db>.service.json`` beside the database: its URL and a local token made
for this run, readable by exactly those who may read the database file itself (its owner, and its group
and others only where the database grants them read access), and removes it at shutdown. The local token is
known to the service in memory only, never stored in the database; it stands for the service's user,
as the command line does (an admin, ``cli:<user>`` in the audit trail). ``python -m kb import | export
| backup`` that find the database held and this file beside it call the API with it
(``Client``); ``--server URL --token T`` names a service elsewhere.
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from kb.service.tokens import PREFIX

TIMEOUT_SECONDS = 3600  # a large import or export may take minutes; the service answers when it is done


def handoff_path(db: str | os.PathLike) -> Path:
    db = Path(db)
    return db.with_name(db.name + ".service.json")


@dataclass(frozen=True)
class Handoff:
    url: str
    token: str
    pid: int
    db: str


def write_handoff(db: str | os.PathLike, url: str) -> Handoff:
    """Make a local token and write the handoff file beside ``db`` (readable as the database is, replacing a
    stale one): who can read the database can open it with the service stopped, so may hand it work."""
    path = handoff_path(db)
    handoff = Handoff(url=url, token=PREFIX + "local-" + secrets.token_urlsafe(32), pid=os.getpid(),
                      db=str(Path(db).resolve()))
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600 | (Path(db).stat().st_mode & 0o044))
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(handoff.__dict__, f)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return handoff


def remove_handoff(db: str | os.PathLike, handoff: Handoff) -> None:
    """Remove the handoff file at shutdown, if it is still this run's."""
    found = read_handoff(db)
    if found is not None and found.token == handoff.token:
        handoff_path(db).unlink(missing_ok=True)


def read_handoff(db: str | os.PathLike) -> Handoff | None:
    """The handoff file beside ``db``, if there is a readable one naming this database."""
    try:
        data = json.loads(handoff_path(db).read_text(encoding="utf-8"))
        found = Handoff(url=str(data["url"]), token=str(data["token"]), pid=int(data["pid"]), db=str(data["db"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found if Path(found.db) == Path(db).resolve() else None


class ServiceError(RuntimeError):
    """The service refused the request or could not be reached; the message says why."""

    def __init__(self, message: str, status: int | None = None, body: dict | None = None):
        super().__init__(message)
        self.status = status
        self.body = body or {}


@dataclass(frozen=True)
class Client:
    """The API of a running service, as the command line calls it."""

    url: str
    token: str

    def request(self, method: str, path: str, *, query: dict | None = None, body: bytes | None = None,
                content_type: str = "application/octet-stream"):
        """An open response for a 2xx answer (the caller reads and closes it); ServiceError otherwise."""
        url = self.url.rstrip("/") + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)  # noqa: S310 (http(s) only: see below)
        except urllib.error.HTTPError as e:
            try:
                answer = json.loads(e.read() or b"{}")
            except ValueError:
                answer = {}
            finally:
                e.close()
            message = answer.get("error") if isinstance(answer, dict) else None
            raise ServiceError(message or f"the service answered {e.code} {e.reason}", e.code,
                               answer if isinstance(answer, dict) else {}) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ServiceError(f"the service at {self.url} did not answer: {reason}") from None

    def json(self, method: str, path: str, **kwargs) -> dict:
        with self.request(method, path, **kwargs) as response:
            return json.loads(response.read())


def client_for(url: str, token: str) -> Client:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ServiceError(f"--server {url!r} must be an http:// or https:// URL")
    if not token:
        raise ServiceError("--server needs a token: --token T (or $SUPPORT_TOKEN)")
    return Client(url, token)
