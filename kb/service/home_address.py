"""The home page at its own name too: ``/overview`` (a bookmark, a link written by hand) redirects to ``/``.

Streamlit serves the default page of ``st.navigation`` at the app's root and reserves its name, yet a visit to
that name opens a "Page not found" dialog over the home page. The browser is sent to the root instead, with
its query, before Streamlit sees the visit."""

from __future__ import annotations

from starlette.responses import RedirectResponse


class HomeByItsName:
    """ASGI middleware: a GET of ``…/{name}`` (under any base path, not the API's), ``name`` the home page's
    (``kb.navigation.HOME_NAME``), answered with a redirect to ``…/``."""

    def __init__(self, app, name: str):
        self.app, self.name = app, name

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if scope.get("method") == "GET" and path.rstrip("/").endswith(f"/{self.name}") and "/api/" not in path:
            root = path.rstrip("/")[: -len(self.name)]
            query = scope.get("query_string", b"").decode("latin-1")
            return await RedirectResponse(root + (f"?{query}" if query else ""), status_code=302)(scope, receive, send)
        return await self.app(scope, receive, send)
