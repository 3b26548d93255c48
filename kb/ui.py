"""What every page shares: the store, the signed-in actor, its header, the pager, colours, and how times look.

The only module of ``kb`` that imports Streamlit; the logic it shows lives in
the modules beside it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import altair as alt
import pandas as pd
import streamlit as st
from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec
from streamlit.errors import StreamlitSecretNotFoundError

from kb import formats
from kb.access import SECRETS_FILE, Actor, address_verified, auth_problem, role_for
from kb.config import Config, ConfigError
from kb.db import connection
from kb.db.schema import PRIORITIES
from kb.engine.targets import STATES, TARGETS
from kb.formats import month_label, plain
from kb.health import quarantined
from kb.intake.importing import Problem
from kb.opening import load_watched, open_store, running
from kb.reads import paging
from kb.reads.met import share_in_words
from kb.service import jobs as service_jobs
from kb.store import Snapshot, Store
from kb.timestamps import TimestampError, format_for_people, parse_as_of

# Altair checks each part of a chart against the Vega-Lite schema as it is made (its "debug mode") and the
# whole spec again when Streamlit turns it into JSON: 50-150 ms of a page's render. The charts are the same on
# every render, so the test suite checks them (tests/conftest.py sets CHECK_CHARTS) and the service does not.
alt.utils.schemapi.disable_debug_mode()
CHECK_CHARTS = False

# One colour per meaning, everywhere in the app. States in the order of ``STATES``: breached red, at risk orange,
# pending blue, waiting on the client purple, met green, no deadline gray.
STATE_COLORS = dict(zip(STATES, ("#c62828", "#ef6c00", "#1565c0", "#6a1b9a", "#2e7d32", "#9e9e9e"), strict=True))
TIER_COLORS = {"enterprise": "#5e35b1", "custom": "#00897b", "free": "#8d6e63"}
PRIORITY_COLORS = dict(zip(PRIORITIES, ("#b71c1c", "#f57c00", "#1976d2", "#90a4ae"), strict=True))
IMPACT_COLORS = {"outage": "#c62828", "degraded": "#f9a825", "maintenance": "#78909c"}
# The targets, in the order of ``TARGETS``, in colours no state has: a bar of resolutions met must not read as
# breached.
TARGET_COLORS = dict(zip((t.metric for t in TARGETS), ("#3949ab", "#00acc1", "#795548"), strict=True))
STATE_LABELS = formats.WORDS["state"]


@dataclass(frozen=True)
class App:
    store: Store
    demo: bool
    sign_in: bool  # decided once, when the process opens the store: never falls back to local mode later


def _sign_in_wanted(config: Config) -> bool:
    """Whether this server signs people in; decided once, when the process opens the store. Local mode needs
    the total absence of sign-in: no ``[roles]`` in ``support.toml`` and no ``[auth]`` in a secrets file that
    loads. A secrets file that is there but does not load means sign-in was meant (and is broken), never local
    mode."""
    if config.roles:
        return True
    try:
        return "auth" in st.secrets
    except StreamlitSecretNotFoundError:  # no secrets file loads: none there, or one that does not parse
        return _secrets_file_there()


def _secrets_file_there() -> bool:
    """A secrets file (or folder) is where Streamlit looks for one (``secrets.files``), loadable or not."""
    return any(Path(path).exists() for path in st.get_option("secrets.files"))


@st.cache_resource(show_spinner="Opening the support database…")
def _open_app(db_setting: str, config_setting: str) -> App:
    service = running()
    if service is not None:  # served by the service, which opened the store at start: the pages share it
        if service.error is not None:
            raise service.error
        return App(service.store, demo=service.demo, sign_in=_sign_in_wanted(service.store.config))
    config = load_watched(config_setting or None)
    store, demo = open_store(db_setting, config)
    return App(store, demo=demo, sign_in=_sign_in_wanted(config))


def app_for(db_setting: str, config_setting: str) -> App:
    """The process-wide store for a database path and a configuration path (empty: the demo database, the
    default ``support.toml``), opened once per process; raises ``ConfigError`` or ``StoreError``."""
    return _open_app(db_setting, config_setting)


def open_app() -> App:
    """The process-wide store (``$SUPPORT_DB``, else the demo database); stops the page with a message if unusable."""
    try:
        return app_for(os.environ.get("SUPPORT_DB", ""), os.environ.get("SUPPORT_CONFIG", ""))
    except (ConfigError, connection.StoreError) as e:
        st.error(f"The dashboard cannot start: {e}", icon=":material/error:")
        st.stop()


def config() -> Config:
    return open_app().store.config


def snapshot() -> Snapshot:
    """The as-of tables for now (shared by every session for up to a minute, renewed by any write),
    or for the instant in ``$SUPPORT_AS_OF``, which freezes the dashboard at it for an audit."""
    frozen = os.environ.get("SUPPORT_AS_OF")
    app = open_app()
    try:
        as_of = parse_as_of(frozen, app.store.config.calendar.zone, name="SUPPORT_AS_OF") if frozen else None
    except TimestampError as e:
        st.error(str(e), icon=":material/error:")
        st.stop()
    return app.store.snapshot(as_of)


LOCAL_ADMIN = Actor("local admin", "admin")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def sign_in_problem() -> str | None:
    """Why sign-in cannot work now (``kb.access.auth_problem``), or None. Asked on every run: the secrets
    file can break while the server runs, and a server started with sign-in then lets nobody in until it
    is fixed, rather than falling back to local mode."""
    try:
        auth = st.secrets.get("auth")
    except StreamlitSecretNotFoundError:
        return f"{SECRETS_FILE} is not valid TOML" if _secrets_file_there() else f"{SECRETS_FILE} is missing"
    return auth_problem(auth)


# Streamlit keeps its sign-in cookie for 30 days and cannot revoke a copy of it at sign-out; the dashboard
# honours one for at most this long after the provider issued it, then asks to sign in again.
SESSION_HOURS = 12


def session_expired() -> bool:
    """The signed-in user's token (its ``iat`` claim) is older than ``SESSION_HOURS``, or says no time."""
    issued = st.user.get("iat")
    if not isinstance(issued, int | float):
        return True
    return time.time() - issued > SESSION_HOURS * 3600  # the real clock, even when $SUPPORT_NOW sets now


