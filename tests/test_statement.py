"""The monthly statement (rules §11): a PDF whose numbers are the exports' for that client and month."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader

from kb.engine.targets import STATES
from kb.formats import WORDS
from tests.fixtures import build_gold_fixture, local
from tests.servers import SCREENSHOTS

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-11-26T12:00:00+08:00"
AS_OF = "2026-11-26T12:00:00+08:00"


def kb(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kb", *args], cwd=ROOT, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    db = tmp_path_factory.mktemp("statement") / "demo.duckdb"
    made = kb("demo", "--db", str(db), "--now", NOW)
    assert made.returncode == 0, made.stderr
    return db


def export(db: Path, report: str) -> list[dict]:
    out = kb("export", report, "--db", str(db), "--as-of", AS_OF, "--now", NOW)
    assert out.returncode == 0, out.stderr
    return list(csv.DictReader(io.StringIO(out.stdout)))


def shown_pct(value: str) -> str:
    """A percentage of the export as the statement shows it: two decimals, rounded down."""
    return str(Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_FLOOR))


def month_name(month: str) -> str:
    return datetime.strptime(month, "%Y-%m").strftime("%b %Y")


def pdf_text(path: Path) -> str:
    return " ".join(" ".join(page.extract_text().split()) for page in PdfReader(path).pages)


def copied_text(path: Path) -> str:
    """The text layer as Poppler reads it (what a PDF viewer copies and searches): unlike pypdf, it keeps
    invisible characters such as the bidirectional isolates U+2068 and U+2069."""
    out = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True,
                         text=True, timeout=60)
    return " ".join(out.stdout.split())


def results_row(label: str, counted: str, states: list[str]) -> str:
    """A target's row of the statement's results: how many were due, by state as ``STATES`` orders them (but
    no_sla, which is never due), and the share met of those decided."""
    met, breached = states.count("met"), states.count("breached")
    share = (f"{shown_pct(str(Decimal(100 * met) / (met + breached)))} % {met} of {met + breached} met"
             if met + breached else "— none decided")
    by_state = " ".join(str(states.count(state)) for state in STATES if state != "no_sla")
    return f"{label} {len(states)} {counted if len(states) != 1 else counted[:-1]} {by_state} {share}"


@pytest.mark.parametrize(("client", "month"), [("EVER", "2026-10"), ("ACME", "2026-11")])
def test_the_statement_matches_the_exports_to_the_cent_and_the_minute(demo, tmp_path, client, month):
    out = tmp_path / f"{client}-{month}.pdf"
    made = kb("statement", "--db", str(demo), "--client", client, "--month", month, "--as-of", AS_OF,
              "--out", str(out), "--now", NOW)
    assert made.returncode == 0, made.stderr
    text = pdf_text(out)
    cases = [r for r in export(demo, "case-sla") if r["client_id"] == client]
    questions = [r for r in export(demo, "responses") if r["client_id"] == client]
    assert f"Cases received {sum(r['received_at'][:7] == month for r in cases)}" in text
    due = {  # per target, the export's rows due in the month: case, start, deadline, stop, state
        "first response": [(r["case_id"], r["received_at"], r["first_response_due"], r["first_response_at"],
                            r["sla_state"]) for r in cases],
        "follow-up response": [(r["case_id"], r["asked_at"], r["due"], r["responded_at"], r["state"])
                               for r in questions],
        "resolution": [(r["case_id"], r["received_at"], r["resolution_due"], r["resolved_at"], r["resolution_state"])
                       for r in cases],
    }
    assert any(row[2][:7] == month for row in due["first response"]), "the fixture month has cases due"
    for (label, rows), counted in zip(due.items(), ("cases", "questions", "cases"), strict=True):
        rows = sorted((row for row in rows if row[2][:7] == month), key=lambda row: (row[2], row[1], row[0]))
        assert results_row(label.capitalize(), counted, [row[4] for row in rows]) in text
        section = text[text.index(f"{counted.capitalize()} whose {label} was due in {month_name(month)}."):]
        for case_id, started, deadline, stopped, state in rows:  # in the statement's order: by deadline
            section = section[section.index(f" {case_id} "):]
            line = section[:300]
            for iso in (started, deadline, stopped):  # local times with the zone, "—" for none yet
                if iso:
                    assert f"{datetime.fromisoformat(iso):%a %Y-%m-%d %H:%M} HKT (UTC+08:00)" in line, (label, line)
            assert f" {WORDS['state'][state]} " in line, (label, line)
            section = section[len(case_id) + 2:]
    assert "(UTC+08:00)" in text and "None" not in text

    refunds = [r for r in export(demo, "refunds") if r["client_id"] == client and r["month"] == month]
    assert refunds
    for refund in refunds:  # percentages as "99.90 %" (rounded down), money as "USD 12,000.00"
        assert f"{shown_pct(refund['uptime_pct'])} %" in text and f"{shown_pct(refund['credit_pct'])} %" in text
        assert f"{refund['currency']} {float(refund['refund_amount']):,.2f}" in text
        assert f" {refund['environment_id']} " not in text  # environments by name
    names = {"EVER": "Shared cloud APAC", "ACME": "Acme production"}
    assert names[client] in text
    assert f"{month_name(month)}" in text and month not in text.replace(f"{month}-", "")

    pngs = pages_within_a4(out, tmp_path / "pages")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for n, png in enumerate(pngs, start=1):
        shutil.copy(png, SCREENSHOTS / f"statement-{client}-{month}-page{n}.png")


def pages_within_a4(pdf: Path, folder: Path) -> list[Path]:
    """The PDF's pages as PNGs in ``folder``, each checked to print nothing in the right margin: every table
    and line fits A4."""
    folder.mkdir()
    subprocess.run(["pdftoppm", "-png", "-r", "70", str(pdf), str(folder / "page")], check=True, timeout=60)
    pngs = sorted(folder.glob("*.png"))
    assert pngs and pngs[0].stat().st_size > 10_000 and all(p.stat().st_size > 1_000 for p in pngs)
    for png in pngs:  # nothing printed in the right margin (1.6 cm, 44 px at 70 dpi)
        image = Image.open(png).convert("L")
        margin = image.crop((image.width - 30, 0, image.width, image.height))
        assert margin.getextrema()[0] > 240, png
    return pngs


def test_the_statement_reports_every_target_its_policy_sets(tmp_path):
    """ENT's contract names gold (``build_gold_fixture``): first responses, follow-ups and resolutions of
    November as of Wed 2026-11-25 16:30, counted as the Client page and /metrics count them."""
    from kb.config import load_config
    from kb.statement.content import statement_at
    from kb.statement.render import statement_pdf
    from kb.store import Store

    db, config_file = build_gold_fixture(tmp_path)
    store = Store(db, load_config(config_file))
    try:
        content = statement_at(store, store.snapshot(local("2026-11-25 16:30")), "ENT", "2026-11")
    finally:
        store.close()
    out = tmp_path / "gold.pdf"
    out.write_bytes(statement_pdf(content, "Asia/Hong_Kong"))
    text = pdf_text(out)
    assert ("Target Due Breached At risk Pending Waiting on client Met Met in time "
            "First response 7 cases 2 1 1 0 3 60.00 % 3 of 5 met "
            "Follow-up response 4 questions 1 0 1 0 2 66.66 % 2 of 3 met "
            "Resolution 7 cases 1 0 4 1 1 50.00 % 1 of 2 met") in text
    assert ("Questions whose follow-up response was due in Nov 2026. Case Subject Asked Due Answered State "
            "FIXED Subject of FIXED Mon 2026-11-02 15:00 HKT (UTC+08:00) Tue 2026-11-03 15:00 HKT (UTC+08:00) "
            "Tue 2026-11-03 09:30 HKT (UTC+08:00) Met "
            "SLOW Subject of SLOW Mon 2026-11-02 16:00 HKT (UTC+08:00) Tue 2026-11-03 16:00 HKT (UTC+08:00) "
            "Wed 2026-11-04 10:00 HKT (UTC+08:00) Breached "
            "SLOW Subject of SLOW Wed 2026-11-04 11:00 HKT (UTC+08:00) Thu 2026-11-05 11:00 HKT (UTC+08:00) "
            "Thu 2026-11-05 10:00 HKT (UTC+08:00) Met "
            "MET Subject of MET Wed 2026-11-25 11:00 HKT (UTC+08:00) Thu 2026-11-26 11:00 HKT (UTC+08:00) — Pending "
            "Resolution Cases whose resolution was due in Nov 2026.") in text
    assert ("Cases whose resolution was due in Nov 2026. Case Subject Received Due Resolved State "
            "FIXED Subject of FIXED Mon 2026-11-02 10:00 HKT (UTC+08:00) Wed 2026-11-04 10:00 HKT (UTC+08:00) "
            "Tue 2026-11-03 10:00 HKT (UTC+08:00) Met "
            "SLOW Subject of SLOW Mon 2026-11-02 10:00 HKT (UTC+08:00) Wed 2026-11-04 10:00 HKT (UTC+08:00) "
            "Fri 2026-11-06 10:00 HKT (UTC+08:00) Breached") in text
    # RISK waits on the client: its resolution deadline moves with the pause (Thu 18:00 + 4 h 30 min so far)
    assert ("RISK Subject of RISK Tue 2026-11-24 18:30 HKT (UTC+08:00) Mon 2026-11-30 13:30 HKT (UTC+08:00) — "
            "Waiting on client") in text
    assert "Cases whose first response was due in Nov 2026." in text and "Cases received 7 " in text
    pages_within_a4(out, tmp_path / "pages")


def test_a_left_to_right_name_is_copied_and_found_as_written(demo, tmp_path):
    out = tmp_path / "acme.pdf"
    made = kb("statement", "--db", str(demo), "--client", "ACME", "--month", "2026-11", "--as-of", AS_OF,
              "--out", str(out), "--now", NOW)
    assert made.returncode == 0, made.stderr
    assert "Acme Logistics (ACME, Enterprise) — Nov 2026" in pdf_text(out)
    copied = copied_text(out)
    assert "Acme Logistics (ACME, Enterprise) — Nov 2026" in copied and "Acme production" in copied
    assert "\u2068" not in copied and "\u2069" not in copied  # no invisible isolate to copy or to miss in a search


def test_user_text_is_set_as_text_not_typst_markup(tmp_path):
    db = tmp_path / "odd.duckdb"
    (tmp_path / "clients.csv").write_text('client_id,name,tier\nODD,"#set page(width: 1cm) *bold* $x$ [x]",free\n')
    (tmp_path / "cases.csv").write_text("case_id,client_id,received_at,category,subject\n"
                                        'C1,ODD,2026-11-02 10:00,api_help,"#panic(""no"") = head"\n')
    for table in ("clients", "cases"):
        done = kb("import", table, str(tmp_path / f"{table}.csv"), "--db", str(db), "--now", NOW)
        assert done.returncode == 0, done.stderr
    out = tmp_path / "odd.pdf"
    made = kb("statement", "--db", str(db), "--client", "ODD", "--month", "2026-11", "--out", str(out),
              "--now", NOW)
    assert made.returncode == 0, made.stderr
    text = pdf_text(out)
    assert "#set page(width: 1cm) *bold* $x$ [x]" in text and '#panic("no") = head' in text


def test_an_unknown_client_or_month_is_named(demo, tmp_path):
    out = tmp_path / "x.pdf"
    refused = kb("statement", "--db", str(demo), "--client", "NOPE", "--month", "2026-10", "--out", str(out))
    assert refused.returncode == 1 and "no client 'NOPE'" in refused.stderr and not out.exists()
    refused = kb("statement", "--db", str(demo), "--client", "EVER", "--month", "2026-13", "--out", str(out))
    assert refused.returncode == 1 and "is not a month like 2026-11" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.fixture
def mailing(tmp_path):
    """``(send, con, inbox)``: the demo store, ACME's statement recipients to be set by the test, a real SMTP
    inbox, and ``send(local_time)`` running the statements job then."""
    from kb.config import parse_config
    from kb.db import connection
    from kb.statement.mailing import send_statements
    from kb.timestamps import parse_timestamp
    from tests.servers import Inbox

    db = tmp_path / "mail.duckdb"
    assert kb("demo", "--db", str(db), "--now", NOW).returncode == 0
    inbox = Inbox().start()
    config = parse_config({"calendar": {"timezone": "Asia/Hong_Kong", "holidays_country": "HK"},
                           "alerts": {"smtp_url": f"smtp://127.0.0.1:{inbox.port}", "sender": "sla@support.example"}})
    con = connection.connect(db)
    try:
        yield lambda at: send_statements(con, config, parse_timestamp(at, config.calendar.zone)), con, inbox
    finally:
        con.close()
        inbox.stop()


def test_statements_missed_on_the_first_business_day_go_at_the_next_run(mailing):
    """The service was down all of Tue 2026-12-01: November's statements go at its first run after it."""
    send, con, inbox = mailing
    con.execute("UPDATE clients SET statement_recipients = 'cfo@acme.example' WHERE client_id = 'ACME'")
    sent = send("2026-12-03T09:00")
    assert sent.sent == ["ACME 2026-11"] and sent.failed == []
    assert send("2026-12-03T10:00").sent == []
    assert [(to, m["Subject"]) for to, m in inbox.messages] == [
        (["cfo@acme.example"], "Your SLA statement for Nov 2026 (Acme Logistics)")]


