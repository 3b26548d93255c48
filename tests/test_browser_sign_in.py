"""Signing in through a real local OpenID Connect provider, as a viewer and as staff."""

from __future__ import annotations

import json
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


# Addresses the provider vouches for (``email_verified: true``); any other address it signs in unverified.
VERIFIED = ("ceo@board.example", "sam@support.example", "ada@support.example")


@pytest.fixture(scope="module")
def provider():
    """oidc-provider-mock on a free port: it signs in whoever types an address."""
    port = free_port()
    users = [arg for email in VERIFIED
             for arg in ("--user-claims", json.dumps({"sub": email, "email": email, "email_verified": True}))]
    process = subprocess.Popen([str(Path(sys.executable).parent / "oidc-provider-mock"), "--port", str(port), *users],
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


def sign_in(page, base: str, email: str, title: str = "Overview") -> None:
    page.goto(base)
    wait_idle(page)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("input[name=sub]", timeout=30_000)
    page.fill("input[name=sub]", email)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{base}/**", timeout=30_000)
    wait_idle(page)
    expect(page.locator("h1").first).to_have_text(title)


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
    page.get_by_role("spinbutton", name="year, Received on").click()  # earlier than today, where it starts
    page.keyboard.type("20261125")
    page.keyboard.press("Tab")
    page.get_by_label("Subject").fill("Logged after signing in")
    page.get_by_role("button", name="Log case").click()
    wait_idle(page)
    assert "Case CS-00001 logged" in page.locator("[data-testid=stAlertContentSuccess]").first.inner_text()
    screenshot(page, "staff_logged_case")


def test_an_address_the_provider_does_not_vouch_for_gets_no_page(server, page):
    sign_in(page, server, "lee@support.example", title="No access yet")  # a lead, but no email_verified claim
    assert page.locator("[data-testid=stSidebarNav]").count() == 0


BROKEN_SECRETS = '[auth\nredirect_uri = "http://127.0.0.1/oauth2callback"\n'


def expect_sign_in_not_working(page, base: str) -> None:
    """Whoever comes sees why sign-in is not working: no page of the app, no traceback, no local admin."""
    page.goto(base)
    wait_idle(page)
    expect(page.locator("h1").first).to_have_text("Support SLA")
    expect(page.get_by_text("Sign-in is not working: .streamlit/secrets.toml is not valid TOML")).to_be_visible()
    assert page.locator("[data-testid=stException]").count() == 0
    assert page.get_by_role("button", name="Sign in").count() == 0
    assert page.get_by_text("Local mode").count() == 0


def break_secrets(tmp_path: Path) -> None:
    """Write a secrets file that does not parse, and give Streamlit's file watcher time to notice."""
    (tmp_path / "secrets.toml").write_text(BROKEN_SECRETS)
    time.sleep(3)


def test_secrets_broken_before_the_first_visit_let_nobody_in(server, page, tmp_path):
    break_secrets(tmp_path)
    expect_sign_in_not_working(page, server)
    screenshot(page, "sign_in_broken_before_first_visit")


def test_secrets_broken_after_a_visit_let_nobody_in(server, page, browser, tmp_path):
    sign_in(page, server, "ada@support.example")
    break_secrets(tmp_path)
    expect_sign_in_not_working(page, server)  # the signed-in session's next run
    other = browser.new_page()  # a new session, signed out
    try:
        expect_sign_in_not_working(other, server)
    finally:
        other.close()


def test_a_deep_link_opened_signed_out_opens_after_sign_in(server, page):
    """An alert's link to a case, opened while signed out, shows that case once signed in."""
    page.goto(f"{server}/queue?case=OVERDUE")
    wait_idle(page)
    assert page.url == f"{server}/queue?case=OVERDUE"  # the sign-in keeps the address asked for
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("input[name=sub]", timeout=30_000)
    page.fill("input[name=sub]", "sam@support.example")
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{server}/queue?case=OVERDUE", timeout=30_000)
    wait_idle(page)
    expect(page.locator("h1").first).to_have_text("Queue")
    heading = page.locator("[data-testid=stMarkdownContainer]", has_text="OVERDUE · Enterprise Co")
    expect(heading.first).to_be_visible()  # the case's panel is open (not only its row in a grid)
    assert "kb_after_sign_in" not in {c["name"] for c in page.context.cookies()}  # used once
    page.goto(server)  # and home is home again
    wait_idle(page)
    expect(page.locator("h1").first).to_have_text("Overview")