def local_mode_is_safe() -> bool:
    """Without sign-in the dashboard may only listen on this machine."""
    return (st.get_option("server.address") or "") in LOOPBACK


FORWARDED_HEADERS = ("x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded", "x-real-ip", "via")


def request_is_local(headers: Mapping[str, str]) -> bool:
    """The browser asked for this machine by a loopback name (Host, and Origin when sent), and directly. A page
    elsewhere that points its own host name at 127.0.0.1 (DNS rebinding) sends its own name, and is refused.
    A request that a proxy forwarded (any of ``FORWARDED_HEADERS``, even empty) is refused whatever ``Host``
    says: behind a proxy any visitor can send ``Host: localhost``."""
    if any(name.lower() in FORWARDED_HEADERS for name in headers):
        return False
    names = [urlsplit(f"//{headers['host']}").hostname if headers.get("host") else None,
             urlsplit(headers["origin"]).hostname if headers.get("origin") else None]
    return all(name is None or name in LOOPBACK for name in names)


def actor() -> Actor | None:
    """Who is using the dashboard: the signed-in user with their role from ``[roles]``,
    the local admin without sign-in, or None (signed out, an address the provider has not verified
    (``kb.access.address_verified``), or no role granted)."""
    if not open_app().sign_in:
        return LOCAL_ADMIN
    if not st.user.get("is_logged_in") or not address_verified(st.user):
        return None
    email = str(st.user.get("email") or "")
    role = role_for(config(), email) if email else None
    return Actor(email, role) if role else None