def test_statements_go_on_the_first_business_day_once(mailing):
    send, con, inbox = mailing
    con.execute("UPDATE clients SET statement_recipients = 'cfo@acme.example, ops@acme.example' "
                "WHERE client_id = 'ACME'")
    # Sat 2027-01-02: January's first business day is Mon 2027-01-04 (New Year's Day is a holiday)
    assert send("2027-01-02T10:00").sent == []  # not yet
    sent = send("2026-12-01T10:00")  # Tuesday: first
    assert sent.sent == ["ACME 2026-11"] and sent.failed == []
    assert send("2026-12-01T11:00").sent == []  # once
    assert send("2026-12-15T11:00").sent == []  # still once
    assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'statement'").fetchall()[0][0] == 1
    assert len(inbox.messages) == 1
    recipients, message = inbox.messages[0]
    assert recipients == ["cfo@acme.example", "ops@acme.example"]
    assert message["Subject"].strip().startswith("Your SLA statement for Nov 2026")
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "statement-ACME-2026-11.pdf"
    assert attachment.get_content().startswith(b"%PDF")


def test_a_right_to_left_override_in_a_name_reverses_nothing_around_it(tmp_path):
    rlo = "\u202e"
    tables = {
        "clients": f'client_id,name,tier\nRTL,"Acme{rlo} Evil",enterprise\n',
        "environments": "environment_id,name,kind,deployment,client_id,active_from\n"
                        f'ENV-R,"Prod{rlo} east",dedicated,on_premise,RTL,2026-01-01\n',
        "cases": "case_id,client_id,received_at,category,subject\n"
                 f'C1,RTL,2026-11-02 10:00,api_help,"Login{rlo} fails"\n',
        "incidents": "incident_id,environment_id,impact,started_at,ended_at,summary\n"
                     f'I1,ENV-R,outage,2026-11-03 10:00,2026-11-03 10:30,"Gateway{rlo} down"\n',
    }
    db = tmp_path / "rtl.duckdb"
    for table, text in tables.items():
        (tmp_path / f"{table}.csv").write_text(text)
        done = kb("import", table, str(tmp_path / f"{table}.csv"), "--db", str(db), "--now", NOW)
        assert done.returncode == 0, done.stderr
    out = tmp_path / "rtl.pdf"
    made = kb("statement", "--db", str(db), "--client", "RTL", "--month", "2026-11", "--out", str(out), "--now", NOW)
    assert made.returncode == 0, made.stderr
    text = pdf_text(out)
    assert "Acme\ufffd Evil (RTL, Enterprise) — Nov 2026" in text
    assert "Acme\ufffd Evil\u2069 (RTL" in copied_text(out)  # isolated: it could move the words around it
    assert "C1 Login\ufffd fails Mon 2026-11-02 10:00 HKT" in text
    assert "Prod\ufffd east" in text
    assert "Gateway\ufffd down" in text and rlo not in text


