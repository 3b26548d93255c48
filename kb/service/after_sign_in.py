"""Back to the page asked for, after signing in: a link from an alert (``/queue?case=…``) opened while signed
out opens that case once the visitor has signed in, not the Overview.

Streamlit's sign-in ends with a redirect to the home page, whatever page it began on. The signed-out visitor
sees the sign-in button at the address they asked for (``dashboard.py`` lists every page's address there), so
the browser names that address as the ``Referer`` of its request to ``/auth/login``. ``ReturnAfterSignIn``
keeps it in a short-lived cookie of its own and, when the provider's callback (``/oauth2callback``) answers
with its redirect home, sends the browser to that address instead and drops the cookie. A sign-in begun at
home drops any address an earlier, abandoned one kept; so does the callback that ends a sign-out, which
Streamlit also sends through ``/oauth2callback``, once it has used it.

Only a path of this server is kept (the Referer's host must be the request's ``Host``; behind a proxy that
rewrites ``Host``, nothing is kept and sign-in ends at home), so the cookie cannot send a visitor anywhere else.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from starlette.requests import cookie_parser

COOKIE = "kb_after_sign_in"
KEPT_SECONDS = 600  # a sign-in that takes longer starts again at home
LONGEST = 2000  # characters of the kept path and query, as sent (percent-encoded): browsers keep 4,096 a cookie
SAFE = "/?=&%:+,;@-._~!$'()*"  # what stays as it is in a kept path; anything else is percent-encoded


def destination(referer: str, host: str) -> str | None:
    """The path and query of ``referer`` when it is a page of ``host`` other than home, percent-encoded to
    ASCII, else None."""
    try:
        parts = urlsplit(referer)
    except ValueError:
        return None
    if (parts.netloc != host or not parts.path.startswith("/") or parts.path.startswith("//")
            or "\\" in parts.path or "/auth/" in parts.path):
        return None
    kept = quote(parts.path + (f"?{parts.query}" if parts.query else ""), safe=SAFE)
    return None if len(kept) > LONGEST or kept == "/" else kept


def _cookie(value: str, seconds: int) -> tuple[bytes, bytes]:
    return b"set-cookie", f"{COOKIE}={value}; Path=/; Max-Age={seconds}; HttpOnly; SameSite=Lax".encode("ascii")


DROPPED = _cookie("", 0)


class ReturnAfterSignIn:
    """ASGI middleware: remember the page a sign-in began on, and go back there when it ends."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, headers = scope.get("path", ""), _headers(scope)
        if path.endswith("/auth/login"):
            kept = destination(headers.get("referer", ""), headers.get("host", ""))
            cookie = DROPPED if kept is None else _cookie(quote(kept, safe=""), KEPT_SECONDS)
            return await self.app(scope, receive, _adding(send, cookie))
        if path.endswith("/oauth2callback"):
            kept = cookie_parser(headers.get("cookie", "")).get(COOKIE)
            kept = _checked(unquote(kept)) if kept else None
            if kept is not None:
                return await self.app(scope, receive, _redirecting(send, kept))
        return await self.app(scope, receive, send)


def _checked(kept: str) -> str | None:
    """A kept path read back from the cookie, checked again (a cookie is the browser's to change)."""
    return destination(f"http://here{kept}", "here") if kept.startswith("/") else None


def _goes_home(message) -> bool:
    """Whether a response redirects to this server's home page: a path of its own ending in ``/`` (``/``, or
    the base path ``/sla/``), which is where Streamlit ends a sign-in."""
    if message.get("status") not in (302, 303, 307):
        return False
    location = next((v.decode("latin-1") for k, v in message.get("headers", []) if k.lower() == b"location"), "")
    parts = urlsplit(location)
    return not parts.netloc and not parts.query and parts.path.endswith("/")


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _adding(send, cookie: tuple[bytes, bytes]):
    async def sending(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), cookie]}
        await send(message)
    return sending


def _redirecting(send, kept: str):
    """The callback's redirect home sent to ``kept`` instead, the cookie dropped."""
    async def sending(message):
        if message["type"] == "http.response.start" and _goes_home(message):
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"location"]
            message = {**message, "headers": [*headers, (b"location", kept.encode("ascii")), DROPPED]}
        await send(message)
    return sending
