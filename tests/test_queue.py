"""The Queue answers "which case breaches next, and who has it?": order, countdown, numeric age, client names."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta

import pandas as pd
import pytest

from kb.config import load_config
from kb.db import connection
from kb.db.answers import answer
from kb.intake import writes
from kb.intake.importing import Rejected
from kb.timestamps import parse_timestamp, set_now
from tests.fixtures import ADMIN, AS_OF, HKT, add, app_on, build_fixture, button, local, open_page, shown, table_with


def query(sql: str, snapshot: bool = False):
    """Rows from the app's store; with ``snapshot``, over its as-of tables at AS_OF."""
    import os

    from kb import ui
    from kb.timestamps import parse_timestamp
    from tests.fixtures import AS_OF, HKT

    store = ui._open_app(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store
    return store.query(sql, snapshot=store.snapshot(parse_timestamp(AS_OF, HKT)) if snapshot else None)


def test_first_row_is_the_open_case_with_the_least_time_left(app):
    at, _ = app
    open_page(at, "queue")
    lane = at.dataframe[0].value
    least = query("SELECT case_id FROM open_case_sla WHERE next_due IS NOT NULL ORDER BY next_due LIMIT 1",
                  snapshot=True)
    assert lane.case_id.iloc[0] == least.case_id[0] == "OVERDUE"
    assert list(lane.case_id) == ["OVERDUE", "RISK", "PENDING", "LATE", "MET"]
    assert {c for c in ("case_id", "state", "next_due_target", "next_due_hours_left", "next_due", "assignee",
                        "client_name", "subject")} <= set(lane.columns)
    assert list(lane.columns).index("next_due") < list(lane.columns).index("subject")


def test_time_left_and_age_are_both_hours_labelled_by_kind_beside_the_tier(app):
    at, _ = app
    open_page(at, "queue")
    lane = at.dataframe[0].value
    left = dict(zip(lane.case_id, lane.next_due_hours_left, strict=True))
    assert left["OVERDUE"] == -6.5  # due Wed 10:00, as of Wed 16:30
    assert left["RISK"] == 1.5  # clock from Wed 09:00, due Wed 18:00
    assert left["PENDING"] == 6.5  # due Thu 14:00: 1.5 h today, 5 h tomorrow
    assert pd.isna(left["LATE"])  # answered: its clock has stopped
    assert dict(zip(lane.case_id, lane.tier, strict=True)) == {
        "OVERDUE": "Enterprise", "RISK": "Enterprise", "PENDING": "Custom program", "LATE": "Enterprise",
        "MET": "Enterprise"}
    headers = {name: (c.get("label"), c.get("type_config", {}).get("format"))
               for name, c in json.loads(at.dataframe[0].proto.columns).items()}
    assert headers["next_due_hours_left"] == ("Hours left (1 d = 9 h)", "%.1f h")  # as the panel counts
    assert headers["age_hours"] == ("Hours since received", "%.1f h")
    assert headers["tier"][0] == "Tier" and headers["priority"][0] == "Priority"
    assert list(lane.columns).index("priority") + 1 == list(lane.columns).index("tier")  # side by side
    assert list(lane.columns).index("tier") < list(lane.columns).index("assignee")
    assert set(lane.priority) == {"Normal"}


def test_age_is_a_number_and_sorts_as_one(app):
    at, _ = app
    open_page(at, "queue")
    lane = at.dataframe[0].value
    assert pd.api.types.is_float_dtype(lane.age_hours)
    ages = dict(zip(lane.case_id, lane.age_hours, strict=True))
    assert ages["OVERDUE"] == 30.5 and ages["PENDING"] == 2.5
    # RISK 22 h, LATE = MET = OVERDUE 30.5 h: as numbers, not as text ("22.0 h" > "2.5 h" > "30.5 h")
    assert list(lane.sort_values(["age_hours", "case_id"]).case_id) == ["PENDING", "RISK", "LATE", "MET", "OVERDUE"]
    assert list(at.dataframe[1].value.age_hours) == [5 * 24 + 6.5]  # CODING, Fri 10:00 → Wed 16:30


def test_client_filter_offers_names_and_ids_only_when_names_repeat(app):
    at, _ = app
    import os

    from kb import ui
    from kb.intake.importing import add_rows, staged_from_records

    store = ui._open_app(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store
    store.write(add_rows, store.config, staged_from_records("clients", [
        dict(client_id="CUS2", name="Custom Co", tier="custom")]), ADMIN, permission="import", source="tests")
    store.write(add_rows, store.config, staged_from_records("cases", [
        dict(client_id="CUS2", case_id="TWIN", received_at="2026-11-25 15:00", category="api_help",
             subject="Same name")]), ADMIN, permission="import", source="tests")
    open_page(at, "queue")
    box = at.multiselect(key="f_client")
    assert list(box.options) == ["Custom Co (CUS)", "Custom Co (CUS2)", "Enterprise Co", "Free User"]
    box.select("CUS2").run()
    assert list(at.dataframe[0].value.case_id) == ["TWIN"]
    assert list(at.dataframe[0].value.client_name) == ["Custom Co"]


# --- One case stays selected, by its id, whatever happens to its row --------------------------------------

def _store():
    import os

    from kb import ui

    return ui._open_app(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store


def tick(at, case_id: str, lane: int = 0):
    """Tick the row of ``case_id`` in a lane's grid, as a click on it does."""
    grid = at.dataframe[lane]
    at.session_state[grid.key] = {"selection": {"rows": [list(grid.value.case_id).index(case_id)], "columns": []}}
    return at.run()


def ticked(at, lane: int = 0) -> list[str]:
    """The cases whose rows the lane's grid shows ticked."""
    grid = at.dataframe[lane]
    state = at.session_state[grid.key]["selection"]["rows"]
    return [grid.value.case_id[row] for row in state]


def panel_case(at) -> str | None:
    """The case whose panel is open (its first line: '**CS-00042** · client · subject')."""
    heads = [shown(m) for m in at.markdown if shown(m).startswith("**") and " · " in shown(m)]
    return heads[0].split("**")[1] if heads else None


def test_a_response_keeps_its_case_selected_where_its_row_moved(app):
    at, _ = app
    open_page(at, "queue")
    tick(at, "OVERDUE")
    assert panel_case(at) == "OVERDUE" and ticked(at) == ["OVERDUE"]
    at.datetime_input(key="respond_at_OVERDUE").set_value(datetime(2026, 11, 25, 15, 0))  # sent from a phone
    button(at, "Record first response").click().run()
    assert "First response recorded on OVERDUE, sent Wed 2026-11-25 15:00 HKT (UTC+08:00)." in shown(at.success[0])
    assert str(_store().query("SELECT first_response_at FROM cases WHERE case_id = 'OVERDUE'").iloc[0, 0]) \
        == "2026-11-25 07:00:00+00:00"
    assert list(at.dataframe[0].value.case_id) == ["RISK", "PENDING", "LATE", "MET", "OVERDUE"]  # it moved down
    assert panel_case(at) == "OVERDUE" and ticked(at) == ["OVERDUE"]
    tick(at, "RISK")  # one click opens another case
    assert panel_case(at) == "RISK" and ticked(at) == ["RISK"]
    assert at.query_params["case"] == "RISK"


@pytest.mark.parametrize(("when", "message"), [
    (datetime(2026, 11, 24, 9, 0), "is before the case was received"),
    (datetime.now(HKT).replace(tzinfo=None) + timedelta(days=2), "is in the future"),
])
def test_a_response_time_follows_the_clock_rule(app, when, message):
    at, _ = app
    open_page(at, "queue")
    tick(at, "OVERDUE")
    at.datetime_input(key="respond_at_OVERDUE").set_value(when)
    button(at, "Record first response").click().run()
    assert any(message in shown(e) for e in at.error), [shown(e) for e in at.error]
    assert _store().query("SELECT first_response_at FROM cases WHERE case_id = 'OVERDUE'").first_response_at.isna()[0]
    assert panel_case(at) == "OVERDUE"


def test_a_resolved_case_keeps_its_panel_and_says_where_it_went(app):
    at, _ = app
    set_now(parse_timestamp(AS_OF, HKT))  # resolved at the instant the queue is frozen at
    open_page(at, "queue")
    tick(at, "PENDING")
    button(at, "Resolve now").click().run()
    assert "PENDING" not in set(at.dataframe[0].value.case_id) and ticked(at) == []
    assert panel_case(at) == "PENDING"
    assert ("PENDING was resolved (Wed 2026-11-25 16:30 HKT (UTC+08:00)): it has left the open queue. Find it again "
            "by its id in the box above, or in the case-sla export on Import and export.") in map(shown, at.info)


def test_a_case_resolved_on_the_queue_of_now_says_it_was_resolved(app, monkeypatch):
    at, _ = app
    monkeypatch.delenv("SUPPORT_AS_OF")  # the queue of now, as of the minute it was drawn
    set_now(parse_timestamp(AS_OF, HKT))
    open_page(at, "queue")
    assert ("Countdowns as of Wed 2026-11-25 16:30 HKT (UTC+08:00), renewed every minute (a case changed since then: "
            "as of its change).") in [c.value for c in at.caption]
    tick(at, "PENDING")
    set_now(parse_timestamp(AS_OF, HKT) + timedelta(seconds=20))  # resolved twenty seconds later
    button(at, "Resolve now").click().run()
    assert "PENDING" not in set(at.dataframe[0].value.case_id)
    assert ("PENDING was resolved (Wed 2026-11-25 16:30 HKT (UTC+08:00)): it has left the open queue. Find it again "
            "by its id in the box above, or in the case-sla export on Import and export.") in map(shown, at.info)


def test_a_voided_case_says_where_it_went_and_the_lookup_box_is_ready_for_the_next(app):
    at, _ = app
    open_page(at, "queue")
    at.text_input(key="case_lookup").input("OVERDUE").run()
    assert panel_case(at) == "OVERDUE" and ticked(at) == ["OVERDUE"]
    assert at.text_input(key="case_lookup").value == ""
    at.text_input(key="void_reason_OVERDUE").input("Logged twice")
    button(at, "Void case").click().run()
    assert panel_case(at) == "OVERDUE" and "OVERDUE" not in set(at.dataframe[0].value.case_id)
    assert ("OVERDUE was voided (Logged twice): it has left the queue, every count and every export; the audit trail "
            "keeps it.") in [shown(i) for i in at.info]


def test_the_assignee_is_picked_from_the_team(signed_in):
    at = signed_in("lee@support.example")
    open_page(at, "queue")
    at.multiselect(key="f_assignee").select("amy").run()
    tick(at, "OVERDUE")
    box = at.selectbox(key="assignee_OVERDUE")
    # staff and above under [roles] (not the viewers' domain), and whoever has a case already
    assert box.options == ["(unassigned)", "ada@support.example", "amy", "lee@support.example", "sam@support.example"]
    assert box.value == "amy"
    box.select("sam@support.example")
    button(at, "Assign").click().run()
    assert "OVERDUE assigned to sam@support.example." in shown(at.success[0])
    assert _store().query("SELECT assignee FROM cases WHERE case_id = 'OVERDUE'").assignee[0] == "sam@support.example"
    assert panel_case(at) == "OVERDUE"  # filtered out by "amy", and says so
    assert "OVERDUE is open but hidden by the filters: clear them to see it in the list." in [shown(i) for i in at.info]
    store = _store()
    with pytest.raises(Rejected, match="'sma@support.example' is not on the team"):
        store.write(writes.assign_case, store.config, ADMIN, "OVERDUE", "sma@support.example")


def test_a_breach_reason_says_which_period_of_response_performance_counts_it(app):
    at, _ = app
    from kb.intake.importing import add_rows, staged_from_records

    store = _store()
    store.write(add_rows, store.config, staged_from_records("cases", [dict(
        case_id="JUNE", client_id="ENT", received_at="2026-06-01 10:00", category="api_help", subject="Old one")]),
        ADMIN, permission="import", source="tests")  # due Tue 2026-06-02 10:00, long before the default window
    open_page(at, "queue")
    at.text_input(key="case_lookup").input("JUNE").run()
    at.text_input(key="breach_reason_JUNE").input("Vendor outage")
    button(at, "Save breach reason").click().run()
    assert ("Breach reason of JUNE saved: counted on Response performance among the breaches with deadlines in "
            "Jun 2026 (due Tue 2026-06-02 10:00 HKT (UTC+08:00)).") in shown(at.success[0])
    link = next(p for p in at.get("page_link") if "Response performance" in p.proto.label)
    assert link.proto.query_string == "due_from=2026-06-01&due_to=2026-06-30"
    at.query_params.update(due_from="2026-06-01", due_to="2026-06-30")  # where the link leads
    open_page(at, "performance")
    reasons = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    assert dict(zip(reasons.reason, reasons.cases, strict=True)) == {"Vendor outage": 1}

    open_page(at, "queue")  # emptied and saved: cleared, and said so (the case found as typed in small letters)
    at.text_input(key="case_lookup").input(" june ").run()
    at.text_input(key="breach_reason_JUNE").input("")
    button(at, "Save breach reason").click().run()
    assert shown(at.success[0]) == "Breach reason of JUNE cleared: it no longer has one."
    assert store.query("SELECT breach_reason FROM cases WHERE case_id = 'JUNE'").breach_reason.tolist() == [None]
    audited = store.query("SELECT count(*) AS n FROM audit_log WHERE action = 'breach_reason'").n[0]
    open_page(at, "queue")  # none saved for none: nothing written, and said so
    at.text_input(key="case_lookup").input("JUNE").run()
    button(at, "Save breach reason").click().run()
    assert shown(at.success[0]) == "Breach reason of JUNE unchanged: it has none."
    assert store.query("SELECT count(*) AS n FROM audit_log WHERE action = 'breach_reason'").n[0] == audited


# --- One format: words for the rules' values, business time as the Client page writes it, fields by label ------

def panel(at):
    """The open case's panel: the innermost block holding its first line."""
    from streamlit.testing.v1.element_tree import Block

    heads = [b for b in at.main if isinstance(b, Block) and any(
        shown(m).startswith("**") and " · " in shown(m) for m in b.markdown)]
    return min(heads, key=lambda b: len(list(b)))


def facts(at) -> dict[str, str]:
    """The panel's facts, 'Time left' → 'overdue 6 h 30 min'."""
    text = next(shown(m) for m in at.markdown if shown(m).startswith("**Next due:**"))
    return dict(line[2:].split(":** ", 1) for line in text.split("  \n"))


def test_the_panel_and_the_pickers_say_tiers_categories_and_overdue_time_in_words(app):
    at, _ = app
    from kb.intake.importing import add_rows, staged_from_records

    store = _store()
    store.write(add_rows, store.config, staged_from_records("cases", [dict(
        case_id="JUNE", client_id="ENT", received_at="2026-06-01 10:00", category="api_help", subject="Old one")]),
        ADMIN, permission="import", source="tests")  # due Tue 2026-06-02 10:00, long overdue
    open_page(at, "queue")
    assert at.multiselect(key="f_tier").options == ["Enterprise", "Custom program", "Free"]
    assert at.multiselect(key="f_category").options == ["Platform issue", "API help", "General coding"]
    assert "Countdowns as of Wed 2026-11-25 16:30 HKT (UTC+08:00), the instant the dashboard is frozen at." in [
        c.value for c in at.caption]
    tick(at, "OVERDUE")
    assert panel_case(at) == "OVERDUE"
    assert "**OVERDUE** · Enterprise Co (Enterprise) · Subject of OVERDUE" in [shown(m) for m in at.markdown]
    assert facts(at)["Time left"] == "overdue 6 h 30 min"
    assert facts(at)["Category"] == "Platform issue"
    assert facts(at)["Next due"] == "First response, Wed 2026-11-25 10:00 HKT (UTC+08:00)"
    assert at.selectbox(key="correct_category_OVERDUE").options == ["Platform issue", "API help", "General coding"]
    tick(at, "JUNE")
    hours = -float(at.dataframe[0].value.set_index("case_id").next_due_hours_left["JUNE"])
    assert facts(at)["Time left"] == "overdue 122 d 6 h" and hours == 122 * 9 + 6.5  # days of 9 business hours
    assert facts(at)["Category"] == "API help"


def test_problems_name_each_field_as_its_form_labels_it(app):
    at, _ = app
    open_page(at, "queue")
    tick(at, "OVERDUE")
    button(at, "Void case").click().run()
    assert [shown(e) for e in at.error] == ["Reason: is empty: say why"]
    at.text_input(key="correct_first_response_at_OVERDUE").input("2026-11-31 10:00")
    button(at, "Save correction").click().run()
    [error] = [shown(e) for e in at.error]
    assert error.startswith("First response: ") and "first_response_at" not in error, error
    at.text_input(key="correct_first_response_at_OVERDUE").input("2026-11-24 09:00")
    button(at, "Save correction").click().run()
    assert [shown(e) for e in at.error] == ["First response: is before the case was received"]
    at.selectbox(key="correct_category_OVERDUE").select("api_help")
    at.text_input(key="correct_first_response_at_OVERDUE").input("")
    button(at, "Save correction").click().run()
    assert shown(at.success[0]) == "OVERDUE corrected: Category Platform issue → API help."


def test_the_undo_of_a_resolution_sits_with_its_confirmation_in_the_panel(app):
    at, _ = app
    set_now(parse_timestamp(AS_OF, HKT))
    open_page(at, "queue")
    tick(at, "PENDING")
    button(at, "Resolve now").click().run()
    box = panel(at)
    assert [shown(s) for s in box.success] == ["PENDING resolved at Wed 2026-11-25 16:30 HKT (UTC+08:00)."]
    assert [b.label for b in box.button if b.label == "Undo"] == ["Undo"]
    assert len(at.success) == 1
    button(at, "Undo").click().run()
    assert [shown(s) for s in panel(at).success] == ["PENDING reopened (resolution undone)."]
    assert "PENDING" in set(at.dataframe[0].value.case_id)


def action_columns(at) -> list[list[str]]:
    """The labels of the buttons in each column of the panel's row of actions."""
    from streamlit.testing.v1.element_tree import Column

    for block in panel(at):
        columns = list(getattr(block, "children", {}).values())
        if columns and all(isinstance(c, Column) for c in columns) and any(b.label == "Assign" for b in block.button):
            return [[b.label for b in column.button] for column in columns]
    raise AssertionError("no row of actions")


def test_once_answered_the_response_becomes_a_reply_and_each_is_a_team_message(app):
    at, _ = app
    open_page(at, "queue")
    tick(at, "OVERDUE")
    assert action_columns(at) == [["Record first response"], ["Assign"], ["Waiting on client"], ["Resolve now"]]
    at.datetime_input(key="respond_at_OVERDUE").set_value(datetime(2026, 11, 25, 15, 0))
    button(at, "Record first response").click().run()
    assert shown(panel(at).success[0]) == ("First response recorded on OVERDUE, sent Wed 2026-11-25 15:00 HKT "
                                           "(UTC+08:00).")
    assert action_columns(at) == [["Record reply"], ["Assign"], ["Waiting on client"], ["Resolve now"]]
    assert at.datetime_input(key="respond_at_OVERDUE").label == "Reply sent at"
    at.datetime_input(key="respond_at_OVERDUE").set_value(datetime(2026, 11, 25, 14, 0))
    button(at, "Record reply").click().run()
    assert [shown(e) for e in at.error] == [
        "Reply sent at: is before the first response of case OVERDUE (Wed 2026-11-25 15:00 HKT (UTC+08:00)); "
        "correct the first response instead"]
    at.datetime_input(key="respond_at_OVERDUE").set_value(datetime(2026, 11, 25, 16, 0))
    button(at, "Record reply").click().run()
    assert shown(panel(at).success[0]) == "Reply recorded on OVERDUE, sent Wed 2026-11-25 16:00 HKT (UTC+08:00)."
    store = _store()
    assert str(store.query("SELECT first_response_at FROM cases WHERE case_id = 'OVERDUE'").iloc[0, 0]) \
        == "2026-11-25 07:00:00+00:00"  # the reply leaves the first response as it was
    replies = store.query("SELECT message_key, is_team, source FROM messages WHERE case_id = 'OVERDUE' "
                          "ORDER BY received_at")
    assert list(replies.message_key) == ["queue:OVERDUE:2026-11-25T07:00:00+00:00",
                                         "queue:OVERDUE:2026-11-25T08:00:00+00:00"]
    assert list(replies.is_team) == [True, True] and set(replies.source) == {"queue"}
    thread = table_with(at, "sender")
    assert list(thread.sender) == ["(recorded on the Queue)"] * 2 and list(thread.role) == ["first response", ""]


def test_a_case_waits_on_the_client_with_an_undo_then_resumes(app):
    at, _ = app
    set_now(parse_timestamp(AS_OF, HKT))
    open_page(at, "queue")
    tick(at, "OVERDUE")
    at.text_input(key="pause_reason_OVERDUE").input("asked for the logs")
    button(at, "Waiting on client").click().run()
    box = panel(at)
    assert [shown(s) for s in box.success] == ["OVERDUE is waiting on the client since Wed 2026-11-25 16:30 HKT "
                                               "(UTC+08:00)."]
    assert [b.label for b in box.button if b.label == "Undo"] == ["Undo"]
    assert facts(at)["Waiting on client"] == "since Wed 2026-11-25 16:30 HKT (UTC+08:00) (asked for the logs)"
    assert action_columns(at) == [["Record first response"], ["Assign"], ["Resume"], ["Resolve now"]]
    pauses = ("SELECT reason, paused_by, resumed_at IS NOT NULL AS resumed, resumed_by FROM pauses "
              "WHERE case_id = 'OVERDUE'")
    assert _store().query(pauses).values.tolist() == [["asked for the logs", "local admin", False, None]]
    button(at, "Undo").click().run()
    assert [shown(s) for s in panel(at).success] == ["OVERDUE is no longer waiting on the client (pause undone)."]
    assert _store().query(pauses).empty and "Waiting on client" not in facts(at)
    assert action_columns(at) == [["Record first response"], ["Assign"], ["Waiting on client"], ["Resolve now"]]
    button(at, "Waiting on client").click().run()  # without a reason this time
    at.run()  # the Undo is offered on the run right after pausing only
    assert not [b for b in panel(at).button if b.label == "Undo"]
    button(at, "Resume").click().run()
    assert [shown(s) for s in panel(at).success] == ["OVERDUE resumed at Wed 2026-11-25 16:30 HKT (UTC+08:00): no "
                                                     "longer waiting on the client."]
    resumed = _store().query(pauses)
    assert resumed.values.tolist() == [[None, "local admin", True, "local admin"]]
    waits = next(d.value for d in panel(at).dataframe if "until" in d.value.columns)  # the wait stays in sight
    assert waits.values.tolist() == [["Wed 2026-11-25 16:30 HKT (UTC+08:00)", "Wed 2026-11-25 16:30 HKT (UTC+08:00)",
                                      "—", "local admin → local admin"]]
    assert action_columns(at) == [["Record first response"], ["Assign"], ["Waiting on client"], ["Resolve now"]]
    button(at, "Waiting on client").click().run()  # at the instant the last pause ended: they would overlap
    assert [shown(e) for e in at.error] == [
        "Waiting on client since: is not after case OVERDUE's last pause ended (Wed 2026-11-25 16:30 HKT (UTC+08:00)); "
        "pauses of a case never overlap"]


# --- The next thing due of any target: first response, a follow-up question, resolution ------------------------

GOLD = [("gold", "first_response", "urgent", "4h", "24x7"), ("gold", "first_response", "*", "1d", "support"),
        ("gold", "resolution", "*", "2d", "support"), ("gold", "next_response", "*", "1d", "support")]


@pytest.fixture
def gold(tmp_path, monkeypatch):
    """The page tests' store with Enterprise Co on the policy ``gold`` (first response within 1 business day,
    resolution within 2, follow-ups within 1): MET and LATE, answered, are next due to be resolved (Thu 10:00);
    MET is high priority and its client asked again on Wed 12:00; RISK is high priority too; WAITS, answered,
    waits on the client since Wed 11:00."""
    db, config_file = build_fixture(tmp_path)
    con = connection.connect(db)
    con.executemany("INSERT INTO policies (policy_id, metric, priority, within, calendar) VALUES (?, ?, ?, ?, ?)",
                    GOLD)
    con.execute("UPDATE contracts SET policy_id = 'gold'")
    add(con, load_config(config_file), "cases", dict(
        case_id="WAITS", client_id="ENT", received_at="2026-11-24 10:00", category="platform_issue",
        subject="Subject of WAITS", first_response_at="2026-11-25 09:30", assignee="amy"))
    con.execute("UPDATE cases SET priority = 'high' WHERE case_id IN ('MET', 'RISK')")
    con.execute("INSERT INTO pauses (case_id, paused_at) VALUES ('WAITS', ?)", [local("2026-11-25 11:00")])
    con.execute("INSERT INTO messages (message_key, case_id, is_team, is_automatic, received_at, taken_at, source) "
                "VALUES ('again', 'MET', false, false, ?, now(), 'import')", [local("2026-11-25 12:00")])
    answer(con, ["MET"])
    con.close()
    with app_on(db, config_file, monkeypatch) as at:
        yield at


def column(lane, name: str) -> dict:
    return dict(zip(lane.case_id, lane[name], strict=True))


def test_the_next_due_of_any_target_orders_the_lane_then_priority(gold):
    at = open_page(gold, "queue")
    lane = at.dataframe[0].value
    # due Wed 10:00 (overdue), Wed 18:00, Thu 10:00 twice (high before normal), Thu 14:00; then nothing running
    assert list(lane.case_id) == ["OVERDUE", "RISK", "MET", "LATE", "PENDING", "WAITS"]
    assert column(lane, "next_due_target") == {
        "OVERDUE": "First response", "RISK": "First response", "MET": "Resolution", "LATE": "Resolution",
        "PENDING": "First response", "WAITS": "Waiting on client"}
    assert str(column(lane, "next_due")["LATE"]) == "2026-11-26 10:00:00+08:00"
    assert column(lane, "next_due_hours_left")["LATE"] == 2.5  # Wed 16:30–18:00, Thu 09:00–10:00
    assert pd.isna(column(lane, "next_due_hours_left")["WAITS"]) and pd.isna(column(lane, "next_due")["WAITS"])
    assert {k: list(v) for k, v in column(lane, "state").items()} == {
        "OVERDUE": ["Breached"], "RISK": ["At risk"], "MET": ["Pending"], "LATE": ["Pending"],
        "PENDING": ["Pending"], "WAITS": ["Waiting on client"]}
    assert column(lane, "priority") == {"OVERDUE": "Normal", "RISK": "High", "MET": "High", "LATE": "Normal",
                                        "PENDING": "Normal", "WAITS": "Normal"}
    help_text = json.loads(at.dataframe[0].proto.columns)["next_due_hours_left"]["help"]
    assert "clock hours for a target that runs around the clock (24x7)" in help_text


def test_the_priority_and_state_filters(gold):
    at = open_page(gold, "queue")
    assert at.multiselect(key="f_priority").options == ["Urgent", "High", "Normal", "Low"]
    assert at.multiselect(key="f_state").options == [
        "Breached", "At risk", "Pending", "Waiting on client", "Met", "No deadline"]
    at.multiselect(key="f_priority").select("high").run()
    assert list(at.dataframe[0].value.case_id) == ["RISK", "MET"]
    at.multiselect(key="f_priority").unselect("high")
    at.multiselect(key="f_state").select("paused").run()
    assert list(at.dataframe[0].value.case_id) == ["WAITS"]
    at.multiselect(key="f_state").unselect("paused").select("pending").select("at_risk").run()
    assert list(at.dataframe[0].value.case_id) == ["RISK", "MET", "LATE", "PENDING"]


def test_the_panel_shows_every_target_in_words(gold):
    at = open_page(gold, "queue")
    tick(at, "MET")
    assert facts(at)["Next due"] == "Resolution, Thu 2026-11-26 10:00 HKT (UTC+08:00)"
    assert facts(at)["Time left"] == "2 h 30 min" and facts(at)["Priority"] == "High"
    targets = table_with(at, "details").set_index("target")
    assert targets.loc["First response"].tolist() == [
        "Met", "Wed 2026-11-25 10:00 HKT (UTC+08:00)", "—", "within 1 business day"]
    assert targets.loc["Follow-up response"].tolist() == [  # Wed 16:30–18:00, Thu 09:00–12:00
        "Pending", "Thu 2026-11-26 12:00 HKT (UTC+08:00)", "4 h 30 min",
        "asked Wed 2026-11-25 12:00 HKT (UTC+08:00); 1 question, 1 open"]
    assert targets.loc["Resolution"].tolist() == [
        "Pending", "Thu 2026-11-26 10:00 HKT (UTC+08:00)", "2 h 30 min", "within 2 business days"]
    tick(at, "WAITS")
    assert (facts(at)["Next due"], facts(at)["Time left"]) == ("Waiting on client", "—")
    targets = table_with(at, "details").set_index("target")
    # 10 of its 18 business hours ran before the pause (Tue 10:00–18:00, Wed 09:00–11:00); 8 h are left
    assert targets.loc["Resolution"].tolist() == [
        "Waiting on client", "Thu 2026-11-26 15:30 HKT (UTC+08:00)", "8 h, clock stopped",
        "within 2 business days; 5 h 30 min paused"]
    assert targets.loc["Follow-up response"].tolist() == ["—", "—", "—", "no question from the client yet"]


def test_the_lane_download_has_the_next_due_beside_the_first_response(gold):
    from kb.reads import queue

    store = _store()
    frame = pd.read_csv(io.BytesIO(queue.queue_csv(store, store.snapshot(parse_timestamp(AS_OF, HKT)),
                                                   queue.QueueFilter(), lane="sla")))
    late = frame.set_index("case_id").loc["LATE"]
    assert late[["priority", "next_due_metric", "next_due", "next_due_hours_left", "next_due_state",
                 "waiting_on_client", "sla_state"]].tolist() == [
        "normal", "resolution", "2026-11-26T10:00:00+08:00", 2.5, "pending", False, "breached"]
    assert frame.set_index("case_id").loc["WAITS", "waiting_on_client"]
