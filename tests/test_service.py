"""The service (``service.py``): a real server on a free port, its API, and the command line handing its work to it.

One server serves the whole module (starting one takes seconds); the test of backup and restore starts
its own, since it stops it. Every request goes to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import duckdb
import pytest
from playwright.sync_api import expect
from starlette.applications import Starlette
from starlette.testclient import TestClient

from kb.config import load_config
from kb.service import api, tokens
from kb.store import Store
from tests.fixtures import ADMIN, ROOT, build_fixture, open_page
from tests.servers import dashboard_server, wait_idle

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
    assert 'support_environment_uptime_ratio{environment="E1",kind="dedicated",month="' in text
    assert 'support_environment_error_budget_left_minutes{environment="E1"' in text
    assert 'support_job_consecutive_failures{job="backup"} 0' in text and "support_undelivered_alerts 0" in text
    status, _, body = call(base, "POST", "/api/v1/import/clients", tokens["viewer"],
                           b"client_id,name,tier\nVIEWED,Nope,free\n")
    assert status == 403 and "may not import" in json.loads(body)["error"]


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
    copy = tmp_path / "copy.duckdb"
    done = kb("backup", str(copy), env=env)
    assert done.returncode == 0 and done.stdout.decode().startswith(f"backed up {env['SUPPORT_DB']} to {copy}: ")
    assert kb("backup", str(copy), env=env).returncode == 1  # exists, as without the service
    con = duckdb.connect(str(copy), read_only=True)
    assert con.execute("SELECT name FROM clients WHERE client_id = 'CLI-1'").fetchall() == [("Through The Service",)]
    con.close()
    # the handoff file is readable by exactly those who may read the database
    db_readers = Path(env["SUPPORT_DB"]).stat().st_mode & 0o044
    assert Path(f"{env['SUPPORT_DB']}.service.json").stat().st_mode & 0o777 == 0o600 | db_readers


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
    assert elapsed < 60
    status, headers, _ = call(base, "GET", "/api/v1/export/case-sla", tokens["viewer"])
    assert status == 200


def test_a_backup_taken_while_running_restores(tmp_path):
    db, config_file = build_fixture(tmp_path)
    env = {"SUPPORT_DB": str(db), "SUPPORT_CONFIG": str(config_file)}
    backup = tmp_path / "running.duckdb"
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


def test_the_command_line_says_the_same_with_the_service_and_without(tmp_path):
    db, config_file = build_fixture(tmp_path)
    env = {"SUPPORT_DB": str(db), "SUPPORT_CONFIG": str(config_file)}
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,client_id,received_at,category,subject\nX1,NOPE,2026-11-24 10:00,api_help,Hi\n")
    runs = [("export", "case-sla", "--as-of", PAST), ("export", "refunds", "--as-of", PAST),
            ("import", "cases", str(bad))]
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
    at.button(key="revoke_button").click().run()
    assert not at.exception
    assert at.dataframe[0].value["revoked_at"].iloc[0]
    assert not at.code  # shown once


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
