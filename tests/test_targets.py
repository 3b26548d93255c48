"""Every target a policy sets (rules: policies, priorities, follow-ups, pauses), to the second.

The worked examples use the calendar of the first-response examples (Hong Kong,
09:00–18:00, 2026-11-27 closed) and the policy ``gold``: first response within
4 hours around the clock for urgent cases and 1 business day otherwise,
resolution within 2 business days, follow-ups within 1 business day.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from kb.db.answers import answer
from tests.fixtures import HKT, SPEC_CONFIG, add, local, views

GOLD = [("gold", "first_response", "urgent", "4h", "24x7"), ("gold", "first_response", "*", "1d", "support"),
        ("gold", "resolution", "*", "2d", "support"), ("gold", "next_response", "*", "1d", "support")]


def utc(text: str) -> datetime:
    return local(text)


def store_gold(con, policies=GOLD) -> None:
    """Client ENT on a contract that names ``gold``, and FREE on nothing."""
    add(con, SPEC_CONFIG, "clients", dict(client_id="ENT", name="Enterprise Co", tier="enterprise"),
        dict(client_id="FREE", name="Free User", tier="free"))
    add(con, SPEC_CONFIG, "environments", dict(environment_id="E1", name="E1", kind="dedicated",
                                               deployment="on_premise", client_id="ENT", active_from="2026-01-01"))
    con.executemany("INSERT INTO policies (policy_id, metric, priority, within, calendar) VALUES (?, ?, ?, ?, ?)",
                    policies)
    con.execute("INSERT INTO contracts (contract_id, client_id, environment_id, monthly_fee, currency, starts_on, "
                "policy_id) VALUES ('K1', 'ENT', 'E1', 100, 'USD', DATE '2026-01-01', 'gold')")


def case(con, case_id: str, received: str, priority: str = "normal", client: str = "ENT", **times) -> None:
    add(con, SPEC_CONFIG, "cases", dict(case_id=case_id, client_id=client, received_at=received,
                                        category="platform_issue", subject="s", **times))
    con.execute("UPDATE cases SET priority = ? WHERE case_id = ?", [priority, case_id])


def pause(con, case_id: str, paused: str, resumed: str | None = None) -> None:
    con.execute("INSERT INTO pauses (case_id, paused_at, resumed_at) VALUES (?, ?, ?)",
                [case_id, utc(paused), utc(resumed) if resumed else None])


def message(con, case_id: str, at: str, direction: str) -> None:
    con.execute("INSERT INTO messages (message_key, case_id, is_team, is_automatic, received_at, taken_at, source) "
                "VALUES (?, ?, ?, false, ?, now(), 'import')",
                [f"{case_id}:{at}:{direction}", case_id, direction == "team", utc(at)])
    answer(con, [case_id])


def row(con, as_of: str, case_id: str, *columns: str) -> tuple:
    return views(con, SPEC_CONFIG, utc(as_of)).execute(
        f"SELECT {', '.join(columns)} FROM case_sla WHERE case_id = ?", [case_id]).fetchall()[0]


def shown(moment: datetime | None) -> str | None:
    return moment.astimezone(HKT).strftime("%a %Y-%m-%d %H:%M") if moment else None


# --- the worked examples --------------------------------------------------------------------------------------

def test_urgent_case_runs_around_the_clock(con):
    store_gold(con)
    case(con, "C1", "2026-11-21 22:00", priority="urgent")
    assert shown(row(con, "2026-11-21 23:00", "C1", "first_response_due")[0]) == "Sun 2026-11-22 02:00"


def test_urgent_case_state_counts_hours_of_its_own_calendar(con):
    store_gold(con)
    case(con, "C1", "2026-11-21 22:00", priority="urgent")
    assert row(con, "2026-11-21 23:00", "C1", "sla_state", "business_hours_left") == ("pending", 3.0)
    assert row(con, "2026-11-22 00:30", "C1", "sla_state", "business_hours_left") == ("at_risk", 1.5)
    assert row(con, "2026-11-22 02:00:01", "C1", "sla_state")[0] == "breached"


def test_a_pause_moves_resolution_later_by_the_business_time_paused(con):
    store_gold(con)
    case(con, "C1", "2026-11-23 10:00")
    pause(con, "C1", "2026-11-23 14:00", "2026-11-24 11:00")
    due, state, paused = row(con, "2026-11-24 12:00", "C1", "resolution_due", "resolution_state",
                             "resolution_hours_paused")
    assert shown(due) == "Wed 2026-11-25 16:00"  # 18 h + 6 h paused (4 h on Monday, 2 h on Tuesday)
    assert (state, paused) == ("pending", 6.0)


def test_a_follow_up_question_has_its_own_deadline(con):
    store_gold(con)
    case(con, "C1", "2026-11-23 09:00", first_response_at="2026-11-23 11:00")
    message(con, "C1", "2026-11-23 09:00", "client")
    message(con, "C1", "2026-11-23 11:00", "team")
    message(con, "C1", "2026-11-24 17:00", "client")
    message(con, "C1", "2026-11-25 16:00", "team")
    questions = views(con, SPEC_CONFIG, utc("2026-11-26 09:00")).execute(
        "SELECT asked_at, next_response_due, responded_at, next_response_state FROM case_questions").fetchall()
    assert [(shown(a), shown(d), shown(r), s) for a, d, r, s in questions] == [
        ("Tue 2026-11-24 17:00", "Wed 2026-11-25 17:00", "Wed 2026-11-25 16:00", "met")]
    assert row(con, "2026-11-26 09:00", "C1", "next_response_state")[0] == "met"


def test_a_pause_open_at_t_makes_resolution_paused(con):
    store_gold(con)
    case(con, "C1", "2026-11-23 10:00")
    pause(con, "C1", "2026-11-23 12:00")
    state, waiting, left, paused = row(con, "2026-11-25 12:00", "C1", "resolution_state", "waiting_on_client",
                                       "resolution_hours_left", "resolution_hours_paused")
    assert (state, waiting, paused) == ("paused", True, 18.0)  # Mon 12:00 to Wed 12:00: 6 h, 9 h, 3 h
    assert left == 16.0  # 2 of the 18 business hours ran before the pause


def test_the_deadlines_of_some_cases_alone_say_what_case_sla_says_of_their_targets(con):
    """What the Log case confirmation reads (first response and resolution, for the case just logged)."""
    from kb.engine.asof import deadlines
    from kb.engine.targets import FIRST_RESPONSE, RESOLUTION

    store_gold(con)
    case(con, "C1", "2026-11-23 10:00")
    pause(con, "C1", "2026-11-23 14:00", "2026-11-24 11:00")
    case(con, "C2", "2026-11-24 15:00", priority="urgent")
    pause(con, "C2", "2026-11-24 16:00")
    columns = [f"{t.col(c)}" for t in (FIRST_RESPONSE, RESOLUTION)
               for c in ("due", "state", "kind", "amount", "calendar", "by_contract")]
    whole = {c: row(con, "2026-11-24 17:00", c, *columns) for c in ("C1", "C2")}
    alone = deadlines(con, SPEC_CONFIG, utc("2026-11-24 17:00"), ["C1", "C2"], (FIRST_RESPONSE, RESOLUTION))
    assert {r["case_id"]: tuple(r[c] for c in columns) for r in alone.to_pylist()} == whole
    assert shown(whole["C1"][6]) == "Wed 2026-11-25 16:00"  # resolution: 18 h + 6 h paused
    assert (shown(whole["C2"][0]), whole["C2"][7]) == ("Tue 2026-11-24 19:00", "paused")  # 4 h around the clock


# --- which target ---------------------------------------------------------------------------------------------

def test_without_policies_every_case_keeps_todays_first_response_only(con):
    add(con, SPEC_CONFIG, "clients", dict(client_id="ENT", name="Enterprise Co", tier="enterprise"))
    case(con, "C1", "2026-11-20 15:00", priority="urgent")
    due, policy, resolution, follow_up = row(con, "2026-11-20 16:00", "C1", "first_response_due", "policy_id",
                                             "resolution_state", "next_response_state")
    assert (shown(due), policy, resolution, follow_up) == ("Mon 2026-11-23 15:00", "enterprise", "no_sla", None)


def test_exact_priority_wins_over_any_and_latest_valid_from_on_the_day_of_receipt(con):
    store_gold(con)
    con.execute("INSERT INTO policies VALUES ('gold', 'resolution', 'high', '1d', 'support', DATE '2026-11-24')")
    case(con, "MON", "2026-11-23 10:00", priority="high")  # before the high row: the * row, 2 days
    case(con, "TUE", "2026-11-24 10:00", priority="high")  # the high row, valid from that day: 1 day
    assert shown(row(con, "2026-11-24 12:00", "MON", "resolution_due")[0]) == "Wed 2026-11-25 10:00"
    assert shown(row(con, "2026-11-24 12:00", "TUE", "resolution_due")[0]) == "Wed 2026-11-25 10:00"
    case(con, "TUE2", "2026-11-24 10:00", priority="low")
    assert shown(row(con, "2026-11-24 12:00", "TUE2", "resolution_due")[0]) == "Thu 2026-11-26 10:00"


def test_a_tier_policy_named_by_rows_replaces_the_sla_default(con):
    add(con, SPEC_CONFIG, "clients", dict(client_id="FREE", name="Free User", tier="free"))
    con.execute("INSERT INTO policies (policy_id, metric, priority, within) VALUES ('free', 'first_response', "
                "'urgent', '2h')")
    case(con, "URG", "2026-11-23 10:00", priority="urgent", client="FREE")
    case(con, "LOW", "2026-11-23 10:00", priority="low", client="FREE")
    assert shown(row(con, "2026-11-23 10:30", "URG", "first_response_due")[0]) == "Mon 2026-11-23 12:00"
    assert row(con, "2026-11-23 10:30", "LOW", "first_response_due", "sla_state") == (None, "no_sla")


def test_free_general_coding_has_no_target_of_any_kind(con):
    store_gold(con)
    con.execute("INSERT INTO policies (policy_id, metric, priority, within) VALUES ('free', 'resolution', '*', '5d')")
    add(con, SPEC_CONFIG, "cases", dict(case_id="C1", client_id="FREE", received_at="2026-11-23 10:00",
                                        category="general_coding", subject="s"))
    assert row(con, "2026-11-23 11:00", "C1", "sla_state", "resolution_state") == ("no_sla", "no_sla")


# --- pauses ---------------------------------------------------------------------------------------------------

def test_a_pause_after_the_deadline_does_not_undo_a_breach(con):
    store_gold(con)
    case(con, "C1", "2026-11-23 10:00")  # resolution due Wed 10:00
    pause(con, "C1", "2026-11-25 12:00")
    assert row(con, "2026-11-25 13:00", "C1", "resolution_state")[0] == "breached"


def test_resolved_while_paused_is_judged_against_the_moved_deadline(con):
    store_gold(con)
    case(con, "C1", "2026-11-23 10:00", resolved_at="2026-11-25 15:00")
    pause(con, "C1", "2026-11-23 14:00", "2026-11-24 11:00")
    assert row(con, "2026-11-26 09:00", "C1", "resolution_state")[0] == "met"


def test_a_pause_outside_business_hours_moves_nothing(con):
    store_gold(con)
    case(con, "C1", "2026-11-23 10:00")
    pause(con, "C1", "2026-11-23 19:00", "2026-11-24 08:00")
    assert shown(row(con, "2026-11-24 12:00", "C1", "resolution_due")[0]) == "Wed 2026-11-25 10:00"


# --- follow-ups -----------------------------------------------------------------------------------------------

def test_each_client_message_after_the_response_is_a_question_and_the_most_overdue_target_is_next(con):
    store_gold(con)
    case(con, "C1", "2026-11-23 09:00", first_response_at="2026-11-23 10:00")
    message(con, "C1", "2026-11-23 09:30", "client")  # before the first response: not a question
    message(con, "C1", "2026-11-23 11:00", "client")
    message(con, "C1", "2026-11-23 12:00", "team")
    message(con, "C1", "2026-11-24 10:00", "client")
    rows = views(con, SPEC_CONFIG, utc("2026-11-25 09:30")).execute(
        "SELECT asked_at, next_response_state FROM case_questions ORDER BY asked_at").fetchall()
    assert [(shown(a), s) for a, s in rows] == [("Mon 2026-11-23 11:00", "met"), ("Tue 2026-11-24 10:00", "at_risk")]
    metric, due, state, open_due, open_ = row(con, "2026-11-25 09:30", "C1", "next_due_metric", "next_due",
                                              "next_due_state", "next_response_open_due", "questions_open")
    assert (shown(open_due), open_) == ("Wed 2026-11-25 10:00", 1)
    assert (metric, shown(due), state) == ("resolution", "Tue 2026-11-24 18:00", "breached")  # the overdue one first


def test_an_unverified_or_automatic_team_message_answers_nothing(con):
    store_gold(con)
    case(con, "C1", "2026-11-23 09:00", first_response_at="2026-11-23 10:00")
    message(con, "C1", "2026-11-23 11:00", "client")
    con.execute("INSERT INTO messages (message_key, case_id, is_team, is_automatic, received_at, taken_at, "
                "unverified) VALUES ('forged', 'C1', true, false, ?, now(), true), "
                "('auto', 'C1', true, true, ?, now(), false)", [utc("2026-11-23 11:30"), utc("2026-11-23 11:40")])
    answer(con, ["C1"])
    assert row(con, "2026-11-24 12:00", "C1", "next_response_state")[0] == "breached"


@pytest.mark.parametrize("priority", ["urgent", "high", "normal", "low"])
def test_every_priority_finds_the_any_row(con, priority):
    store_gold(con)
    case(con, "C1", "2026-11-23 10:00", priority=priority)
    assert shown(row(con, "2026-11-23 11:00", "C1", "resolution_due")[0]) == "Wed 2026-11-25 10:00"
