"""What goes out: ``statement`` writes a client's monthly statement as a PDF, ``alerts`` sends the alerts that
are due."""

from __future__ import annotations

import sys
from pathlib import Path

from kb.db import connection
from kb.formats import count
from kb.timestamps import format_for_people, now_utc, parse_as_of


def add_parsers(commands, common) -> None:
    p = commands.add_parser(
        "statement", parents=[common], help="write a client's monthly SLA statement as a PDF",
        description="Write one client's statement for one month: every case's first response, uptime per "
                    "environment with a daily chart and the incidents, the credits owed and the contract terms "
                    "behind them. Its numbers are the case-sla, uptime and refunds exports for that client and "
                    "month, as of --as-of (default: now); a closed month's as it was closed. A statement that was "
                    "e-mailed is written as it was sent, byte for byte.")
    p.add_argument("--client", required=True, help="the client's id")
    p.add_argument("--month", required=True, help="YYYY-MM, in the support zone")
    p.add_argument("--as-of", help="the instant T, ISO 8601 (default: now); no offset = support zone")
    p.add_argument("--out", type=Path, required=True, help="the PDF file to write")

    p = commands.add_parser(
        "alerts", parents=[common], help="send the breach warnings, budget alerts and digest that are due",
        description="Record every alert due now ([alerts] in support.toml) and send what was not sent yet, by "
                    "e-mail and to the incoming webhook; each alert goes once, and one the server refused goes "
                    "again at the next run. The service runs this every minute.")
    p.add_argument("action", choices=["send"], metavar="send", help="send what is due")


def run_statement(args, config) -> int:
    from kb.engine.asof import open_views
    from kb.statement.content import UnknownClient, month_days, statement
    from kb.statement.mailing import sent_statement
    from kb.statement.render import statement_pdf

    try:
        month_days(args.month)
    except ValueError:
        print(f"error: --month {args.month!r} is not a month like 2026-11", file=sys.stderr)
        return 1
    as_of = parse_as_of(args.as_of, config.calendar.zone, name="--as-of") if args.as_of else now_utc()
    con = connection.connect(connection.db_path(args.db), read_only=True, wait_seconds=5)
    try:
        sent = sent_statement(con, args.client, args.month)
        if sent is not None:
            args.out.write_bytes(sent.pdf)
            print(f"wrote the {args.month} statement of {args.client} to {args.out} as it was e-mailed on "
                  f"{format_for_people(sent.sent_at, config.calendar.zone)} (SHA-256 {sent.sha256})")
            return 0
        open_views(con, config, as_of)
        content = statement(con, config, args.client, args.month, as_of)
    except UnknownClient as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        con.close()
    args.out.write_bytes(statement_pdf(content, config.calendar.timezone))
    print(f"wrote the {args.month} statement of {args.client} to {args.out}: {count(content.totals['cases'], 'case')}, "
          f"{count(len(content.uptime), 'environment')}, credits " +
          (", ".join(f"{a} {c}" for c, a in content.totals["credits"].items()) or "none"))
    return 0


def run_alerts(args, config) -> int:
    from kb.alerts.deliver import send_due

    if config.alerts is None:
        print("error: no [alerts] section in the configuration: nothing to send", file=sys.stderr)
        return 1
    con = connection.connect(connection.db_path(args.db), wait_seconds=5)
    try:
        report = send_due(con, config, now_utc())
    finally:
        con.close()
    print(f"alerts: {report.recorded} recorded, {report.sent} sent, {len(report.failed)} to retry")
    for failure in report.failed:
        print(f"not sent: {failure}", file=sys.stderr)
    return 1 if report.failed else 0


COMMANDS = {"statement": run_statement, "alerts": run_alerts}
