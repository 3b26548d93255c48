"""The pages people look at first say things one way (``kb.formats``): the Overview names every environment,
the unwatched ones and the ongoing incidents; the Client page shows times with their offset, what is due
next in words and the last finished month's statement; API tokens are revoked only after a confirmation that names
them; forms name fields by their labels.

The store is the page tests' fixture plus a dedicated environment nobody has looked at ("Cobalt prod"), one
active for three days and not checked yet ("Fresh prod"), a wait on the client for the answered case MET, and a
degraded incident on "Enterprise prod" still going on at AS_OF (Wed 2026-11-25 16:30 HKT)."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from kb.config import load_config
from kb.db import connection
from kb.service.tokens import create_token
from tests.fixtures import ADMIN, add, app_on, build_fixture, button, open_page, query, shown


@pytest.fixture
def watched(tmp_path, monkeypatch):
    db, config_file = build_fixture(tmp_path)
    config = load_config(config_file)
    con = connection.connect(db)
    add(con, config, "environments",
        dict(environment_id="E2", name="Cobalt prod", kind="dedicated", deployment="dedicated_cloud",
             client_id="ENT", active_from="2026-01-01"),
        dict(environment_id="E3", name="Fresh prod", kind="dedicated", deployment="dedicated_cloud",
             client_id="ENT", active_from="2026-11-22"))  # 3 days old, never checked: not overdue yet
    add(con, config, "incidents",
        dict(incident_id="I3", environment_id="E1", impact="degraded", started_at="2026-11-24 09:00",
             summary="Slow searches"))
    add(con, config, "pauses", dict(case_id="MET", paused_at="2026-11-25 12:00", reason="Waiting on logs"))
    create_token(con, ADMIN, name="ci-import", role="lead")
    con.close()
    with app_on(db, config_file, monkeypatch) as at:
        yield at


def frame(at: AppTest, column: str):
    """The first table on the page with ``column``."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


# --- Overview ---------------------------------------------------------------------------------------------

def test_overview_names_every_environment_with_its_uptime_this_month(watched):
    at = open_page(watched, "overview")
    each = frame(at, "budget_left").set_index("environment")
    # E1: 10 min of outage in November's 43,200 min: 99.976851… %, rounded down
    assert each.loc["Enterprise prod"].tolist() == ["Enterprise Co", "99.97 %", "99.90 %", "On target", "33 min"]
    assert each.loc["Cobalt prod"].tolist() == ["Enterprise Co", "100.00 %", "99.90 %", "On target", "43 min"]


def test_overview_names_the_unwatched_environments_and_the_ongoing_incidents(watched):
    at = open_page(watched, "overview")
    assert [shown(w) for w in at.warning] == [
        "Not checked for more than 7 days (`stale_after_days` under `[monitoring]`): Cobalt prod (Enterprise Co)"]
    # The setting's name is set as code, not shown with its backticks: only the names are escaped.
    assert at.warning[0].value.startswith(
        "Not checked for more than 7 days (`stale_after_days` under `[monitoring]`): Cobalt prod")
    ongoing = frame(at, "started_at")
    assert ongoing[["environment_name", "impact", "started_at", "summary"]].values.tolist() == [
        ["Enterprise prod", "Degraded", "Tue 2026-11-24 09:00 HKT (UTC+08:00)", "Slow searches"]]
    assert "**Ongoing incidents (1)**" in [m.value for m in at.markdown]


def test_overview_counts_behind_each_percentage_and_says_whose_target_it_is(watched):
    at = open_page(watched, "overview")
    card = next(m for m in at.metric if m.label == "First response")
    assert (card.value, card.proto.delta) == ("33.33 %", "1 of 3 met · below target")
    assert (card.proto.color, card.proto.direction) == (card.proto.RED, card.proto.DOWN)
    assert next(m for m in at.metric if m.label == "Resolution").proto.delta == "none due yet"
    assert [m.label for m in at.metric][:4] == ["First response", "Follow-up response", "Resolution", "Open cases"]
    assert ("Each target's share of those due in Nov 2026 so far that were met (first responses count cases, "
            "follow-up responses count questions, resolutions count cases). The targets are the support team's own "
            "goals (`response_target_pct`, `next_response_target_pct` and `resolution_target_pct` under `[sla]` in "
            "support.toml; the last two are the first when not set), not promises of the Support Service Terms: "
            "the Terms promise each case its deadlines.") in [c.value for c in at.caption]
    assert [m.label for m in at.metric if "credits" in m.label.lower()] == [
        "Service credits last month", "Service credits this month"]
    assert not [m.label for m in at.metric if "Refund" in m.label]


# --- Client page --------------------------------------------------------------------------------------------

