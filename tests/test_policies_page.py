"""Policies on the Clients and contracts page: the list in words, adding and removing a row, a contract's policy;
and the writes behind them (``kb.intake.policies``)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from kb.access import Actor, PermissionDenied
from kb.intake.importing import Rejected
from kb.intake.policies import add_policy_row, remove_policy_row, set_contract_policy
from tests.fixtures import ADMIN, SPEC_CONFIG, add, open_page, query, shown


def policies_text(at) -> str:
    return " ".join(shown(m).replace("**", "") for m in at.markdown)


def add_row(at, policy_id: str, metric: str, priority: str, amount: str, unit: str, calendar: str = "support",
            valid_from: str = ""):
    at.text_input(key="new_policy_id").input(policy_id)
    at.selectbox(key="new_policy_metric").select(metric)
    at.selectbox(key="new_policy_priority").select(priority)
    at.text_input(key="new_policy_amount").input(amount)
    at.selectbox(key="new_policy_unit").select(unit)
    at.selectbox(key="new_policy_calendar").select(calendar)
    at.text_input(key="new_policy_valid_from").input(valid_from)
    return at.button(key="new_policy_submit").click().run()


def test_the_tier_policies_read_as_support_toml_says(app):
    at, _ = app
    open_page(at, "clients")
    text = policies_text(at)
    assert ("enterprise (from support.toml) · used by every Enterprise client without a policy of its own "
            "(1 client)\n- any priority: first response within 1 business day") in text
    assert ("free (from support.toml) · used by every Free client without a policy of its own (1 client)\n"
            "- any priority: first response by the end of the next business day") in text


def test_the_configuration_page_says_the_tier_policies_come_from_sla(app):
    at, _ = app
    open_page(at, "configuration")
    text = " ".join(m.value for m in at.markdown)
    assert "The tier policies, while no policy row names them" in text
    assert "`free` — any priority: first response by the end of the next business day" in text


def test_adding_a_row_stores_it_audited_and_lists_it_in_words(app):
    at, _ = app
    open_page(at, "clients")
    add_row(at, "gold", "first_response", "urgent", "4", "h", calendar="24x7")
    assert not at.error, [shown(e) for e in at.error]
    assert "Added to policy gold: urgent: first response within 4 hours, around the clock." in shown(at.success[0])
    assert query("SELECT policy_id, metric, priority, within, calendar, CAST(valid_from AS VARCHAR) AS valid_from "
                 "FROM policies").to_dict("records") == [
        dict(policy_id="gold", metric="first_response", priority="urgent", within="4h", calendar="24x7",
             valid_from="1970-01-01")]
    audited = query("SELECT action, table_name, row_id, after FROM audit_log WHERE table_name = 'policies'")
    assert audited[["action", "row_id"]].values.tolist() == [["add", "gold"]]
    assert json.loads(audited.after[0])["within"] == "4h"

    add_row(at, "gold", "resolution", "*", "2", "d", valid_from="2027-01-01")
    text = policies_text(at)
    assert "gold · used by no contract" in text
    assert "urgent: first response within 4 hours, around the clock" in text
    assert "any priority: resolution within 2 business days, from 2027-01-01" in text
    assert at.text_input(key="new_policy_id").value == ""  # the form is cleared for the next row


def test_a_bad_within_is_named_and_nothing_is_stored(app):
    at, _ = app
    open_page(at, "clients")
    add_row(at, "gold", "first_response", "urgent", "5x", "h")
    assert [shown(e) for e in at.error] == [
        "Within: '5xh' is not a target: Nh (N hours of business time, N from 1 to 10000), Nd (N business days, "
        "N from 1 to 60) or next_day_close"]
    assert at.text_input(key="new_policy_amount").value == "5x"  # kept, to be corrected
    assert query("SELECT count(*) AS n FROM policies").n[0] == 0
    assert query("SELECT count(*) AS n FROM audit_log WHERE table_name = 'policies'").n[0] == 0


def test_a_contract_set_to_gold_stores_it_and_one_with_response_days_is_refused(app):
    at, _ = app
    open_page(at, "clients")
    add_row(at, "gold", "first_response", "*", "1", "d")
    at.selectbox(key="policy_contract").select("K1").run()
    at.selectbox(key="policy_of_K1").select("gold")
    at.button(key="policy_set").click().run()
    assert "Contract K1 takes its targets from policy gold." in shown(at.success[0])
    assert query("SELECT policy_id FROM contracts WHERE contract_id = 'K1'").policy_id[0] == "gold"
    edit = query("SELECT before, after FROM audit_log WHERE table_name = 'contracts' AND action = 'edit'")
    assert (json.loads(edit.before[0]), json.loads(edit.after[0])) == (
        {"policy_id": None, "client_id": "ENT"}, {"policy_id": "gold", "client_id": "ENT"})  # whose cases it changed
    assert "gold · used by Enterprise Co (K1)" in policies_text(at)
    assert "every Enterprise client without a policy of its own (none today)" in policies_text(at)

    at.selectbox(key="policy_of_K1").select("")  # tier default
    at.button(key="policy_set").click().run()
    assert query("SELECT policy_id FROM contracts WHERE contract_id = 'K1'").policy_id.isna().all()
    at.selectbox(key="contracts_choice").select("K1").run()
    at.text_input(key="contracts_edit_K1_response_business_days").input("2")
    at.button(key="contracts_submit").click().run()
    assert "Contract K1 saved" in shown(at.success[0])
    assert str(query("SELECT starts_on FROM contracts WHERE contract_id = 'K1'").starts_on[0].date()) == "2026-01-01"
    at.selectbox(key="policy_of_K1").select("gold")
    at.button(key="policy_set").click().run()
    assert [shown(e) for e in at.error] == [
        "Policy: contract K1 sets its own response time (2 business days); a contract that names a policy takes "
        "every target from it: empty its Response (business days) first"]
    assert query("SELECT policy_id FROM contracts WHERE contract_id = 'K1'").policy_id.isna().all()


def test_removing_a_row_asks_first_naming_it(app):
    at, _ = app
    open_page(at, "clients")
    add_row(at, "enterprise", "resolution", "*", "3", "d")
    assert "enterprise · used by every Enterprise client" in policies_text(at)  # no longer from support.toml
    at.selectbox(key="remove_policy_row").select("enterprise|resolution|*|1970-01-01").run()
    at.button(key="remove_policy_ask").click().run()
    assert shown(at.warning[0]) == (
        "Remove from policy enterprise the row 'any priority: resolution within 3 business days'? Every case it "
        "applies to, open or closed, is measured again without it; enterprise then holds what support.toml says "
        "again.")
    assert query("SELECT count(*) AS n FROM policies").n[0] == 1  # nothing yet
    at.button(key="remove_policy_confirm").click().run()
    assert "Removed from policy enterprise: any priority: resolution within 3 business days." in shown(at.success[0])
    assert query("SELECT count(*) AS n FROM policies").n[0] == 0
    assert query("SELECT action FROM audit_log WHERE table_name = 'policies' ORDER BY audit_id").action.tolist() == [
        "add", "remove"]
    assert "enterprise (from support.toml)" in policies_text(at)


def test_only_those_who_edit_contracts_see_the_forms(signed_in):
    for email, sees in (("sam@support.example", False), ("lee@support.example", True)):
        at = signed_in(email)
        open_page(at, "clients")
        assert "any priority: first response within 1 business day" in policies_text(at)
        assert bool([t for t in at.text_input if t.key == "new_policy_id"]) is sees
        assert bool([b for b in at.button if b.key == "policy_set"]) is sees


# --- The writes -------------------------------------------------------------------------------------------

def policy(**fields) -> dict:
    return {"policy_id": "gold", "metric": "first_response", "priority": "*", "within": "1d", **fields}


@pytest.mark.parametrize(("fields", "column", "reason"), [
    (dict(policy_id="go ld"), "policy_id", "'go ld' is not an id (it contains a space)"),
    (dict(metric="uptime"), "metric", "'uptime' is not one of first_response, next_response, resolution"),
    (dict(priority="any"), "priority", "'any' is not one of urgent, high, normal, low, *"),
    (dict(within="5x"), "within", "'5x' is not a target: Nh (N hours of business time"),
    (dict(within="0h"), "within", "'0h' is not a target: Nh (N hours of business time"),
    (dict(within="61d"), "within", "'61d' is not a target: Nh (N hours of business time"),
    (dict(within="４h"), "within", "'４h' is not a target: Nh (N hours of business time"),
    (dict(within=" "), "within", "is empty"),
    (dict(calendar="london"), "calendar", "'london' is not one of the calendars support, 24x7"),
    (dict(valid_from="2027-02-30"), "valid_from", "'2027-02-30' is not an ISO date"),
    (dict(valid_from="1900-01-01"), "valid_from", "'1900-01-01' is outside 1970–2200"),
])
def test_a_bad_policy_row_is_refused_naming_the_field(con, fields, column, reason):
    with pytest.raises(Rejected) as refused:
        add_policy_row(con, SPEC_CONFIG, ADMIN, policy(**fields))
    assert [(p.column, p.reason[:len(reason)]) for p in refused.value.problems] == [(column, reason)]
    assert con.execute("SELECT count(*) FROM policies").fetchone()[0] == 0


def test_a_policy_row_is_stored_once_with_its_defaults(con):
    stored = add_policy_row(con, SPEC_CONFIG, ADMIN, policy(within=" next_day_close ", calendar="", valid_from=""))
    assert stored == policy(within="next_day_close", calendar="support", valid_from=date(1970, 1, 1))
    with pytest.raises(Rejected, match=r"'gold', 'first_response', '\*', '1970-01-01' already exists"):
        add_policy_row(con, SPEC_CONFIG, ADMIN, policy(within="2d"))
    with pytest.raises(PermissionDenied):
        add_policy_row(con, SPEC_CONFIG, Actor("sam@support.example", "staff"), policy(priority="urgent"))
    assert con.execute("SELECT count(*) FROM policies").fetchone()[0] == 1


def test_the_last_row_of_a_policy_a_contract_names_stays(con):
    add(con, SPEC_CONFIG, "clients", dict(client_id="DR", name="Delta Retail", tier="enterprise"))
    add(con, SPEC_CONFIG, "environments", dict(environment_id="S1", name="Shared", kind="shared",
                                               deployment="shared_cloud", active_from="2026-01-01"))
    add(con, SPEC_CONFIG, "contracts", dict(contract_id="K1", client_id="DR", environment_id="S1",
                                            monthly_fee="100", currency="USD", starts_on="2026-01-01"))
    add_policy_row(con, SPEC_CONFIG, ADMIN, policy())
    set_contract_policy(con, SPEC_CONFIG, ADMIN, "K1", "gold")
    with pytest.raises(Rejected, match="last row of policy gold, and contract K1 names it: give it another policy"):
        remove_policy_row(con, SPEC_CONFIG, ADMIN, "gold", "first_response", "*", date(1970, 1, 1))
    with pytest.raises(Rejected, match="no policy 'silver'"):
        set_contract_policy(con, SPEC_CONFIG, ADMIN, "K1", "silver")
    set_contract_policy(con, SPEC_CONFIG, ADMIN, "K1", None)
    remove_policy_row(con, SPEC_CONFIG, ADMIN, "gold", "first_response", "*", date(1970, 1, 1))
    assert con.execute("SELECT count(*) FROM policies").fetchone()[0] == 0
