"""The support SLA dashboard: who is here, the page list for their role, then the page."""

import os

import streamlit as st

from kb import ui

ui.leave_legacy_multipage()
st.set_page_config(page_title="Support SLA", page_icon=":material/support_agent:", layout="wide")

# (file, title, icon, permission needed to see it); a page a role may not use is not in its list,
# so its URL leads nowhere either.
PAGES = {
    "Health": [
        ("pages/overview.py", "Overview", ":material/monitoring:", "read"),
        ("pages/performance.py", "Response performance", ":material/speed:", "read"),
        ("pages/uptime.py", "Uptime", ":material/dns:", "read"),
        ("pages/refunds.py", "Refund exposure", ":material/payments:", "read"),
    ],
    "Work": [
        ("pages/queue.py", "Queue", ":material/inbox:", "read"),
        ("pages/log_case.py", "Log case", ":material/edit_note:", "log_case"),
        ("pages/log_incident.py", "Log incident", ":material/report:", "log_incident"),
    ],
    "Data": [
        ("pages/clients.py", "Clients and contracts", ":material/handshake:", "read"),
        ("pages/transfer.py", "Import and export", ":material/swap_vert:", "read"),
        ("pages/audit.py", "Audit trail", ":material/history:", "audit"),
        ("pages/configuration.py", "Configuration", ":material/settings:", "configure"),
    ],
}


def sign_in() -> None:
    st.title("Support SLA")
    st.markdown("**Sign in with your company account to see the support team's SLA health.**")
    st.button("Sign in", type="primary", icon=":material/login:", on_click=st.login)


def no_access() -> None:
    st.title("No access yet")
    st.markdown(f"**{st.user.get('email') or 'This account'} has no role on this dashboard.** "
                "Ask an admin to add your address or domain under `[roles]` in `support.toml`.")
    st.button("Sign out", on_click=st.logout)


if ui.sign_in_configured():
    if not st.user.is_logged_in:
        st.navigation([st.Page(sign_in, title="Sign in", icon=":material/login:")], position="hidden").run()
        st.stop()
    if ui.actor() is None:
        st.navigation([st.Page(no_access, title="No access", icon=":material/block:")], position="hidden").run()
        st.stop()
elif not ui.local_mode_is_safe():
    st.error("No sign-in is configured (no `[auth]` in `.streamlit/secrets.toml`), so the dashboard only serves "
             "this machine: set `server.address = \"127.0.0.1\"` or configure sign-in. See README, "
             "\"Running it for a team\".", icon=":material/lock:")
    st.stop()

app = ui.open_app()
actor = ui.actor()
if not ui.sign_in_configured():
    st.info("Local mode: no sign-in, only this machine can reach the dashboard, and you act as its admin.",
            icon=":material/computer:")
if app.demo:
    st.info("Demo data: set `SUPPORT_DB` to open your own database.", icon=":material/science:")
if os.environ.get("SUPPORT_AS_OF"):
    st.warning(f"Frozen as of {os.environ['SUPPORT_AS_OF']} (`SUPPORT_AS_OF`): the numbers do not move with the clock.",
               icon=":material/history_toggle_off:")

with st.sidebar:
    st.caption(f"Signed in as **{actor.email}** ({actor.role})")
    if ui.sign_in_configured():
        st.button("Sign out", icon=":material/logout:", on_click=st.logout)

navigation = {
    section: [
        st.Page(path, title=title, icon=icon, default=(path == "pages/overview.py"))
        for path, title, icon, permission in pages
        if actor.may(permission)
    ]
    for section, pages in PAGES.items()
}
st.navigation({section: pages for section, pages in navigation.items() if pages}).run()
