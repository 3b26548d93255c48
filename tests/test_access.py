"""Sign-in and roles: the page list per role, pages out of reach by URL, writes refused in kb."""

from __future__ import annotations

import time

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from kb.access import Actor, PermissionDenied, address_verified, role_for
from kb.config import load_config, parse_config
from kb.db import connection
from kb.intake.importing import Rejected, add_rows, staged_from_records
from kb.intake.writes import close_incident, log_case
from tests.fixtures import AUTH, ROOT, build_fixture, fill_case, shown


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def test_signed_out_sees_only_the_sign_in(signed_in):
    at = signed_in(None)
    assert titles(at) == ["Support SLA"]
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.metric


def test_an_address_without_a_role_gets_no_page(signed_in):
    at = signed_in("stranger@elsewhere.example")
    assert titles(at) == ["No access yet"]
    assert "has no role" in at.markdown[0].value


def test_viewer_reads_but_never_reaches_a_form(signed_in):
    at = signed_in("ceo@board.example")
    assert titles(at) == ["Overview"]
    assert "ceo@board.example** (viewer)" in at.sidebar.caption[0].value
    for page in ("log_case", "log_incident", "audit"):
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(f"pages/{page}.py")
    at.switch_page("pages/queue.py").run()
    assert titles(at) == ["Queue"]
    assert not [b for b in at.button if b.label in ("Record first response now", "Resolve now")]
    at.switch_page("pages/clients.py").run()
    assert not at.get("expandable")  # no "Add or edit" for a viewer
    at.switch_page("pages/transfer.py").run()
    assert "Import" not in [s.value for s in at.subheader]


def test_staff_logs_a_case_but_has_no_audit_page(signed_in):
    at = signed_in("sam@support.example")
    at.switch_page("pages/log_case.py").run()
    assert titles(at) == ["Log case"]
    fill_case(at, "Logged by staff")  # the client and the date start empty: they are chosen
    next(b for b in at.button if b.label == "Log case").click().run()
    assert "Case CS-00001 logged" in shown(at.success[0])
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/audit.py")


def test_admin_sees_the_audit_trail(signed_in):
    at = signed_in("ada@support.example")
    at.switch_page("pages/audit.py").run()
    assert titles(at) == ["Audit trail"]


def test_the_sidebar_lists_every_page_of_the_role_without_a_view_more(signed_in, monkeypatch):
    import streamlit

    menus = []
    original = streamlit.navigation

    def spy(pages, **options):  # what the dashboard asks Streamlit to draw (AppTest does not draw the menu)
        menus.append(({section: [p.title for p in listed] for section, listed in pages.items()}
                      if isinstance(pages, dict) else {}, options))
        return original(pages, **options)

    monkeypatch.setattr(streamlit, "navigation", spy)
    signed_in("ada@support.example")
    sections, options = menus[-1]
    assert options == {"expanded": True}  # never "View 5 more": Streamlit folds menus of more than 12 pages
    assert sections["Data"] == ["Clients and contracts", "Import and export", "Mail clients", "Mail quarantine",
                                "Audit trail", "Configuration", "API tokens"]
    assert sum(len(titles) for titles in sections.values()) == 15


def test_local_mode_refuses_a_public_address(tmp_path, monkeypatch):
    db, config_file = build_fixture(tmp_path)
    monkeypatch.setenv("SUPPORT_DB", str(db))
    monkeypatch.setenv("SUPPORT_CONFIG", str(config_file))
    previous = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    try:
        at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
    finally:
        st_config.set_option("server.address", previous)
    assert "No sign-in is configured" in shown(at.error[0])
    assert not at.metric and not at.title


def test_local_mode_says_so(tmp_path, monkeypatch):
    db, config_file = build_fixture(tmp_path)
    monkeypatch.setenv("SUPPORT_DB", str(db))
    monkeypatch.setenv("SUPPORT_CONFIG", str(config_file))
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
    assert any("Local mode" in c.value for c in at.caption)
    from kb import ui

    ui._open_app.clear()


