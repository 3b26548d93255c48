"""The service's HTTP routes beside the dashboard: ``/healthz``, ``/metrics`` and ``/api/v1/`` (rules §10).

Each handler checks the bearer token (``kb.service.auth``) and the role as the pages do, refuses bad input
with a JSON message and writes nothing then, and runs the blocking work (DuckDB, files) in a worker thread
(``run_in_threadpool``) so that the event loop keeps serving the pages meanwhile. Writes go through the
service's one ``Store``, as the pages' do: one writer at a time, audited. An export of the pages' snapshot is
streamed (its header line at once, then its rows in pieces, sorted a piece at a time); one ``as_of`` another
instant is written to a file first, its views being computed whole before their first row.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from kb import health
from kb.access import require
from kb.db import connection
from kb.db.backup import BackupError, backup_target, default_backup_path
from kb.intake.importing import Rejected, staged_from_csv
from kb.intake.validation import TABLES
from kb.reads.exports import REPORTS, snapshot_pieces, write_report
from kb.reads.tokens import token_rows
from kb.service import handoff, metrics, tokens
from kb.service.auth import ApiError, actor_for, caller, guarded, is_local
from kb.timestamps import OutsideYears, TimestampError, parse_as_of

MAX_BODY_MB_DEFAULT = 256
# An import holds its rows in memory at several times the CSV's size while they are checked (a 133 MB file
# peaks near 1.6 GB): the API checks one at a time, and the others wait for their turn with their body on disk.
IMPORT_TURN = threading.Lock()
log = logging.getLogger("kb.service")


def max_body_bytes() -> int:
    """The largest request body taken: ``$SUPPORT_API_MAX_BODY_MB`` megabytes (default 256)."""
    text = os.environ.get("SUPPORT_API_MAX_BODY_MB", "")
    try:
        megabytes = float(text) if text.strip() else MAX_BODY_MB_DEFAULT
    except ValueError:
        megabytes = MAX_BODY_MB_DEFAULT
    return int(max(megabytes, 0.001) * 1024 * 1024)


async def read_body(request: Request, limit: int | None = None) -> bytes:
    """The request body, refused with 413 beyond ``limit`` (before reading it when Content-Length says so)."""
    return b"".join([chunk async for chunk in _body_chunks(request, limit)])


async def body_file(request: Request) -> Path:
    """The request body written to a temporary file as it arrives (never whole in memory), refused with 413
    beyond ``max_body_bytes()``; the caller removes the file."""
    handle, name = tempfile.mkstemp(prefix="kb-import-", suffix=".csv")
    try:
        with os.fdopen(handle, "wb") as file:
            async for chunk in _body_chunks(request, None):
                await run_in_threadpool(file.write, chunk)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


async def _body_chunks(request: Request, limit: int | None) -> AsyncIterator[bytes]:
    """The request body as it arrives, refused with 413 beyond ``limit`` (default ``max_body_bytes()``): at
    once when Content-Length says so, else as soon as it passes it."""
    limit = max_body_bytes() if limit is None else limit
    too_large = ApiError(413, f"the body is larger than the service takes ({limit:,} bytes; "
                              "$SUPPORT_API_MAX_BODY_MB sets it); nothing was written")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise too_large
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        yield chunk


def json_of(data: bytes, what: str) -> object:
    """The JSON value of a request body; ApiError(400) naming what is wrong with it, never a crash (a body of
    100,000 ``[`` is nested beyond what the reader recurses into)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ApiError(400, f"{what} is not JSON the service reads: it is nested more deeply than "
                            f"{sys.getrecursionlimit()} levels") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise ApiError(400, f"{what} is not JSON: {e}") from None


async def healthz(request: Request) -> Response:
    """200 when the store is usable and every pipeline is well (``kb.health``); else 503 naming what
    is not: the store's reason, or each failing job with its last success and its last error. Messages held in
    the mail quarantine, and a configuration file the service refused (it goes on with the rules it had), are
    named under ``attention``, and do not make it 503."""
    store = getattr(request.state, "store", None)
    if store is None:
        reason = getattr(request.state, "error", None) or "the service has no database open"
        return JSONResponse({"status": "unavailable", "reason": health.redact(reason)}, status_code=503)

    def check() -> tuple[int, list, list]:
        with store.reader() as cur:
            version, held = connection.schema_version(cur), health.quarantined(cur)
        return version, pipelines_of(request), held

    try:
        version, pipelines, held = await run_in_threadpool(check)
    except Exception as e:  # the file went away, the disk failed, …: say so, do not crash
        return JSONResponse({"status": "unavailable", "reason": health.redact(connection.first_line(e))},
                            status_code=503)
    zone = store.config.calendar.zone
    failing = [health.described(p, zone) for p in pipelines if p.failing]
    source = getattr(request.state, "config_file", None)
    needs = [health.needs_attention(h, zone) for h in held] + (
        [health.refused_config(source, zone)] if source is not None and source.problem else [])
    attention = {"attention": needs} if needs else {}
    if failing:
        return JSONResponse({"status": "unwell", "schema_version": version, "failing": failing, **attention},
                            status_code=503)
    return JSONResponse({"status": "ok", "schema_version": version, "jobs": [p.job for p in pipelines], **attention})


def pipelines_of(request: Request) -> list:
    """The health of the service's jobs and webhooks (``Jobs.health``; blocking); none without the jobs."""
    jobs = getattr(request.state, "jobs", None)
    return jobs.health() if jobs is not None else []


@guarded
async def metrics_endpoint(request: Request) -> Response:
    store = request.state.store

    def answer() -> str:
        actor_for(request, store)  # any role
        return metrics.metrics_text(store) + metrics.pipeline_text(store, pipelines_of(request))

    try:
        text = await run_in_threadpool(answer)
    except TimestampError as e:
        raise ApiError(503, str(e)) from None
    return PlainTextResponse(text, media_type=metrics.CONTENT_TYPE)


@guarded
async def import_table(request: Request) -> Response:
    store = request.state.store
    table = request.path_params["table"]
    actor = await caller(request)
    require(actor, "import")
    if table not in TABLES:
        raise ApiError(404, f"no table {table!r}: one of {', '.join(TABLES)}")
    now = command_line_now(request, store)
    body = await body_file(request)
    source = request.query_params.get("source") or f"api import/{table}"

    def write() -> int:
        with IMPORT_TURN:
            staged = staged_from_csv(table, body.read_bytes())
            return store.import_rows(staged, actor, source=source[:300], now=now)  # the write lock only for the commit

    try:
        rows = await run_in_threadpool(write)
    except Rejected as e:
        return JSONResponse({"errors": [{"line": p.line, "column": p.column, "reason": p.reason} for p in e.problems]},
                            status_code=422)
    finally:
        body.unlink()
    return JSONResponse({"rows": rows})


def command_line_now(request: Request, store) -> datetime | None:
    """``?now=TS``: the instant the command line takes as now (``--now``, ``$SUPPORT_NOW``), for the clock rule
    of the import it hands over. Only the service's local token may set it: anyone else could date rows in the
    future by it."""
    text = request.query_params.get("now")
    if text is None:
        return None
    if not is_local(request):
        raise ApiError(403, "only the service's local token may set now; nothing was written")
    try:
        return parse_as_of(text, store.config.calendar.zone, name="now")
    except TimestampError as e:
        raise ApiError(400, f"now: {e}; nothing was written") from None


@guarded
async def export_report(request: Request) -> Response:
    store = request.state.store
    report = request.path_params["report"]
    actor = await caller(request)
    require(actor, "audit" if report == "audit" else "read")
    if report not in REPORTS:
        raise ApiError(404, f"no report {report!r}: one of {', '.join(REPORTS)}")
    as_of_text = request.query_params.get("as_of")
    try:
        as_of = parse_as_of(as_of_text, store.config.calendar.zone, name="as_of") if as_of_text else None
    except OutsideYears as e:
        raise ApiError(422, str(e)) from None
    except TimestampError as e:
        raise ApiError(400, str(e)) from None

    zone = store.config.calendar.zone
    if as_of is None:  # the snapshot the pages and /metrics share, streamed as its rows come
        try:
            rows, as_of, pieces = await run_in_threadpool(_snapshot_export, store, report)
        except TimestampError as e:
            raise ApiError(503, str(e)) from None
        headers = {**_export_headers(rows, as_of),
                   "Content-Disposition": f'attachment; filename="{_export_name(report, as_of, zone)}"'}
        return StreamingResponse(pieces, media_type="text/csv; charset=utf-8", headers=headers)

    def write_csv() -> tuple[str, int]:
        # The as-of views computed for that instant: whole before their first row, so written to a file first,
        # and X-Rows says how many rows follow.
        handle, target = tempfile.mkstemp(prefix="kb-export-", suffix=".csv")
        os.close(handle)
        try:
            with store.reader() as cur:
                rows = write_report(cur, store.config, report, as_of, target)
        except BaseException:
            os.unlink(target)
            raise
        return target, rows

    try:
        target, rows = await run_in_threadpool(write_csv)
    except TimestampError as e:
        raise ApiError(503, str(e)) from None
    return FileResponse(target, media_type="text/csv; charset=utf-8", filename=_export_name(report, as_of, zone),
                        headers=_export_headers(rows, as_of), background=BackgroundTask(os.unlink, target))


def _snapshot_export(store, report: str) -> tuple[int, datetime, Iterator[bytes]]:
    """``report`` of the snapshot the pages share (now, at most a minute old, renewed by any write; or
    ``$SUPPORT_AS_OF``'s instant): its row count, its instant, and its CSV in pieces (``snapshot_pieces``)."""
    snapshot = store.snapshot(metrics.frozen_as_of(store))
    pieces = snapshot_pieces(store, snapshot, report)
    return next(pieces), snapshot.as_of, pieces


def _export_name(report: str, as_of: datetime, zone) -> str:
    return f"{report}-{as_of.astimezone(zone).strftime('%Y%m%dT%H%M%S%z')}.csv"


def _export_headers(rows: int, as_of: datetime) -> dict[str, str]:
    return {"X-Rows": str(rows), "X-As-Of": as_of.isoformat()}


@guarded
async def backup(request: Request) -> Response:
    """Back up the database: to ``backups/<db>-<UTC time>.duckdb`` beside it; the service's local token
    (the command line, as the service's own user) may name a file inside that folder
    (``{"path": "<name in backups/>", "replace": …}``), and nowhere else (422). Writes wait a moment
    (``Store.backup``)."""
    store = request.state.store
    actor = await caller(request)
    require(actor, "configure")
    options = await _json_object(request)
    target, replace = default_backup_path(store.path), False
    if options.get("path") is not None:
        if not is_local(request):
            raise ApiError(403, "only the service's local token may name the backup file; others get "
                                f"{target.parent}/")
        if not isinstance(options["path"], str):
            raise ApiError(422, f"path must be a file name inside the backup folder {target.parent}")
        try:
            target = backup_target(store.path, options["path"])
        except BackupError as e:
            raise ApiError(422, f"path: {e}") from None
        replace = options.get("replace") is True
    if target.exists() and not replace:
        raise ApiError(409, f"{target} exists; pass --replace to overwrite it")
    try:
        counts = await run_in_threadpool(store.backup, target, replace=replace)
    except BackupError as e:
        raise ApiError(500, str(e)) from None
    return JSONResponse({"path": str(target), "counts": counts})


@guarded
async def handoff_challenge(request: Request) -> Response:
    """``{"nonce": …}``: the proof that this service wrote the handoff file beside its database
    (``kb.service.handoff.proof``), asked by the command line before it sends the file's token. No token
    needed, and the answer gives none away."""
    local = getattr(request.state, "local_token", None)
    if not local:
        raise ApiError(404, "this service keeps no handoff file")
    nonce = (await _json_object(request)).get("nonce")
    if not isinstance(nonce, str) or not 16 <= len(nonce) <= 256:
        raise ApiError(400, "nonce must be a string of 16 to 256 characters")
    return JSONResponse({"proof": handoff.proof(local, nonce)})


@guarded
async def list_tokens(request: Request) -> Response:
    store = request.state.store
    require(await caller(request), "configure")
    frame = await run_in_threadpool(token_rows, store)
    return JSONResponse({"tokens": [{key: (None if _missing(value) else value.isoformat() if hasattr(value, "isoformat")
                                           else value) for key, value in row.items()}
                                    for row in frame.to_dict("records")]})


@guarded
async def create_token(request: Request) -> Response:
    """``{"name": …, "role": …}``: a new token, in the answer once (201)."""
    store = request.state.store
    actor = await caller(request)
    require(actor, "configure")
    options = await _json_object(request)
    try:
        made = await run_in_threadpool(store.write, tokens.create_token, actor, name=str(options.get("name") or ""),
                                       role=str(options.get("role") or ""))
    except Rejected as e:
        return JSONResponse({"errors": [{"line": p.line, "column": p.column, "reason": p.reason} for p in e.problems]},
                            status_code=422)
    return JSONResponse({"token_id": made.token_id, "name": made.name, "role": made.role, "token": made.token},
                        status_code=201)


@guarded
async def revoke_token(request: Request) -> Response:
    store = request.state.store
    actor = await caller(request)
    require(actor, "configure")
    token_id = request.path_params["token_id"]
    try:
        revoked = await run_in_threadpool(store.write, tokens.revoke_token, actor, token_id)
    except Rejected:
        raise ApiError(404, f"no token {token_id!r}") from None
    return JSONResponse({"token_id": token_id, "revoked": revoked})


async def _json_object(request: Request) -> dict:
    body = await read_body(request, limit=64 * 1024)
    options = json_of(body, "the body (empty or a JSON object)") if body.strip() else {}
    if not isinstance(options, dict):
        raise ApiError(400, "the body must be empty or a JSON object")
    return options


def _missing(value) -> bool:
    try:
        return value is None or bool(value != value)
    except (TypeError, ValueError):
        return False


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
    Route("/api/v1/import/{table}", import_table, methods=["POST"]),
    Route("/api/v1/export/{report}", export_report, methods=["GET"]),
    Route("/api/v1/backup", backup, methods=["POST"]),
    Route(handoff.CHALLENGE_PATH, handoff_challenge, methods=["POST"]),
    Route("/api/v1/tokens", list_tokens, methods=["GET"]),
    Route("/api/v1/tokens", create_token, methods=["POST"]),
    Route("/api/v1/tokens/{token_id}/revoke", revoke_token, methods=["POST"]),
]
