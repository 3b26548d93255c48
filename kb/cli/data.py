"""``import`` and ``export``: rows in by the data contract, reports out as CSV, here or through the service."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from kb.access import command_line_actor
from kb.cli.handoff import clock_setting, service_for
from kb.db import connection
from kb.intake.importing import Problem, Rejected, add_rows, staged_from_csv
from kb.intake.validation import TABLES, singular
from kb.reads.exports import REPORTS, write_report
from kb.service.handoff import Client, ServiceError
from kb.timestamps import now_utc, parse_as_of


def add_parsers(commands, common) -> None:
    p = commands.add_parser("import", parents=[common], help="add rows to a table from a CSV file, all or nothing",
                            description="Add every row of FILE to TABLE, or none: one bad row rejects the file. "
                                        "Timestamps without an offset are local time in the support zone.")
    p.add_argument("table", choices=list(TABLES), metavar="TABLE", help=f"one of: {', '.join(TABLES)}")
    p.add_argument("file", type=Path, metavar="FILE.csv", help="CSV with a header line")

    p = commands.add_parser("export", parents=[common], help="write a report as CSV",
                            description="Write a report as of an instant T as CSV.")
    p.add_argument("report", choices=REPORTS, metavar="REPORT", help=f"one of: {', '.join(REPORTS)}")
    p.add_argument("--as-of", help="the instant T, ISO 8601 (default: now); no offset = support zone")
    p.add_argument("--out", type=Path, help="file to write (default: standard output)")


def run_import(args, config) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as e:
        print(f"error: cannot read {args.file}: {e.strerror}", file=sys.stderr)
        return 1
    try:
        service = service_for(args)
        if service is not None:
            written = _import_through(service, args.table, data, str(args.file),
                                      now_utc() if clock_setting(args) else None)
        else:
            staged = staged_from_csv(args.table, data)
            path = connection.db_path(args.db)
            if note := connection.new_database_note(path):
                print(note, file=sys.stderr)
            con = connection.connect(path, wait_seconds=5)
            written = add_rows(con, config, staged, command_line_actor(), permission="import",
                               source=str(args.file))
    except Rejected as e:
        for problem in e.problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        print(f"rejected: {len(e.problems)} problem(s); nothing was written", file=sys.stderr)
        return 1
    print(f"imported {written} {args.table if written != 1 else singular(args.table)} from {args.file}")
    return 0


def _import_through(service: Client, table: str, data: bytes, source: str, now: datetime | None) -> int:
    """``import`` by the service's API, under the clock rule of ``now`` when the command was given one (else the
    service's); Rejected with the same problems as here."""
    query = {"source": source} | ({"now": now.isoformat()} if now is not None else {})
    try:
        return int(service.json("POST", f"/api/v1/import/{table}", query=query, body=data,
                                content_type="text/csv")["rows"])
    except ServiceError as e:
        if e.status == 422 and isinstance(e.body.get("errors"), list):
            raise Rejected([Problem(p.get("line"), p.get("column"), str(p.get("reason")))
                            for p in e.body["errors"]]) from None
        raise


def run_export(args, config) -> int:
    as_of = parse_as_of(args.as_of, config.calendar.zone, name="--as-of") if args.as_of else now_utc()
    service = service_for(args)
    if service is not None:
        rows = _export_through(service, args.report, as_of, args.out)
    else:
        con = connection.connect(connection.db_path(args.db), read_only=True, wait_seconds=5)
        rows = write_report(con, config, args.report, as_of, args.out)
    if args.out:
        print(f"wrote {rows} rows to {args.out}", file=sys.stderr)
    return 0


def _export_through(service: Client, report: str, as_of: datetime, out: Path | None) -> int:
    """``export`` by the service's API: the same CSV, to ``out`` or standard output; returns the row count."""
    import shutil

    with service.request("GET", f"/api/v1/export/{report}", query={"as_of": as_of.isoformat()}) as response:
        rows = int(response.headers.get("X-Rows", "0"))
        if out is None:
            sys.stdout.flush()
            shutil.copyfileobj(response, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            with open(out, "wb") as f:
                shutil.copyfileobj(response, f)
    return rows


COMMANDS = {"import": run_import, "export": run_export}