def test_roles_by_address_and_domain():
    config = parse_config({"roles": {"viewer": ["@board.example"], "admin": ["ada@board.example"]}})
    assert role_for(config, "CEO@Board.Example") == "viewer"
    assert role_for(config, "ada@board.example") == "admin"
    assert role_for(config, "someone@else.example") is None


def test_kb_writes_check_the_role(tmp_path):
    db, config_file = build_fixture(tmp_path)
    config = load_config(config_file)
    con = connection.connect(db)
    viewer, staff = Actor("v@board.example", "viewer"), Actor("s@support.example", "staff")
    with pytest.raises(PermissionDenied):
        log_case(con, config, viewer, {"client_id": "ENT", "received_at": "2026-11-25 10:00",
                                       "category": "api_help", "subject": "nope"})
    with pytest.raises(PermissionDenied):
        close_incident(con, config, viewer, "I1", None)
    with pytest.raises(PermissionDenied):
        add_rows(con, config, staged_from_records("clients", [{"client_id": "X", "name": "X", "tier": "free"}]),
                 staff, permission="import", source="test")
    assert con.execute("SELECT count(*) FROM cases").fetchall()[0][0] == 6
    assert con.execute("SELECT count(*) FROM clients").fetchall()[0][0] == 3
    with pytest.raises(Rejected):
        log_case(con, config, staff, {"client_id": "NOPE", "received_at": "2026-11-25 10:00",
                                      "category": "api_help", "subject": "unknown client"})
    con.close()


@pytest.mark.parametrize("claim", [False, "false", "False", "0", 1, "yes", None, "", "true "])
def test_an_address_the_provider_has_not_verified_gets_no_page(signed_in, claim):
    at = signed_in("ada@support.example", email_verified=claim)
    assert titles(at) == ["No access yet"]


@pytest.mark.parametrize("claim", [True, "true", "TRUE", "True"])
def test_an_address_the_provider_verified_gets_its_role(signed_in, claim):
    at = signed_in("ada@support.example", email_verified=claim)
    assert titles(at) == ["Overview"]


def test_only_a_true_email_verified_claim_verifies():
    assert address_verified({"email": "ada@support.example", "email_verified": True})
    assert address_verified({"email": "ada@support.example", "email_verified": "TRUE"})
    assert not address_verified({"email": "ada@support.example"})
    assert not address_verified({"email": "ada@support.example", "email_verified": "false"})
    assert not address_verified({"email": "ada@support.example", "email_verified": 1})


def test_an_address_with_two_at_signs_gets_no_domain_role():
    config = parse_config({"roles": {"admin": ["@support.example"]}})
    assert role_for(config, "ada@support.example") == "admin"
    assert role_for(config, "mallory@evil.example@support.example") is None
    assert role_for(config, "@support.example") is None
    assert role_for(config, "ada @support.example") is None


def test_a_sign_in_older_than_the_session_limit_asks_to_sign_in_again(signed_in):
    at = signed_in("ada@support.example", iat=int(time.time()) - 13 * 3600)
    assert titles(at) == ["Support SLA"]
    assert [b.label for b in at.button] == ["Sign in"]


def assert_sign_in_is_not_working(at: AppTest, why: str) -> None:
    """The page that says sign-in is misconfigured, and why: no page, no sign-in button, no local admin."""
    assert not at.exception, [e.message for e in at.exception]
    assert titles(at) == ["Support SLA"]
    assert "Sign-in is not working" in shown(at.error[0])
    assert why in shown(at.error[0])
    assert not at.button and not at.metric
    assert not any("Local mode" in c.value for c in at.caption)


@pytest.mark.parametrize("secret", ["a long random string", "short-secret"])
def test_an_example_or_short_cookie_secret_lets_nobody_in(signed_in, secret):
    at = signed_in("ada@support.example", auth={**AUTH, "cookie_secret": secret})
    assert_sign_in_is_not_working(at, "cookie_secret in .streamlit/secrets.toml must be a random string of at "
                                      "least 32")


