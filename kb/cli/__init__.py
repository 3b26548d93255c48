"""``python -m kb``: the parser and the dispatch. The commands are in one module per group: ``data.py`` (import,
export), ``upkeep.py`` (demo, generate, bench, backup, restore), ``tokens.py``, ``outgoing.py`` (statement,
alerts), ``months.py`` (close-month, reopen-month), and ``kb/mail/commands.py`` (mail)."""

from __future__ import annotations

import argparse
import sys

import duckdb

from kb.cli import data, months, outgoing, tokens, upkeep
from kb.cli.handoff import HANDED_OFF, clock_setting, service_for
from kb.config import ConfigError, load_config
from kb.db import connection
from kb.service.handoff import ServiceError
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
                       help="import, export, backup and mail import through the service at URL (default: the "
                            "service holding --db, found through the file it keeps beside it, when there is one)")
    flags.add_argument("--token", default=default, metavar="T",
                       help="the API token for --server (default: $SUPPORT_TOKEN)")
    return flags


def build_parser() -> argparse.ArgumentParser:
    common = _global_flags(argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="python -m kb", description="Support SLA data: import, export, demo.",
                                     parents=[_global_flags(None)])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data.add_parsers(commands, common)
    upkeep.add_parsers(commands, common)
    tokens.add_parsers(commands, common)
    outgoing.add_parsers(commands, common)
    months.add_parsers(commands, common)

    from kb.mail.commands import add_parser as add_mail_parser

    add_mail_parser(commands, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
        clock = clock_setting(args)
        if clock:
            set_now(parse_as_of(clock, config.calendar.zone, name="--now" if args.now else "SUPPORT_NOW"))
        command = " ".join(filter(None, (args.command, getattr(args, "mail_command", None))))
        if args.server and command not in HANDED_OFF:
            print(f"error: --server works with {', '.join(HANDED_OFF)}, not {command}", file=sys.stderr)
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


COMMANDS = {**data.COMMANDS, **upkeep.COMMANDS, **tokens.COMMANDS, **outgoing.COMMANDS, **months.COMMANDS}


def run_mail(args, config) -> int:
    if args.mail_command == "import" and (service := service_for(args)) is not None:
        from kb.cli.mail_import import import_through

        return import_through(service, args.paths, trust_team=args.trust_team,
                              now=now_utc() if clock_setting(args) else None)
    from kb.mail.commands import run_mail as run

    return run(args, config)


COMMANDS["mail"] = run_mail
