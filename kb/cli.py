"""``python -m kb``: import and export by the data contract, demo data, and upkeep."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path

import duckdb

from kb.access import command_line_actor
from kb.config import ROLES, ConfigError, load_config
from kb.db import connection
from kb.intake.importing import Problem, Rejected, add_rows, staged_from_csv
from kb.intake.validation import TABLES
from kb.reads.exports import REPORTS, write_report
from kb.service.handoff import Client, ServiceError, client_for, running_service
from kb.timestamps import TimestampError, now_utc, parse_as_of, set_now


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
    flags.add_argument("--server", default=default, metavar="URL",
                       help="import, export and backup through the service at URL (default: the service holding "
                            "--db, found through the file it keeps beside it, when there is one)")
    flags.add_argument("--token", default=default, metavar="T",
                       help="the API token for --server (default: $SUPPORT_TOKEN)")
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
    p.add_argument("--mbox", type=Path, metavar="FILE",
                   help="write a synthetic support mailbox to this mbox file instead (kb/tools/mbox.py); no database")
    p.add_argument("--messages", type=_positive, default=10_000, help="messages in --mbox (default: 10000)")
    p.add_argument("--days", type=_positive, default=90, help="days of mail up to --until in --mbox (default: 90)")
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

    p = commands.add_parser("token", parents=[common], help="make, list and revoke API tokens",
                            description="API tokens for the service's /api/v1/ and /metrics. A token is printed "
                                        "once when made; the database keeps only its SHA-256 hash.")
    actions = p.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    q = actions.add_parser("create", parents=[common], help="make a token and print it, once")
    q.add_argument("--role", required=True, choices=ROLES, help=f"what it may do: one of {', '.join(ROLES)}")
    q.add_argument("--name", required=True, help="who or what uses it (shown in the list and the audit trail)")
    actions.add_parser("list", parents=[common], help="every token: id, name, role, created, last used, revoked")
    q = actions.add_parser("revoke", parents=[common], help="revoke a token by its id")
    q.add_argument("token_id", metavar="ID", help="the token's id (tok-…), as `token list` shows it")

    p = commands.add_parser(
        "statement", parents=[common], help="write a client's monthly SLA statement as a PDF",
        description="Write one client's statement for one month: every case's first response, uptime per "
                    "environment with a daily chart and the incidents, the credits owed and the contract terms "
                    "behind them. Its numbers are the case-sla, uptime and refunds exports for that client and "
                    "month, as of --as-of (default: now).")
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

    from kb.mail.commands import add_parser as add_mail_parser

    add_mail_parser(commands, common)
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
        clock = _clock_setting(args)
        if clock:
            set_now(parse_as_of(clock, config.calendar.zone, name="--now" if args.now else "SUPPORT_NOW"))
        if args.server and args.command not in HANDED_OFF:
            print(f"error: --server works with {', '.join(HANDED_OFF)}, not {args.command}", file=sys.stderr)
            return 1
        return COMMANDS[args.command](args, config)
    except (ConfigError, connection.StoreError, TimestampError, ServiceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (duckdb.Error, OSError) as e:  # a full disk is said in words, as the forms say it
        message = connection.disk_full_words(e, connection.db_path(args.db))
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1


def _clock_setting(args) -> str | None:
    """``--now``, else ``$SUPPORT_NOW``: the instant taken as now, as given; None: the clock."""
    return args.now or os.environ.get("SUPPORT_NOW") or None


HANDED_OFF = ("import", "export", "backup", "token")


def service_for(args) -> Client | None:
    """The service to hand the command's work to: ``--server``, else the running service that holds the
    database and proves it (``kb.service.handoff.running_service``), else None: do the work here."""
    if args.server:
        return client_for(args.server, args.token or os.environ.get("SUPPORT_TOKEN", ""))
    return running_service(connection.db_path(args.db))


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
                                      now_utc() if _clock_setting(args) else None)
        else:
            staged = staged_from_csv(args.table, data)
            con = connection.connect(connection.db_path(args.db), wait_seconds=5)
            written = add_rows(con, config, staged, command_line_actor(), permission="import",
                               source=str(args.file))
    except Rejected as e:
        for problem in e.problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        print(f"rejected: {len(e.problems)} problem(s); nothing was written", file=sys.stderr)
        return 1
    print(f"imported {written} {args.table if written != 1 else args.table[:-1]} from {args.file}")
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


def run_statement(args, config) -> int:
    from kb.engine.asof import open_views
    from kb.statement.content import UnknownClient, month_days, statement
    from kb.statement.render import statement_pdf

    try:
        month_days(args.month)
    except ValueError:
        print(f"error: --month {args.month!r} is not a month like 2026-11", file=sys.stderr)
        return 1
    as_of = parse_as_of(args.as_of, config.calendar.zone, name="--as-of") if args.as_of else now_utc()
    con = connection.connect(connection.db_path(args.db), read_only=True, wait_seconds=5)
    try:
        open_views(con, config, as_of)
        content = statement(con, config, args.client, args.month, as_of)
    except UnknownClient as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        con.close()
    args.out.write_bytes(statement_pdf(content, config.calendar.timezone))
    print(f"wrote the {args.month} statement of {args.client} to {args.out}: {content.totals['cases']} cases, "
          f"{len(content.uptime)} environments, credits " +
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


def run_token(args, config) -> int:
    from kb.reads.tokens import token_rows
    from kb.service import tokens

    service = service_for(args)
    con = None if service is not None else connection.connect(
        connection.db_path(args.db), read_only=args.token_command == "list", wait_seconds=5)
    try:
        if args.token_command == "create":
            if service is not None:
                made = tokens.Created(**service.json("POST", "/api/v1/tokens", content_type="application/json",
                                                     body=json.dumps({"name": args.name, "role": args.role}).encode()))
            else:
                made = tokens.create_token(con, command_line_actor(), name=args.name, role=args.role)
            print(made.token)
            print(f"token {made.token_id} ({made.role}) for {made.name}: shown once, only its hash is kept",
                  file=sys.stderr)
        elif args.token_command == "revoke":
            if service is not None:
                revoked = service.json("POST", f"/api/v1/tokens/{args.token_id}/revoke")["revoked"]
            else:
                revoked = tokens.revoke_token(con, command_line_actor(), args.token_id)
            print(f"revoked {args.token_id}" if revoked else f"{args.token_id} was revoked already")
        else:
            import pandas as pd

            if service is not None:
                frame = pd.DataFrame(service.json("GET", "/api/v1/tokens")["tokens"], columns=TOKEN_COLUMNS)
                for column in ("created_at", "last_used_at", "revoked_at"):
                    frame[column] = pd.to_datetime(frame[column], utc=True)
            else:
                frame = token_rows(con)
            print("\t".join(TOKEN_COLUMNS))
            for row in frame[list(TOKEN_COLUMNS)].itertuples(index=False):
                print("\t".join(_cell_text(value, config.calendar.zone) for value in row))
    except Rejected as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except ServiceError as e:
        if e.status == 422 and isinstance(e.body.get("errors"), list):
            for problem in e.body["errors"]:
                print(f"error: {Problem(problem.get('line'), problem.get('column'), str(problem.get('reason')))}",
                      file=sys.stderr)
            return 1
        raise
    finally:
        if con is not None:
            con.close()
    return 0


TOKEN_COLUMNS = ("token_id", "name", "role", "created_at", "created_by", "last_used_at", "revoked_at")


def _cell_text(value, zone) -> str:
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, datetime | pd.Timestamp):
        return pd.Timestamp(value).tz_convert(zone).isoformat(timespec="seconds")
    return str(value)


COMMANDS = {"import": run_import, "export": run_export, "demo": run_demo, "generate": run_generate,
            "bench": run_bench, "backup": run_backup, "restore": run_restore, "token": run_token, "alerts": run_alerts,
            "statement": run_statement}


def run_mail(args, config) -> int:
    from kb.mail.commands import run_mail as run

    return run(args, config)


COMMANDS["mail"] = run_mail
