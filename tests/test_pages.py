"""Every page through Streamlit's AppTest on a fixture database frozen at a known instant."""

from __future__ import annotations

import json
import os
import tomllib
from datetime import date, datetime, time, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from kb import ui
from kb.timestamps import set_now
from tests.fixtures import (
    ADMIN,
    HKT,
    PAGES,
    ROOT,
    app_on,
    build_fixture,
    build_gold_fixture,
    button,
    chart_rows,
    chart_specs,
    fill_case,
    local,
    metric,
    open_page,
    query,
    shown,
    table_with,
    text_labels,
)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(app, page):
    at, _ = app
    open_page(at, page)
    assert at.title[0].value


def test_overview_numbers(app):
    at, _ = app
    open_page(at, "overview")
    assert metric(at, "First response") == "33.33 %"  # MET of MET, LATE, OVERDUE
    assert metric(at, "Breached now") == "1"
    assert metric(at, "At risk now") == "1"
    assert metric(at, "Pending now") == "1"
    assert metric(at, "Waiting on client now") == "0"
    assert metric(at, "Service credits last month") == "USD 100.00"
    assert metric(at, "Service credits this month") == "none"
    assert metric(at, "Environments below target") == "0 of 1"
    assert metric(at, "Open cases") == "6"
    assert next(m.delta for m in at.metric if m.label == "Open cases") == "3 with nothing due"  # 6 = 1 + 1 + 1 + 3
    assert any(layer.get("encoding", {}).get("y", {}).get("datum") == 95 for layer in chart_specs(at)[0]["layer"])


def test_queue_lanes_and_age_chart(app):
    at, _ = app
    open_page(at, "queue")
    sla_lane, deprioritized = at.dataframe[0].value, at.dataframe[1].value
    # the least business time left first (overdue is negative), then the answered ones still open
    assert list(sla_lane["case_id"]) == ["OVERDUE", "RISK", "PENDING", "LATE", "MET"]
    assert list(dict(zip(sla_lane.case_id, sla_lane.state, strict=True))["RISK"]) == ["At risk"]
    assert list(deprioritized["case_id"]) == ["CODING"]
    assert chart_specs(at)[0]["encoding"]["x"]["title"] == "Age of open case"
    assert {(r["age_bucket"], r["tier"], r["cases"]) for r in chart_rows(at)} == {
        ("1–3 days", "Enterprise", 3), ("4–24 h", "Enterprise", 1), ("< 4 h", "Custom program", 1),
        ("3–7 days", "Free", 1)}
    legend = chart_specs(at)[0]["encoding"]["color"]["scale"]["domain"]
    assert legend == ["Enterprise", "Custom program", "Free"]
    at.multiselect(key="f_state").select("at_risk").run()
    assert list(at.dataframe[0].value["case_id"]) == ["RISK"]


def test_performance_target_rule_and_drill_down(app):
    at, _ = app
    open_page(at, "performance")
    specs = chart_specs(at)
    assert any(layer.get("encoding", {}).get("y", {}).get("datum") == 95 for layer in specs[0]["layer"])
    assert set(table_with(at, "case_id")["case_id"]) == {"LATE", "OVERDUE"}


def test_a_chart_drawn_again_is_read_from_the_snapshot_and_one_drawn_from_other_choices_is_drawn_anew(app,
                                                                                                        monkeypatch):
    at, _ = app
    drawn = []
    monkeypatch.setattr(ui, "chart_spec", lambda figure, spec=ui.chart_spec: drawn.append(1) or spec(figure))
    open_page(at, "performance")
    weekly, first = chart_specs(at), len(drawn)
    assert first == len(weekly) > 0  # one for each target with something due
    at.run()
    assert chart_specs(at) == weekly and len(drawn) == first  # the same spec, not drawn again
    at.radio(key="grain").set_value("month").run()
    monthly = chart_specs(at)
    assert len(drawn) > first
    assert weekly[0]["layer"][0]["encoding"]["x"]["axis"]["format"] == "%d %b"
    assert monthly[0]["layer"][0]["encoding"]["x"]["axis"]["format"] == "%b %Y"


def test_uptime_page(app):
    at, _ = app
    open_page(at, "uptime")
    current = at.dataframe[0].value.set_index("environment_id")
    assert current.loc["E1", ["downtime_minutes", "uptime_pct", "target_pct"]].tolist() == [
        "10 min", "99.97 %", "99.90 %"]
    assert current.loc["E1", "target_met"] == "On target"
    cells = {(r["environment_id"], r["month"]): r["on_target"] for r in chart_rows(at, 0)}
    assert cells[("E1", "2026-10")] == "Below target"
    assert cells[("E1", "2026-11")] == "On target"
    assert {r["incident_id"] for r in chart_rows(at, 1)} == {"I1", "I2"}
    assert "Every dedicated environment was seen in the last 7 days" in shown(at.success[0])
    seen = table_with(at, "days_since").set_index("environment_id")
    assert seen.loc["E1", "days_since"] == "5 d 6 h"  # the November blip, 2026-11-20 10:00: 5 d 6 h 30 min


def test_refunds_page(app):
    at, _ = app
    open_page(at, "refunds")
    lines = at.dataframe[0].value
    assert list(lines.contract_id) == ["K1"]
    assert lines.refund_amount[0] == "USD 100.00"
    assert "below 99.90 % uptime → 10.00 % of the fee" in lines.schedule_in_words[0]
    closest = at.dataframe[1].value
    assert closest.minutes_to_next_tier[0] == "33 min"  # 43.2 - 10.0 min to below 99.9 % this month
    assert closest.next_credit_pct[0] == "10.00 %"


