"""The Overview, Uptime, Refunds, Clients, Audit and Configuration pages answer in words people can read:
verdicts against targets, who is owed what in every currency, names beside ids, changes as before → after.

The store is the page tests' fixture (``build_fixture``) plus a custom-programme client paid in EUR on the shared
environment, which misses its target in October (final, and closed) and November (projected), frozen at AS_OF.
Expected values come from the rules §7 exports of the same database at the same instant, not from the pages' own
reads."""

from __future__ import annotations

import csv
import os
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from streamlit.testing.v1 import AppTest

from kb import formats
from kb import ui as kb_ui
from kb.config import load_config
from kb.db import connection
from kb.intake.closing import close_month
from kb.intake.writes import assign_case
from kb.reads.audit import change_in_words
from kb.reads.exports import write_report
from kb.timestamps import parse_timestamp, set_now
from tests.fixtures import (
    ADMIN,
    AS_OF,
    ROOT,
    add,
    build_fixture,
    chart_rows,
    chart_specs,
    metric,
    open_page,
    table_with,
    text_labels,
)

THIS, LAST = "2026-11", "2026-10"


@pytest.fixture
def rich(tmp_path, monkeypatch):
    """``(at, exports)``: the app on the extended store, and its exports (report -> rows) at AS_OF."""
    db, config_file = build_fixture(tmp_path)
    config = load_config(config_file)
    con = connection.connect(db)
    add(con, config, "clients", dict(client_id="EURO", name="Euro Custom GmbH", tier="custom"))
    add(con, config, "contracts", dict(contract_id="K2", client_id="EURO", environment_id="S1",
                                       uptime_target_pct="99.9", monthly_fee="2000", currency="EUR",
                                       starts_on="2026-10-01"))
    add(con, config, "incidents",
        dict(incident_id="S-OCT", environment_id="S1", impact="outage", started_at="2026-10-15 10:00",
             ended_at="2026-10-15 11:30", summary="Shared outage in October"),
        dict(incident_id="S-NOV", environment_id="S1", impact="outage", started_at="2026-11-18 10:00",
             ended_at="2026-11-18 11:00", summary="Shared outage in November"))
    close_month(con, config, ADMIN, LAST, parse_timestamp("2026-11-02 10:00", config.calendar.zone))
    exports = {}
    as_of = parse_timestamp(AS_OF, config.calendar.zone)
    for report in ("case-sla", "refunds", "uptime"):
        out = tmp_path / f"{report}.csv"
        write_report(con, config, report, as_of, out)  # what `python -m kb export REPORT --as-of AS_OF` writes
        with open(out, newline="") as f:
            exports[report] = list(csv.DictReader(f))
    con.close()
    monkeypatch.setenv("SUPPORT_DB", str(db))
    monkeypatch.setenv("SUPPORT_CONFIG", str(config_file))
    monkeypatch.setenv("SUPPORT_AS_OF", AS_OF)
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
    yield at, exports
    kb_ui._open_app.clear()


def tier_verdicts(case_sla: list[dict], month: str, target: float) -> dict[str, tuple[float, str]]:
    """Per tier with a decided case due in ``month`` (support zone): % met and the verdict."""
    zone = ZoneInfo("Asia/Hong_Kong")
    counts: dict[str, list[int]] = {}
    for row in case_sla:
        if row["sla_state"] in ("met", "breached") and row["first_response_due"]:
            due = datetime.fromisoformat(row["first_response_due"]).astimezone(zone)
            if f"{due:%Y-%m}" == month:
                counts.setdefault(row["tier"], [0, 0])[row["sla_state"] == "met"] += 1
    return {tier: (100 * met / (met + late), "Met" if 100 * met / (met + late) >= target else "Missed")
            for tier, (late, met) in counts.items()}


def owed_from_export(refunds: list[dict], names: dict[str, str]) -> set[tuple[str, str, str, str]]:
    """(month label, client name, amount with currency, stage) per client, month and currency with a credit in
    the closed month (LAST: final, and owed until marked applied) or this one (projected)."""
    totals: dict[tuple[str, str, str], float] = {}
    for row in refunds:
        if row["month"] in (LAST, THIS) and float(row["refund_amount"]) > 0:
            key = (row["month"], row["client_id"], row["currency"])
            totals[key] = totals.get(key, 0) + float(row["refund_amount"])
    return {(formats.month_label(month), names[client], formats.money(amount, currency),
             "Final" if month == LAST else "Projected") for (month, client, currency), amount in totals.items()}