def statements_sent_to(tmp_path, clients: list[dict]):
    """``clients`` imported into a fresh store, then the statements job on Tue 2026-12-01 10:00 against a real
    SMTP inbox: ``(result, deliveries recorded, messages received)``."""
    from kb.access import Actor
    from kb.config import parse_config
    from kb.db import connection
    from kb.intake.importing import add_rows, staged_from_records
    from kb.statement.mailing import send_statements
    from kb.timestamps import parse_timestamp
    from tests.servers import Inbox

    inbox = Inbox().start()
    config = parse_config({"calendar": {"timezone": "Asia/Hong_Kong", "holidays_country": "HK"},
                           "alerts": {"smtp_url": f"smtp://127.0.0.1:{inbox.port}", "sender": "sla@support.example"}})
    con = connection.connect(tmp_path / "names.duckdb")
    try:
        add_rows(con, config, staged_from_records("clients", clients), Actor("tests@example.com", "admin"),
                 permission="import", source="test", now=parse_timestamp(NOW, config.calendar.zone))
        sent = send_statements(con, config, parse_timestamp("2026-12-01T10:00", config.calendar.zone))
        rows = con.execute("SELECT alert_key, attempts, sent_at IS NOT NULL, last_error FROM alert_deliveries "
                           "ORDER BY alert_key").fetchall()
    finally:
        con.close()
        inbox.stop()
    return sent, rows, inbox.messages


