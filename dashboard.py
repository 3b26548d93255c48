"""The support SLA service and its dashboard, in one file: ``streamlit run dashboard.py`` (what
``scripts/dashboard`` runs) imports it and serves ``app``, the whole service (the dashboard, the API, the
webhooks and the background jobs on one port, ``kb/service/app.py``); that server then runs this same file as
the page script of every visit: who is here, the page list for their role (``kb.navigation``), then the page."""

import os

import streamlit as st

from kb import ui
from kb.navigation import DEFAULT_PAGE, NAVIGATION_EXPANDED, PAGES, pages_for


def sign_in() -> None:
    st.title("Support SLA")
    st.markdown("**Sign in with your company account to see the support team's SLA health.**")
    st.button("Sign in", type="primary", icon=":material/login:", on_click=st.login)


def sign_in_broken(problem: str) -> None:
    """Sign-in is configured but cannot work: nobody gets in, and nobody becomes the local admin."""
    st.title("Support SLA")
    st.error(f"Sign-in is not working: {ui.plain(problem)}. Ask an admin to fix it and restart the dashboard.",
             icon=":material/lock:")


def no_access() -> None:
    st.title("No access yet")
    st.markdown(f"**{st.user.get('email') or 'This account'} has no role on this dashboard.** "
                "Ask an admin to add your address or domain under `[roles]` in `support.toml`.")
    st.button("Sign out", on_click=st.logout)


def at_every_address(show_it, title: str, icon: str) -> list:
    """``show_it`` as the page at every page's address: a link opened while signed out keeps its address (and
    its query) in the browser, which ``kb.service.after_sign_in`` returns to once the visitor has signed in."""
    return [st.Page(show_it, title=title, icon=icon, url_path=page.name, default=page.path == DEFAULT_PAGE)
            for pages in PAGES.values() for page in pages]


def show() -> None:
    """One visit: sign-in, the banners, the page list for the visitor's role, the page."""
    ui.leave_legacy_multipage()
    st.set_page_config(page_title="Support SLA", page_icon=":material/support_agent:", layout="wide")
    opened = ui.open_app()
    if opened.sign_in:
        if problem := ui.sign_in_problem():
            st.navigation([st.Page(lambda: sign_in_broken(problem), title="Sign in", icon=":material/lock:")],
                          position="hidden").run()
            st.stop()
        if not st.user.get("is_logged_in") or ui.session_expired():
            st.navigation(at_every_address(sign_in, "Sign in", ":material/login:"), position="hidden").run()
            st.stop()
        if ui.actor() is None:
            st.navigation([st.Page(no_access, title="No access", icon=":material/block:")], position="hidden").run()
            st.stop()
    elif not ui.local_mode_is_safe():
        st.error("No sign-in is configured (no `[auth]` in `.streamlit/secrets.toml`), so the dashboard only serves "
                 "this machine: set `server.address = \"127.0.0.1\"` or configure sign-in. See README, "
                 "\"Running it for a team\".", icon=":material/lock:")
        st.stop()
    elif not ui.request_is_local(st.context.headers):
        st.error("Without sign-in the dashboard answers only to this machine, at http://127.0.0.1 or "
                 "http://localhost: this page was opened under another name or through a proxy. Open it by one of "
                 "those, or configure sign-in (`[auth]` and `[roles]`).", icon=":material/lock:")
        st.stop()

    actor = ui.actor()
    # What this server is running on, in one caption line: each part short, the details in the README.
    banners = []
    if not opened.sign_in:
        banners.append(":material/computer: **Local mode**: no sign-in, this machine only, you act as admin")
    if opened.demo:
        banners.append(":material/science: **Demo data** (set `SUPPORT_DB` for your own)")
    if os.environ.get("SUPPORT_AS_OF"):
        banners.append(f":orange[:material/history_toggle_off: **Frozen as of {ui.plain(os.environ['SUPPORT_AS_OF'])}**"
                       "] (`SUPPORT_AS_OF`: the numbers do not move with the clock)")
    if banners:
        st.caption(" · ".join(banners))
    ui.failing_jobs_banner(actor)
    ui.quarantine_banner(actor)

    with st.sidebar:
        st.caption(f"Signed in as **{actor.email}** ({actor.role})")
        if opened.sign_in:
            st.button("Sign out", icon=":material/logout:", on_click=st.logout)

    navigation = {
        section: [st.Page(page.path, title=page.title, icon=page.icon, default=(page.path == DEFAULT_PAGE))
                  for page in pages]
        for section, pages in pages_for(actor).items()
    }
    st.navigation(navigation, expanded=NAVIGATION_EXPANDED).run()


if __name__ == "__main__":  # Streamlit runs this file as the page script (and AppTest does)
    show()
else:  # imported by `streamlit run dashboard.py`: the service, which serves this file's pages
    from starlette.middleware import Middleware

    from kb.navigation import HOME_NAME
    from kb.service.app import MIDDLEWARE, ROUTES, lifespan
    from kb.service.home_address import HomeByItsName

    app = st.App(__file__, lifespan=lifespan, routes=ROUTES,
                 middleware=[*MIDDLEWARE, Middleware(HomeByItsName, name=HOME_NAME)])
