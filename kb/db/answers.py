"""Which team message answers each client message: ``messages.answered_at``, kept by every write of messages.

A client's message on a case is answered by the first team message of that case
at or after it (rules: next response); a message the mail marked automatic, or a
team message nothing vouches for, neither asks nor answers. The engine reads
this for every follow-up question of every case (``kb/engine/questions.py``).
Found anew at each computation it took a window over every message, a sort of
three million rows at a million cases (0.3 s of the 1.5 s computing every case
may take), so it is stored with the messages instead: each write that adds,
moves or changes messages finds it again for the cases it touched, with the same
window over their messages only.

The stored answer may be later than an instant the engine computes as of; then
the question was not answered yet at that instant. That is all an as-of read
needs: the first team message after a question is the stored one, unless it
came after T, and then so did every later one.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

ASKS_OR_ANSWERS = "NOT is_automatic AND NOT coalesce(unverified, FALSE)"  # a message that counts in a thread


def answered_sql(cases: str) -> str:
    """UPDATE setting ``answered_at`` on every message of the cases the SELECT ``cases`` lists (of
    ``case_id``), or of every case when ``cases`` is empty; messages whose answer is unchanged are not
    written."""
    only = f"AND case_id IN ({cases})" if cases else ""
    return f"""
    UPDATE messages SET answered_at = a.answered_at
    FROM (SELECT message_key,
                 CASE WHEN NOT is_team AND {ASKS_OR_ANSWERS} THEN
                     min(CASE WHEN is_team AND {ASKS_OR_ANSWERS} THEN received_at END) OVER (
                         PARTITION BY case_id ORDER BY received_at, is_team
                         ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) END AS answered_at
          FROM messages WHERE case_id IS NOT NULL {only}) a
    WHERE messages.message_key = a.message_key AND messages.answered_at IS DISTINCT FROM a.answered_at"""


def answer(con, case_ids: Iterable[str] | None = None) -> None:
    """Find again which team message answers each message of the cases ``case_ids`` (every case when None),
    on the cursor of the write that changed their messages, inside its transaction."""
    if case_ids is None:
        con.execute(answered_sql(""))
        return
    from kb.db.connection import registered  # (here: connection imports the schema, whose migration reads this)

    ids = sorted(set(case_ids))
    if ids:
        with registered(con, answered_cases=pa.table({"case_id": pa.array(ids, pa.string())})):
            con.execute(answered_sql("SELECT case_id FROM answered_cases"))
