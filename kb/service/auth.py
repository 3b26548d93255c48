"""Who is calling the API: ``Authorization: Bearer TOKEN``, looked up by its hash; errors as JSON.

Handlers call ``actor_for(request, store)`` (401 when the token is missing, unknown or revoked),
then check the role as the pages do (``kb.access.require``: ``PermissionDenied`` is a 403), and
raise ``ApiError`` for anything else they refuse. ``guarded`` turns both into ``error_response``.
The service's own local token (``kb.service.handoff``) is known in memory only and stands for
the user the service runs as, as an admin, as the command line does.
"""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kb.access import Actor, PermissionDenied, command_line_actor
from kb.service import tokens

log = logging.getLogger("kb.service")


class ApiError(Exception):
    """A request refused: ``status`` (HTTP) and ``message`` (said to the caller as ``{"error": message}``)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(error: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse({"error": error.message}, status_code=error.status, headers=headers)


def bearer_token(request: Request) -> str:
    """The token of ``Authorization: Bearer TOKEN``; ApiError(401) without one."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "this needs a token: send the header 'Authorization: Bearer TOKEN'")
    return token.strip()


def actor_for(request: Request, store) -> Actor:
    """The actor the request's bearer token stands for; ApiError(401) when it is missing, unknown or revoked.

    Blocking (one indexed lookup): call it from a thread (``run_in_threadpool``), or through ``guarded``.
    """
    token = bearer_token(request)
    local = getattr(request.state, "local_token", None) if hasattr(request, "state") else None
    if local and hmac.compare_digest(token.encode(), local.encode()):
        return command_line_actor()
    with store.reader() as cur:
        holder = tokens.holder_of(cur, token)
        if holder is None:
            raise ApiError(401, "the token is unknown or revoked")
        tokens.note_use(cur, holder.token_id)
    return holder.actor


def is_local(request: Request) -> bool:
    """The request carries the service's own local token (its holder can read the service's files)."""
    local = getattr(request.state, "local_token", None)
    header = request.headers.get("authorization", "")
    return bool(local) and hmac.compare_digest(header.partition(" ")[2].strip().encode(), local.encode())


Handler = Callable[[Request], Awaitable[Response]]


def guarded(handler: Handler) -> Handler:
    """Answer ``ApiError`` and ``PermissionDenied`` (403) as JSON, and anything unexpected as a 500 that
    names no internals (the traceback goes to the log); a service that is not running answers 503."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            if getattr(request.state, "store", None) is None:
                raise ApiError(503, getattr(request.state, "error", None) or "the service has no database open")
            return await handler(request)
        except ApiError as e:
            return error_response(e)
        except PermissionDenied as e:
            return error_response(ApiError(403, str(e)))
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            return error_response(ApiError(500, "the service failed to answer this request; see its log"))

    return endpoint


async def caller(request: Request) -> Actor:
    """``actor_for`` on the request's store, in a thread."""
    return await run_in_threadpool(actor_for, request, request.state.store)
