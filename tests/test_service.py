"""The service (``streamlit run dashboard.py``): a real server on a free port, its API, and the command line
handing its work to it.

One server serves the whole module (starting one takes seconds); the test of backup and restore starts
its own, since it stops it. Every request goes to 127.0.0.1.
"""

from __future__ import annotations

import http.server
import json
import os
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from playwright.sync_api import expect
from starlette.applications import Starlette
from starlette.testclient import TestClient

from kb.config import load_config
from kb.intake import writes
from kb.reads import exports
from kb.service import api, metrics, tokens
from kb.service.handoff import handoff_path, read_handoff, write_handoff
from kb.store import Store
from tests.fixtures import ADMIN, ROOT, build_fixture, build_gold_fixture, local, open_page, query, shown
from tests.servers import dashboard_server, free_port, serving, wait_idle

PAST = "2026-11-25T16:30:00+08:00"
MAX_BODY_MB = "0.05"  # ~52 KB: small enough to test the 413 without sending hundreds of megabytes


def kb(*args: str, env: dict[str, str], stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """``python -m kb ARGS`` in a process of its own (the test process must not hold the database)."""
    return subprocess.run([sys.executable, "-m", "kb", *args], cwd=ROOT, env={**os.environ, **env}, input=stdin,
                          capture_output=True, timeout=120)


def call(base: str, method: str, path: str, token: str | None = None, body: bytes | None = None,
         headers: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(base + path, data=body, method=method,
                                     headers={**({"Authorization": f"Bearer {token}"} if token else {}),
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers), e.read()


def make_token(env: dict[str, str], role: str, name: str) -> str:
    done = kb("token", "create", "--role", role, "--name", name, env=env)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """``(base URL, env, tokens by role, folder)`` of one running service over the page tests' store."""
    folder = tmp_path_factory.mktemp("service")
    db, config_file = build_fixture(folder)
    env = {"SUPPORT_DB": str(db), "SUPPORT_CONFIG": str(config_file), "SUPPORT_API_MAX_BODY_MB": MAX_BODY_MB}
    tokens = {role: make_token(env, role, f"{role} robot") for role in ("viewer", "lead", "admin")}
    with dashboard_server(env, log=folder / "server.log") as base:
        yield base, env, tokens, folder


def test_healthz_answers_without_a_token(service):
    base, *_ = service
    status, _, body = call(base, "GET", "/healthz")
    assert status == 200
    assert json.loads(body)["status"] == "ok" and json.loads(body)["schema_version"] >= 3
    assert json.loads(body)["jobs"] == ["backup"]  # the service's jobs are checked: here only the backups are on


def test_a_viewer_reads_metrics_and_may_not_import(service):
    base, _, tokens, _ = service
    status, headers, body = call(base, "GET", "/metrics", tokens["viewer"])
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert 'support_open_cases{tier="enterprise",state="breached"}' in text
    assert 'support_response_met_ratio{tier="enterprise",month="' in text
    assert 'support_met_ratio{metric="resolution",tier="enterprise",month="' in text
    assert 'support_open_targets{metric="next_response",tier="free",state="paused"} 0' in text
    assert 'support_environment_uptime_ratio{environment="E1",kind="dedicated",month="' in text
    assert 'support_environment_error_budget_left_minutes{environment="E1"' in text
    assert 'support_job_consecutive_failures{job="backup"} 0' in text and "support_undelivered_alerts 0" in text
    status, _, body = call(base, "POST", "/api/v1/import/clients", tokens["viewer"],
                           b"client_id,name,tier\nVIEWED,Nope,free\n")
    assert status == 403 and "may not import" in json.loads(body)["error"]


def test_metrics_count_every_target_of_a_policy(tmp_path):
    """ENT's contract names gold (``build_gold_fixture``) at Wed 2026-11-25 16:30: the shares met this month
    and the open counts of every metric, as the Client page and the statement count them."""
    db, config_file = build_gold_fixture(tmp_path)
    store = Store(db, load_config(config_file))
    try:
        text = metrics.render(store, store.snapshot(local("2026-11-25 16:30")))
    finally:
        store.close()
    value = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    month = 'month="2026-11"'
    assert [value[f'support_met_ratio{{metric="{metric}",tier="enterprise",{month}}}']
            for metric in ("first_response", "next_response", "resolution")] == ["0.6", repr(200 / 3 / 100), "0.5"]
    assert [value[f'support_decided_targets{{metric="next_response",tier="enterprise",{month},outcome="{o}"}}']
            for o in ("met", "breached")] == ["2", "1"]  # questions
    assert value[f'support_met_ratio{{metric="resolution",tier="custom",{month}}}'] == "NaN"  # no such target
    # the first response's series as they were
    assert value[f'support_response_met_ratio{{tier="enterprise",{month}}}'] == "0.6"
    assert [value[f'support_response_decided_cases{{tier="enterprise",{month},outcome="{o}"}}']
            for o in ("met", "breached")] == ["3", "2"]
    states = ("breached", "at_risk", "pending", "paused", "met", "no_sla")

    def open_targets(metric: str) -> list[str]:
        return [value[f'support_open_targets{{metric="{metric}",tier="enterprise",state="{state}"}}']
                for state in states]

    assert open_targets("first_response") == ["2", "1", "1", "0", "1", "0"]
    assert [value[f'support_open_cases{{tier="enterprise",state="{state}"}}'] for state in states] == [
        "2", "1", "1", "0", "1", "0"]
    assert open_targets("next_response") == ["0", "0", "1", "0", "0", "0"]  # MET's question of Wed 11:00
    assert open_targets("resolution") == ["0", "0", "4", "1", "0", "0"]  # RISK waits on the client


def test_wrong_missing_and_revoked_tokens_are_refused(service):
    base, env, _, _ = service
    assert call(base, "GET", "/metrics")[0] == 401
    assert call(base, "GET", "/metrics", "kb_not-a-token")[0] == 401
    status, headers, body = call(base, "GET", "/api/v1/export/case-sla", "kb_" + "x" * 43)
    assert status == 401 and headers.get("www-authenticate") == "Bearer" and "error" in json.loads(body)
    doomed = make_token(env, "admin", "short-lived")  # through the running service (handoff)
    assert call(base, "GET", "/metrics", doomed)[0] == 200
    listed = kb("token", "list", env=env)
    assert listed.returncode == 0
    token_id = next(line.split("\t")[0] for line in listed.stdout.decode().splitlines() if "short-lived" in line)
    assert kb("token", "revoke", token_id, env=env).returncode == 0
    assert call(base, "GET", "/metrics", doomed)[0] == 401
    assert "\t" in next(line for line in kb("token", "list", env=env).stdout.decode().splitlines()
                        if line.startswith(token_id))


def test_a_lead_imports_csv_then_it_is_in_the_database(service):
    base, env, tokens, _ = service
    body = b"client_id,name,tier\r\nAPI-1,Imported By API,enterprise\r\nAPI-2,Second,free\r\n"
    status, _, answer = call(base, "POST", "/api/v1/import/clients", tokens["lead"], body)
    assert (status, json.loads(answer)) == (200, {"rows": 2})
    status, _, csv = call(base, "GET", "/api/v1/export/audit", tokens["admin"])
    assert status == 200 and b"token:lead robot,import,clients" in csv


def test_the_sla_tables_import_by_the_api_as_cases_and_contracts_do(service, tmp_path):
    base, env, tokens, _ = service
    policies = b"policy_id,metric,priority,within,calendar\nAPI-GOLD,first_response,urgent,4h,24x7\n" \
               b"API-GOLD,resolution,*,2d,\n"
    pauses = b"case_id,paused_at,resumed_at,reason\nMET,2026-11-24 12:00,2026-11-24 14:00,Waiting on logs\n"
    messages = b"case_id,at,direction,message_id\nMET,2026-11-24 10:00,client,<api-1@ent.example>\n" \
               b"MET,2026-11-25 10:00,team,<api-2@ent.example>\n"
    for table, body in (("policies", policies), ("pauses", pauses), ("messages", messages)):
        assert call(base, "POST", f"/api/v1/import/{table}", tokens["viewer"], body)[0] == 403
        status, _, answer = call(base, "POST", f"/api/v1/import/{table}", tokens["lead"], body)
        assert (status, json.loads(answer)) == (200, {"rows": body.count(b"\n") - 1}), answer
    status, _, answer = call(base, "POST", "/api/v1/import/messages", tokens["lead"], messages)
    assert status == 422 and json.loads(answer)["errors"] == [
        {"line": 2, "column": "message_id", "reason": "'api-1@ent.example' already exists"},
        {"line": 3, "column": "message_id", "reason": "'api-2@ent.example' already exists"}]
    status, _, csv = call(base, "GET", "/api/v1/export/audit", tokens["admin"])
    for table in ("policies", "pauses", "messages"):
        assert f"token:lead robot,import,{table}".encode() in csv
    assert b"MET 2026-11-24T04:00:00+00:00" in csv  # the pause's key: its case and when it began
    later = tmp_path / "pauses.csv"
    later.write_text("case_id,paused_at,resumed_at\nMET,2026-11-24 14:00,\nMET,2026-11-24 13:00,\n")
    done = kb("import", "pauses", str(later), env=env)
    assert done.returncode == 1
    overlaps = ("overlaps a pause of this case already stored (pauses of a case never overlap; one not resumed "
                "runs on)")
    assert done.stderr.decode().splitlines() == [
        f"{later}: line 2, paused_at: overlaps another pause of this case in this file (pauses of a case never "
        "overlap; one not resumed runs on)",
        f"{later}: line 3, paused_at: {overlaps}",
        f"{later}: line 3, paused_at: overlaps another pause of this case in this file (pauses of a case never "
        "overlap; one not resumed runs on)",
        "rejected: 3 problem(s); nothing was written"]
    later.write_text("case_id,paused_at\nMET,2026-11-24 14:00\n")
    done = kb("import", "pauses", str(later), env=env)
    assert (done.returncode, done.stdout.decode()) == (0, f"imported 1 pause from {later}\n"), done.stderr


def test_bad_requests_are_refused_and_write_nothing(service):
    base, _, tokens, _ = service
    lead, admin = tokens["lead"], tokens["admin"]
    status, _, body = call(base, "POST", "/api/v1/import/clients", lead,
                           b"client_id,name,tier\nOK-1,Fine,free\nBAD-1,Wrong,platinum\nBAD 2,,free\n")
    errors = json.loads(body)["errors"]
    assert status == 422
    assert {"line": 3, "column": "tier"} == {k: errors[0][k] for k in ("line", "column")}
    assert any(e["line"] == 4 and e["column"] == "client_id" for e in errors)
    assert all(set(e) == {"line", "column", "reason"} for e in errors)
    status, _, body = call(base, "POST", "/api/v1/import/clients", lead, b"\xff\xfe not text")
    assert status == 422 and json.loads(body)["errors"][0]["line"] == 1
    status, _, body = call(base, "POST", "/api/v1/import/clients", lead, b'client_id,name,tier\n"unclosed,x,free\n')
    assert status == 422
    assert call(base, "POST", "/api/v1/import/planets", lead, b"x\n")[0] == 404
    assert call(base, "GET", "/api/v1/export/planets", lead)[0] == 404
    assert call(base, "GET", "/api/v1/export/case-sla?as_of=yesterday", lead)[0] == 400
    huge = b"client_id,name,tier\n" + b"".join(b"BIG-%d,Big,free\n" % i for i in range(10_000))
    status, _, body = call(base, "POST", "/api/v1/import/clients", lead, huge)
    assert status == 413 and "larger" in json.loads(body)["error"]
    assert call(base, "GET", "/api/v1/export/audit", lead)[0] == 403
    assert call(base, "POST", "/api/v1/backup", lead)[0] == 403
    assert call(base, "POST", "/api/v1/backup", admin, b"[1, 2")[0] == 400
    status, _, body = call(base, "POST", "/api/v1/backup", admin, json.dumps({"path": "/tmp/elsewhere"}).encode())
    assert status == 403  # only the service's local token names the file
    status, _, body = call(base, "POST", f"/api/v1/import/cases?now={PAST.replace('+', '%2B')}", lead,
                           b"case_id,client_id,received_at,category,subject\nNOW-1,ENT,2026-11-24 10:00,api_help,Hi\n")
    assert (status, json.loads(body)) == (403, {"error": "only the service's local token may set now; nothing was "
                                                         "written"})
    status, _, csv = call(base, "GET", "/api/v1/export/case-sla", admin)
    assert status == 200 and b"OK-1" not in csv and b"BIG-1," not in csv
    status, _, csv = call(base, "GET", "/api/v1/export/audit", admin)
    assert b"OK-1" not in csv and b"BIG-1" not in csv
    assert call(base, "GET", "/healthz")[0] == 200


FAR_INSTANTS = ["9999-12-31", "0001-01-01", "2201-01-01T12:00:00Z", "1969-12-31T00:00:00Z"]


def outside(name: str, text: str) -> str:
    return f"{name}: {text!r} is outside 1970–2200, the years the business calendar holds"


def test_an_as_of_outside_the_calendar_years_is_refused_at_once(service):
    base, _, tokens, _ = service

    def export(as_of: str) -> tuple[int, dict, float]:
        started = time.monotonic()
        status, _, body = call(base, "GET", f"/api/v1/export/uptime?as_of={urllib.parse.quote(as_of)}",
                               tokens["viewer"])
        return status, json.loads(body), time.monotonic() - started

    with ThreadPoolExecutor(6) as pool:  # six at once, as a careless script would send them
        answers = list(pool.map(export, FAR_INSTANTS + FAR_INSTANTS[:2]))
    for as_of, (status, body, seconds) in zip(FAR_INSTANTS + FAR_INSTANTS[:2], answers, strict=True):
        assert (status, body) == (422, {"error": outside("as_of", as_of)})
        assert seconds < 2
    assert call(base, "GET", "/api/v1/export/uptime?as_of=2200-12-31T12:00:00Z", tokens["viewer"])[0] == 200


@pytest.mark.parametrize("flag", ["--as-of", "--now"])
@pytest.mark.parametrize("text", FAR_INSTANTS[:2])
def test_the_command_line_refuses_an_instant_outside_the_calendar_years(service, flag, text):
    _, env, _, _ = service
    done = kb("export", "case-sla", flag, text, env=env)
    assert (done.returncode, done.stdout, done.stderr.decode()) == (1, b"", f"error: {outside(flag, text)}\n")


def test_exports_are_spreadsheet_safe_csv(service):
    base, _, tokens, _ = service
    status, headers, csv = call(base, "GET", f"/api/v1/export/case-sla?as_of={PAST.replace('+', '%2B')}",
                                tokens["viewer"])
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert csv.startswith(b"case_id,client_id,tier,category,received_at,first_response_due")
    assert int(headers["x-rows"]) == 6
    lead = tokens["lead"]
    assert call(base, "POST", "/api/v1/import/clients", lead, b"client_id,name,tier\n@FORMULA,At,free\n")[0] == 200
    case = b"case_id,client_id,received_at,category,subject\n-1+1,@FORMULA,2026-11-24 10:00,api_help,Hi\n"
    assert call(base, "POST", "/api/v1/import/cases", lead, case)[0] == 200
    status, _, csv = call(base, "GET", "/api/v1/export/case-sla", tokens["viewer"])
    assert b"\n'-1+1,'@FORMULA,free," in csv
    status, _, csv = call(base, "GET", "/api/v1/export/refunds", tokens["viewer"])
    assert status == 200 and b"K1,ENT,E1" in csv


def test_the_command_line_hands_import_export_and_backup_to_the_service(service, tmp_path):
    base, env, _, folder = service
    good = tmp_path / "clients.csv"
    good.write_text("client_id,name,tier\nCLI-1,Through The Service,custom\n")
    done = kb("import", "clients", str(good), env=env)
    assert (done.returncode, done.stdout.decode()) == (0, f"imported 1 client from {good}\n"), done.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("client_id,name,tier\nCLI-2,Bad,gold\n")
    done = kb("import", "clients", str(bad), env=env)
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [
        f"{bad}: line 2, tier: 'gold' is not one of enterprise, custom, free",
        "rejected: 1 problem(s); nothing was written"]
    done = kb("export", "case-sla", "--as-of", PAST, env=env)
    assert done.returncode == 0 and done.stdout.startswith(b"case_id,") and b"\nOVERDUE,ENT," in done.stdout
    out = tmp_path / "uptime.csv"
    done = kb("export", "uptime", "--as-of", PAST, "--out", str(out), env=env)
    assert done.returncode == 0 and done.stderr.decode().startswith(f"wrote 22 rows to {out}")
    assert out.read_text().count("\n") == 23
    copy = folder / "backups" / "copy.duckdb"
    done = kb("backup", str(copy), env=env)
    assert done.returncode == 0 and done.stdout.decode().startswith(f"backed up {env['SUPPORT_DB']} to {copy}: ")
    assert kb("backup", str(copy), env=env).returncode == 1  # exists, as without the service
    con = duckdb.connect(str(copy), read_only=True)
    assert con.execute("SELECT name FROM clients WHERE client_id = 'CLI-1'").fetchall() == [("Through The Service",)]
    con.close()
    # the handoff file is the service user's alone
    handoff_file = Path(f"{env['SUPPORT_DB']}.service.json")
    assert (handoff_file.stat().st_mode & 0o777, handoff_file.stat().st_uid) == (0o600, os.getuid())


def test_the_handoff_file_is_the_service_users_alone_whatever_the_databases_mode(tmp_path):
    db = tmp_path / "open.duckdb"
    db.write_bytes(b"")
    db.chmod(0o666)  # a database anyone may read (and write)
    victim = tmp_path / "victim.txt"
    victim.write_text("left alone")
    handoff_path(db).symlink_to(victim)  # planted where the file goes
    umask = os.umask(0)
    try:
        written = write_handoff(db, "http://127.0.0.1:1")
    finally:
        os.umask(umask)
    info = handoff_path(db).lstat()
    assert (stat.S_ISREG(info.st_mode), info.st_mode & 0o777, info.st_uid) == (True, 0o600, os.getuid())
    assert victim.read_text() == "left alone"  # replaced, not written through
    assert read_handoff(db) == written
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # A handoff file someone else owns names nobody to trust.
    os.chown(handoff_path(db), 65534, 65534)
    assert read_handoff(db) is None


def test_a_backup_goes_only_into_the_backup_folder(service, tmp_path):
    base, env, tokens, folder = service
    local = json.loads(Path(f"{env['SUPPORT_DB']}.service.json").read_text())["token"]
    (folder / "backups").mkdir(exist_ok=True)
    (folder / "backups" / "out").symlink_to(tmp_path, target_is_directory=True)
    rule = f"is not inside the backup folder {folder / 'backups'}: the service writes backups only there"
    for path in (str(tmp_path / "absolute.duckdb"), "../escaped.duckdb", "nightly/../../escaped.duckdb",
                 "out/through-a-link.duckdb", "", "."):
        status, _, body = call(base, "POST", "/api/v1/backup", local, json.dumps({"path": path}).encode())
        assert (status, rule in json.loads(body)["error"]) == (422, True), (path, body)
    status, _, body = call(base, "POST", "/api/v1/backup", local, json.dumps({"path": 7}).encode())
    assert status == 422 and "backup folder" in json.loads(body)["error"]
    done = kb("backup", str(tmp_path / "elsewhere.duckdb"), env=env)  # handed off, so the rule holds
    assert done.returncode == 1 and rule in done.stderr.decode(), done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [] and not (folder / "escaped.duckdb").exists()
    # A name inside it, in a folder of its own too, is written there.
    status, _, body = call(base, "POST", "/api/v1/backup", local, json.dumps({"path": "nightly/one.duckdb"}).encode())
    assert status == 200 and json.loads(body)["path"] == str(folder / "backups" / "nightly" / "one.duckdb")
    assert (folder / "backups" / "nightly" / "one.duckdb").is_file()
    # Others may not name the file at all.
    status, _, body = call(base, "POST", "/api/v1/backup", tokens["admin"], json.dumps({"path": "x.duckdb"}).encode())
    assert status == 403


class ForeignServer(http.server.ThreadingHTTPServer):
    """Another program on the port a stale handoff file names: it answers every request 200 with what the
    service would answer (rows imported, a backup written, a proof), and keeps every request it was sent."""

    def __init__(self):
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization header
        super().__init__(("127.0.0.1", free_port()), ForeignHandler)

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


class ForeignHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's hook name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append((self.command, self.path, self.headers.get("Authorization")))
        body = json.dumps({"rows": 1, "path": "/elsewhere/b.duckdb", "counts": {"clients": 1}, "proof": "0" * 64,
                           "token_id": "tok-x", "name": "x", "role": "admin", "token": "kb_x"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, *args):
        pass


def dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


@pytest.mark.parametrize("process", ["gone", "alive"])
def test_a_stale_handoff_file_sends_nothing_to_the_program_on_its_port(tmp_path, process):
    db, config_file = build_fixture(tmp_path)
    env = {"SUPPORT_DB": str(db), "SUPPORT_CONFIG": str(config_file)}
    csv = tmp_path / "clients.csv"
    csv.write_text("client_id,name,tier\nSTALE-1,Not Lost,free\n")
    with ForeignServer() as foreign:
        write_handoff(db, f"http://127.0.0.1:{foreign.server_port}")  # as a service killed with SIGKILL left it
        if process == "gone":
            data = json.loads(handoff_path(db).read_text())
            handoff_path(db).write_text(json.dumps({**data, "pid": dead_pid()}))
        # (alive: the pid is this test's process, the foreign program's own)
        held = Store(db, load_config(config_file))  # some other process holds the database
        try:
            for args in (("import", "clients", str(csv)), ("backup", str(tmp_path / "backups" / "b.duckdb")),
                         ("token", "create", "--role", "admin", "--name", "x")):
                done = kb(*args, env=env)
                err = done.stderr.decode()
                assert (done.returncode, done.stdout) == (1, b""), (args, done.stdout, err)
                assert err.startswith(f"error: database {db} is held by another process, and not by the service "
                                      f"that {handoff_path(db)} names (") and "Nothing was done" in err, err
                assert ("is gone" if process == "gone" else "could not prove") in err, err
        finally:
            held.close()
        assert [auth for _, _, auth in foreign.requests if auth] == []  # never sent the token
        assert {path for _, path, _ in foreign.requests} <= {"/api/v1/handoff"}
        assert bool(foreign.requests) is (process == "alive")  # only the challenge, only to a live process
        # Nobody holds the database now: the command line opens it itself.
        done = kb("import", "clients", str(csv), env=env)
        assert (done.returncode, done.stdout.decode()) == (0, f"imported 1 client from {csv}\n"), done.stderr
        assert [auth for _, _, auth in foreign.requests if auth] == []
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT name FROM clients WHERE client_id = 'STALE-1'").fetchall() == [("Not Lost",)]
    con.close()


@pytest.mark.browser
def test_an_import_shows_on_the_next_page_load(service, page):
    base, _, tokens, _ = service
    status, _, _ = call(base, "POST", "/api/v1/import/clients", tokens["lead"],
                        b"client_id,name,tier\nSHOWN,Shown On The Page Ltd,enterprise\n")
    assert status == 200
    page.goto(f"{base}/clients")
    wait_idle(page)
    expect(page.get_by_text("Shown On The Page Ltd").first).to_be_attached()


@pytest.mark.browser
def test_sixteen_clients_hammer_the_api_while_pages_load(service, page):
    base, _, tokens, _ = service
    clients, rounds = 16, 6

    def client(n: int) -> list[int]:
        statuses = []
        for r in range(rounds):
            statuses.append(call(base, "GET", "/metrics", tokens["viewer"])[::2])
            statuses.append(call(base, "GET", "/api/v1/export/case-sla", tokens["viewer"])[::2])
            statuses.append(call(base, "POST", "/api/v1/import/clients", tokens["lead"],
                                 f"client_id,name,tier\nH-{n}-{r},Hammer {n}.{r},free\n".encode())[::2])
        return statuses

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, n) for n in range(clients)]
        loaded = []
        for name in ("", "queue", "uptime", "clients"):
            page.goto(f"{base}/{name}")
            wait_idle(page)
            assert page.locator("[data-testid=stException]").count() == 0
            loaded.append(page.locator("h1").first.inner_text())
        statuses = [s for f in futures for s in f.result(timeout=120)]
    elapsed = time.monotonic() - started
    print(f"\n{len(statuses)} API requests from {clients} clients and 4 pages in {elapsed:.1f} s")
    assert [s for s in statuses if s[0] != 200] == []
    assert len(statuses) == clients * rounds * 3
    assert loaded == ["Overview", "Queue", "Uptime", "Clients and contracts"]
    assert elapsed < 300  # nothing hung (how quick the service is, the bench says)
    status, headers, _ = call(base, "GET", "/api/v1/export/case-sla", tokens["viewer"])
    assert status == 200


def test_a_backup_taken_while_running_restores(tmp_path):
    db, config_file = build_fixture(tmp_path)
    env = {"SUPPORT_DB": str(db), "SUPPORT_CONFIG": str(config_file)}
    backup = tmp_path / "backups" / "running.duckdb"
    with dashboard_server(env, log=tmp_path / "server.log"):
        done = kb("backup", str(backup), env=env)
        assert done.returncode == 0, done.stderr.decode()
    assert not Path(f"{db}.service.json").exists()  # removed at shutdown
    restored = tmp_path / "restored.duckdb"
    done = kb("restore", str(backup), env={**env, "SUPPORT_DB": str(restored)})
    assert done.returncode == 0, done.stderr.decode()
    assert "6 cases" in done.stdout.decode()
    stopped = kb("export", "case-sla", "--as-of", PAST, env=env)
    from_backup = kb("export", "case-sla", "--as-of", PAST, env={**env, "SUPPORT_DB": str(restored)})
    assert stopped.stdout == from_backup.stdout and stopped.returncode == from_backup.returncode == 0


def test_streamlit_run_dashboard_py_is_the_whole_service(tmp_path):
    """What every Streamlit user types starts the service: the API answers, the jobs run, and the command line
    hands its work to it instead of finding the database held."""
    db, config_file = build_fixture(tmp_path)
    env = {**os.environ, "SUPPORT_DB": str(db), "SUPPORT_CONFIG": str(config_file)}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serving([sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.port", str(port),
                  "--server.headless", "true"], f"{base}/_stcore/health", log=tmp_path / "server.log", cwd=ROOT,
                 env=env):
        status, _, body = call(base, "GET", "/healthz")
        assert (status, json.loads(body)["status"], json.loads(body)["jobs"]) == (200, "ok", ["backup"])
        done = kb("backup", str(tmp_path / "backups" / "by-hand.duckdb"), env=env)
        assert done.returncode == 0, done.stderr.decode()
        assert (tmp_path / "backups" / "by-hand.duckdb").exists()


def test_the_command_line_says_the_same_with_the_service_and_without(tmp_path):
    db, config_file = build_fixture(tmp_path)
    env = {"SUPPORT_DB": str(db), "SUPPORT_CONFIG": str(config_file)}
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,client_id,received_at,category,subject\nX1,NOPE,2026-11-24 10:00,api_help,Hi\n")
    after_now = tmp_path / "after-now.csv"  # received after --now, before the real clock
    after_now.write_text("case_id,client_id,received_at,category,subject\nX2,ENT,2026-11-30 10:00,api_help,Hi\n")
    runs = [("export", "case-sla", "--as-of", PAST), ("export", "refunds", "--as-of", PAST),
            ("import", "cases", str(bad)), ("import", "cases", str(after_now), "--now", PAST)]
    without = [kb(*args, env=env) for args in runs]
    with dashboard_server(env, log=tmp_path / "server.log"):
        within = [kb(*args, env=env) for args in runs]
    for args, a, b in zip(runs, without, within, strict=True):
        assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr), args


def test_the_tokens_page_makes_lists_and_revokes(app):
    at, _ = app
    open_page(at, "tokens")
    at.text_input[0].input("grafana")
    at.selectbox[0].select("viewer")
    at.button[0].click().run()
    assert not at.exception
    token = at.code[0].value
    assert token.startswith("kb_") and len(token) > 40
    listed = at.dataframe[0].value
    assert list(listed["name"]) == ["grafana"] and "token_hash" not in listed.columns
    at.selectbox(key="revoke_token").select(listed["token_id"].iloc[0]).run()
    at.button(key="revoke_button").click().run()
    at.button(key="revoke_confirm").click().run()
    assert not at.exception
    assert at.dataframe[0].value["revoked_at"].iloc[0]
    assert not at.code  # shown once
    at.text_input[0].input("Grafana")  # the revoked token's name is free again, once
    at.button[0].click().run()
    at.text_input[0].input("grafana ")
    at.button[0].click().run()
    live = query("SELECT token_id FROM api_tokens WHERE revoked_at IS NULL").token_id.tolist()
    assert [shown(e) for e in at.error] == [
        f"Name: is the name of token {live[0]} already: pick another, or revoke that one first"]
    assert query("SELECT count(*) AS n FROM api_tokens").n[0] == 2 and len(live) == 1


def test_imports_sent_at_once_take_no_more_memory_than_one(tmp_path):
    """Each import holds its rows in memory several times the CSV's size while it is checked: the service
    checks one API import at a time, so four sent at once peak as one does."""
    db, config_file = build_fixture(tmp_path)
    store = Store(db, load_config(config_file))
    lead = store.write(tokens.create_token, ADMIN, name="importer", role="lead").token

    @asynccontextmanager
    async def lifespan(app):
        yield {"store": store}

    bodies = [b"client_id,name,tier\n" + b"".join(b"M%d-%d,Client number %d of batch %d,free\n" % (n, i, i, n)
                                                  for i in range(40_000)) for n in range(5)]
    with TestClient(Starlette(routes=api.ROUTES, lifespan=lifespan)) as client:
        def send(n: int) -> int:
            return client.post("/api/v1/import/clients", content=bodies[n],
                               headers={"Authorization": f"Bearer {lead}"}).status_code

        tracemalloc.start()
        try:
            assert send(0) == 200
            one = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            with ThreadPoolExecutor(4) as pool:
                assert list(pool.map(send, range(1, 5))) == [200] * 4
            four = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    store.close()
    assert four < 1.5 * one, (one, four)


def test_an_export_of_the_snapshot_streams_what_the_command_line_writes(tmp_path, monkeypatch):
    """Without as_of the export is streamed: the header line first, then the rows a few at a time as the query
    yields them (``PIECE_ROWS``), byte for byte what ``python -m kb export`` writes for the same instant, and
    X-Rows counts them."""
    db, config_file = build_fixture(tmp_path)
    config = load_config(config_file)
    store = Store(db, config)
    admin = store.write(tokens.create_token, ADMIN, name="exporter", role="admin").token
    store.write(writes.log_case, config, ADMIN, {"client_id": "ENT", "category": "api_help",
                                                 "subject": '=A "quoted", subject', "received_at": "2026-11-25 09:00"})
    monkeypatch.setattr(exports, "PIECE_ROWS", 2)

    @asynccontextmanager
    async def lifespan(app):
        yield {"store": store}

    with TestClient(Starlette(routes=api.ROUTES, lifespan=lifespan)) as client:
        for report in api.REPORTS:
            with client.stream("GET", f"/api/v1/export/{report}",
                               headers={"Authorization": f"Bearer {admin}"}) as response:
                assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
                assert response.headers["content-disposition"].startswith(f'attachment; filename="{report}-')
                pieces = [piece for piece in response.iter_raw() if piece]
            rows = int(response.headers["x-rows"])
            out = tmp_path / f"{report}.csv"
            with store.reader() as cur:
                assert exports.write_report(cur, config, report, datetime.fromisoformat(response.headers["x-as-of"]),
                                            out) == rows
            assert b"".join(pieces) == out.read_bytes(), report
            assert pieces[0].count(b"\n") == 1 and pieces[0].startswith(out.read_bytes().split(b"\n")[0])
            assert len(pieces) == 1 + -(-rows // 2), report
    store.close()
    assert b'\'=A ""quoted"", subject' in (tmp_path / "case-sla.csv").read_bytes()


def test_a_report_sorted_a_part_at_a_time_is_the_report_sorted_whole(tmp_path):
    """``in_order`` over thousands of rows (parts of several of DuckDB's vectors, read on both cores, from a
    table of many chunks, rows in random order): the same bytes as DuckDB sorting the whole report."""
    import random

    import pyarrow as pa
    import pyarrow.compute as pc

    from kb.db import connection

    db, config_file = build_gold_fixture(tmp_path)
    config = load_config(config_file)
    store = Store(db, config)
    with store.reader(store.snapshot()) as cur:
        tables = {name: cur.sql(f"SELECT * FROM {name}").to_arrow_table() for name in ("case_sla", "case_questions")}
    store.close()
    rng = random.Random(7)
    con = duckdb.connect()
    connection.prepare(con)
    for report, (instant, _) in exports.ORDERED_BY.items():
        source = tables[exports.SOURCES[report]]
        copies = []
        for n in range(12_000 // source.num_rows + 1):  # each copy shifted by whole seconds, some onto one instant
            shift = pa.scalar(rng.randrange(0, 90 * 86_400) * 10**6, pa.duration("us"))
            copy = source.set_column(source.schema.get_field_index(instant), instant,
                                     pc.add(source[instant], shift).cast(source.schema.field(instant).type))
            copies.append(copy.set_column(copy.schema.get_field_index("case_id"), "case_id",
                                          pc.binary_join_element_wise(copy["case_id"], pa.scalar(f"-{n}"), "")))
        rows = pa.concat_tables(copies)
        rows = rows.take(pa.array(rng.sample(range(rows.num_rows), rows.num_rows)))
        rows = pa.Table.from_batches(rows.to_batches(max_chunksize=1_000), rows.schema)
        cur = connection.cursor(con)
        cur.register(exports.SOURCES[report], rows)
        whole = tmp_path / f"{report}.csv"
        cur.execute(f"COPY ({exports.export_sql(cur, report, config)}) TO '{whole}' (FORMAT csv, HEADER)")
        sql = exports.export_sql(cur, report, config, ordered=False)
        pieces = list(exports.csv_pieces(cur, connection.cursor(con), sql, rows=5_000,
                                         parts=exports.in_order(cur, report, rows, sql, rows=5_000)))
        assert rows.num_rows > 12_000 and len(pieces) > 3, report
        assert b"".join(pieces) == whole.read_bytes(), report


def test_the_exports_carry_every_target_and_the_responses_report_streams_too(service):
    base, _, tokens, _ = service
    as_of = PAST.replace("+", "%2B")
    status, _, body = call(base, "GET", f"/api/v1/export/case-sla?as_of={as_of}", tokens["viewer"])
    header = body.decode().splitlines()[0].split(",")
    assert status == 200 and {"priority", "policy_id", "sla_state", "next_response_due", "next_response_state",
                              "resolution_due", "resolution_state"} <= set(header)
    message = b"case_id,at,direction\nMET,2026-11-26 09:00,client\n"  # a question after the first response
    assert call(base, "POST", "/api/v1/import/messages", tokens["lead"], message)[0] == 200
    status, headers, body = call(base, "GET", "/api/v1/export/responses", tokens["viewer"])
    lines = body.decode().splitlines()
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert lines[0].split(",")[:5] == ["case_id", "asked_at", "due", "responded_at", "state"]
    assert int(headers["x-rows"]) == len(lines) - 1 == 1 and lines[1].startswith("MET,2026-11-26T09:00:00+08:00,")
