"""The shared pytest fixtures: a fresh DuckDB file per test, the page tests' app, the signed-in app, the
browser's settings. pytest finds them here without imports; their helpers and constants live in
``tests/fixtures.py``, which is what test modules import."""

from __future__ import annotations

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from kb.db import connection
from kb.navigation import navigation_only
from kb.timestamps import set_now
from tests.fixtures import AS_OF, ROLES, ROOT, add_policy_targets, app_on, build_fixture, signed_in_as
from tests.servers import CHROMIUM_ARGS, DOVECOT, Inbox, dovecot_server


@pytest.fixture(autouse=True, scope="session")
def _navigation_only():
    """Keep AppTest out of Streamlit's legacy ``pages/`` mode (see ``kb.navigation.navigation_only``)."""
    with navigation_only():
        yield


@pytest.fixture(autouse=True, scope="session")
def _charts_checked():
    """Every chart a page draws is checked against the Vega-Lite schema, as the service does not (``kb.ui``)."""
    from kb import ui

    ui.CHECK_CHARTS = True
    yield


@pytest.fixture(autouse=True)
def _the_clock():
    """A test that sets "now" (``--now``, ``set_now``) leaves the clock as it found it for the next."""
    yield
    set_now(None)


@pytest.fixture
def db_file(tmp_path):
    return tmp_path / "support.duckdb"


@pytest.fixture
def con(db_file):
    con = connection.connect(db_file)
    yield con
    con.close()


@pytest.fixture
def app(tmp_path, monkeypatch):
    """The page tests' store (``build_fixture``), frozen at AS_OF, held by an AppTest: ``(at, db)``."""
    db, config_file = build_fixture(tmp_path)
    monkeypatch.setenv("SUPPORT_DB", str(db))
    monkeypatch.setenv("SUPPORT_CONFIG", str(config_file))
    monkeypatch.setenv("SUPPORT_AS_OF", AS_OF)
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
    yield at, db
    from kb import ui

    ui._open_app.clear()  # release the file before the next fixture


@pytest.fixture
def gold(tmp_path, monkeypatch):
    """The page tests' store with every target of a policy known at AS_OF (``add_policy_targets``), held by an
    AppTest."""
    db, config_file = build_fixture(tmp_path)
    add_policy_targets(db, config_file)
    with app_on(db, config_file, monkeypatch) as at:
        yield at


@pytest.fixture
def signed_in(tmp_path, monkeypatch):
    """The same store with ROLES configured; call it with an address (or None) for an AppTest signed in so.
    Streamlit's ``secrets.files`` point at ``tmp_path/secrets.toml``, absent unless a test writes it."""
    db, config_file = build_fixture(tmp_path)
    config_file.write_text(config_file.read_text() + ROLES)
    monkeypatch.setenv("SUPPORT_DB", str(db))
    monkeypatch.setenv("SUPPORT_CONFIG", str(config_file))
    monkeypatch.setenv("SUPPORT_AS_OF", AS_OF)
    previous_secrets = st_config.get_option("secrets.files")
    st_config.set_option("secrets.files", [str(tmp_path / "secrets.toml")])

    yield lambda email, **claims: signed_in_as(email, **claims).run()
    st_config.set_option("secrets.files", previous_secrets)
    from kb import ui

    ui._open_app.clear()


@pytest.fixture
def inbox():
    """A real SMTP server (``tests.servers.Inbox``) that keeps what it is sent."""
    box = Inbox().start()
    yield box
    box.stop()


@pytest.fixture(scope="module")
def dovecot():
    """(port, folder) of a running Dovecot (``tests.servers.dovecot_server``); skipped where Dovecot is not
    installed (scripts/test installs it)."""
    if DOVECOT is None:
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd; scripts/test does it)")
    with dovecot_server() as server:
        yield server


# pytest-playwright's settings, for the browser tests: the system Chromium, and a roomy window.
@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}
