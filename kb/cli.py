"""``python -m kb``: import and export by the data contract, demo data, and upkeep."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path

from kb.access import command_line_actor
from kb.config import ConfigError, load_config
from kb.db import connection
from kb.intake.importing import Rejected, add_rows, staged_from_csv
from kb.intake.validation import TABLES
from kb.reads.exports import REPORTS, write_report
from kb.timestamps import TimestampError, now_utc, parse_timestamp, set_now


def _global_flags(default) -> argparse.ArgumentParser:
    """The flags every command takes, before or after its name. After it they default to SUPPRESS, so
    that a subcommand does not overwrite with its default what was given before it."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--db", default=default, help="DuckDB file (default: $SUPPORT_DB, else data/support.duckdb)")
    flags.add_argument("--config", default=default,
                       help="configuration file (default: $SUPPORT_CONFIG, else support.toml)")
    flags.add_argument("--now", default=default, metavar="TS",
                       help="the instant taken as now, ISO 8601 (default: $SUPPORT_NOW, else the clock); for "
                            "tests and replays")
    return flags


def build_parser() -> argparse.ArgumentParser:
    common = _global_flags(argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="python -m kb", description="Support SLA data: import, export, demo.",
                                     parents=[_global_flags(None)])
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

    p = commands.add_parser(
        "generate", parents=[common], help="write a large synthetic data set into an empty database",
        description="Write a synthetic support operation of any size, for load and benchmarks: tiers and "
                    "categories in believable proportions, arrivals in business hours with weekend and holiday "
                    "troughs, long-tailed response times, outages and maintenance windows, varied contracts. "
                    "The same seed, sizes and --until give the same rows. Ids start with 'G-'.")
    p.add_argument("--cases", type=_positive, default=100_000, help="number of cases (default: 100000)")
    p.add_argument("--environments", type=_positive, default=500, help="number of environments (default: 500)")
    p.add_argument("--years", type=_positive, default=3, help="years of history up to --until (default: 3)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    p.add_argument("--until", help="the last instant of the data, ISO 8601 (default: now); no offset = support zone")
    p.add_argument("--replace", action="store_true", help="delete the database file first if it exists")

    p = commands.add_parser(
        "bench", parents=[common], help="measure the engine and every page on generated data sets",
        description="For each --cases size: generate a data set in a temporary folder, then measure in a fresh "
                    "process the as-of views over all cases, environments and contracts, a per-row Python "
                    "baseline for deadlines, every page rendered cold and warm, logging a case, and peak memory. "
                    "Prints a Markdown table of medians. --db is not used: each size gets its own file.")
    p.add_argument("--cases", type=_positive, nargs="+", default=[10_000, 100_000, 1_000_000],
                   help="data set sizes (default: 10000 100000 1000000)")
    p.add_argument("--environments", type=_positive, default=500, help="environments (default: 500)")
    p.add_argument("--years", type=_positive, default=3, help="years of history (default: 3)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    p.add_argument("--runs", type=_positive, default=3, help="runs per median (default: 3)")
    p.add_argument("--writes", type=_positive, default=20, help="cases logged for the write timing (default: 20)")
    p.add_argument("--sample", type=_positive, default=2000,
                   help="cases computed by the per-row Python baseline, projected to all (default: 2000)")
    p.add_argument("--pages", nargs="+", metavar="PAGE", help="only these pages (default: every page)")
    p.add_argument("--workdir", type=Path, help="folder for the temporary databases (default: the system's)")
    p.add_argument("--out", type=Path, help="also write the table to this file")

    p = commands.add_parser(
        "backup", parents=[common], help="copy the database, consistently, to a new DuckDB file",
        description="Copy the database to PATH as one DuckDB file (a support database: --db PATH opens it). "
                    "While the dashboard runs it holds the file: back up from its Import and export page "
                    "instead, or stop it first.")
    p.add_argument("path", type=Path, metavar="PATH", help="the backup file to write")
    p.add_argument("--replace", action="store_true", help="overwrite PATH if it exists")

    p = commands.add_parser(
        "restore", parents=[common], help="bring a backup back as the database, all or nothing",
        description="Copy BACKUP into a temporary file beside the database, check it, and rename it into place. "
                    "Refuses a database that holds rows unless --replace (the old file is then kept beside it "
                    "as <db>.before-restore-<time>). Stop the dashboard first.")
    p.add_argument("backup", type=Path, metavar="BACKUP", help="a file written by `python -m kb backup`")
    p.add_argument("--replace", action="store_true", help="replace a database that holds rows")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
        now = args.now or os.environ.get("SUPPORT_NOW")
        if now:
            set_now(parse_timestamp(now, config.calendar.zone))
        return COMMANDS[args.command](args, config)
    except (ConfigError, connection.StoreError, TimestampError) as e:
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
        con = connection.connect(connection.db_path(args.db), wait_seconds=5)
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
    con = connection.connect(connection.db_path(args.db), read_only=True, wait_seconds=5)
    rows = write_report(con, config, args.report, as_of, args.out)
    if args.out:
        print(f"wrote {rows} rows to {args.out}", file=sys.stderr)
    return 0


def _make_room(path: Path, replace: bool, what: str) -> bool:
    """Delete an existing database file (and its log) when ``replace``; say so and refuse otherwise,
    and refuse always while another process (the running dashboard) holds it."""
    if path.exists():
        if not replace:
            print(f"error: {path} exists; pass --replace to overwrite it with {what}", file=sys.stderr)
            return False
        try:
            holder = connection.connect(path)  # holds the file while it goes, so no one else can be writing it
        except connection.StoreBusy:
            print(f"error: {path} is held by another process (most likely the running dashboard); stop it "
                  f"before replacing the database with {what}. Nothing was changed", file=sys.stderr)
            return False
        except connection.StoreError:
            holder = None  # not a support database: nobody can be using it as one
        try:
            path.unlink()
            Path(str(path) + ".wal").unlink(missing_ok=True)
        finally:
            if holder is not None:
                holder.close()
    return True


def run_demo(args, config) -> int:
    path = connection.db_path(args.db)
    if not _make_room(path, args.replace, "demo data"):
        return 1
    from kb.tools.demo import write_demo

    con = connection.connect(path)
    today = datetime.now(config.calendar.zone).date()
    counts = write_demo(con, config, today, command_line_actor())
    con.close()
    print(f"demo data written to {path}: " + ", ".join(f"{n} {table}" for table, n in counts.items()))
    return 0


def run_generate(args, config) -> int:
    import time

    from kb.tools.generate import ProgressBar, generate

    path = connection.db_path(args.db)
    if not _make_room(path, args.replace, "generated data"):
        return 1
    if args.environments < 2:
        print("error: --environments must be at least 2 (one dedicated, one shared)", file=sys.stderr)
        return 1
    until = parse_timestamp(args.until, config.calendar.zone) if args.until else now_utc()
    started = time.perf_counter()
    bar = ProgressBar()
    con = connection.connect(path)
    try:
        counts = generate(con, config, command_line_actor(), cases=args.cases, environments=args.environments,
                          years=args.years, seed=args.seed, until=until, progress=bar)
    finally:
        con.close()
        bar.finish()
    print(f"generated in {time.perf_counter() - started:.1f} s into {path}: "
          + ", ".join(f"{n:,} {table}" for table, n in counts.items()))
    return 0


def run_bench(args, config) -> int:
    from kb.tools.bench import run

    return run(args, config)


def run_backup(args, config) -> int:
    from kb.db.backup import backup_file

    db = connection.db_path(args.db)
    if not db.exists():
        print(f"error: database {db} does not exist", file=sys.stderr)
        return 1
    counts = backup_file(db, args.path, replace=args.replace)
    print(f"backed up {db} to {args.path}: " + ", ".join(f"{n:,} {table}" for table, n in counts.items()))
    return 0


def run_restore(args, config) -> int:
    from kb.db.backup import restore

    result = restore(args.backup, connection.db_path(args.db), replace=args.replace)
    print(f"restored {args.backup} into {result.path}: "
          + ", ".join(f"{n:,} {table}" for table, n in result.counts.items()))
    if result.kept:
        print(f"the previous database is kept as {result.kept}")
    return 0


COMMANDS = {"import": run_import, "export": run_export, "demo": run_demo, "generate": run_generate,
            "bench": run_bench, "backup": run_backup, "restore": run_restore}
