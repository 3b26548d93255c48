"""The Queue answers "which case breaches next, and who has it?": order, countdown, numeric age, client names."""

from __future__ import annotations

import pandas as pd

from tests.fixtures import ADMIN, open_page


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
    least = query("SELECT case_id FROM open_case_sla WHERE business_hours_left IS NOT NULL "
                  "ORDER BY business_hours_left LIMIT 1", snapshot=True)
    assert lane.case_id.iloc[0] == least.case_id[0] == "OVERDUE"
    assert list(lane.case_id) == ["OVERDUE", "RISK", "PENDING", "LATE", "MET"]
    times = dict(zip(lane.case_id, lane.time_left, strict=True))
    assert times["OVERDUE"] == "overdue 6 h 30 min"  # due Wed 10:00, as of Wed 16:30
    assert times["RISK"] == "1 h 30 min left"  # clock from Wed 09:00, due Wed 18:00
    assert times["PENDING"] == "6 h 30 min left"  # due Thu 14:00: 1.5 h today, 5 h tomorrow
    assert times["LATE"] == "answered"
    assert {c for c in ("case_id", "state", "time_left", "first_response_due", "assignee", "client_name", "subject")} \
        <= set(lane.columns)
    assert list(lane.columns).index("first_response_due") < list(lane.columns).index("subject")


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


def test_time_left_text():
    from kb.reads.queue import time_left_text

    assert time_left_text(1 + 20 / 60) == "1 h 20 min left"
    assert time_left_text(-3.0) == "overdue 3 h"
    assert time_left_text(0.5) == "30 min left"
    assert time_left_text(0.001) == "due now"
    assert time_left_text(None) == ""
    assert time_left_text(float("nan")) == ""
    assert time_left_text(-2.0, answered=True) == "answered"
