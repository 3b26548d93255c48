"""Back to the page asked for, after signing in: a link from an alert (``/queue?case=…``) opened while signed
out opens that case once the visitor has signed in, not the Overview.

Streamlit's sign-in ends with a redirect to the home page, whatever page it began on. The signed-out visitor
sees the sign-in button at the address they asked for (``dashboard.py`` lists every page's address there), so
the browser names that address as the ``Referer`` of its request to ``/auth/login``. ``ReturnAfterSignIn``
keeps it in a short-lived cookie of its own and, when the provider's callback (``/oauth2callback``) answers
with its redirect home, sends the browser to that address instead and drops the cookie.

Only a path of this server is kept (same host, no scheme or host of its own), so the cookie cannot send a
visitor anywhere else.
"""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie
from urllib.parse import quote, unquote, urlsplit

COOKIE = "kb_after_sign_in"
KEPT_SECONDS = 600  # a sign-in that takes longer starts again at home
LONGEST = 2000  # characters of path and query kept


def destination(referer: str, host: str) -> str | None:
    """The path and query of ``referer`` when it is a page of ``host`` other than home, else None."""
    try:
        parts = urlsplit(referer)
    except ValueError:
        return None
    if parts.netloc != host or not parts.path.startswith("/") or parts.path.startswith("//"):
        return None
    kept = parts.path + (f"?{parts.query}" if parts.query else "")
    if "\\" in kept or len(kept) > LONGEST or kept in ("/", "") or "/auth/" in parts.path:
        return None
    return kept


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
            if kept is not None:
                cookie = f"{COOKIE}={quote(kept, safe='')}; Path=/; Max-Age={KEPT_SECONDS}; HttpOnly; SameSite=Lax"
                return await self.app(scope, receive, _adding(send, cookie))
        elif path.endswith("/oauth2callback"):
            jar = SimpleCookie()
            try:
                jar.load(headers.get("cookie", ""))
            except CookieError:  # an unreadable Cookie header: nothing kept
                jar = SimpleCookie()
            kept = _checked(unquote(jar[COOKIE].value)) if COOKIE in jar else None
            if kept is not None:
                return await self.app(scope, receive, _redirecting(send, kept))
        return await self.app(scope, receive, send)


def _checked(kept: str) -> str | None:
    """A kept path read back from the cookie, checked again (a cookie is the browser's to change), in ASCII."""
    checked = destination(f"http://here{kept}", "here") if kept.startswith("/") else None
    return quote(checked, safe="/?=&%:+,;@-._~!$'()*") if checked else None


def _goes_home(message) -> bool:
    """Whether a response is a redirect to this server's home page (the base path)."""
    if message.get("status") not in (302, 303, 307):
        return False
    location = next((v.decode("latin-1") for k, v in message.get("headers", []) if k.lower() == b"location"), "")
    parts = urlsplit(location)
    return not parts.netloc and not parts.query and parts.path.endswith("/")


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _adding(send, cookie: str):
    async def sending(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode("latin-1"))]}
        await send(message)
    return sending


def _redirecting(send, kept: str):
    """The callback's redirect home sent to ``kept`` instead, the cookie dropped."""
    async def sending(message):
        if message["type"] == "http.response.start" and _goes_home(message):
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"location"]
            headers.append((b"location", kept.encode("latin-1")))
            headers.append((b"set-cookie", f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax".encode()))
            message = {**message, "headers": headers}
        await send(message)
    return sending
