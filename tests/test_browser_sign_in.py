"""Signing in through a real local OpenID Connect provider, as a viewer and as staff."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.fixtures import ROLES, build_fixture
from tests.servers import dashboard_server, free_port, screenshot, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def provider():
    """oidc-provider-mock on a free port: it signs in whoever types an address."""
    port = free_port()
    process = subprocess.Popen([str(Path(sys.executable).parent / "oidc-provider-mock"), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/.well-known/openid-configuration", timeout=2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the OpenID Connect provider did not start") from None
            time.sleep(0.3)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def server(tmp_path, provider):
    db, config_file = build_fixture(tmp_path)
    config_file.write_text(config_file.read_text() + ROLES)
    port = free_port()
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f"""
[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "a-long-random-string-for-the-test-only"
client_id = "support-sla"
client_secret = "support-sla-secret"
server_metadata_url = "{provider}/.well-known/openid-configuration"
""")
    with dashboard_server({"SUPPORT_DB": str(db), "SUPPORT_CONFIG": str(config_file)}, port=port,
                          extra_args=("--secrets.files", str(secrets)), log=tmp_path / "server.log") as base:
        yield base


def sign_in(page, base: str, email: str) -> None:
    page.goto(base)
    wait_idle(page)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("input[name=sub]", timeout=30_000)
    page.fill("input[name=sub]", email)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{base}/**", timeout=30_000)
    wait_idle(page)
    expect(page.locator("h1").first).to_have_text("Overview")


def test_viewer_reads_but_gets_no_form_by_deep_link(server, page):
    sign_in(page, server, "ceo@board.example")
    expect(page.get_by_text("Signed in as")).to_contain_text("ceo@board.example")
    nav = page.locator("[data-testid=stSidebarNav]").inner_text()
    assert "Queue" in nav and "Log case" not in nav and "Audit trail" not in nav
    for name in ("log_case", "log_incident", "audit"):
        page.goto(f"{server}/{name}")
        wait_idle(page)
        assert page.locator("[data-testid=stForm]").count() == 0, name
        assert page.locator("h1").first.inner_text() != name.replace("_", " ").capitalize()
        screenshot(page, f"viewer_{name}")


def test_staff_signs_in_and_logs_a_case(server, page):
    sign_in(page, server, "sam@support.example")
    page.goto(f"{server}/log_case")
    wait_idle(page)
    client = page.locator("[data-testid=stSelectbox]").filter(has_text="Client").first
    client.click()
    page.keyboard.type("Enterprise Co")
    page.keyboard.press("Enter")
    page.get_by_role("spinbutton", name="year, Received on").click()  # the form's dates start empty
    page.keyboard.type("20261125")
    page.keyboard.press("Tab")
    page.get_by_label("Subject").fill("Logged after signing in")
    page.get_by_role("button", name="Log case").click()
    wait_idle(page)
    assert "Case CS-00001 logged" in page.locator("[data-testid=stAlertContentSuccess]").first.inner_text()
    screenshot(page, "staff_logged_case")
