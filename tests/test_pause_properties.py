"""Property tests of pauses and of the targets' defaults (rules: policies, pauses), against a slow reference.

The engine's resolution deadline with pauses is compared with a reference that
walks the pauses in order on the reference calendar of
``tests/test_calendar_properties.py`` (one local date at a time): business time
runs between pauses until the target's time is used up; a pause that starts
once it is used up moves nothing.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from kb.engine.asof import deadlines as targets_alone
from kb.engine.asof import open_views
from tests.fixtures import add
from tests.test_calendar_properties import (
    DAY_US,
    SETTINGS,
    Reference,
    calendars,
    deadline_scenarios,
    fresh_store,
    from_us,
    iso,
    load_cases,
    local_us,
    receipts,
)

HOUR_US = 3_600 * 1_000_000


def paused_deadline(ref: Reference, received: int, target_us: int, pauses: list[tuple[int, int]]) -> int:
    """The reference: the target's business time runs outside the pauses, from receipt."""
    cursor, used = received, 0
    for start, end in pauses:
        gap = ref.business_us(cursor, start) if start > cursor else 0
        if used + gap >= target_us:
            break
        used += gap
        cursor = max(cursor, end)
    return ref.within_us(cursor, target_us - used)


@st.composite
def paused_cases(draw):
    config, base = draw(calendars())
    received = draw(receipts(config, base))[:3] or [local_us(base, config.calendar.opens, config.calendar.zone)]
    cases = []
    for at in received:
        starts = sorted(set(draw(st.lists(st.integers(0, 3 * DAY_US), min_size=1, max_size=4))))
        pauses, cursor = [], at
        for offset in starts:
            start = at + offset
            if start < cursor:
                continue
            end = start + draw(st.integers(1, 3 * DAY_US))
            pauses.append((start, end))
            cursor = end + 1
        cases.append((at, pauses))
    return config, draw(st.sampled_from(["1d", "2d", "5h", "16h"])), cases


def deadlines(config, within: str, cases, open_pause: bool = False) -> dict[str, tuple[int, int, str]]:
    """{case: (due with its pauses, due of the same case without them, state)} from the engine."""
    latest = max(max([at] + [end for _, end in pauses]) for at, pauses in cases)
    with fresh_store() as con:
        add(con, config, "clients", {"client_id": "ent", "name": "E", "tier": "enterprise"})
        con.execute("INSERT INTO policies (policy_id, metric, priority, within) VALUES "
                    f"('enterprise', 'resolution', '*', '{within}')")
        rows = []
        for i, (at, _) in enumerate(cases):
            rows += [{"case_id": f"p{i}", "client_id": "ent", "received_at": iso(at), "category": "api_help",
                      "subject": "s"},
                     {"case_id": f"n{i}", "client_id": "ent", "received_at": iso(at), "category": "api_help",
                      "subject": "s"}]
        add(con, config, "cases", *rows)
        for i, (_, pauses) in enumerate(cases):
            for k, (start, end) in enumerate(pauses):
                still_open = open_pause and k == len(pauses) - 1
                con.execute("INSERT INTO pauses (case_id, paused_at, resumed_at) VALUES (?, ?, ?)",
                            [f"p{i}", from_us(start), None if still_open else from_us(end)])
        open_views(con, config, from_us(latest) + timedelta(days=1))
        found = dict(((case_id, (due, state)) for case_id, due, state in con.execute(
            "SELECT case_id, epoch_us(resolution_due), resolution_state FROM case_sla").fetchall()))
    return {f"{i}": (found[f"p{i}"][0], found[f"n{i}"][0], found[f"p{i}"][1]) for i in range(len(cases))}


@SETTINGS
@given(paused_cases())
def test_paused_business_time_moves_the_deadline_by_exactly_the_business_time_inside_the_pauses(drawn):
    config, within, cases = drawn
    ref = Reference(config)
    target_us = int(within[:-1]) * (HOUR_US if within.endswith("h") else ref.day_us)
    got = deadlines(config, within, cases)
    for i, (at, pauses) in enumerate(cases):
        with_pauses, without, _ = got[str(i)]
        assert without == ref.within_us(at, target_us)
        assert with_pauses == paused_deadline(ref, at, target_us, pauses), (ref.local(at), pauses)


@SETTINGS
@given(paused_cases())
def test_a_pause_never_makes_a_deadline_earlier(drawn):
    config, within, cases = drawn
    for with_pauses, without, state in deadlines(config, within, cases, open_pause=True).values():
        assert with_pauses >= without
        assert state in ("paused", "breached", "pending", "at_risk")


@SETTINGS
@given(deadline_scenarios(), st.data())
def test_with_no_policies_priorities_pauses_or_messages_every_number_is_the_first_responses_alone(scenario, data):
    """What every case said before policies, pauses and follow-ups existed: the first response's numbers (the
    query that computes them alone), and no other target."""
    config, base, contract_days, received = scenario
    categories = data.draw(st.lists(st.sampled_from(["platform_issue", "api_help", "general_coding"]),
                                    min_size=len(received), max_size=len(received)))
    as_of = from_us(data.draw(st.integers(min(received), max(received) + 3 * DAY_US)))
    with fresh_store() as con:
        load_cases(con, config, base, contract_days, received, categories)
        open_views(con, config, as_of)
        every = con.execute(
            """SELECT case_id, first_response_due, sla_state, first_response_kind, first_response_amount,
                      resolution_due, resolution_state, next_response_due, next_response_state, questions_open,
                      waiting_on_client, next_due, next_due_metric, next_due_state FROM case_sla ORDER BY case_id"""
        ).fetchall()
        ids = [row[0] for row in every]
        alone = {row["case_id"]: row for row in targets_alone(con, config, as_of, ids).to_pylist()}
    assert set(alone) == set(ids)
    for (case_id, due, state, kind, amount, resolution_due, resolution_state, next_response_due,
         next_response_state, questions_open, waiting, next_due, next_due_metric, next_due_state) in every:
        first = alone[case_id]
        assert (due, state, kind, amount) == (first["first_response_due"], first["first_response_state"],
                                              first["first_response_kind"], first["first_response_amount"]), case_id
        assert (resolution_due, resolution_state, next_response_due, next_response_state, questions_open,
                waiting) == (None, "no_sla", None, None, 0, False), case_id
        running = state in ("pending", "at_risk", "breached")  # (none of them answered)
        assert (next_due, next_due_metric, next_due_state) == \
            ((due, "first_response", state) if running else (None, None, None)), case_id
