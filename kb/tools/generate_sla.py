"""The SLA's side of the synthetic data set (``python -m kb generate``): priorities, policies and the contracts
that name them, the messages of each case's thread, and pauses while the team waits on the client.

* priorities: about 5 % urgent, 15 % high, 70 % normal, 10 % low;
* policies: a few (``POLICIES``), one on the ``24x7`` calendar, one whose target changes from a date, and one on
  each named calendar of the configuration (``[calendars.NAME]``: ``G-`` and its name, ``CALENDAR_POLICY``);
  named by about a quarter of the contracts, the policies in turn, which then set no response days of their own;
* pauses on about a fifth of the cases, one or two each, inside the case's life after its first response,
  never overlapping; the last one of an open case may still run; most are resumed by the client's reply;
* messages, about three per case: the client's at receipt, the team's at the first response, and the
  client's later questions (the replies that resumed a pause, and follow-ups on cases never paused), answered
  by the team after a long-tailed delay: before the case was resolved, or still open on an open case.

Everything is drawn from a random stream of its own, seeded from the same seed, so the other tables are the
same rows with or without it; and from the cases' arrays at once, never case by case (a million cases make
about three million messages and two hundred thousand pauses).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kb.db.schema import PRIORITIES

US = 1_000_000
HOUR_US = 3600 * US
PRIORITY_SHARES = (0.05, 0.15, 0.70, 0.10)  # urgent, high, normal, low
MESSAGES_PER_CASE = 3.0
PAUSED_SHARE = 0.2  # of all cases
SECOND_PAUSE_SHARE = 0.1  # of the paused cases
OPEN_PAUSE_SHARE = 0.3  # of the open cases paused: the last pause still runs
REPLY_SHARE = 0.8  # of the pauses resumed: by the client's reply, else by the team
CONTRACT_POLICY_SHARE = 0.25
PAUSE_REASONS = ("Waiting on the client's logs", "Asked for a reproduction", "Client testing the fix",
                 "Waiting on the client's change window")
# (policy_id, metric, priority, within, calendar); the row with a date marks when a target changed (``changed``).
POLICIES = (
    ("G-GOLD", "first_response", "urgent", "4h", "24x7"),
    ("G-GOLD", "first_response", "*", "1d", "support"),
    ("G-GOLD", "next_response", "*", "1d", "support"),
    ("G-GOLD", "resolution", "*", "2d", "support"),
    ("G-SILVER", "first_response", "urgent", "8h", "support"),
    ("G-SILVER", "first_response", "*", "2d", "support"),
    ("G-SILVER", "next_response", "*", "2d", "support"),
    ("G-SILVER", "resolution", "*", "5d", "support"),
    ("G-24X7", "first_response", "*", "2h", "24x7"),
    ("G-24X7", "first_response", "low", "next_day_close", "support"),
    ("G-24X7", "next_response", "*", "4h", "24x7"),
    ("G-24X7", "resolution", "*", "3d", "support"),
)
CHANGED = ("G-SILVER", "first_response", "*", "1d", "support")  # from ``changed`` on, SILVER answers in a day
POLICY_IDS = tuple(dict.fromkeys(row[0] for row in POLICIES))
# Each named calendar's policy: (metric, priority, within), the within by the calendar's place when a tuple.
CALENDAR_POLICY = (
    ("first_response", "urgent", "4h"),
    ("first_response", "*", ("1d", "2d", "8h")),
    ("next_response", "*", "1d"),
    ("resolution", "*", ("3d", "5d")),
)


def calendar_policy_id(calendar: str) -> str:
    """The generated policy on the named calendar ``calendar``: ``G-LONDON`` for ``london``."""
    return f"G-{calendar.upper()}"


class SlaShape:
    """The SLA's tables for one generated data set, drawn from ``seed``'s own stream; nothing after
    ``until_us`` (UTC epoch microseconds)."""

    def __init__(self, seed: int, until_us: int, agents: tuple[str, ...], calendars: tuple[str, ...] = ()):
        self.rng = np.random.default_rng((seed, 12))
        self.until_us, self.agents, self.calendars = until_us, agents, calendars
        self.policy_ids = POLICY_IDS + tuple(calendar_policy_id(name) for name in calendars)

    def priorities(self, count: int) -> pa.Array:
        drawn = self.rng.choice(len(PRIORITIES), size=count, p=PRIORITY_SHARES)
        return pa.DictionaryArray.from_arrays(pa.array(drawn), pa.array(PRIORITIES)).cast(pa.string())

    def policies(self, last_day: date) -> pa.Table:
        """``POLICIES`` from 1970-01-01, ``CHANGED`` from the first of the month half a year before the last
        day, and ``CALENDAR_POLICY`` on each named calendar from 1970-01-01."""
        changed = (last_day - timedelta(days=182)).replace(day=1)
        rows = [(*row, date(1970, 1, 1)) for row in POLICIES] + [(*CHANGED, changed)]
        rows += [(calendar_policy_id(name), metric, priority, within if isinstance(within, str)
                  else within[n % len(within)], name, date(1970, 1, 1))
                 for n, name in enumerate(self.calendars) for metric, priority, within in CALENDAR_POLICY]
        names = ("policy_id", "metric", "priority", "within", "calendar", "valid_from")
        return pa.table({name: pa.array([row[n] for row in rows], pa.date32() if name == "valid_from" else pa.string())
                         for n, name in enumerate(names)})

    def contracts_with_policies(self, contracts: pa.Table) -> pa.Table:
        """``contracts`` with a ``policy_id`` on about a quarter of them (at least one), the policies in turn; a
        contract that names one sets no response days."""
        named = self.rng.random(contracts.num_rows) < CONTRACT_POLICY_SHARE
        named[0] = named[0] or not named.any()
        policy = np.array(self.policy_ids, dtype=object)[np.cumsum(named) % len(self.policy_ids)]
        days = contracts["response_business_days"].combine_chunks()
        return (contracts
                .set_column(contracts.column_names.index("response_business_days"), "response_business_days",
                            pc.if_else(pa.array(named), pa.nulls(len(named), days.type), days))
                .append_column("policy_id", pa.array(policy, pa.string(), mask=~named)))

    def threads(self, cases: pa.Table) -> tuple[pa.Table, pa.Table]:
        """(pauses, messages) of ``cases`` (with ``received_at``, ``first_response_at``, ``resolved_at``)."""
        received, responded, resolved = (_micros(cases[name]) for name in
                                         ("received_at", "first_response_at", "resolved_at"))
        ends = np.where(resolved >= 0, resolved, self.until_us)
        pauses, replies = self._pauses(responded, resolved, ends)
        messages = self._messages(received, responded, resolved, ends, np.unique(pauses["case"]),
                                  pauses["case"][replies], pauses["resumed_at"][replies])
        case_ids = cases["case_id"].combine_chunks()
        people = pa.array([*self.agents, "mail"], pa.string())  # 'mail': the client's reply resumed it
        return _pause_table(pauses, case_ids, people), _message_table(messages, case_ids, self.until_us)

    def _pauses(self, responded: np.ndarray, resolved: np.ndarray, ends: np.ndarray) -> tuple[dict, np.ndarray]:
        """The pauses as arrays (case index, paused and resumed at, -1 while it runs, who, why), and which were
        resumed by the client's reply. A case's life after its first response is cut into as many equal
        parts as it has pauses, one pause inside each: they never overlap."""
        rng = self.rng
        eligible = (responded >= 0) & (ends - responded >= 2 * HOUR_US)
        share = min(1.0, PAUSED_SHARE / max(eligible.mean(), 1e-9))
        paused_cases = np.flatnonzero(eligible & (rng.random(len(eligible)) < share))
        per_case = 1 + (rng.random(len(paused_cases)) < SECOND_PAUSE_SHARE)
        case = np.repeat(paused_cases, per_case)
        of_case = np.repeat(per_case, per_case)
        nth = np.arange(len(case)) - np.repeat(np.cumsum(per_case) - per_case, per_case)
        part = (ends[case] - responded[case]) // of_case
        part_start = responded[case] + nth * part
        paused = part_start + (rng.random(len(case)) * 0.5 * part).astype(np.int64)
        resumed = paused + (rng.random(len(case)) * (part_start + part - paused)).astype(np.int64)
        paused, resumed = paused // US * US, resumed // US * US
        running = (nth == of_case - 1) & (resolved[case] < 0) & (rng.random(len(case)) < OPEN_PAUSE_SHARE)
        replied = ~running & (rng.random(len(case)) < REPLY_SHARE)
        agent = rng.integers(0, len(self.agents), len(case))
        return {
            "case": case,
            "paused_at": paused,
            "resumed_at": np.where(running, -1, resumed),
            "reason": rng.integers(0, len(PAUSE_REASONS), len(case)),
            "paused_by": agent,
            "resumed_by": np.where(running, -1, np.where(replied, len(self.agents), agent)),
        }, np.flatnonzero(replied)

    def _messages(self, received: np.ndarray, responded: np.ndarray, resolved: np.ndarray, ends: np.ndarray,
                  paused_cases: np.ndarray, reply_case: np.ndarray, reply_at: np.ndarray) -> dict:
        """The messages as arrays (case index, instant, from the team): the opening question, the first
        response, the client's later questions (``reply_at``: the replies that resumed a pause of
        ``reply_case``; follow-ups on the cases never paused) and the team's answers."""
        rng = self.rng
        count = len(received)
        answered = np.flatnonzero(responded >= 0)
        free = np.setdiff1d(answered, paused_cases)
        # As many follow-ups as bring the thread to MESSAGES_PER_CASE on average, each answered or open.
        wanted = MESSAGES_PER_CASE * count - count - len(answered) - 2 * len(reply_case)
        per_case = rng.poisson(max(wanted, 0) / max(2 * len(free), 1), len(free))
        asked_case = np.repeat(free, per_case)
        asked_at = (responded[asked_case]
                    + (rng.random(len(asked_case)) * (ends[asked_case] - responded[asked_case])).astype(np.int64))
        question_case = np.concatenate([reply_case, asked_case])
        question_at = np.concatenate([reply_at, asked_at]) // US * US
        answer_at = question_at + (np.exp(rng.normal(np.log(3), 1.0, len(question_case))) * HOUR_US).astype(np.int64)
        resolved_first = (answer_at > ends[question_case]) & (resolved[question_case] >= 0)
        answer_at = np.where(resolved_first, resolved[question_case], answer_at) // US * US  # answered as it closed
        answered_now = answer_at <= self.until_us
        return {
            "case": np.concatenate([np.arange(count), answered, question_case, question_case[answered_now]]),
            "at": np.concatenate([received, responded[answered], question_at, answer_at[answered_now]]),
            "team": np.concatenate([np.zeros(count, bool), np.ones(len(answered), bool),
                                    np.zeros(len(question_case), bool), np.ones(answered_now.sum(), bool)]),
        }


