"""The dashboard's pages by section, who may see each, and keeping AppTest out of Streamlit's legacy mode.

``dashboard.py`` builds ``st.navigation`` from ``pages_for(actor)``; the bench
measures every page in ``PAGES``. A page a role may not use is not in its list,
so its URL leads nowhere either.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath

from kb.access import Actor


@dataclass(frozen=True)
class Page:
    path: str  # the page's file, relative to the project root
    title: str
    icon: str
    permission: str  # what an actor needs (``Actor.may``) to see it

    @property
    def name(self) -> str:
        """The file's stem: 'overview' for 'pages/overview.py'."""
        return PurePosixPath(self.path).stem


PAGES: dict[str, tuple[Page, ...]] = {
    "Health": (
        Page("pages/overview.py", "Overview", ":material/monitoring:", "read"),
        Page("pages/performance.py", "Response performance", ":material/speed:", "read"),
        Page("pages/uptime.py", "Uptime", ":material/dns:", "read"),
        Page("pages/refunds.py", "Service credits", ":material/payments:", "read"),
        Page("pages/client.py", "Client", ":material/person:", "read"),
    ),
    "Work": (
        Page("pages/queue.py", "Queue", ":material/inbox:", "read"),
        Page("pages/log_case.py", "Log case", ":material/edit_note:", "log_case"),
        Page("pages/log_incident.py", "Log incident", ":material/report:", "log_incident"),
    ),
    "Data": (
        Page("pages/clients.py", "Clients and contracts", ":material/handshake:", "read"),
        Page("pages/transfer.py", "Import and export", ":material/swap_vert:", "read"),
        Page("pages/mail_clients.py", "Mail clients", ":material/forward_to_inbox:", "edit_clients"),
        Page("pages/mail_quarantine.py", "Mail quarantine", ":material/gpp_maybe:", "configure"),
        Page("pages/audit.py", "Audit trail", ":material/history:", "audit"),
        Page("pages/configuration.py", "Configuration", ":material/settings:", "configure"),
        Page("pages/tokens.py", "API tokens", ":material/key:", "configure"),
    ),
}
DEFAULT_PAGE = "pages/overview.py"
HOME_NAME = PurePosixPath(DEFAULT_PAGE).stem  # the home page's name, which ``/`` serves
# Every page a role may see is listed in the sidebar: by default Streamlit shows ten of more than twelve pages
# and hides the rest (an admin's five Data pages) behind "View 5 more".
NAVIGATION_EXPANDED = True


def pages_for(actor: Actor) -> dict[str, list[Page]]:
    """The sections and pages ``actor`` may see, in navigation order; a section with none is left out."""
    sections = {section: [page for page in pages if actor.may(page.permission)] for section, pages in PAGES.items()}
    return {section: pages for section, pages in sections.items() if pages}


def page_names() -> list[str]:
    """Every page's name ('overview', 'performance', …), in navigation order."""
    return [page.name for pages in PAGES.values() for page in pages]


@contextmanager
def navigation_only() -> Iterator[None]:
    """Keep Streamlit's AppTest out of its legacy ``pages/`` directory mode while inside.

    AppTest resets that mode before every run, and the app leaves it with a
    rerun (``kb.ui.leave_legacy_multipage``), which would drop a click. A server
    enters it at most once; keep AppTest out of it the same way."""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init
    try:
        yield
    finally:
        PagesManager.__init__ = original