def test_tier_verdicts_match_the_case_sla_export(rich):
    at, exports = rich
    open_page(at, "overview")
    expected = tier_verdicts(exports["case-sla"], THIS, 95.0)
    assert expected == {"enterprise": (pytest.approx(100 / 3), "Missed")}  # MET of MET, LATE, OVERDUE
    by_tier = table_with(at, "tier").set_index("tier").first_response
    for tier, words in formats.WORDS["tier"].items():
        if tier in expected:
            pct, word = expected[tier]
            side = "meets" if word == "Met" else "below"
            assert by_tier[words] == f"{formats.percent(pct)} · 1 of 3 met · {side} target"
        else:
            assert by_tier[words] == "none due yet"


def test_each_target_met_this_month_against_its_own_goal(gold):
    at = open_page(gold, "overview")
    cards = {m.label: (m.value, m.proto.delta, m.proto.color) for m in at.metric}
    red, green = at.metric[0].proto.RED, at.metric[0].proto.GREEN
    assert [cards[label] for label in ("First response", "Follow-up response", "Resolution")] == [
        ("66.66 %", "4 of 6 met · below target", red), ("66.66 %", "2 of 3 met · below target", red),
        ("50.00 %", "1 of 2 met · meets target", green)]  # resolution_target_pct = 50
    assert [cards[f"{state} now"][0] for state in ("Breached", "At risk", "Pending", "Waiting on client")] == [
        "1", "1", "1", "1"]
    by_tier = table_with(at, "tier").set_index("tier")
    assert by_tier.loc["Custom program"].tolist() == [
        "100.00 % · 3 of 3 met · meets target", "66.66 % · 2 of 3 met · below target",
        "50.00 % · 1 of 2 met · meets target"]
    assert by_tier.loc["Free"].tolist() == ["none due yet"] * 3
    by_priority = table_with(at, "priority").set_index("priority")
    assert by_priority.loc["High"].tolist() == [
        "100.00 % · 1 of 1 met · meets target", "0.00 % · 0 of 1 met · below target",
        "0.00 % · 0 of 1 met · below target"]
    targets = [text_labels(spec) for spec in chart_specs(at)]
    assert targets == [["target 95.00 %"], ["target 95.00 %"], ["target 50.00 %"]]
    resolution = [row for row in chart_rows(at, 2) if "pct_met" in row]
    assert [(r["tier"], r["month_label"], r["pct_met"], r["share_text"]) for r in resolution] == [
        ("Custom program", "Nov 2026", 50.0, "1 of 2 met")]
    legends = [spec["layer"][0]["encoding"]["color"]["scale"]["domain"] for spec in chart_specs(at)]
    assert legends == [["Enterprise", "Custom program"], ["Custom program"], ["Custom program"]]  # tiers drawn


def test_credit_list_matches_the_refunds_export_in_every_currency(rich):
    at, exports = rich
    open_page(at, "overview")
    names = {"ENT": "Enterprise Co", "CUS": "Custom Co", "FREE": "Free User", "EURO": "Euro Custom GmbH"}
    expected = owed_from_export(exports["refunds"], names)
    assert expected == {("Oct 2026", "Enterprise Co", "USD 100.00", "Final"),
                        ("Oct 2026", "Euro Custom GmbH", "EUR 200.00", "Final"),
                        ("Nov 2026", "Euro Custom GmbH", "EUR 200.00", "Projected")}
    owed = next(d.value for d in at.dataframe if "credit" in d.value.columns)
    assert set(zip(owed.month, owed.client_name, owed.credit, owed.stage, strict=True)) == expected
    last_month = sorted(m.value for m in at.metric if m.label == "Service credits last month")
    assert last_month == ["EUR 200.00", "USD 100.00"]  # each currency whole, never one hiding the other
    assert [m.value for m in at.metric if m.label == "Service credits this month"] == ["EUR 200.00"]


def test_environments_below_target_count_shared_contracted_ones(rich):
    at, exports = rich
    open_page(at, "overview")
    below = {(r["environment_id"], r["month"]) for r in exports["uptime"]
             if r["target_pct"] and r["target_met"] == "false"}
    assert below == {("E1", LAST), ("S1", LAST), ("S1", THIS)}
    measured = {r["environment_id"] for r in exports["uptime"] if r["target_pct"] and r["month"] == THIS}
    assert metric(at, "Environments below target") == f"1 of {len(measured)}"  # S1 is shared, under contract
    card = next(m for m in at.metric if m.label == "Environments below target")
    assert card.proto.delta == "2 in Oct 2026"
    text = " ".join(m.value for m in at.markdown)
    assert "Shared" in text
    lowest = next(m for m in at.metric if m.label == "Lowest error budget left")
    assert lowest.proto.delta == "Shared"  # named, not only its id
    assert lowest.value.startswith("-")


