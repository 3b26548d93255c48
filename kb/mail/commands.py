"""``python -m kb mail import PATH…`` and ``python -m kb mail poll [--once]``: the parser and the runners that
``kb/cli/`` wires in."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from kb.access import command_line_actor
from kb.db import connection


def add_parser(commands, common) -> None:
    p = commands.add_parser(
        "mail", parents=[common], help="cases and first responses from the support mailboxes",
        description="Read support mail (rules §9): a client message that joins no thread opens a case; the team's "
                    "first non-automatic reply records the first response. Each message is taken once.")
    actions = p.add_subparsers(dest="mail_command", required=True, metavar="ACTION")
    q = actions.add_parser("import", parents=[common], help="read mbox files, Maildir folders and .eml files",
                           description="Read every message under PATH (an mbox file, a Maildir folder, a .eml "
                                       "file, or a folder of them). Prints the messages read, cases opened, "
                                       "responses recorded and each skipped message, or message held in the mail "
                                       "quarantine, with its reason; exit code 0 unless nothing could be read.")
    q.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    q.add_argument("--trust-team", action="store_true",
                   help="the files are the team's own archive (a backfill): their team messages count as responses "
                        "without a sent folder or an Authentication-Results header to vouch for them")
    q = actions.add_parser("poll", parents=[common], help="read the configured IMAP mailboxes",
                           description="Read what is new in every [[mail.mailboxes]] folder, by UID, every "
                                       "poll_seconds (--once: one poll). A mailbox that fails is reported and "
                                       "recorded; the others go on. Exit code 1 when a mailbox failed (--once).")
    q.add_argument("--once", action="store_true", help="poll once and exit")


def run_mail(args, config) -> int:
    if not config.mail.support_addresses:
        print("error: [mail] support_addresses is empty: without the team's addresses every reply would open a "
              "case. Add them to the configuration, e.g. support_addresses = [\"support@example.com\", "
              "\"@example.com\"]", file=sys.stderr)
        return 1
    if args.mail_command == "import":
        return _import(args, config)
    return _poll(args, config)


def _connect(args):
    """The database (made, with a note, when there is none), or StoreBusy saying what a lead can do while
    another process holds it (a running service that proves it holds it is handed the import instead:
    ``kb/cli/mail_import.py``)."""
    path = connection.db_path(args.db)
    if note := connection.new_database_note(path):
        print(note, file=sys.stderr)
    try:
        return connection.connect(path, wait_seconds=5)
    except connection.StoreBusy:
        raise connection.StoreBusy(
            f"database {path} is held by another process, and no running dashboard answered for it (one that "
            "does is handed the import; --server URL --token T names one). Run this again when that process is "
            "done, or send the messages to a mailbox under [[mail.mailboxes]] in support.toml.") from None


def _import(args, config) -> int:
    from kb.mail.archive import import_paths

    started = time.perf_counter()
    con = _connect(args)
    try:
        outcome, failed = import_paths(con, config, args.paths, command_line_actor(), trust_team=args.trust_team)
    finally:
        con.close()
    return reported(outcome, failed, started)


def reported(outcome, failed: list, started: float, by: str = "") -> int:
    """Print what an import did (each path or line it could not read, each message skipped or held, the
    summary, ``by`` whom, and how long since ``started``); its exit code: 0 unless nothing could be read."""
    for problem in failed:
        print(f"cannot read {problem}", file=sys.stderr)
    for skipped in outcome.skipped:
        print(f"skipped {skipped}")
    for held in outcome.held:
        print(f"held {held}")
    print(f"{outcome.summary()}{by} in {time.perf_counter() - started:.1f} s")
    return 0 if outcome.read - len(outcome.skipped) > 0 else 1


def _poll(args, config) -> int:
    from kb.mail.imap import poll, poll_forever

    if not config.mail.mailboxes:
        print("error: no [[mail.mailboxes]] in the configuration: nothing to poll", file=sys.stderr)
        return 1
    actor = command_line_actor()

    def show(report) -> None:
        for skipped in report.outcome.skipped:
            print(f"skipped {skipped}")
        for held in report.outcome.held:
            print(f"held {held}")
        for error in report.errors:
            print(f"error: {error}", file=sys.stderr)
        fetched = sum(f.fetched for f in report.folders)
        print(f"polled {len(config.mail.mailboxes)} mailbox(es) in {report.seconds:.2f} s: {fetched:,} new on the "
              f"server; {report.outcome.summary()}", flush=True)

    if args.once:
        con = _connect(args)
        try:
            report = poll(con, config, actor)
        finally:
            con.close()
        show(report)
        return 1 if report.errors else 0
    try:
        poll_forever(lambda: connection.connect(connection.db_path(args.db), wait_seconds=5), config, actor, show)
    except KeyboardInterrupt:
        return 0
    return 0
