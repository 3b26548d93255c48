"""Handing the command line's work to the running service (rules §10: import, export and backup succeed
while the dashboard runs, and never ask to stop it).

At start the service writes ``<db>.service.json`` beside the database: its URL, its process id and a
local token made for this run. The local token is known to the service in memory only, never stored in
the database; it stands for the service's user, as the command line does (an admin, ``cli:<user>`` in
the audit trail). So the file is the service's user's alone: mode 0600, owned by that user, whatever the
database file's mode (it is made 0600 from its first byte and renamed into place, so it is never
readable by anyone else, not even for an instant); it is removed at shutdown.

``python -m kb import | export | backup | token`` that find the database held and this file beside it
first make sure that they are talking to the service that wrote it (``unconfirmed``): its process is
alive, and it answers a random challenge with an HMAC keyed with the file's token (``proof``), which only
the writer of the file can compute and which gives the token away to nobody. Only then do they send it
(``Client``). A file left by a service that was killed, naming a port another program now listens on,
is never trusted: with nobody holding the database the command opens it itself, else it refuses.
``--server URL --token T`` names a service elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from kb.db import connection
from kb.service.tokens import PREFIX

TIMEOUT_SECONDS = 3600  # a large import or export may take minutes; the service answers when it is done
CHALLENGE_SECONDS = 10.0  # the service answers its challenge at once; a program that does not is not it
CHALLENGE_PATH = "/api/v1/handoff"


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
    """Make a local token and write the handoff file beside ``db`` (replacing a stale one): mode 0600 from the
    moment it exists, whatever the database's mode, since its token is an admin's."""
    path = handoff_path(db)
    handoff = Handoff(url=url, token=PREFIX + "local-" + secrets.token_urlsafe(32), pid=os.getpid(),
                      db=str(Path(db).resolve()))
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask may only have taken bits away; this says exactly what it is
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
    """The handoff file beside ``db``, if there is a readable one naming this database, owned by the database's
    owner (a file someone else left there names nobody the command line should trust)."""
    path = handoff_path(db)
    try:
        if path.stat().st_uid != Path(db).stat().st_uid:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        found = Handoff(url=str(data["url"]), token=str(data["token"]), pid=int(data["pid"]), db=str(data["db"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found if Path(found.db) == Path(db).resolve() else None


def proof(token: str, nonce: str) -> str:
    """What the service that wrote the handoff file answers to the challenge ``nonce``: an HMAC of it keyed
    with the file's token. Only a holder of the token can compute it, and it does not reveal the token."""
    return hmac.new(token.encode(), b"support-sla handoff\n" + nonce.encode(), hashlib.sha256).hexdigest()


def running_service(db: str | os.PathLike) -> Client | None:
    """The running service that holds ``db`` and proves that it wrote the handoff file beside it (``unconfirmed``);
    None when there is no handoff file or nobody holds the database (the command line opens it itself).
    ServiceError when the database is held, but not by that service (a file left by a service that was
    killed, another program on its port): nothing is sent to it, the token least of all."""
    handoff = read_handoff(db)
    if handoff is None:
        return None
    try:
        connection.connect(db, read_only=True).close()
    except connection.StoreBusy:
        why = unconfirmed(handoff)
        if why is None:
            return Client(handoff.url, handoff.token)
        raise ServiceError(f"database {db} is held by another process, and not by the service that "
                           f"{handoff_path(db)} names ({why}). Nothing was done: stop the process that holds "
                           "the database, or start the service again, then try again") from None
    except connection.StoreError:
        return None  # let the command say what is wrong with the file
    return None  # a file left by a service that is gone: nobody holds the database


def unconfirmed(handoff: Handoff) -> str | None:
    """Why the program at the handoff file's URL is not the service that wrote the file, or None when it
    proved that it is: its process is alive and it answered a fresh challenge with ``proof``. The token
    is not sent."""
    if not _alive(handoff.pid):
        return f"its process {handoff.pid} is gone"
    nonce = secrets.token_urlsafe(32)
    try:
        answer = Client(handoff.url, "").json("POST", CHALLENGE_PATH, body=json.dumps({"nonce": nonce}).encode(),
                                              content_type="application/json", timeout=CHALLENGE_SECONDS)
    except (ServiceError, ValueError, OSError, http.client.HTTPException) as e:
        return f"{handoff.url} did not answer as the service: {e}"
    given = answer.get("proof") if isinstance(answer, dict) else None
    if not isinstance(given, str) or not hmac.compare_digest(given, proof(handoff.token, nonce)):
        return f"the program at {handoff.url} could not prove that it is the service that wrote the file"
    return None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, and another user's
    return True


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
                content_type: str = "application/octet-stream", timeout: float = TIMEOUT_SECONDS):
        """An open response for a 2xx answer (the caller reads and closes it); ServiceError otherwise. Without a
        token (the challenge) no Authorization header is sent."""
        url = self.url.rstrip("/") + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if body is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http(s) only: see below)
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
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:  # not HTTP at all, too
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
