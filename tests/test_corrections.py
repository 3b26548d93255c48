"""Corrections by a lead: void, change client / category / times, breach reasons, undo of a resolution."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest

from kb.access import Actor, PermissionDenied
from kb.intake import corrections
from kb.intake.importing import Rejected
from kb.timestamps import parse_timestamp
from tests.fixtures import AS_OF, HKT, button, local, metric, open_page, query, shown

STAFF = Actor("sam@support.example", "staff")


def _store():
    from kb import ui

    return ui._open_app(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store


def _as_of():
    return parse_timestamp(AS_OF, HKT)


def _case_sla(case_id: str):
    store = _store()
    frame = store.query("SELECT * FROM case_sla WHERE case_id = ?", [case_id], store.snapshot(_as_of()))
    return None if frame.empty else frame.iloc[0]


def _export(report: str) -> list[dict]:
    from kb.reads.exports import write_report

    store = _store()
    out = os.path.join(os.environ["SUPPORT_DB"] + f".{report}.csv")
    with store.reader() as cur:
        write_report(cur, store.config, report, _as_of(), out)
    with open(out, newline="") as f:
        return list(csv.DictReader(io.StringIO(f.read())))


def _open_case(at, case_id: str):
    open_page(at, "queue")
    at.text_input(key="case_lookup").input(case_id).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_a_voided_case_leaves_the_queue_the_export_and_the_overview(app):
    at, _ = app
    open_page(at, "overview")
    assert metric(at, "Breached now") == "1"
    assert "OVERDUE" in {r["case_id"] for r in _export("case-sla")}

    _open_case(at, "OVERDUE")
    button(at, "Void case").click().run()  # no reason: refused
    assert [shown(e) for e in at.error] == ["Reason: is empty: say why"]  # the field as the form labels it
    assert query("SELECT voided_at FROM cases WHERE case_id = 'OVERDUE'").voided_at.isna().all()

    at.text_input(key="void_reason_OVERDUE").input("Duplicate of MET, logged twice")
    button(at, "Void case").click().run()
    assert "OVERDUE voided" in shown(at.success[0])
    assert "OVERDUE" not in set(at.dataframe[0].value.case_id)
    assert "OVERDUE" not in {r["case_id"] for r in _export("case-sla")}
    open_page(at, "overview")
    assert metric(at, "Breached now") == "0"
    assert metric(at, "Open cases") == "5"
    trail = query("SELECT actor, before, after FROM audit_log WHERE action = 'void' AND row_id = 'OVERDUE'")
    assert len(trail) == 1
    assert json.loads(trail.after[0])["void_reason"] == "Duplicate of MET, logged twice"
    assert json.loads(trail.before[0])["voided_at"] is None
    assert query("SELECT count(*) AS n FROM cases WHERE case_id = 'OVERDUE'").n[0] == 1  # kept, for the record


def test_changing_a_cases_client_moves_its_deadline(app):
    at, _ = app
    before = _case_sla("PENDING")
    assert before.tier == "custom" and str(before.first_response_due) == "2026-11-26 06:00:00+00:00"  # Thu 14:00
    _open_case(at, "PENDING")
    at.selectbox(key="correct_client_PENDING").select("FREE")
    button(at, "Save correction").click().run()
    assert not at.error, [shown(e) for e in at.error]
    assert "PENDING corrected: Client CUS → FREE" in shown(at.success[0])
    after = _case_sla("PENDING")
    assert after.tier == "free" and str(after.first_response_due) == "2026-11-26 10:00:00+00:00"  # Thu 18:00
    row = {r["case_id"]: r for r in _export("case-sla")}["PENDING"]
    assert row["client_id"] == "FREE" and row["first_response_due"] == "2026-11-26T18:00:00+08:00"
    trail = query("SELECT before, after FROM audit_log WHERE action = 'correct' AND row_id = 'PENDING'")
    assert json.loads(trail.before[0]) == {"client_id": "CUS"} and json.loads(trail.after[0]) == {"client_id": "FREE"}


def test_changing_a_cases_priority_is_audited(app):
    at, _ = app
    _open_case(at, "MET")
    assert at.selectbox(key="correct_priority_MET").value == "normal"
    at.selectbox(key="correct_priority_MET").select("urgent")
    button(at, "Save correction").click().run()
    assert not at.error, [shown(e) for e in at.error]
    assert "MET corrected: Priority Normal → Urgent." in shown(at.success[0])
    assert query("SELECT priority FROM cases WHERE case_id = 'MET'").priority[0] == "urgent"
    trail = query("SELECT before, after FROM audit_log WHERE action = 'correct' AND row_id = 'MET'")
    assert json.loads(trail.before[0]) == {"priority": "normal"}
    assert json.loads(trail.after[0]) == {"priority": "urgent"}


def test_a_priority_correction_follows_the_rules_and_a_voided_case_keeps_its_own(app):
    store = _store()
    with pytest.raises(Rejected, match="'asap' is not one of urgent, high, normal, low"):
        store.write(corrections.correct_case, store.config, _admin(), "RISK", {"priority": "asap"})
    store.write(corrections.void_case, store.config, _admin(), "RISK", "test case")
    with pytest.raises(Rejected, match="case RISK is voided; it cannot be corrected"):
        store.write(corrections.correct_case, store.config, _admin(), "RISK", {"priority": "high"})
    assert query("SELECT priority FROM cases WHERE case_id = 'RISK'").priority[0] == "normal"
    assert query("SELECT count(*) AS n FROM audit_log WHERE action = 'correct'").n[0] == 0


def test_a_correction_follows_the_rules_of_a_new_row(app):
    at, _ = app
    _open_case(at, "MET")
    at.text_input(key="correct_first_response_at_MET").input("2026-11-23 09:00")  # before receipt
    button(at, "Save correction").click().run()
    assert any("First response: is before the case was received" in shown(e) for e in at.error), \
        [shown(e) for e in at.error]
    at.text_input(key="correct_first_response_at_MET").input("2999-01-01 09:00")
    button(at, "Save correction").click().run()
    assert at.error
    assert str(query("SELECT first_response_at FROM cases WHERE case_id = 'MET'").iloc[0, 0]) \
        == "2026-11-25 02:00:00+00:00"
    assert query("SELECT count(*) AS n FROM audit_log WHERE action = 'correct'").n[0] == 0


def test_corrections_functions_check_roles_and_reasons(app):
    store = _store()
    with pytest.raises(PermissionDenied):
        store.write(corrections.void_case, store.config, STAFF, "MET", "mistake")
    with pytest.raises(PermissionDenied):
        store.write(corrections.correct_case, store.config, STAFF, "MET", {"category": "api_help"})
    with pytest.raises(Rejected, match="is empty"):
        store.write(corrections.void_case, store.config, _admin(), "MET", " \u200b ")
    with pytest.raises(Rejected, match="nothing to change"):
        store.write(corrections.correct_case, store.config, _admin(), "MET", {"category": "platform_issue"})
    with pytest.raises(Rejected, match="no client 'NOPE'"):
        store.write(corrections.correct_case, store.config, _admin(), "MET", {"client_id": "NOPE"})
    changed = store.write(corrections.correct_case, store.config, _admin(), "RISK",
                          {"received_at": local("2026-11-25 09:00")})
    assert list(changed) == ["received_at"]
    assert str(_case_sla("RISK").first_response_due) == "2026-11-25 10:00:00+00:00"  # Wed 18:00, not Thu 09:00
    store.write(corrections.void_case, store.config, _admin(), "RISK", "test case")
    with pytest.raises(Rejected, match="already voided"):
        store.write(corrections.void_case, store.config, _admin(), "RISK", "again")
    with pytest.raises(Rejected, match="voided"):
        store.write(corrections.correct_case, store.config, _admin(), "RISK", {"category": "api_help"})
    assert _case_sla("RISK") is None


def test_a_voided_incident_leaves_uptime_and_refunds(app):
    at, _ = app
    store = _store()
    assert {(r["month"], r["refund_amount"]) for r in _export("refunds")} >= {("2026-10", "100.00")}
    store.write(corrections.void_incident, store.config, _admin(), "I1", "Monitoring false alarm")
    uptime = {(r["environment_id"], r["month"]): r for r in _export("uptime")}
    assert uptime[("E1", "2026-10")]["downtime_minutes"] == "0.00"
    assert {(r["month"], r["refund_amount"]) for r in _export("refunds")} >= {("2026-10", "0.00")}
    open_page(at, "overview")
    assert metric(at, "Service credits last month") == "none"
    assert query("SELECT count(*) AS n FROM audit_log WHERE action = 'void' AND row_id = 'I1'").n[0] == 1


def test_a_breach_reason_is_recorded_and_counted(app):
    at, _ = app
    _open_case(at, "LATE")
    at.text_input(key="breach_reason_LATE").input("Waiting on the vendor")
    button(at, "Save breach reason").click().run()
    assert not at.error, [shown(e) for e in at.error]
    assert query("SELECT breach_reason FROM cases WHERE case_id = 'LATE'").breach_reason[0] == "Waiting on the vendor"
    assert query("SELECT count(*) AS n FROM audit_log WHERE action = 'breach_reason'").n[0] == 1
    with pytest.raises(Rejected, match="not breached"):
        store = _store()
        store.write(corrections.record_breach_reason, store.config, _admin(), "MET", "no", _as_of())
    open_page(at, "performance")
    reasons = _table(at, "reason")
    assert dict(zip(reasons.reason, reasons.cases, strict=True)) == {"Waiting on the vendor": 1,
                                                                     "(no reason recorded)": 1}
    by_assignee = _table(at, "pct_met")
    assert list(by_assignee.assignee) == ["amy"] and int(by_assignee.breached[0]) == 2
    by_client = _table(at, "client")
    assert list(by_client.client) == ["Enterprise Co (ENT)"]


def test_resolving_can_be_undone_right_after(app):
    at, _ = app
    _open_case(at, "PENDING")
    button(at, "Resolve now").click().run()
    assert "PENDING resolved" in shown(at.success[0])
    assert query("SELECT resolved_at FROM cases WHERE case_id = 'PENDING'").resolved_at.notna().all()
    button(at, "Undo").click().run()
    assert not at.exception
    assert "PENDING reopened" in shown(at.success[0])
    assert query("SELECT resolved_at FROM cases WHERE case_id = 'PENDING'").resolved_at.isna().all()
    assert "PENDING" in set(at.dataframe[0].value.case_id)
    actions = query("SELECT action FROM audit_log WHERE row_id = 'PENDING' ORDER BY audit_id").action.tolist()
    assert actions[-2:] == ["resolve", "undo_resolve"]


def _table(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _admin():
    from tests.fixtures import ADMIN

    return ADMIN


def test_a_lead_voids_an_incident_on_the_log_incident_page(app):
    at, _ = app
    open_page(at, "log_incident")
    at.selectbox(key="void_incident").set_value(at.selectbox(key="void_incident").options[0].split(":")[0])
    before = query("SELECT count(*) AS n FROM incidents WHERE voided_at IS NOT NULL").n[0]
    button(at, "Void incident").click().run()
    assert [shown(e) for e in at.error] == ["Why it was logged in error: is empty: say why"]  # a reason is required
    at.text_input(key="void_reason").input("Logged on the wrong environment")
    button(at, "Void incident").click().run()
    assert not at.exception
    assert any("voided" in shown(s) for s in at.success)
    assert query("SELECT count(*) AS n FROM incidents WHERE voided_at IS NOT NULL").n[0] == before + 1
    assert query("SELECT count(*) AS n FROM audit_log WHERE action = 'void' AND table_name = 'incidents'").n[0] >= 1
