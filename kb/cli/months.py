"""``close-month`` and ``reopen-month``: freeze a month's uptime, credits and statements as computed now, and open a
closed month to changes again (rules §13)."""

from __future__ import annotations

import sys

from kb.access import command_line_actor
from kb.db import connection
from kb.intake.closing import close_month, reopen_month
from kb.intake.importing import Rejected
from kb.kept import every_case


def add_parsers(commands, common) -> None:
    p = commands.add_parser(
        "close-month", parents=[common], help="freeze a month's uptime, credits and statements",
        description="Close a month, from the first business day after it: its uptime, service credits and the "
                    "first responses its statements show are kept as computed now, and every change that would "
                    "alter them (a case received in it, an incident overlapping it, a correction, an import, a "
                    "webhook, mail dated in it) is refused until an admin reopens it. Audited.")
    p.add_argument("month", metavar="YYYY-MM", help="the month, in the support zone")

    p = commands.add_parser(
        "reopen-month", parents=[common], help="open a closed month to changes again",
        description="Reopen a closed month so that its cases and incidents can change again; closing it again "
                    "keeps a new version beside the old one. Audited with the reason.")
    p.add_argument("month", metavar="YYYY-MM", help="the month, in the support zone")
    p.add_argument("--reason", required=True, help="why it is reopened (kept in the audit trail)")


def run_close_month(args, config) -> int:
    con = connection.connect(connection.db_path(args.db), wait_seconds=5)
    try:
        closed = close_month(con, config, command_line_actor(), args.month, case_tables=every_case)
    except Rejected as e:
        return _refused(e)
    finally:
        con.close()
    print(f"closed {closed.month} {closed.in_words()}")
    return 0


def run_reopen_month(args, config) -> int:
    con = connection.connect(connection.db_path(args.db), wait_seconds=5)
    try:
        version = reopen_month(con, config, command_line_actor(), args.month, args.reason)
    except Rejected as e:
        return _refused(e)
    finally:
        con.close()
    print(f"reopened {args.month.strip()} (version {version} is kept): its cases and incidents can change again")
    return 0


def _refused(rejected: Rejected) -> int:
    for problem in rejected.problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1


COMMANDS = {"close-month": run_close_month, "reopen-month": run_reopen_month}
