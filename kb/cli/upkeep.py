"""Upkeep of the database file: ``demo`` and ``generate`` write data sets, ``bench`` measures, ``backup`` and
``restore`` copy the file out and back."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kb.access import command_line_actor
from kb.cli.handoff import service_for
from kb.db import connection
from kb.timestamps import now_utc, parse_as_of


def add_parsers(commands, common) -> None:
    p = commands.add_parser("demo", parents=[common], help="write the demo data set into an empty database",
                            description="Write a deterministic demo data set dated relative to today.")
    p.add_argument("--replace", action="store_true", help="delete the database file first if it exists")

    p = commands.add_parser(
        "generate", parents=[common], help="write a large synthetic data set into an empty database",
        description="Write a synthetic support operation of any size, for load and benchmarks: tiers and "
                    "categories in believable proportions, arrivals in business hours with weekend and holiday "
                    "troughs, long-tailed response times, outages and maintenance windows, varied contracts; "
                    "priorities, a few policies (one on each named calendar of the configuration) named by some "
                    "contracts, about three messages per case and pauses on about a fifth of them. The same seed, "
                    "sizes and --until give the same rows. Ids start with 'G-'.")
    p.add_argument("--cases", type=_positive, default=100_000, help="number of cases (default: 100000)")
    p.add_argument("--environments", type=_positive, default=500, help="number of environments (default: 500)")
    p.add_argument("--years", type=_positive, default=3, help="years of history up to --until (default: 3)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    p.add_argument("--until", help="the last instant of the data, ISO 8601 (default: now); no offset = support zone")
    p.add_argument("--mbox", type=Path, metavar="FILE",
                   help="write a synthetic support mailbox to this mbox file instead (kb/tools/mbox.py); no database")
    p.add_argument("--messages", type=_positive, default=10_000, help="messages in --mbox (default: 10000)")
    p.add_argument("--days", type=_positive, default=90, help="days of mail up to --until in --mbox (default: 90)")
    p.add_argument("--replace", action="store_true", help="delete the database file first if it exists")

    p = commands.add_parser(
        "bench", parents=[common], help="measure the engine and every page on generated data sets",
        description="For each --cases size: generate a data set in a temporary folder, then measure in a fresh "
                    "process the as-of views over all cases, environments and contracts, a per-row Python "
                    "baseline for deadlines, every page rendered cold and warm, logging a case (also while the "
                    "service's jobs run), the API's export, importing a synthetic mailbox, and peak memory. The "
                    "configuration gets --calendars named calendars, each with a dated change. "
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
    p.add_argument("--calendars", type=_count, default=20,
                   help="named calendars added to the configuration, each with a dated change, with a policy on "
                        "each (default: 20)")
    p.add_argument("--mail-messages", type=_count, default=100_000, metavar="N",
                   help="messages of the synthetic mailbox imported into each size's store; 0: none "
                        "(default: 100000)")
    p.add_argument("--workdir", type=Path, help="folder for the temporary databases (default: the system's)")
    p.add_argument("--out", type=Path, help="also write the table to this file")

    p = commands.add_parser(
        "backup", parents=[common], help="copy the database, consistently, to a new DuckDB file",
        description="Copy the database to PATH as one DuckDB file (a support database: --db PATH opens it). "
                    "While the service runs it holds the file, and takes the backup itself (handed to it): PATH must "
                    "then be inside the backup folder, backups/ beside the database. "
                    "With --server the backup stays on that server, in its backups/ folder; PATH is not used.")
    p.add_argument("path", type=Path, metavar="PATH", help="the backup file to write")
    p.add_argument("--replace", action="store_true", help="overwrite PATH if it exists")

    p = commands.add_parser(
        "restore", parents=[common], help="bring a backup back as the database, all or nothing",
        description="Copy BACKUP into a temporary file beside the database, check it, and rename it into place. "
                    "Refuses a database that holds rows unless --replace (the old file is then kept beside it "
                    "as <db>.before-restore-<time>). Stop the dashboard first.")
    p.add_argument("backup", type=Path, metavar="BACKUP", help="a file written by `python -m kb backup`")
    p.add_argument("--replace", action="store_true", help="replace a database that holds rows")


def _positive(text: str) -> int:
    return _whole_number(text, 1, "must be at least 1")


def _count(text: str) -> int:
    return _whole_number(text, 0, "must be 0 or more")


def _whole_number(text: str, least: int, rule: str) -> int:
    """``text`` as a whole number (``_`` allowed between digits) of at least ``least``; else an argparse error
    saying ``rule``."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{text!r} {rule}")
    return value


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
    today = now_utc().astimezone(config.calendar.zone).date()  # --now sets the demo's today too
    counts = write_demo(con, config, today, command_line_actor())
    con.close()
    print(f"demo data written to {path}: " + ", ".join(f"{n} {table}" for table, n in counts.items()))
    return 0


def run_generate(args, config) -> int:
    import time

    until = parse_as_of(args.until, config.calendar.zone, name="--until") if args.until else now_utc()
    if args.mbox:
        from kb.tools.mbox import run_generate_mbox

        return run_generate_mbox(args, config, until)
    from kb.tools.generate import ProgressBar, generate

    path = connection.db_path(args.db)
    if not _make_room(path, args.replace, "generated data"):
        return 1
    if args.environments < 2:
        print("error: --environments must be at least 2 (one dedicated, one shared)", file=sys.stderr)
        return 1
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
    from kb.db.backup import backup_file, backup_name

    db = connection.db_path(args.db)
    service = service_for(args)
    if service is not None and args.server:  # a service elsewhere keeps the file in its own backups/ folder
        answer = service.json("POST", "/api/v1/backup")
        print(f"backed up the database of {args.server} to {answer['path']} on that server: "
              + ", ".join(f"{n:,} {table}" for table, n in answer["counts"].items()))
        return 0
    if service is not None:  # the service writes only into its backup folder: PATH must be a file there
        name = backup_name(db, args.path)
        if args.path.exists() and not args.replace:
            print(f"error: {args.path} exists; choose another name (or pass --replace)", file=sys.stderr)
            return 1
        answer = service.json("POST", "/api/v1/backup", content_type="application/json",
                              body=json.dumps({"path": name, "replace": args.replace}).encode())
        counts = answer["counts"]
        print(f"backed up {db} to {args.path}: " + ", ".join(f"{n:,} {table}" for table, n in counts.items()))
        return 0
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


COMMANDS = {"demo": run_demo, "generate": run_generate, "bench": run_bench, "backup": run_backup,
            "restore": run_restore}
