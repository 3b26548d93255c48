"""``python -m kb``: import and export by the data contract, demo data, and upkeep."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from kb import store
from kb.access import command_line_actor
from kb.config import ConfigError, load_config
from kb.importing import Rejected, add_rows, staged_from_csv
from kb.reports import REPORTS, write_report
from kb.timestamps import TimestampError, now_utc, parse_timestamp
from kb.validation import TABLES


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="DuckDB file (default: $SUPPORT_DB, else data/support.duckdb)")
    common.add_argument("--config", help="configuration file (default: $SUPPORT_CONFIG, else support.toml)")

    parser = argparse.ArgumentParser(prog="python -m kb", description="Support SLA data: import, export, demo.",
                                     parents=[common])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    p = commands.add_parser("demo", parents=[common], help="write the demo data set into an empty database",
                            description="Write a deterministic demo data set dated relative to today.")
    p.add_argument("--replace", action="store_true", help="delete the database file first if it exists")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
        return COMMANDS[args.command](args, config)
    except (ConfigError, store.StoreError, TimestampError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def run_import(args, config) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as e:
        print(f"error: cannot read {args.file}: {e.strerror}", file=sys.stderr)
        return 1
    try:
        staged = staged_from_csv(args.table, data)
        con = store.connect(store.db_path(args.db), wait_seconds=5)
        written = add_rows(con, config, staged, command_line_actor(), permission="import", source=str(args.file))
    except Rejected as e:
        for problem in e.problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        print(f"rejected: {len(e.problems)} problem(s); nothing was written", file=sys.stderr)
        return 1
    print(f"imported {written} {args.table} rows from {args.file}")
    return 0


def run_export(args, config) -> int:
    as_of = parse_timestamp(args.as_of, config.calendar.zone) if args.as_of else now_utc()
    con = store.connect(store.db_path(args.db), read_only=True, wait_seconds=5)
    rows = write_report(con, config, args.report, as_of, args.out)
    if args.out:
        print(f"wrote {rows} rows to {args.out}", file=sys.stderr)
    return 0


def run_demo(args, config) -> int:
    path = store.db_path(args.db)
    if path.exists():
        if not args.replace:
            print(f"error: {path} exists; pass --replace to overwrite it with demo data", file=sys.stderr)
            return 1
        path.unlink()
        Path(str(path) + ".wal").unlink(missing_ok=True)
    from kb.demo import write_demo

    con = store.connect(path)
    today = datetime.now(config.calendar.zone).date()
    counts = write_demo(con, config, today, command_line_actor())
    con.close()
    print(f"demo data written to {path}: " + ", ".join(f"{n} {table}" for table, n in counts.items()))
    return 0


COMMANDS = {"import": run_import, "export": run_export, "demo": run_demo}
