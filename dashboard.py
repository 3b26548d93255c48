"""The support SLA dashboard: the page list for the signed-in role, then the page."""

import os

import streamlit as st

from kb import ui

ui.leave_legacy_multipage()
st.set_page_config(page_title="Support SLA", page_icon=":material/support_agent:", layout="wide")

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
    ],
}

app = ui.open_app()
actor = ui.actor()
if app.demo:
    st.info("Demo data: set `SUPPORT_DB` to open your own database.", icon=":material/science:")
if os.environ.get("SUPPORT_AS_OF"):
    st.warning(f"Frozen as of {os.environ['SUPPORT_AS_OF']} (`SUPPORT_AS_OF`): the numbers do not move with the clock.",
               icon=":material/history_toggle_off:")

navigation = {
    section: [
        st.Page(path, title=title, icon=icon, default=(path == "pages/overview.py"))
        for path, title, icon, permission in pages
        if actor.may(permission)
    ]
    for section, pages in PAGES.items()
}
st.navigation({section: pages for section, pages in navigation.items() if pages}).run()
