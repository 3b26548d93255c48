"""The one registry of SLA targets (rules: policies and targets): what each measures, and the states.

A ``Target`` says which clock a policy's ``metric`` runs: where it starts and
stops, whether a pause stops it, what its "% met" counts (cases or client
questions), and how people call it. The engine builds ``case_sla`` and
``case_questions`` by looping over ``TARGETS``, and every reader (pages, the
statement, ``/metrics``, alerts, exports) loops over the same tuple, so a fourth
target (say "periodic update every 2 business days") is one more ``Target`` here
plus, when it is measured per event rather than per case, the rows it runs on
(``kb/engine/questions.py`` shows the pattern).

``STATES`` is the one list of states, in the order a lead reads them (most
urgent first). ``met`` and ``breached`` are decided; the rest are not yet.
"""

from __future__ import annotations

from dataclasses import dataclass

STATES = ("breached", "at_risk", "pending", "paused", "met", "no_sla")  # in words: kb.formats.WORDS["state"]
DECIDED = ("met", "breached")


@dataclass(frozen=True)
class Target:
    """One metric a policy sets a target for.

    ``metric``: the ``policies.metric`` value and the prefix of the columns it adds (``{metric}_due``,
    ``{metric}_state``, ``{metric}_hours_left``). ``starts``/``stops``: the columns of the rows it runs on
    where its clock starts and stops (a null stop has not happened as of T). ``per``: ``'case'`` when each
    case has one clock (on ``case_sla``), ``'question'`` when each client question has one (on
    ``case_questions``). ``pausable``: a pause ("waiting on the client") stops its clock.
    ``contract_days``: the ``contracts`` column whose N replaces the tier policy's ``Nd`` (today's
    contract terms), or None.
    """

    metric: str
    label: str
    counted: str
    starts: str
    stops: str
    per: str = "case"
    pausable: bool = False
    contract_days: str | None = None

    def col(self, what: str) -> str:
        """The name of one of the columns the target adds, e.g. ``col('due')``."""
        return f"{self.metric}_{what}"


FIRST_RESPONSE = Target("first_response", "First response", "cases", "received_at", "first_response_at",
                        contract_days="response_business_days")
NEXT_RESPONSE = Target("next_response", "Follow-up response", "questions", "asked_at", "responded_at",
                       per="question")
RESOLUTION = Target("resolution", "Resolution", "cases", "received_at", "resolved_at", pausable=True)

TARGETS = (FIRST_RESPONSE, NEXT_RESPONSE, RESOLUTION)
CASE_TARGETS = tuple(t for t in TARGETS if t.per == "case")
QUESTION_TARGETS = tuple(t for t in TARGETS if t.per == "question")
BY_METRIC = {t.metric: t for t in TARGETS}


TARGET_ROW = "case_id, client_id, tier, priority, category, assignee"  # what every target's row says of its case


def decided_sql(cases: str = "case_sla", questions: str = "case_questions") -> str:
    """One row per decided target (met or breached) of every kind: ``metric``, ``case_id``, ``client_id``,
    ``tier``, ``priority``, ``category``, ``assignee``, ``started_at``, ``due``, ``state``. What "% met" of every
    page, the statement and ``/metrics`` counts: cases for a per-case target, questions for a per-question one."""
    return _each_target(cases, questions,
                        lambda t: f"{t.starts} AS started_at, {t.col('due')} AS due, {t.col('state')} AS state",
                        lambda t: f"{t.col('state')} IN ('met', 'breached')")


def dated_sql(cases: str = "case_sla", questions: str = "case_questions", targets: tuple[Target, ...] = TARGETS) -> str:
    """One row per target with a deadline (in any state but ``no_sla``) of every kind (of ``targets``): the
    columns of ``decided_sql`` but the last two, then ``subject``, ``started_at``, ``due``, ``stopped_at`` (null:
    not yet) and ``state``. What a statement lists for the month they are due in, and what a month's closing
    keeps (``closed_targets``)."""
    return _each_target(cases, questions,
                        lambda t: (f"subject, {t.starts} AS started_at, {t.col('due')} AS due, "
                                   f"{t.stops} AS stopped_at, {t.col('state')} AS state"),
                        lambda t: f"{t.col('due')} IS NOT NULL", targets)


def _each_target(cases: str, questions: str, columns, where, targets: tuple[Target, ...] = TARGETS) -> str:
    """``metric``, ``TARGET_ROW`` and ``columns(target)`` of the rows meeting ``where(target)``, for each of
    ``targets``, from ``cases`` or ``questions`` by what it counts (a query names only the one it reads: a
    snapshot computes what a query names)."""
    return "\nUNION ALL\n".join(
        f"""SELECT '{t.metric}' AS metric, {TARGET_ROW}, {columns(t)}
            FROM {cases if t.per == "case" else questions} WHERE {where(t)}""" for t in targets)
