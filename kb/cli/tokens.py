"""``token``: make, list and revoke the service's API tokens, here or through the service."""

from __future__ import annotations

import json
import sys
from datetime import datetime

from kb.access import command_line_actor
from kb.cli.handoff import service_for
from kb.config import ROLES
from kb.db import connection
from kb.intake.importing import Problem, Rejected
from kb.service.handoff import ServiceError


def add_parsers(commands, common) -> None:
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


COMMANDS = {"token": run_token}
