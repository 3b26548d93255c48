"""The service's lifespan and routes: ``dashboard.py`` serves them and the dashboard on one port.

At start (before the first visit) the lifespan opens the one ``Store`` of the process (``$SUPPORT_DB``,
else the demo database, built when missing; ``$SUPPORT_CONFIG``; ``$SUPPORT_NOW`` sets the clock),
records the configuration's rules in the audit trail when they differ from the last ones recorded
(``kb.opening.record_rules``), registers the store for the pages (``kb.opening``), writes the handoff file for
the command line (``kb.service.handoff``), starts the background jobs (``kb.service.jobs``, which also reload
the configuration file when it changes) and yields ``{"store": store, "jobs": jobs, "config_file": …}`` as
every request's state (``request.state.store``). At shutdown it undoes all of that, in reverse.

A database or configuration that cannot be used does not stop the process: ``/healthz`` answers 503
with the reason, the API 503, and the pages show it, as they did before the service existed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware

from kb import opening
from kb.config import ConfigError
from kb.db import connection
from kb.service import api, handoff, mail_api, webhooks
from kb.service.after_sign_in import ReturnAfterSignIn
from kb.service.jobs import Jobs
from kb.timestamps import TimestampError, parse_as_of, set_now

log = logging.getLogger("kb.service")
LOOPBACK_ALIASES = {"", "0.0.0.0", "::", "localhost"}


def _open() -> opening.Running:
    """Open the store as ``kb.ui`` did on a first visit; a failure is recorded, not raised."""
    db_setting = os.environ.get("SUPPORT_DB", "")
    path = Path(db_setting) if db_setting else opening.DEMO_DB
    try:
        config = opening.load_watched(os.environ.get("SUPPORT_CONFIG") or None)
        if os.environ.get("SUPPORT_NOW"):
            set_now(parse_as_of(os.environ["SUPPORT_NOW"], config.calendar.zone, name="SUPPORT_NOW"))
        store, _ = opening.open_store(db_setting, config)
    except TimestampError as e:
        error = ConfigError(str(e))
        log.error("the service cannot start: %s", error)
        return opening.Running(store=None, demo=not db_setting, path=path, error=error)
    except (ConfigError, connection.StoreError) as e:
        log.error("the service cannot open the support database: %s", e)
        return opening.Running(store=None, demo=not db_setting, path=path, error=e)
    return opening.Running(store=store, demo=not db_setting, path=path)


def service_url() -> str:
    """The URL this process serves on, as another program on this machine reaches it."""
    from streamlit import config as st_config

    address = str(st_config.get_option("server.address") or "")
    host = "127.0.0.1" if address in LOOPBACK_ALIASES else address
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if st_config.get_option("server.sslCertFile") else "http"
    return f"{scheme}://{host}:{st_config.get_option('server.port')}"


@asynccontextmanager
async def lifespan(_app) -> AsyncIterator[dict]:
    running = await run_in_threadpool(_open)
    store, local = running.store, None
    jobs = None
    source = opening.config_file(os.environ.get("SUPPORT_CONFIG") or None)
    if store is not None:
        try:
            await run_in_threadpool(opening.record_rules, store, noticed="service start", path=source.path)
        except Exception:  # the service serves without the record; the next start or reload tries again
            log.exception("the rules of %s could not be recorded in the audit trail", source.path)
        try:
            local = handoff.write_handoff(running.path, service_url())
        except OSError as e:
            log.warning("no handoff file beside %s (%s): the command line cannot hand its work to this service",
                        running.path, e.strerror or e)
        jobs = Jobs(store, config_file=source.path)
        await run_in_threadpool(jobs.start)
    running.state = {"store": store, "jobs": jobs, "local_token": local.token if local else None,
                     "error": str(running.error) if running.error else None, "config_file": source}
    opening.register(running)
    try:
        yield running.state
    finally:
        if local is not None:
            handoff.remove_handoff(running.path, local)  # the command line works on its own again
        if jobs is not None:
            await run_in_threadpool(jobs.stop)  # the run and the write in progress finish; checkpoint
        opening.register(None)
        if store is not None:
            await run_in_threadpool(store.close)


class ServiceState:
    """Give every request the lifespan's state (``request.state.store``): ``st.App`` keeps what its lifespan
    yields to itself, so it is copied into each request's scope here."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            running = opening.running()
            state = getattr(running, "state", None) if running is not None else None
            if state:
                scope.setdefault("state", {}).update(state)
        await self.app(scope, receive, send)


ROUTES = [*api.ROUTES, *mail_api.ROUTES, *webhooks.ROUTES]
MIDDLEWARE = [Middleware(ServiceState), Middleware(ReturnAfterSignIn)]