def test_target_line_is_labelled_and_months_are_readable(rich):
    at, _ = rich
    open_page(at, "overview")
    spec = chart_specs(at)[0]
    texts = [(layer["encoding"]["text"]["value"], layer["mark"].get("stroke")) for layer in spec["layer"]
             if "text" in layer.get("encoding", {})]
    assert texts == [("target 95.00 %", "white"), ("target 95.00 %", None)]  # its outline first: it reads over a bar
    x = spec["layer"][0]["encoding"]["x"]
    assert x["field"] == "month_label" and x["sort"] == ["Nov 2026"] and x["axis"]["labelAngle"] == 0


def test_uptime_timeline_in_the_support_zone(rich):
    at, _ = rich
    open_page(at, "uptime")
    spec = chart_specs(at)[1]
    x = spec["layer"][0]["encoding"]["x"]
    assert x["scale"]["type"] == "utc" and "Asia/Hong_Kong" in " ".join(x["title"])  # two lines: fits a phone
    assert any(layer["mark"]["type"] == "point" for layer in spec["layer"])  # short outages stay visible
    rows = {r["incident_id"]: r for r in chart_rows(at, 1)}
    # S-NOV started at 10:00 HKT: drawn at 10:00 on the UTC scale, whatever the browser's zone.
    drawn = datetime.fromtimestamp(rows["S-NOV"]["start"] / 1000, UTC)
    assert f"{drawn:%Y-%m-%d %H:%M}" == "2026-11-18 10:00"


def test_refunds_and_clients_show_names_and_dates(rich):
    at, _ = rich
    open_page(at, "refunds")
    lines = at.dataframe[0].value
    assert set(lines.environment_name) == {"Enterprise prod", "Shared"}
    assert "Nov 2026" in set(lines.month)
    open_page(at, "clients")
    contracts = next(d.value for d in at.dataframe if "contract_id" in d.value.columns)
    row = contracts.set_index("contract_id").loc["K2"]
    assert row.client_name == "Euro Custom GmbH" and row.environment_name == "Shared"
    assert str(row.starts_on) == "2026-10-01"  # a date, not a midnight timestamp
    assert row.credit_schedule_in_words.startswith("below 99.90 % uptime → 10.00 % of the fee")


def test_audit_trail_shows_a_readable_change(rich):
    at, _ = rich
    store = kb_ui._open_app(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store  # the app holds the file
    store.write(assign_case, store.config, ADMIN, "OVERDUE", None)  # to nobody: the team is whoever is assigned
    open_page(at, "audit")
    first = at.dataframe[0].value.iloc[0]
    assert first.action == "Assign" and first.change == "Assignee: amy → —"
    assert first.logged_at.endswith("HKT (UTC+08:00)")


def test_change_in_words():
    zone = ZoneInfo("Asia/Hong_Kong")
    assert change_in_words("assign", '{"assignee": null}', '{"assignee": "Sam"}', zone) == "Assignee: — → Sam"
    assert change_in_words("close", '{"ended_at": null}', '{"ended_at": "2026-11-25T07:45:00+00:00"}', zone) \
        == "Ended: — → Wed 2026-11-25 15:45 HKT (UTC+08:00)"
    assert change_in_words("correct", '{"category": "api_help"}', '{"category": "general_coding"}', zone) \
        == "Category: API help → General coding"
    assert change_in_words("import", None, '{"first_id": "A", "last_id": "C", "rows": 3, "source": "x.csv"}',
                           zone) == "3 rows, A … C, from x.csv"
    messages = '{"first_id": "CS-1 2026-08-27T14:54:53+00:00", "last_id": "CS-9 2026-10-02T01:00:00+00:00", "rows": 2}'
    assert change_in_words("import", None, messages, zone) == (
        "2 rows, CS-1 Thu 2026-08-27 22:54 HKT (UTC+08:00) … CS-9 Fri 2026-10-02 09:00 HKT (UTC+08:00)")
    policies = '{"first_id": "gold first_response urgent 1970-01-01", "last_id": "gold resolution * 2027-01-01", ' \
               '"rows": 4}'
    assert change_in_words("import", None, policies, zone) == (
        "4 rows, gold First response Urgent … gold Resolution Any priority 2027-01-01")


def test_configuration_names_the_holidays(app):
    set_now(datetime.fromisoformat(AS_OF))
    at, _ = app
    open_page(at, "configuration")
    support = next(m.value for m in at.markdown if m.value.startswith("**support**"))
    assert "- Fri 2026-11-27: extra closed day (support.toml)\n" in support
    assert "- Fri 2026-12-25: Christmas Day\n" in support
    assert "2026-12-26" not in support  # a Saturday: weekends are not listed