def test_a_line_break_in_a_client_name_or_a_bad_recipient_stops_no_other_statement(tmp_path):
    sent, rows, messages = statements_sent_to(tmp_path, [
        {"client_id": "ACM", "name": "Acme\nBcc: x@evil", "tier": "free", "statement_recipients": "cfo@acme.example"},
        {"client_id": "BAD", "name": "Bad Co", "tier": "free", "statement_recipients": "cfo@bad.example\nBcc: x@evil"},
        {"client_id": "EVER", "name": "Ever Co", "tier": "free",
         "statement_recipients": "Ops Team <ops@ever.example>"},
    ])
    assert sent.sent == ["ACM 2026-11", "EVER 2026-11"]
    assert sent.failed == ["BAD 2026-11: 'cfo@bad.example\ufffdBcc: x@evil' is not an e-mail address"]
    assert rows == [("statement:ACM:2026-11", 1, True, None),
                    ("statement:BAD:2026-11", 1, False, "'cfo@bad.example\ufffdBcc: x@evil' is not an e-mail address"),
                    ("statement:EVER:2026-11", 1, True, None)]
    (acme_to, acme), (ever_to, ever) = messages
    assert acme_to == ["cfo@acme.example"] and ever_to == ["ops@ever.example"]
    assert acme["Subject"] == "Your SLA statement for Nov 2026 (Acme Bcc: x@evil)" and acme["Bcc"] is None
    assert "the SLA statement of Acme Bcc: x@evil for Nov 2026" in acme.get_body().get_content()
    assert ever["To"] == "Ops Team <ops@ever.example>"


def test_a_line_separator_in_a_client_name_stops_no_statement(tmp_path):
    sent, rows, messages = statements_sent_to(tmp_path, [
        {"client_id": "ACM", "name": "Acme\u2028Corp", "tier": "free", "statement_recipients": "cfo@acme.example"},
        {"client_id": "EVER", "name": "Ever Co", "tier": "free", "statement_recipients": "ops@ever.example"},
    ])
    assert (sent.sent, sent.failed) == (["ACM 2026-11", "EVER 2026-11"], [])
    assert [(key, taken) for key, _, taken, _ in rows] == [("statement:ACM:2026-11", True),
                                                          ("statement:EVER:2026-11", True)]
    assert sorted(message["Subject"] for _, message in messages) == [
        "Your SLA statement for Nov 2026 (Acme Corp)", "Your SLA statement for Nov 2026 (Ever Co)"]