def _micros(column: pa.ChunkedArray) -> np.ndarray:
    """A timestamp column as UTC epoch microseconds, -1 where empty."""
    return pc.fill_null(pc.cast(column, pa.int64()), -1).to_numpy()


def _instants(micros: np.ndarray) -> pa.Array:
    """UTC epoch microseconds as timestamps, empty where -1."""
    return pa.array(micros, type=pa.timestamp("us", tz="UTC"), mask=micros < 0)


def numbered(prefix: str, count: int, digits: int) -> pa.Array:
    """``prefix`` and 1 to ``count``, zero-padded to ``digits``: the generated ids (``G-CS-0000001``)."""
    numbers = pc.cast(pa.array(np.arange(1, count + 1)), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, digits, "0"), "")


def _pause_table(pauses: dict, case_ids: pa.Array, people: pa.Array) -> pa.Table:
    """The pauses by case and time; ``people``: who paused and resumed, by the indexes drawn."""
    order = np.lexsort((pauses["paused_at"], pauses["case"]))
    pauses = {name: values[order] for name, values in pauses.items()}
    return pa.table({
        "case_id": case_ids.take(pa.array(pauses["case"])),
        "paused_at": _instants(pauses["paused_at"]),
        "resumed_at": _instants(pauses["resumed_at"]),
        "reason": pa.DictionaryArray.from_arrays(pa.array(pauses["reason"]), pa.array(PAUSE_REASONS)).cast(
            pa.string()),
        "paused_by": people.take(pa.array(pauses["paused_by"])),
        "resumed_by": people.take(pa.array(pauses["resumed_by"], mask=pauses["resumed_by"] < 0)),
    })


def _message_table(messages: dict, case_ids: pa.Array, taken_us: int) -> pa.Table:
    """The messages by case and time, keyed ``G-MSG-00000001`` on, taken at ``taken_us`` as an import is."""
    order = np.lexsort((messages["team"], messages["at"], messages["case"]))
    count = len(order)
    return pa.table({
        "message_key": numbered("G-MSG-", count, 8),
        "case_id": case_ids.take(pa.array(messages["case"][order])),
        "is_team": pa.array(messages["team"][order]),
        "received_at": _instants(messages["at"][order]),
        "taken_at": _instants(np.full(count, taken_us, dtype=np.int64)),
    })