@pytest.mark.parametrize(("auth", "why"), [
    ("sign-in", "[auth] in .streamlit/secrets.toml is not a table"),
    (["client_id"], "[auth] in .streamlit/secrets.toml is not a table"),
    ({"cookie_secret": AUTH["cookie_secret"]}, "[auth] in .streamlit/secrets.toml needs redirect_uri, client_id, "
                                               "client_secret, server_metadata_url, each a non-empty string"),
    ({**AUTH, "client_secret": ""}, "[auth] in .streamlit/secrets.toml needs client_secret, each"),
    ({**AUTH, "cookie_secret": 12345678901234567890123456789012345}, "cookie_secret"),
])
def test_an_unusable_auth_section_lets_nobody_in(signed_in, auth, why):
    assert_sign_in_is_not_working(signed_in("ada@support.example", auth=auth), why)


def test_roles_without_any_auth_section_are_not_local_mode(signed_in):
    at = signed_in(None, auth=None)  # [roles] in support.toml, no secrets file at all
    assert_sign_in_is_not_working(at, ".streamlit/secrets.toml is missing")


def test_a_secrets_file_that_does_not_parse_is_not_local_mode(tmp_path, monkeypatch):
    db, config_file = build_fixture(tmp_path)  # no [roles]: only the broken file says sign-in was meant
    monkeypatch.setenv("SUPPORT_DB", str(db))
    monkeypatch.setenv("SUPPORT_CONFIG", str(config_file))
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[auth\nredirect_uri = "http://127.0.0.1:8501/oauth2callback"\n')
    previous = st_config.get_option("secrets.files")
    st_config.set_option("secrets.files", [str(secrets)])
    try:
        at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
    finally:
        st_config.set_option("secrets.files", previous)
        from kb import ui

        ui._open_app.clear()
    assert_sign_in_is_not_working(at, ".streamlit/secrets.toml is not valid TOML")


def test_a_server_that_started_with_sign_in_never_falls_back_to_local_mode(signed_in):
    at = signed_in("ada@support.example")
    assert titles(at) == ["Overview"]
    del at.secrets["auth"]  # the secrets file deleted while the server runs
    at.run()
    assert_sign_in_is_not_working(at, ".streamlit/secrets.toml is missing")


def test_an_auth_section_removed_after_a_visit_lets_nobody_in(signed_in):
    at = signed_in("ada@support.example")
    at.secrets["other"] = {"kept": "yes"}
    at.run()
    del at.secrets["auth"]  # the file still loads, without its [auth]
    at.run()
    assert_sign_in_is_not_working(at, ".streamlit/secrets.toml has no [auth] section")


def test_an_auth_section_broken_after_a_visit_lets_nobody_in(signed_in):
    at = signed_in("ada@support.example")
    assert titles(at) == ["Overview"]
    at.secrets["auth"] = {"cookie_secret": AUTH["cookie_secret"]}  # keys lost while the server runs
    at.run()
    assert_sign_in_is_not_working(at, "needs redirect_uri")


def test_a_new_visitor_after_the_secrets_file_broke_sees_the_message_not_an_error(signed_in, tmp_path):
    assert titles(signed_in("ada@support.example")) == ["Overview"]  # the server has started with sign-in
    (tmp_path / "secrets.toml").write_text("[auth]\ncookie_secret = \"unterminated\n")
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()  # a new session, signed out
    assert_sign_in_is_not_working(at, ".streamlit/secrets.toml is not valid TOML")


@pytest.mark.parametrize(("headers", "local"), [
    ({"host": "127.0.0.1:8501"}, True), ({"host": "localhost:8501", "origin": "http://localhost:8501"}, True),
    ({"host": "[::1]:8501"}, True), ({}, True),
    ({"host": "rebound.attacker.example:8501"}, False),
    ({"host": "127.0.0.1:8501", "origin": "http://rebound.attacker.example:8501"}, False),
    *[({"host": "localhost", name: value}, False) for name, value in [
        ("X-Forwarded-For", "203.0.113.9"), ("x-forwarded-host", "localhost"), ("X-Forwarded-Proto", "https"),
        ("Forwarded", "for=203.0.113.9"), ("X-Real-IP", "203.0.113.9"), ("X-Forwarded-For", ""),
        ("Via", "1.1 proxy")]],
])
def test_local_mode_answers_only_to_loopback_names(headers, local):
    from kb import ui

    assert ui.request_is_local(headers) is local