def test_client_page_times_next_due_and_names(watched):
    at = open_page(watched, "client")
    at.selectbox(key="client_page_client").select("ENT").run()
    cases = frame(at, "next_due").set_index("case_id")
    assert cases.loc["OVERDUE", ["next_due_metric", "next_due", "next_due_state", "priority"]].tolist() == [
        "First response", "Wed 2026-11-25 10:00 HKT (UTC+08:00)", "Breached", "Normal"]
    assert cases.loc["RISK", ["next_due", "next_due_state"]].tolist() == [
        "Wed 2026-11-25 18:00 HKT (UTC+08:00)", "At risk"]  # its clock started Wed 09:00
    assert cases.loc["MET", ["next_due_metric", "next_due", "next_due_state"]].tolist() == [
        "—", "—", "Waiting on client"]  # answered, and waiting on the client: said as the Queue says it
    assert cases.loc["LATE", ["next_due_metric", "next_due", "next_due_state"]].tolist() == ["—", "—", "—"]
    assert cases.loc["OVERDUE", "received_at"] == "Tue 2026-11-24 10:00 HKT (UTC+08:00)"
    assert list(cases.index) == ["OVERDUE", "RISK", "LATE", "MET"]  # the soonest due first, nothing due last
    environments = frame(at, "verdict").set_index("environment")
    assert environments.loc["Enterprise prod", ["uptime", "target", "downtime"]].tolist() == [
        "99.97 %", "99.90 %", "10 min"]
    contracts = frame(at, "monthly_fee")
    assert contracts[["environment_name", "uptime_target_pct", "policy_id", "monthly_fee"]].values.tolist() == [
        ["Enterprise prod", "99.90 %", "—", "USD 1,000.00"]]
    assert contracts.credit_schedule[0].startswith("below 99.90 % uptime → 10.00 % of the fee")


def test_the_statement_month_is_the_last_finished_one(watched):
    at = open_page(watched, "client")
    at.selectbox(key="client_page_client").select("ENT").run()
    month = at.selectbox(key="client_page_month:ENT")
    assert month.value == "2026-10"
    assert month.options[:2] == ["Nov 2026", "Oct 2026"]
    assert at.selectbox(key="client_page_client").select("CUS").run().selectbox(  # its first case came in November
        key="client_page_month:CUS").options == ["Nov 2026"]


# --- Audit trail -------------------------------------------------------------------------------------------

def test_the_audit_trail_names_actions_and_tables_in_words(watched):
    at = open_page(watched, "audit")
    rows = at.dataframe[0].value
    assert ("Create", "API tokens") in set(zip(rows.action, rows.table_name, strict=True))
    assert ("Import", "Cases") in set(zip(rows.action, rows.table_name, strict=True))
    assert not {"api_tokens", "cases"} & set(rows.table_name)
    columns = json.loads(at.dataframe[0].proto.columns)
    assert (columns["action"]["label"], columns["action"]["width"]) == ("Action", "medium")
    assert (columns["table_name"]["label"], columns["table_name"]["width"]) == ("Table", "medium")
    assert at.multiselect(key="audit_table").format_func("api_tokens") == "API tokens"
    assert at.multiselect(key="audit_action").format_func("undo_resolve") == "Undo resolve"


# --- API tokens ---------------------------------------------------------------------------------------------

def test_revoking_a_token_asks_first_and_names_it(watched):
    at = open_page(watched, "tokens")
    picker = at.selectbox(key="revoke_token")
    assert picker.value is None  # nothing chosen for you
    picker.select(query("SELECT token_id FROM api_tokens").token_id[0]).run()
    button(at, "Revoke…").click().run()
    assert [shown(w) for w in at.warning] == [
        "Revoke token 'ci-import' (lead role)? This cannot be undone: a program that sends it is refused from "
        "then on."]
    assert query("SELECT count(*) AS n FROM api_tokens WHERE revoked_at IS NULL").n[0] == 1  # not yet
    button(at, "Revoke token 'ci-import'").click().run()
    assert query("SELECT count(*) AS n FROM api_tokens WHERE revoked_at IS NULL").n[0] == 0
    assert any("Token 'ci-import'" in shown(s) and "revoked" in shown(s) for s in at.success)


def test_keeping_a_token_revokes_nothing(watched):
    at = open_page(watched, "tokens")
    at.selectbox(key="revoke_token").select(query("SELECT token_id FROM api_tokens").token_id[0]).run()
    button(at, "Revoke…").click().run()
    button(at, "Keep it").click().run()
    assert not at.warning
    assert query("SELECT count(*) AS n FROM api_tokens WHERE revoked_at IS NULL").n[0] == 1


# --- Fields by their labels, values as words ---------------------------------------------------------------

def test_a_forms_problem_names_the_field_as_the_form_labels_it(watched):
    at = open_page(watched, "tokens")
    button(at, "Create token").click().run()  # no name
    errors = [shown(e) for e in at.error]
    assert errors and errors[0].startswith("Name: must be 1 to "), errors
    at = open_page(at, "log_incident")
    at.selectbox(key="void_incident").select("I1")
    button(at, "Void incident").click().run()
    assert [shown(e) for e in at.error] == ["Why it was logged in error: is empty: say why"]


def test_the_clients_form_labels_fields_in_words(watched):
    at = open_page(watched, "clients")
    labels = [t.label for t in at.text_input]
    assert "Email domain (optional)" in labels and "Client ID" in labels
    assert not [label for label in labels if "_" in label]
    tier = next(s for s in at.selectbox if s.label == "Tier")
    assert tier.options == ["Enterprise", "Custom program", "Free"]
    clients = frame(at, "tier")
    assert set(clients.tier) == {"Enterprise", "Custom program", "Free"}
    grid = next(d for d in at.dataframe if "tier" in d.value.columns)
    assert clients.email_domain.isna().any() and grid.proto.placeholder == "—"  # a missing value reads "—"


def test_categories_and_tiers_read_as_words_on_performance(watched):
    at = open_page(watched, "performance")
    breached = frame(at, "case_id")
    assert set(breached.category) == {"Platform issue"} and set(breached.tier) == {"Enterprise"}
    assert set(breached.assignee) == {"amy"}
    assert at.multiselect(key="tiers").options == ["Enterprise", "Custom program", "Free"]
