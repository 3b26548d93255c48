"""``POST /api/v1/mail/import``: mail archives imported by the service that holds the database.

``python -m kb mail import`` reads mbox files, Maildir folders and ``.eml`` files where they are; while the
service holds the database it hands their messages over instead (``kb.mail.sources.archive_lines``), as
``import`` hands over its CSV. The service stores them as the command would (``kb.mail.archive``: a batch per
transaction, through ``Store.write``, a message the store refuses held in the quarantine by itself), reading
the archive as hostile input: a line that is not one of its messages is reported by itself and the others are
taken. One import at a time, as the CSV imports (``IMPORT_TURN``); the messages are read in this process.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kb.access import require
from kb.mail.archive import import_messages
from kb.mail.intake import COUNTS
from kb.mail.sources import read_archive
from kb.service.api import IMPORT_TURN, body_file, command_line_now
from kb.service.auth import ApiError, caller, guarded


@guarded
async def import_mail(request: Request) -> Response:
    """The messages of the archive in the body (the command sends a large one in parts, a request each);
    ``?trust_team=true``: the team's own archive (``--trust-team``); ``?source=``: what the audit trail names
    (the command's paths). Answers what was done: the summary line and its counts (``outcome``), each message
    skipped or held with its reason, and each line that could not be read."""
    store = request.state.store
    actor = await caller(request)
    require(actor, "import")
    if not store.config.mail.support_addresses:
        raise ApiError(422, "[mail] support_addresses is empty in the service's configuration: without the team's "
                            "addresses every reply would open a case; nothing was written")
    trust_team = request.query_params.get("trust_team", "false")
    if trust_team not in ("true", "false"):
        raise ApiError(400, f"trust_team: {trust_team[:40]!r} is neither true nor false; nothing was written")
    now = command_line_now(request, store)
    source = (request.query_params.get("source") or "mail import through the API")[:300]
    body = await body_file(request)

    def run():
        with IMPORT_TURN, store.reader() as cur:
            return import_messages(cur, store.config, read_archive(body, "the archive"), actor, source=source,
                                   now=now, trust_team=trust_team == "true", write=store.write, parsers=False)

    try:
        outcome, failed = await run_in_threadpool(run)
    finally:
        body.unlink()
    counts = {name: getattr(outcome, name) for name in COUNTS}
    return JSONResponse({"summary": outcome.summary(), "outcome": counts,
                         "skipped": [str(s) for s in outcome.skipped], "held": [str(h) for h in outcome.held],
                         "failed": [str(f) for f in failed]})


ROUTES = [Route("/api/v1/mail/import", import_mail, methods=["POST"])]