def test_log_case_writes_the_row_and_names_its_deadline(app):
    at, _ = app
    open_page(at, "log_case")
    fill_case(at, "Gateway returns 502")
    button(at, "Log case").click().run()
    assert not at.exception
    assert shown(at.success[0]) == (  # (as of now, after its deadline; the tier's defaults set no resolution)
        "Case CS-00001 logged for Enterprise Co (Enterprise, ENT). First response due Thu 2026-11-26 11:00 HKT "
        "(UTC+08:00), breached — Enterprise default: within 1 business day. Resolution — Enterprise default: "
        "no target.")
    stored = query("SELECT client_id, subject, received_at FROM cases WHERE case_id = 'CS-00001'")
    assert stored.subject[0] == "Gateway returns 502"
    assert str(stored.received_at[0]) == "2026-11-25 03:00:00+00:00"
    assert query("SELECT count(*) AS n FROM audit_log WHERE row_id = 'CS-00001' AND action = 'add'").n[0] == 1


def test_log_case_names_the_resolution_deadline_of_the_policy_the_contract_names(tmp_path, monkeypatch):
    with app_on(*build_gold_fixture(tmp_path), monkeypatch) as at:  # gold: urgent 4 h around the clock; 2 days
        open_page(at, "log_case")
        fill_case(at, "Checkout is down")  # Wed 2026-11-25 11:00, before AS_OF (16:30)
        at.selectbox(key="case_priority").select("urgent")
        button(at, "Log case").click().run()
        assert not at.exception
        message = shown(at.success[0])
    # First response: 11:00 + 4 h. Resolution: Thu 11:00 is one business day; Fri 2026-11-27 is the fixture's
    # holiday, so Mon 11:00 is the second. (Both breached as of now, after them.)
    assert message.endswith(
        "First response due Wed 2026-11-25 15:00 HKT (UTC+08:00), breached — Enterprise Co's policy gold: within "
        "4 hours, around the clock. Resolution due Mon 2026-11-30 11:00 HKT (UTC+08:00), breached — Enterprise "
        "Co's policy gold: within 2 business days.")


def test_log_case_clears_the_form_and_links_to_the_case_in_the_queue(app):
    at, _ = app
    open_page(at, "log_case")
    fill_case(at, "Gateway returns 502")
    button(at, "Log case").click().run()
    assert "Case CS-00001 logged" in shown(at.success[0])
    assert at.text_input(key="case_subject").value == ""
    assert at.selectbox(key="case_client").value is None
    assert at.date_input(key="case_received_day").value == datetime.now(HKT).date()  # now again, in the support zone
    assert at.selectbox(key="case_assignee").value == ""  # "(unassigned)" shown, not an empty picker
    [link] = at.get("page_link")
    assert link.proto.label == "Open CS-00001 in the Queue" and link.proto.query_string == "case=CS-00001"
    at.query_params["case"] = "CS-00001"  # where the link leads: the Queue with the case selected
    open_page(at, "queue")
    assert "**CS-00001** · Enterprise Co (Enterprise) · Gateway returns 502" in [shown(m) for m in at.markdown]
    grid = at.dataframe[0]
    assert [grid.value.case_id[r] for r in at.session_state[grid.key]["selection"]["rows"]] == ["CS-00001"]


