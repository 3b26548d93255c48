"""The mail share of ``python -m kb bench``: ``python -m kb mail import`` of a synthetic mailbox, measured in a
process of its own (``python -m kb.tools.bench_mail``), so that its peak memory is the import's.

The mailbox is ``kb.tools.mbox.write_mbox``'s (threads opened by clients, the team's acknowledgements and
replies from the configured ``[mail] support_addresses``, the clients' follow-ups and the team's second replies,
out-of-office replies, bounces, mailing lists and newsletters), written once per bench run and imported into a
copy of each size's store as generated, as ``python -m kb mail import --trust-team`` does it
(``kb.mail.archive.import_paths``): the file is the support mailbox's archive, so the team's replies count as
first responses. The worker prints the seconds, its peak RSS with its parser processes' (``kb.mail.archive``), what
the import did, and how many rows ``messages`` gained, and how many of them joined a case's thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from kb.tools.memory import ChildrenMemory, peak_mb

RESULT_MARK = "BENCH-RESULT "  # the line a bench worker prints its results on, as JSON
COUNTS = ("SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM messages WHERE case_id IS NOT NULL), "
          "(SELECT count(*) FROM cases)")


def import_mailbox(db: Path, config, mbox: Path) -> dict:
    """Import ``mbox`` into the store ``db``, as ``python -m kb mail import --trust-team`` does; what it did and
    took."""
    from kb.access import Actor
    from kb.db import connection
    from kb.mail.archive import import_paths

    con = connection.connect(db)
    try:
        before = con.execute(COUNTS).fetchall()[0]
        begin = time.perf_counter()
        outcome, failed = import_paths(con, config, [mbox], Actor("bench@example.com", "lead"), trust_team=True)
        con.execute("CHECKPOINT")  # what the command's closing its connection does: part of the import's time
        seconds = time.perf_counter() - begin
        after = con.execute(COUNTS).fetchall()[0]
    finally:
        con.close()
    if failed:
        raise RuntimeError(f"the mailbox could not be read: {'; '.join(map(str, failed))}")
    return {"seconds": seconds, "read": outcome.read, "taken": outcome.taken, "already": outcome.already,
            "cases_opened": outcome.cases_opened, "responses": outcome.responses,
            "clients_made": outcome.clients_made, "skipped": len(outcome.skipped), "held": len(outcome.held),
            "messages_added": after[0] - before[0], "threaded_added": after[1] - before[1],
            "cases_added": after[2] - before[2]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m kb.tools.bench_mail")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("mbox", type=Path)
    args = parser.parse_args(argv)
    from kb.config import load_config

    with ChildrenMemory() as parsers:
        result = import_mailbox(args.db, load_config(args.config), args.mbox)
    # The import's own peak, and its children's (the parser processes and multiprocessing's resource tracker)
    # added up: at most what they held together.
    result["parser_rss_mb"] = parsers.peak_mb
    result["peak_rss_mb"] = peak_mb() + parsers.peak_mb
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
