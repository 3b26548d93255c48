"""``python -m kb mail import`` while the service holds the database: the command reads the files and hands their
messages to ``POST /api/v1/mail/import`` (kb/cli/mail_import.py, kb/service/mail_api.py), which stores them as
the command would and reads what it is sent as hostile input."""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path

import pytest

from kb.mail.sources import RawMessage, SourceError, archive_lines, archive_parts, read_archive
from tests.fixtures import build_fixture
from tests.servers import dashboard_server
from tests.test_mail import mbox, message
from tests.test_service import call, kb, make_token


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """``(base URL, env, tokens by role)`` of a running service whose configuration names the team's addresses."""
    folder = tmp_path_factory.mktemp("mail-service")
    db, config_file = build_fixture(folder)
    config_file.write_text(config_file.read_text() + '\n[mail]\nsupport_addresses = ["support@knowru.example"]\n')
    env = {"SUPPORT_DB": str(db), "SUPPORT_CONFIG": str(config_file)}
    tokens = {role: make_token(env, role, f"{role} robot") for role in ("viewer", "lead")}
    with dashboard_server(env, log=folder / "server.log") as base:
        yield base, env, tokens


def case_rows(base: str, token: str) -> dict[str, dict[str, str]]:
    status, _, body = call(base, "GET", "/api/v1/export/case-sla", token)
    assert status == 200, body
    return {row["subject"]: row for row in csv.DictReader(io.StringIO(body.decode()))}


def test_the_command_hands_its_messages_to_the_service_that_holds_the_database(service, tmp_path):
    base, env, tokens = service
    archive = mbox(tmp_path / "backfill.mbox",
                   ("Mon Nov 23 01:00:00 2026", message("Ann <ann@newco.example>", "Disk full", mid="d1@newco",
                                                        date="Mon, 23 Nov 2026 09:00:00 +0800")),
                   ("Mon Nov 23 03:00:00 2026", message("support@knowru.example", "Re: Disk full", mid="d2@k",
                                                        reply_to="d1@newco", date="Mon, 23 Nov 2026 11:00:00 +0800")))
    done = kb("mail", "import", "--trust-team", str(archive), str(tmp_path / "missing.mbox"), env=env)
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, err
    assert "2 messages read: 1 case opened, 1 response recorded, 1 new free client" in out and base in out
    assert f"cannot read {tmp_path / 'missing.mbox'}: no such file or folder" in err
    row = case_rows(base, tokens["lead"])["Disk full"]
    assert (row["client_id"], row["received_at"], row["first_response_at"]) == (
        "ann@newco.example", "2026-11-23T09:00:00+08:00", "2026-11-23T11:00:00+08:00")
    again = kb("mail", "import", "--trust-team", str(archive), env=env)  # each message is taken once
    assert again.returncode == 0 and "0 cases opened, 0 responses recorded" in again.stdout.decode()
    assert "2 already taken" in again.stdout.decode()


def test_the_service_reads_an_archive_as_hostile_and_takes_what_it_can(service):
    base, _, tokens = service
    good = RawMessage(message("Bo <bo@oddco.example>", "Printer jam", mid="p1@oddco"), "inbox.mbox",
                      "inbox.mbox message 1", b"From bo@oddco.example Mon Nov 23 02:00:00 2026")
    odd = RawMessage(message("Cy <cy@oddco.example>", "Fan noise", mid="f1@oddco"), "in\udcffbox",  # a lone surrogate
                     "in\udcffbox message 1")
    body = b"".join([b"not json at all\n", json.dumps({"data": 7, "folder": "x", "where": "y"}).encode() + b"\n",
                     json.dumps({"data": "!!not base64!!", "folder": "x", "where": "y"}).encode() + b"\n",
                     b"[" * 100_000 + b"\n", *archive_lines(iter([good, odd]), [])])
    status, _, answer = call(base, "POST", "/api/v1/mail/import", tokens["viewer"], body)
    assert status == 403
    status, _, answer = call(base, "POST", "/api/v1/mail/import?trust_team=yes", tokens["lead"], body)
    assert status == 400 and "trust_team" in json.loads(answer)["error"]
    status, _, answer = call(base, "POST", "/api/v1/mail/import", tokens["lead"], body)
    done = json.loads(answer)
    assert status == 200, done
    assert [line.split(":")[0] for line in done["failed"]] == [f"the archive line {n}" for n in (1, 2, 3, 4)]
    assert done["summary"].startswith("2 messages read: 2 cases opened")
    assert done["outcome"]["cases_opened"] == 2 and done["skipped"] == done["held"] == []
    cases = case_rows(base, tokens["lead"])
    assert cases["Printer jam"]["client_id"] == "bo@oddco.example" and "Fan noise" in cases


def test_an_archive_gives_back_each_message_and_where_it_came_from(tmp_path):
    messages = [RawMessage(b"Subject: one\r\n\r\nbody\n", "/mail/in.mbox", "/mail/in.mbox message 1",
                           b"From a@b Mon Nov 23 02:00:00 2026"),
                RawMessage(bytes(range(256)), "/mail/Maildir", "/mail/Maildir/cur/2:2,S")]
    failed: list[SourceError] = []
    path = tmp_path / "archive"
    path.write_bytes(b"".join(archive_lines(iter([*messages, SourceError("/gone", "no such file")]), failed)))
    assert list(read_archive(path, "it")) == messages and [str(f) for f in failed] == ["/gone: no such file"]
    line = {"data": base64.b64encode(b"x").decode(), "folder": "in\x1b[31mbox\n", "where": "w" * 900}
    path.write_text(json.dumps(line) + "\n")
    [read] = read_archive(path, "it")
    assert (read.folder, len(read.where)) == ("in[31mbox", 500)  # one line of visible text, at most 500 characters
    assert Path(read.folder).name == "in[31mbox"


def test_a_large_archive_goes_in_parts_each_under_the_limit():
    messages = [RawMessage(bytes([65 + n]) * (100 * n), f"f{n}", f"f{n} message 1") for n in range(1, 20)]
    whole = b"".join(archive_lines(iter(messages), []))
    parts = list(archive_parts(iter(messages), [], 2_000))
    assert b"".join(parts) == whole and len(parts) > 3
    assert all(len(part) <= 2_000 or part.count(b"\n") == 1 for part in parts)  # only a message alone is larger
    assert max(len(part) for part in parts) > 2_000


def test_an_archive_never_carries_a_name_that_cannot_be_stored(tmp_path):
    path = tmp_path / "archive"
    path.write_bytes(b"".join(archive_lines(iter([RawMessage(b"x", "bad\udcffname", "w\udcff")]), [])))
    [read] = read_archive(path, "it")
    assert (read.folder, read.where) == ("bad?name", "w?") and read.folder.encode() == b"bad?name"