@pytest.mark.parametrize(("case", "client", "category", "target"), [
    ("Cobalt", "COB", "platform_issue", "Cobalt Ltd's contract: within 2 business days"),
    ("Enterprise", "ENT", "platform_issue", "Enterprise default: within 1 business day"),
    ("Free", "FREE", "api_help", "Free default: by the end of the next business day"),
    ("Coding", "FREE", "general_coding", "General coding on the free tier: no deadline"),
])
def test_log_case_says_which_target_applies_and_why(app, case, client, category, target):
    at, _ = app
    from kb import ui
    from kb.intake.importing import add_rows, staged_from_records

    store = ui._open_app(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store
    for table, row in (("clients", dict(client_id="COB", name="Cobalt Ltd", tier="enterprise")),
                       ("environments", dict(environment_id="E2", name="Cobalt prod", kind="dedicated",
                                             deployment="on_premise", client_id="COB", active_from="2026-01-01")),
                       ("contracts", dict(contract_id="K2", client_id="COB", environment_id="E2", monthly_fee="10",
                                          currency="USD", response_business_days="2", starts_on="2026-01-01"))):
        store.write(add_rows, store.config, staged_from_records(table, [row]), ADMIN, permission="import",
                    source="tests")
    open_page(at, "log_case")
    fill_case(at, f"{case} case", client=client)
    at.selectbox(key="case_category").select(category)
    button(at, "Log case").click().run()
    said = shown(at.success[0])
    assert said.split(". ", 1)[1].startswith("First response") and f" — {target}. Resolution" in said, said


def test_log_case_stores_the_priority_picked_and_starts_again_at_normal(app):
    at, _ = app
    open_page(at, "log_case")
    assert at.selectbox(key="case_priority").value == "normal"
    assert at.selectbox(key="case_priority").options == ["Urgent", "High", "Normal", "Low"]
    fill_case(at, "Everything is down")
    at.selectbox(key="case_priority").select("urgent")
    button(at, "Log case").click().run()
    assert "Case CS-00001 logged" in shown(at.success[0])
    assert at.selectbox(key="case_priority").value == "normal"
    fill_case(at, "A question")
    button(at, "Log case").click().run()
    assert query("SELECT case_id, priority FROM cases WHERE case_id LIKE 'CS-%' ORDER BY 1").values.tolist() == [
        ["CS-00001", "urgent"], ["CS-00002", "normal"]]
    trail = query("SELECT after FROM audit_log WHERE action = 'add' AND row_id = 'CS-00001'")
    assert json.loads(trail.after[0])["priority"] == "urgent"


def test_the_export_page_gives_the_bytes_of_the_command_line_export(app, tmp_path, monkeypatch):
    from kb.reads import transfer
    from kb.reads.exports import write_report

    prepared = []
    report_csv = transfer.report_csv
    monkeypatch.setattr(transfer, "report_csv", lambda *args: prepared.append(report_csv(*args)) or prepared[-1])
    at, _ = app
    open_page(at, "transfer")
    at.date_input(key="export_day").set_value(date(2026, 11, 25))
    at.time_input(key="export_time").set_value(time(16, 30))
    at.radio(key="export_report").set_value("case-sla")
    button(at, "Prepare CSV").click().run()
    assert not at.exception
    (download,) = at.get("download_button")
    assert download.proto.label == "Download case-sla (6 rows)"
    store = ui._open_app(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store  # the one the app holds
    with store.reader() as cur:  # what `python -m kb export case-sla --as-of …` writes
        write_report(cur, store.config, "case-sla", local("2026-11-25 16:30"), tmp_path / "cli.csv")
    ((rows, served),) = prepared
    assert (rows, served) == (6, (tmp_path / "cli.csv").read_bytes())
    assert served.startswith(b"case_id,") and served.count(b"\n") == 7


def test_the_import_page_takes_the_sla_tables(app):
    at, _ = app
    open_page(at, "transfer")
    assert {"policies", "pauses", "messages"} <= set(at.selectbox(key="import_table").options)
    at.selectbox(key="import_table").set_value("pauses").run()
    assert any("Columns: case_id, paused_at, [resumed_at], [reason]." in c.value for c in at.caption)
    body = b"case_id,paused_at,resumed_at,reason\nOVERDUE,2026-11-24 12:00,2026-11-24 14:00,Waiting on logs\n"
    at.file_uploader(key="import_file").set_value(("pauses.csv", body, "text/csv")).run()
    button(at, "Import").click().run()
    for _ in range(120):
        if at.success or at.error:
            break
        at.run()
    assert [shown(s) for s in at.success] == ["Imported 1 pause from pauses.csv."], [shown(e) for e in at.error]
    stored = query("SELECT reason, paused_by FROM pauses WHERE case_id = 'OVERDUE'")
    assert stored.reason[0] == "Waiting on logs" and stored.paused_by[0]


@pytest.mark.parametrize(("subject", "responded", "message"), [
    ("   ", False, "Subject: is empty"),
    ("Answered before it arrived", True, "First response: is before the case was received"),
])
def test_log_case_rejects_bad_input_and_writes_nothing(app, subject, responded, message):
    at, _ = app
    open_page(at, "log_case")
    fill_case(at, subject)
    if responded:
        at.checkbox(key="case_responded").check()
        at.date_input(key="case_response_day").set_value(date(2026, 11, 25))
        at.time_input(key="case_response_time").set_value(time(10, 0))
    button(at, "Log case").click().run()
    assert any(shown(e).startswith(message) for e in at.error), [shown(e) for e in at.error]  # under its field
    assert not at.success
    assert query("SELECT count(*) AS n FROM cases").n[0] == 6


def test_record_a_first_response(app):
    at, _ = app
    open_page(at, "log_case")
    at.selectbox(key="respond_case").select("OVERDUE")
    at.date_input(key="respond_day").set_value(date(2026, 11, 25))
    at.time_input(key="respond_time").set_value(time(12, 0))
    button(at, "Record response").click().run()
    assert "First response recorded on OVERDUE" in shown(at.success[0])
    assert str(query("SELECT first_response_at FROM cases WHERE case_id = 'OVERDUE'").iloc[0, 0]) \
        == "2026-11-25 04:00:00+00:00"


def test_log_incident_ongoing_then_close_it(app):
    at, _ = app
    open_page(at, "log_incident")
    at.selectbox(key="inc_environment").select("E1")
    at.radio(key="inc_impact").set_value("outage")
    at.date_input(key="inc_start_day").set_value(date(2026, 11, 25))
    at.time_input(key="inc_start_time").set_value(time(15, 0))
    at.text_area(key="inc_summary").input("API down")
    button(at, "Log incident").click().run()
    assert "Incident INC-00001 logged on Enterprise prod (Dedicated, E1) (Outage, ongoing)." == shown(at.success[0])
    assert query("SELECT ended_at FROM incidents WHERE incident_id = 'INC-00001'").ended_at.isna().all()
    at.selectbox(key="close_incident").select("INC-00001")
    at.date_input(key="close_day").set_value(date(2026, 11, 25))
    at.time_input(key="close_time").set_value(time(15, 45))
    button(at, "Close incident").click().run()
    assert shown(at.success[0]) == "Incident INC-00001 closed at Wed 2026-11-25 15:45 HKT (UTC+08:00)."
    assert str(query("SELECT ended_at FROM incidents WHERE incident_id = 'INC-00001'").iloc[0, 0]) \
        == "2026-11-25 07:45:00+00:00"


def test_log_incident_ending_before_it_starts_is_refused(app):
    at, _ = app
    open_page(at, "log_incident")
    at.selectbox(key="inc_environment").select("E1")
    at.date_input(key="inc_start_day").set_value(date(2026, 11, 25))
    at.time_input(key="inc_start_time").set_value(time(15, 0))
    at.checkbox(key="inc_ongoing").uncheck().run()  # the end shows once it is not ongoing
    at.date_input(key="inc_end_day").set_value(date(2026, 11, 25))
    at.time_input(key="inc_end_time").set_value(time(14, 0))
    button(at, "Log incident").click().run()
    assert any("is before the incident started" in shown(e) for e in at.error)
    assert query("SELECT count(*) AS n FROM incidents").n[0] == 2


def test_record_a_monitoring_check(app):
    at, _ = app
    open_page(at, "log_incident")
    at.selectbox(key="check_env").select("E1")
    at.text_input(key="check_note").input("dashboards green")
    button(at, "Record check").click().run()
    assert "Check recorded" in shown(at.success[0])
    assert query("SELECT note FROM monitoring_checks").note.tolist() == ["dashboards green"]


def test_edit_a_client_and_refuse_a_bad_contract(app):
    at, _ = app
    open_page(at, "clients")
    at.selectbox(key="clients_choice").select("ENT").run()
    at.text_input(key="clients_edit_ENT_name").input("Enterprise Company Ltd")
    at.button(key="clients_submit").click().run()
    assert "Client ENT saved" in shown(at.success[0])
    assert query("SELECT name FROM clients WHERE client_id = 'ENT'").name[0] == "Enterprise Company Ltd"
    edit = query("SELECT before, after FROM audit_log WHERE action = 'edit'")
    assert json.loads(edit.before[0])["name"] == "Enterprise Co"
    assert json.loads(edit.after[0])["name"] == "Enterprise Company Ltd"

    at.selectbox(key="contracts_choice").select("(new)").run()
    for field, value in dict(contract_id="K2", client_id="ENT", environment_id="E1", monthly_fee="500",
                             currency="USD", credit_schedule="99.9 -> 10", starts_on="2026-11-15").items():
        at.text_input(key=f"contracts_add_{field}").input(value)
    at.button(key="contracts_submit").click().run()
    errors = " ".join(shown(e) for e in at.error)
    assert "is not a credit schedule" in errors
    assert "must be the first day of a month" in errors
    assert query("SELECT count(*) AS n FROM contracts").n[0] == 1


def test_editing_a_contract_keeps_what_was_not_changed(app):
    at, _ = app
    open_page(at, "clients")
    at.selectbox(key="contracts_choice").select("K1").run()
    assert at.text_input(key="contracts_edit_K1_starts_on").value == "2026-01-01"
    at.text_input(key="contracts_edit_K1_monthly_fee").input("1200")
    at.button(key="contracts_submit").click().run()
    assert "Contract K1 saved" in shown(at.success[0])
    saved = query("SELECT CAST(starts_on AS VARCHAR) AS starts_on, ends_on IS NULL AS open_ended, "
                  "uptime_target_pct, monthly_fee FROM contracts").to_dict("records")
    assert saved == [dict(starts_on="2026-01-01", open_ended=True, uptime_target_pct=99.9, monthly_fee=1200.0)]

    at, _ = app
    open_page(at, "log_incident")
    at.selectbox(key="check_env").select("E1")
    button(at, "Record check").click().run()
    open_page(at, "audit")
    trail = at.dataframe[0].value
    assert trail.action.iloc[0] == "Check" and trail.row_id.iloc[0] == "E1"


def test_configuration_page_shows_the_rules_in_force(app):
    at, _ = app
    open_page(at, "configuration")
    text = " ".join(m.value for m in at.markdown)
    assert "Asia/Hong_Kong" in text and "09:00–18:00" in text
    assert "below 99.90 % uptime → 10.00 % of the fee" in text


CALENDARS = """
[[calendar.changes]]
from = "2027-01-01"
business_hours = ["08:00", "18:00"]

[[sla.changes]]
from = "2026-12-01"
enterprise_response_business_days = 2

[calendars.london]
timezone = "Europe/London"
business_hours = ["09:00", "17:30"]
holidays_country = "GB"
holidays_subdivision = "ENG"
extra_holidays = []
"""


def test_configuration_page_shows_every_calendar_its_versions_and_who_uses_it(tmp_path, monkeypatch):
    db, config_file = build_fixture(tmp_path)
    config_file.write_text(config_file.read_text() + CALENDARS)
    set_now(datetime(2026, 12, 1, 2, 0, tzinfo=HKT))
    with app_on(db, config_file, monkeypatch) as at:
        with ui.app_for(str(db), str(config_file)).store.transaction() as cur:
            cur.execute("INSERT INTO policies (policy_id, metric, priority, within, calendar) VALUES "
                        "('uk', 'first_response', '*', '1d', 'london'), ('uk', 'resolution', '*', '8h', 'london'), "
                        "('gold', 'first_response', 'urgent', '4h', '24x7')")
        open_page(at, "configuration")
    calendars = {m.value.split(" · ")[0]: m.value for m in at.markdown if " · " in m.value}
    assert list(calendars) == ["**support**", "**24x7**", "**london**"]
    assert calendars["**support**"].startswith(
        "**support** · `[calendar]` · Asia/Hong_Kong\n- always: 09:00–18:00, Mon–Fri, HK holidays, also closed "
        "2026-11-27\n- from 2027-01-01: 08:00–18:00\n- Closed in the next 60 days (weekends aside): \n"
        "  - Fri 2026-12-25: Christmas Day\n  - Fri 2027-01-01: New Year's Day\n")
    assert "  - `enterprise` ([sla]): any priority: first response within 1 business day; any priority: first " \
           "response within 2 business days, from 2026-12-01" in calendars["**support**"]
    assert "  - `gold`: urgent: first response within 4 hours, around the clock" in calendars["**24x7**"]
    assert "never closed" in calendars["**24x7**"]
    assert calendars["**london**"].startswith("**london** · `[calendars.london]` · Europe/London\n"
                                              "- always: 09:00–17:30, Mon–Fri, GB-ENG holidays\n")
    assert "  - Mon 2026-12-28: Boxing Day (observed)" in calendars["**london**"]
    assert ("  - `uk`: any priority: first response within 1 business day on the london calendar; any priority: "
            "resolution within 8 business hours on the london calendar") in calendars["**london**"]
    text = " ".join(m.value for m in at.markdown)
    assert "- from 2026-12-01: enterprise first response within 2 business days" in text


@pytest.mark.parametrize("page", PAGES)
def test_every_page_on_an_empty_database(tmp_path, monkeypatch, page):
    monkeypatch.setenv("SUPPORT_DB", str(tmp_path / "new" / "empty.duckdb"))  # created with the schema
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
    try:
        open_page(at, page)
        assert at.title[0].value
        assert not at.error, [shown(e) for e in at.error]
    finally:
        from kb import ui

        ui._open_app.clear()


def test_editing_another_row_shows_that_rows_values(app):
    at, _ = app
    open_page(at, "clients")
    at.selectbox(key="clients_choice").select("ENT").run()
    assert at.text_input(key="clients_edit_ENT_name").value == "Enterprise Co"
    at.selectbox(key="clients_choice").select("CUS").run()
    assert at.text_input(key="clients_edit_CUS_name").value == "Custom Co"
    at.button(key="clients_submit").click().run()
    assert query("SELECT name FROM clients ORDER BY client_id").name.tolist() == [
        "Custom Co", "Enterprise Co", "Free User"]


def test_resolved_cases_leave_the_open_counts(app):
    at, _ = app
    from kb import ui
    from kb.intake import writes
    from kb.timestamps import parse_timestamp

    store = ui._open_app(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store
    store.write(writes.resolve_case, store.config, ADMIN, "OVERDUE", parse_timestamp("2026-11-25 12:00", HKT))
    open_page(at, "overview")
    assert metric(at, "Breached now") == "0"
    assert metric(at, "Open cases") == "5"


def test_a_case_received_tomorrow_is_refused(app):
    at, _ = app
    open_page(at, "log_case")
    fill_case(at, "From the future", day=date.today() + timedelta(days=2))
    button(at, "Log case").click().run()
    assert any("is in the future" in shown(e) for e in at.error)
    assert query("SELECT count(*) AS n FROM cases").n[0] == 6


@pytest.mark.parametrize(("due_from", "due_to", "warning"), [
    ("2026-01-01", "9999-12-31", "due_to: '9999-12-31' is outside 1970–2200, the years the business calendar "
                                 "holds: showing the last 13 weeks"),
    ("0001-01-01", "2026-01-31", "due_from: '0001-01-01' is outside 1970–2200, the years the business calendar "
                                 "holds: showing the last 13 weeks"),
    ("2026-02-30", "2026-03-31", "due_from: '2026-02-30' is not a real date (e.g. \"2026-12-24\"): showing the "
                                 "last 13 weeks"),
    ("2026-03-01", None, "due_to: '' is not an ISO date like \"2026-12-24\": showing the last 13 weeks"),
])
def test_performance_link_with_an_unreadable_period_shows_the_default_one(app, due_from, due_to, warning):
    at, _ = app
    at.query_params.update({"due_from": due_from} | ({"due_to": due_to} if due_to else {}))
    open_page(at, "performance")
    assert [shown(w) for w in at.warning] == [warning]
    today = date(2026, 11, 25)
    assert at.date_input(key="period").value == (today - timedelta(days=91), today)


def test_no_traceback_reaches_a_browser():
    from tests.fixtures import ROOT

    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["client"]["showErrorDetails"] == "none"


def test_log_case_speaks_in_words_and_a_case_just_received_logs_as_now(app):
    at, _ = app
    from kb.timestamps import now_utc

    open_page(at, "log_case")
    assert at.selectbox(key="case_category").options == ["Platform issue", "API help", "General coding"]
    assert "Enterprise Co (Enterprise, ENT)" in at.selectbox(key="case_client").options
    [hint] = [c.value for c in at.caption if c.value.startswith("Local time in")]
    assert hint.startswith("Local time in Asia/Hong_Kong; now is ") and hint.endswith(" HKT (UTC+08:00).")
    assert at.date_input(key="case_received_day").value == datetime.now(HKT).date()
    at.selectbox(key="case_client").select("ENT")
    at.text_input(key="case_subject").input("Just arrived")  # neither the date nor the time touched
    button(at, "Log case").click().run()
    assert at.success, [shown(e) for e in at.error]
    received = query("SELECT received_at FROM cases WHERE case_id = 'CS-00001'").received_at[0]
    assert abs((now_utc() - received).total_seconds()) < 120
    assert query("SELECT category FROM cases WHERE case_id = 'CS-00001'").category[0] == "platform_issue"


def test_log_incident_hides_the_end_while_ongoing_clears_and_knows_a_form_sent_again(app):
    at, _ = app
    open_page(at, "log_incident")
    [hint] = [c.value for c in at.caption if c.value.startswith("Local time in")][:1]
    assert hint.endswith(" HKT (UTC+08:00).") and "UTC+0800" not in hint
    assert at.checkbox(key="inc_ongoing").value is True
    assert not [d for d in at.date_input if d.key == "inc_end_day"]  # still ongoing: no end to fill in
    at.checkbox(key="inc_ongoing").uncheck().run()
    assert at.date_input(key="inc_end_day").value is None
    at.checkbox(key="inc_ongoing").check().run()
    assert not [d for d in at.date_input if d.key == "inc_end_day"]
    form = at.session_state["incident_form_key"]
    at.selectbox(key="inc_environment").select("E1")
    at.radio(key="inc_impact").set_value("outage")
    at.date_input(key="inc_start_day").set_value(date(2026, 11, 25))
    at.time_input(key="inc_start_time").set_value(time(15, 0))
    at.text_area(key="inc_summary").input("API down")
    button(at, "Log incident").click().run()
    assert shown(at.success[0]) == "Incident INC-00001 logged on Enterprise prod (Dedicated, E1) (Outage, ongoing)."
    assert at.selectbox(key="inc_environment").value is None  # cleared for the next one
    assert at.date_input(key="inc_start_day").value is None and at.text_area(key="inc_summary").value == ""
    assert at.checkbox(key="inc_ongoing").value is True
    assert at.session_state["incident_form_key"] != form
    from kb import ui

    store = ui._open_app(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store
    store.write(lambda con: con.execute("UPDATE audit_log SET logged_at = logged_at - INTERVAL 12 SECOND"))
    at.session_state["incident_form_key"] = form  # the same form reaches the server again (a second click, a resend)
    at.run()
    at.selectbox(key="inc_environment").select("E1")
    at.radio(key="inc_impact").set_value("outage")
    at.date_input(key="inc_start_day").set_value(date(2026, 11, 25))
    at.time_input(key="inc_start_time").set_value(time(15, 0))
    at.text_area(key="inc_summary").input("API down")
    button(at, "Log incident").click().run()
    assert shown(at.success[0]) == "This form was already logged as INC-00001: nothing new was stored."
    assert query("SELECT count(*) AS n FROM incidents WHERE summary = 'API down'").n[0] == 1
    assert [o for o in at.selectbox(key="close_incident").options if o.startswith("INC-00001")] == [
        "INC-00001: Outage on Enterprise prod (Dedicated, E1) since Wed 2026-11-25 15:00 HKT (UTC+08:00)"]


def test_the_client_page_counts_in_words(app):
    at, _ = app
    open_page(at, "client")
    at.selectbox(key="client_page_client").select("ENT").run()
    button(at, "Prepare statement").click().run()
    assert ("0 cases received, 1 environment. The same numbers as the case-sla, responses, uptime and refunds "
            "exports for this client and month.") in [c.value for c in at.caption]


@pytest.fixture
def gold_client(tmp_path, monkeypatch):
    """The Client page on ``build_gold_fixture``'s store: ENT's contract names the policy gold."""
    with app_on(*build_gold_fixture(tmp_path), monkeypatch) as at:
        open_page(at, "client")
        at.selectbox(key="client_page_client").select("ENT").run()
        yield at


def test_the_client_page_shows_every_target_met_this_month(gold_client):
    cards = {m.label: (m.value, m.proto.delta) for m in gold_client.metric}
    assert cards == {"First response": ("60.00 %", "3 of 5 met"), "Follow-up response": ("66.66 %", "2 of 3 met"),
                     "Resolution": ("50.00 %", "1 of 2 met")}
    bars = {(row["target"], row["month_label"]): (row["pct_met"], row["share"]) for row in chart_rows(gold_client)}
    assert bars == {("First response", "Nov 2026"): (60.0, "3 of 5 met"),
                    ("Follow-up response", "Nov 2026"): (pytest.approx(200 / 3), "2 of 3 met"),
                    ("Resolution", "Nov 2026"): (50.0, "1 of 2 met")}


def test_a_month_at_0_pct_met_is_drawn_on_the_client_chart(tmp_path, monkeypatch):
    import duckdb

    db, config_file = build_gold_fixture(tmp_path)
    with duckdb.connect(str(db)) as con:  # FIXED resolved after its deadline too: no resolution met in November
        con.execute("UPDATE cases SET resolved_at = TIMESTAMPTZ '2026-11-05 10:00:00+08' WHERE case_id = 'FIXED'")
    with app_on(db, config_file, monkeypatch) as at:
        open_page(at, "client")
        at.selectbox(key="client_page_client").select("ENT").run()
        rows = chart_rows(at)
        layers = json.loads(at.get("vega_lite_chart")[0].proto.spec)["layer"]
    zero = [(r["target"], r["month_label"], r["share"]) for r in rows if r["pct_met"] == 0]
    assert zero == [("Resolution", "Nov 2026", "0 of 2 met")]
    ticks = [layer for layer in layers if layer["mark"]["type"] == "tick"]
    assert [t["transform"] for t in ticks] == [[{"filter": "datum.pct_met === 0"}]]
    assert ticks[0]["encoding"]["color"]["field"] == "target" and ticks[0]["encoding"]["y"]["field"] == "pct_met"
    colors = layers[0]["encoding"]["color"]["scale"]
    assert colors["domain"] == ["First response", "Follow-up response", "Resolution"]
    assert not set(colors["range"]) & set(ui.STATE_COLORS.values())  # a target's colour never reads as a state


def test_the_statement_opens_on_the_last_finished_month_unless_the_client_started_this_month(app):
    from kb import ui

    at, _ = app
    store = ui._open_app(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store  # the one the app holds
    with store.transaction() as con:  # a client whose first case came this month
        con.execute("INSERT INTO clients (client_id, name, tier) VALUES ('NEW', 'New Co', 'free')")
        con.execute("INSERT INTO cases (case_id, client_id, received_at, category, subject) VALUES "
                    "('N1', 'NEW', TIMESTAMPTZ '2026-11-24 10:00:00+08', 'platform_issue', 'Hello')")
        con.execute("INSERT INTO clients (client_id, name, tier) VALUES ('SOON', 'Soon Co', 'enterprise')")
        con.execute("INSERT INTO environments (environment_id, name, kind, deployment, client_id, active_from) "
                    "VALUES ('SE', 'Soon prod', 'dedicated', 'on_premise', 'SOON', DATE '2027-01-01')")
        con.execute("INSERT INTO contracts (contract_id, client_id, environment_id, monthly_fee, currency, starts_on) "
                    "VALUES ('SK', 'SOON', 'SE', 100, 'USD', DATE '2027-01-01')")
    open_page(at, "client")
    at.selectbox(key="client_page_client").select("ENT").run()
    months = at.selectbox(key="client_page_month:ENT")
    assert (months.value, months.options[-1]) == ("2026-10", "Jan 2026")  # ENT's contract starts in January
    at.selectbox(key="client_page_client").select("NEW").run()
    months = at.selectbox(key="client_page_month:NEW")
    assert (months.value, months.options) == ("2026-11", ["Nov 2026"])
    at.selectbox(key="client_page_client").select("SOON").run()  # its contract starts in January
    assert at.selectbox(key="client_page_month:SOON").options == ["Nov 2026"]
    at.selectbox(key="client_page_month:SOON").select("2026-11").run()
    at.selectbox(key="client_page_client").select("ENT").run()
    assert at.selectbox(key="client_page_month:ENT").value == "2026-10"
    at.selectbox(key="client_page_month:ENT").select("2026-09").run()  # picked, then another client and back
    at.selectbox(key="client_page_client").select("NEW").run()
    at.selectbox(key="client_page_client").select("ENT").run()
    assert at.selectbox(key="client_page_month:ENT").value == "2026-09"


def test_the_client_page_says_what_is_due_next_on_each_open_case(gold_client):
    cases = table_with(gold_client, "next_due_metric")
    assert cases[["case_id", "next_due_metric", "next_due", "next_due_state", "priority"]].values.tolist() == [
        ["OVERDUE", "First response", "Wed 2026-11-25 10:00 HKT (UTC+08:00)", "Breached", "Normal"],
        ["RISK", "First response", "Wed 2026-11-25 18:00 HKT (UTC+08:00)", "At risk", "Normal"],
        ["URGENT", "First response", "Wed 2026-11-25 19:00 HKT (UTC+08:00)", "Pending", "Urgent"],  # 4 h, 24x7
        ["LATE", "Resolution", "Thu 2026-11-26 10:00 HKT (UTC+08:00)", "Pending", "Normal"],  # answered late
        ["MET", "Resolution", "Thu 2026-11-26 10:00 HKT (UTC+08:00)", "Pending", "Normal"],  # before its question's
    ]


def test_the_client_page_puts_the_policy_its_contract_names_in_words(gold_client):
    assert "The policy gold, named by the contract in force today." in [shown(c) for c in gold_client.caption]
    rules = table_with(gold_client, "rule")
    assert rules[["metric", "priority", "rule"]].values.tolist() == [
        ["First response", "Urgent", "within 4 hours, around the clock"],
        ["First response", "Any priority", "within 1 business day"],
        ["Follow-up response", "Any priority", "within 1 business day"],
        ["Resolution", "Any priority", "within 2 business days"]]
    contracts = table_with(gold_client, "monthly_fee")
    assert contracts[["policy_id", "response_business_days"]].values.tolist() == [["gold", "—"]]


def test_the_free_tiers_rule_follows_the_clients_tier_not_the_policy_its_contract_names(tmp_path, monkeypatch):
    import duckdb

    db, config_file = build_gold_fixture(tmp_path)
    with duckdb.connect(str(db)) as con:  # ENT (enterprise) on the free tier's policy
        con.execute("UPDATE contracts SET policy_id = 'free' WHERE client_id = 'ENT'")
    free_rule = "A free case in general coding has no target at all."
    with app_on(db, config_file, monkeypatch) as at:
        open_page(at, "client")
        at.selectbox(key="client_page_client").select("ENT").run()
        captions = [shown(c) for c in at.caption]
        assert "The policy free, named by the contract in force today." in captions and free_rule not in captions
        at.selectbox(key="client_page_client").select("FREE").run()
        assert free_rule in [shown(c) for c in at.caption]


def test_a_client_without_a_policy_has_its_tiers_defaults_and_no_other_target(gold_client):
    gold_client.selectbox(key="client_page_client").select("CUS").run()
    assert ("The Custom program tier's defaults (`[sla]` in support.toml): no contract in force names a policy."
            in [c.value for c in gold_client.caption])
    assert table_with(gold_client, "rule")[["metric", "priority", "rule"]].values.tolist() == [
        ["First response", "Any priority", "within 1 business day"],
        ["Follow-up response", "—", "no target"], ["Resolution", "—", "no target"]]
    assert {m.label: (m.value, m.proto.delta) for m in gold_client.metric} == dict.fromkeys(
        ["First response", "Follow-up response", "Resolution"], ("—", "none decided"))


def test_a_contracts_own_business_days_show_in_its_tier_policy(app):
    at, _ = app
    from kb import ui
    from kb.intake.importing import add_rows, staged_from_records

    store = ui._open_app(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store
    store.write(add_rows, store.config, staged_from_records("contracts", [dict(
        contract_id="K2", client_id="CUS", environment_id="S1", monthly_fee="10", currency="USD",
        response_business_days="2", starts_on="2026-01-01")]), ADMIN, permission="import", source="tests")
    open_page(at, "client")
    at.selectbox(key="client_page_client").select("CUS").run()
    assert table_with(at, "rule").rule.tolist() == ["within 2 business days, set by the contract", "no target",
                                                    "no target"]


def test_date_fields_read_year_month_day_with_dashes(app):
    at, _ = app
    for page, key in (("transfer", "export_day"), ("performance", "period")):
        open_page(at, page)
        assert at.date_input(key=key).proto.format == "YYYY-MM-DD", page


def test_the_background_jobs_table_has_labelled_headers(app):
    at, _ = app
    open_page(at, "configuration")
    jobs = next(d for d in at.dataframe if "last run" in d.value.columns)
    labels = {name: c.get("label") for name, c in json.loads(jobs.proto.columns).items()}
    assert [labels[c] for c in jobs.value.columns] == ["Job", "Every", "Last run", "Result", "Next run", "Last error"]


def shares_drawn(at: AppTest, index: int) -> list[dict]:
    """The rows of shares met a chart was sent (not its target line's)."""
    return [row for row in chart_rows(at, index) if "pct_met" in row]


def test_weekly_points_sit_on_their_mondays_inside_the_axis(app):
    at, _ = app
    open_page(at, "performance")
    x = chart_specs(at)[0]["layer"][0]["encoding"]["x"]
    assert x["axis"]["values"] == [{"year": 2026, "month": 11, "date": 23}]  # the Monday of the only week
    assert x["scale"]["domain"] == [{"year": 2026, "month": 11, "date": 19},
                                    {"year": 2026, "month": 11, "date": 27}]  # room on both sides
    (row,) = shares_drawn(at, 0)
    assert row["period"] == datetime(2026, 11, 23)


def test_performance_shows_every_target_against_its_own_goal(gold):
    at = open_page(gold, "performance")
    cards = {m.label: (m.value, m.proto.delta) for m in at.metric}
    assert cards == {"First response": ("66.66 %", "4 of 6 met · below target"),
                     "Follow-up response": ("66.66 %", "2 of 3 met · below target"),
                     "Resolution": ("50.00 %", "1 of 2 met · meets target")}  # its own goal: 50 %
    targets = [text_labels(spec) for spec in chart_specs(at)]
    assert targets == [["target 95.00 %"], ["target 95.00 %"], ["target 50.00 %"]]
    shares = [{(r["tier"], f"{r['period']:%Y-%m-%d}", r["pct_met"], r["share_text"]) for r in shares_drawn(at, i)}
              for i in range(3)]
    assert shares == [
        {("Custom program", "2026-11-16", 100.0, "2 of 2 met"), ("Custom program", "2026-11-23", 100.0, "1 of 1 met"),
         ("Enterprise", "2026-11-23", 100 / 3, "1 of 3 met")},
        {("Custom program", "2026-11-16", 200 / 3, "2 of 3 met")},  # questions, not cases
        {("Custom program", "2026-11-16", 50.0, "1 of 2 met")}]
    at.radio(key="by").set_value("priority").run()
    assert {(r["priority"], r["share_text"]) for r in shares_drawn(at, 2)} == {("High", "0 of 1 met"),
                                                                             ("Normal", "1 of 1 met")}
    legends = [spec["layer"][0]["encoding"]["color"]["scale"]["domain"] for spec in chart_specs(at)]
    assert legends == [["High", "Normal"]] * 3
    at.radio(key="by").set_value("tier").run()
    legends = [spec["layer"][0]["encoding"]["color"]["scale"]["domain"] for spec in chart_specs(at)]
    assert legends == [["Enterprise", "Custom program"], ["Custom program"], ["Custom program"]]  # tiers drawn


def test_performance_lists_the_breaches_of_the_target_chosen(gold):
    at = open_page(gold, "performance")
    assert set(table_with(at, "first_response_due").case_id) == {"LATE", "OVERDUE"}
    assert set(table_with(at, "reason").reason) == {"(no reason recorded)"}
    at.radio(key="metric").set_value("resolution").run()
    (breach,) = table_with(at, "resolution_due").itertuples()
    assert (breach.case_id, breach.priority, breach.resolved_at) == (
        "G2", "High", "Thu 2026-11-19 12:00 HKT (UTC+08:00)")
    assert breach.business_hours_taken == "3 d 2 h"  # Mon 10:00 to Thu 12:00: 29 business hours of 9
    by_assignee = table_with(at, "share_text")
    assert by_assignee[["assignee", "share_text", "breached"]].values.tolist() == [["bo", "1 of 2 met", 1]]
    assert not any("reason" in d.value.columns for d in at.dataframe)  # a reason explains a first response
    at.radio(key="metric").set_value("next_response").run()
    (question,) = table_with(at, "asked_at").itertuples()
    assert (question.case_id, question.asked_at, question.responded_at) == (
        "G2", "Mon 2026-11-16 13:00 HKT (UTC+08:00)", "Wed 2026-11-18 15:00 HKT (UTC+08:00)")
    clients = next(d.value for d in at.dataframe if "client" in d.value.columns)
    assert clients[["client", "share_text"]].values.tolist() == [["Gold Co (GOLD)", "2 of 3 met"]]