def local_times(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Instants as 'Wed 2026-11-25 16:30 HKT (UTC+08:00)' in the support zone (``kb.formats.instants``)."""
    return formats.instants(frame, config().calendar.zone, *columns)


# --- Dates and chart times people can read (values themselves: ``kb.formats``) ------------------------

def with_month_labels(frame: pd.DataFrame, column: str = "month") -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with ``month_label`` ('Nov 2026') beside ``column`` ('2026-11'), and the labels in month
    order, for a chart axis: ``alt.X("month_label:O", sort=labels)``."""
    frame = frame.assign(month_label=frame[column].map(month_label))
    return frame, [month_label(m) for m in sorted(frame[column].unique())]


def dates_only(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Date columns (DuckDB DATEs arrive as midnight timestamps) as plain dates, shown without '00:00:00'."""
    frame = frame.copy()
    for column in columns:
        values = pd.to_datetime(frame[column])
        frame[column] = values.dt.date.where(values.notna(), None)
    return frame


def zone_name() -> str:
    """The support zone for an axis title: 'Asia/Hong_Kong, HKT'."""
    zone = config().calendar.zone
    return f"{config().calendar.timezone}, {pd.Timestamp.now(tz=zone).strftime('%Z')}"


def wall_clock_ms(values: pd.Series) -> pd.Series:
    """Instants as their wall-clock time in the support zone, written as milliseconds since 1970 *as if that
    wall clock were UTC*: drawn on an ``alt.Scale(type="utc")`` axis they read as support-zone times
    whatever zone the browser is in."""
    local = pd.to_datetime(values, utc=True).dt.tz_convert(config().calendar.zone).dt.tz_localize(None)
    return (local - pd.Timestamp(0)) / pd.Timedelta(milliseconds=1)


NONE_DUE = "none due yet"


def against_target(share, target: float) -> tuple[str, str]:
    """How a share of targets met (``share``: a row of ``kb.reads.met.met_shares``; None when nothing came due)
    stands against the team's ``target``: "29 of 32 met · below target" in red, "… meets target" in green, or
    ``NONE_DUE`` in gray."""
    if share is None or not share.decided:
        return NONE_DUE, "gray"
    reached = share.pct_met >= target
    return (f"{share_in_words(int(share.met), int(share.decided))} · {'meets' if reached else 'below'} target",
            "green" if reached else "red")


def met_card(column, label: str, share, target: float, help_text: str) -> None:
    """A card of a share of targets met: its % and ``against_target``'s words and colour. Name the target beside
    the card (a heading, a caption, the help): the card's second line is cut at its width."""
    says, color = against_target(share, target)
    column.metric(label, formats.EMPTY if color == "gray" else formats.percent(share.pct_met), delta=says,
                  delta_color=color, delta_arrow={"green": "up", "red": "down"}.get(color, "off"), help=help_text,
                  border=True)


def as_of_caption(snap: Snapshot) -> None:
    st.caption(f"As of {formats.instant(snap.as_of, config().calendar.zone)}")


def show_problems(problems: list[Problem], slots: dict, labels: Mapping[str, str] | None = None) -> None:
    """Each problem of a form in the slot of its field (``slots``: column -> st.empty()), else in ``slots[None]``,
    named by the field's label on the form (``labels``: column -> label; else the field's name in words,
    ``kb.formats.field_label``), so that a message read on its own still says which field it is about."""
    for problem in problems:
        label = (labels or {}).get(problem.column) or formats.field_label(problem.column or "")
        text = plain(f"{label}: {problem.reason}" if problem.column else problem.reason)
        slots.get(problem.column, slots[None]).error(text, icon=":material/error:")


def leave_legacy_multipage() -> None:
    """Streamlit 1.67 runs the first session after a server start in its legacy
    ``pages/`` directory mode, before it learns that the app uses st.navigation:
    a deep link then shows "Page not found", or runs a page outside the app's
    navigation and roles. Switch that mode off and run again, the right way."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def page_header(title: str, question: str, more: str = "") -> None:
    """The first lines of every page: its title, and the question it answers in bold (then ``more``).
    Leaves Streamlit's legacy ``pages/`` mode first (see ``leave_legacy_multipage``)."""
    leave_legacy_multipage()
    st.title(title)
    st.markdown(f"**{question}**" + (f" {more}" if more else ""))


def failing_jobs_banner(actor: Actor) -> None:
    """For admins, at the top of every page while the service runs: one line per background job or webhook that
    is failing (``kb.health``), naming it and since when, until it recovers."""
    here = service_jobs.running()
    if actor.role != "admin" or here is None:
        return
    zone = config().calendar.zone
    for pipeline in here.health():
        if pipeline.failing:
            failures = pipeline.record.consecutive_failures
            st.error(plain(f"{pipeline.job} is failing since {format_for_people(pipeline.since, zone)}"
                           + (f", {failures} times in a row" if failures else "") + f": {pipeline.reason}"),
                     icon=":material/sync_problem:")


def quarantine_banner(actor: Actor) -> None:
    """For admins, at the top of every page: one line while the mail quarantine holds messages, until none is
    held (``kb.health.quarantined``)."""
    if actor.role != "admin":
        return
    with open_app().store.reader() as cur:
        held = quarantined(cur)
    if held:
        count = sum(h.held for h in held)
        since = format_for_people(min(h.since for h in held), config().calendar.zone)
        st.warning(f"{count} {'message' if count == 1 else 'messages'} held in the mail quarantine since {since} — "
                   "Mail quarantine page", icon=":material/move_to_inbox:")


def page_picker(total: int, size: int, key: str) -> int:
    """The page (from 0) of ``total`` rows, ``size`` at a time, to show: a page number input when there is
    more than one page, else 0. Pair it with ``kb.reads.paging.limit_offset``."""
    pages = paging.page_count(total, size)
    return st.number_input(f"Page (of {pages:,})", 1, pages, 1, key=key) - 1 if pages > 1 else 0


# A grid's toolbar (show columns, search, full screen) sits just above it, over what comes before. Where there is
# no pointer to hover with (a phone), it is always shown: every grid keeps this much room above it, so the toolbar
# never covers a heading, a label or a filter.
TOOLBAR_ROOM_PX = 30


def table(data, **kwargs):
    """``st.dataframe(data, **kwargs)`` (stretched to the page's width unless told otherwise), with room above it
    for its toolbar (``TOOLBAR_ROOM_PX``). Put the columns people look for first (``column_order``: names and
    the numbers, ids last): a phone shows the first two or three, the rest scroll inside the grid. A missing value
    shows as "—", as everywhere else on the pages."""
    with st.container(gap=None):
        st.space(TOOLBAR_ROOM_PX)
        return st.dataframe(data, **{"width": "stretch", "placeholder": formats.EMPTY, **kwargs})


def chart(figure: alt.TopLevelMixin, **kwargs) -> None:
    """``figure`` (made for this call, and changed by it) drawn at the page's width, as ``st.altair_chart`` draws it
    (``chart_spec``)."""
    st.vega_lite_chart(spec=chart_spec(figure), **{"width": "stretch", **kwargs})


def remembered_chart(snap: Snapshot, key: tuple, draw: Callable[[], alt.TopLevelMixin],
                     reads: Iterable[str] | None = None, **kwargs) -> None:
    """``chart(draw())``, its spec made once per snapshot for ``key`` and read from the snapshot when the page is
    drawn again: building an Altair chart and turning it into Vega-Lite is most of a warm page's time (30–40 ms
    a chart). ``key`` names the chart and every choice it is drawn from beyond the snapshot (a period, a grain,
    the tiers picked): what differs between two charts of one snapshot. ``reads``: the parts of the snapshot
    its data comes from (``Snapshot.remembered``)."""
    spec = snap.remembered(("chart", *key), lambda: chart_spec(draw()), reads)
    st.vega_lite_chart(spec=spec, **{"width": "stretch", **kwargs})


def chart_spec(figure: alt.TopLevelMixin) -> dict:
    """The Vega-Lite spec ``st.altair_chart`` would send for ``figure`` (its data as Arrow, in ``datasets``), with
    its legends (each a column of entries) below the plot, so that a phone's narrow window keeps its width for
    the data. The chart's height is its plot's: the legends and axes add to it rather than squeeze it (Vega's
    ``fit-x``)."""
    # Set on the figure the page has just made: ``properties`` and ``configure_legend`` would each copy it whole,
    # data and layers (tens of milliseconds a chart).
    figure.autosize = alt.AutoSizeParams(type="fit-x", contains="padding")
    figure.config = alt.Config(legend=alt.LegendConfig(orient="bottom", direction="vertical"))
    if not CHECK_CHARTS:  # without the schema's check (see above)
        object.__setattr__(figure, "to_dict", partial(type(figure).to_dict, figure, validate=False))
    # Streamlit's own conversion (not public): under its lock, as Altair's theme and data transformer are global.
    return _convert_altair_to_vega_lite_spec(figure)


def empty_state(text: str) -> None:
    st.info(text, icon=":material/inbox:")


def flash(text: str, key: str = "flash") -> None:
    """A confirmation to show after the rerun that follows a write (shown as plain text: it
    may quote what someone typed); ``key`` names a place of its own, such as a panel's, for ``show_flash``."""
    st.session_state[key] = text


def show_flash(key: str = "flash", *, toast: bool = False) -> None:
    """The confirmation ``flash`` kept, where this is called; with ``toast``, also in a corner of the window for
    ten seconds, for a page scrolled away from here (a form's button far below)."""
    text = st.session_state.pop(key, None)
    if text:
        st.success(plain(text), icon=":material/check_circle:")
        if toast:
            st.toast(plain(text), icon=":material/check_circle:", duration="long")
