"""The service: the dashboard (``dashboard.py``) and the API on one port, in the one process that owns the
database. Start it with ``scripts/dashboard`` (``streamlit run service.py``); see README, "The service and
its API"."""

import streamlit as st

from kb.service.app import MIDDLEWARE, ROUTES, lifespan

app = st.App("dashboard.py", lifespan=lifespan, routes=ROUTES, middleware=MIDDLEWARE)
