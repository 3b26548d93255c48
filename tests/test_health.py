"""Every pipeline says when it is unwell: each is driven into failure against a real server (Dovecot, an SMTP
port nobody answers, a backup folder that cannot be written, a webhook delivery that cannot be stored), and
``/healthz``, ``/metrics``, the admins' banner and the admins' alert (a real aiosmtpd inbox) say so; then it
recovers, and they say that too."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from kb import opening as registry
from kb.config import load_config
from kb.health import late_after, redact
from kb.mail import quarantine
from kb.mail.intake import take
from kb.mail.messages import parse_message, support_matcher
from kb.service import jobs as service_jobs
from kb.service.app import MIDDLEWARE, ROUTES
from kb.service.jobs import Job, Jobs
from kb.service.tokens import create_token
from kb.store import Store
from kb.timestamps import set_now
from tests.fixtures import ADMIN, HKT, ROLES, SPEC_TOML, add, shown, signed_in_as
from tests.servers import IMAP_PASSWORD, Inbox, free_port

ADMIN_ADDRESS, LEAD_ADDRESS = "ada@support.example", "lee@support.example"


def settings(smtp_port: int, more: str = "") -> str:
    return SPEC_TOML + ROLES + f"""
[alerts]
smtp_url = "smtp://127.0.0.1:{smtp_port}"
sender = "sla@support.example"
dashboard_url = "https://sla.example"

[alerts.recipients]
admin = ["{ADMIN_ADDRESS}"]
lead = ["{LEAD_ADDRESS}"]

[backup]
every_hours = 6
""" + more


class Service:
    """A store and its background jobs, registered as this process's service, as ``streamlit run dashboard.py``
    has them: ``/healthz`` and ``/metrics`` answer through the service's own routes, and the pages (AppTest)
    share the store. The jobs are started but wait an hour: each test runs them when it wants."""

    def __init__(self, folder, toml: str, jobs: list[Job] | None = None):
        (folder / "support.toml").write_text(toml)
        self.store = Store(folder / "support.duckdb", load_config(folder / "support.toml"))
        self.jobs = Jobs(self.store, jobs, start_delay=3600)
        self.jobs.start()
        registry.register(registry.Running(store=self.store, demo=False, path=self.store.path, state={
            "store": self.store, "jobs": self.jobs, "local_token": None, "error": None}))
        self.http = TestClient(Starlette(routes=ROUTES, middleware=MIDDLEWARE))
        self.viewer = self.store.write(create_token, ADMIN, name="prometheus", role="viewer").token
        self.sender = self.store.write(create_token, ADMIN, name="alertmanager", role="staff").token

    def run(self, kind: str, times: int = 1) -> list[bool]:
        return [self.jobs.run_now(kind) for _ in range(times)]

    def healthz(self) -> tuple[int, dict]:
        response = self.http.get("/healthz")
        return response.status_code, response.json()

    def failing(self) -> dict[str, dict]:
        """What /healthz names as failing, by job (nothing when it answers 200)."""
        status, body = self.healthz()
        assert status == (503 if body["status"] != "ok" else 200)
        return {entry["job"]: entry for entry in body.get("failing", [])}

    def metric(self, name: str, job: str | None = None) -> float:
        response = self.http.get("/metrics", headers={"Authorization": f"Bearer {self.viewer}"})
        assert response.status_code == 200
        labels = f'{{job="{job}"}}' if job else ""
        [value] = re.findall(rf"^{re.escape(name + labels)} (\S+)$", response.text, re.M)
        return float(value)

    def banner(self, email: str) -> list[str]:
        """The error lines at the top of the dashboard for ``email``."""
        at = signed_in_as(email).run()
        assert not at.exception
        return [shown(e) for e in at.error]

    def close(self) -> None:
        from kb import ui

        self.jobs.stop()
        registry.register(None)
        ui._open_app.clear()
        self.store.close()


@pytest.fixture
def service(tmp_path):
    made = []

    def start(toml: str, jobs: list[Job] | None = None) -> Service:
        made.append(Service(tmp_path, toml, jobs))
        return made[-1]

    yield start
    for one in made:
        one.close()


def admin_alerts(inbox: Inbox) -> list[str]:
    """The subjects the admins were sent."""
    return [message["Subject"].strip() for to, message in inbox.messages if to == [ADMIN_ADDRESS]]  # unfolded


def assert_unwell(svc: Service, job: str, error: str, failures: int = 3) -> None:
    """/healthz names ``job`` with its last error, /metrics counts its failures, the admin sees the banner and a
    lead does not."""
    failing = svc.failing()
    assert list(failing) == [job]
    assert error in failing[job]["last_error"] and failing[job]["consecutive_failures"] == failures
    assert svc.metric("support_job_consecutive_failures", job) == failures
    assert svc.metric("support_job_failing", job) == 1
    [line] = svc.banner(ADMIN_ADDRESS)
    assert line.startswith(f"{job} is failing since ") and f", {failures} times in a row: " in line and error in line
    assert svc.banner(LEAD_ADDRESS) == []


def assert_recovered(svc: Service, job: str) -> None:
    status, body = svc.healthz()
    assert (status, body["status"]) == (200, "ok") and job in body["jobs"]
    assert svc.metric("support_job_consecutive_failures", job) == 0
    assert abs(svc.metric("support_job_last_success_timestamp_seconds", job) - datetime.now(UTC).timestamp()) < 60
    assert svc.banner(ADMIN_ADDRESS) == []


# --- One test per pipeline ----------------------------------------------------------------------------------

def test_a_mailbox_with_a_wrong_password_is_named_until_it_logs_in(dovecot, inbox, service, monkeypatch):
    port, _ = dovecot
    monkeypatch.setenv("KB_HEALTH_SUPPORT", "not-the-password")
    monkeypatch.setenv("KB_HEALTH_SALES", IMAP_PASSWORD)
    boxes = "".join(f"""
[[mail.mailboxes]]
name = "{name}"
url = "imap://127.0.0.1:{port}"
user = "{user}"
password_env = "KB_HEALTH_{name.upper()}"
folders = ["INBOX"]
""" for name, user in (("support", "user1"), ("sales", "user2")))
    svc = service(settings(inbox.port, '[mail]\nsupport_addresses = ["@support.example"]\n' + boxes))
    assert svc.healthz()[1]["jobs"] == ["backup", "alerts", "statements", "mail:support", "mail:sales"]
    assert svc.run("mail:support", 3) == [False] * 3
    assert svc.run("mail:sales") == [True]  # the other mailbox is read all the same, and is well
    assert_unwell(svc, "mail:support", "login refused for user 'user1'")
    assert svc.failing()["mail:support"]["last_success"] is None
    assert svc.metric("support_job_consecutive_failures", "mail:sales") == 0

    assert svc.run("alerts") == [True]
    [subject] = admin_alerts(inbox)
    assert subject.startswith("[SLA] mail:support is failing since ")
    assert svc.run("alerts") == [True] and len(admin_alerts(inbox)) == 1  # once

    monkeypatch.setenv("KB_HEALTH_SUPPORT", IMAP_PASSWORD)
    assert svc.run("mail:support") == [True]
    assert_recovered(svc, "mail:support")


def test_alerts_the_mail_server_refuses_are_named_until_it_takes_them(service):
    set_now(datetime(2026, 11, 25, 10, 0, tzinfo=HKT))  # a business morning: the leads' digest is due
    port = free_port()  # nobody answers there yet
    svc = service(settings(port))
    assert svc.run("alerts", 3) == [False] * 3
    assert_unwell(svc, "alerts", "did not take it")
    assert svc.metric("support_undelivered_alerts") == 1  # the digest, recorded and waiting

    server = Inbox(port).start()
    try:
        assert svc.run("alerts") == [True]
        assert admin_alerts(server)[0].startswith("[SLA] alerts is failing since ")
        assert [m["Subject"] for to, m in server.messages if to == [LEAD_ADDRESS]][0].startswith("[SLA] 2026-11-25")
    finally:
        server.stop()
    assert svc.metric("support_undelivered_alerts") == 0
    assert_recovered(svc, "alerts")


def test_statements_the_mail_server_refuses_are_named_until_it_takes_them(service):
    set_now(datetime(2026, 12, 1, 10, 0, tzinfo=HKT))  # Tuesday, the first business day of December
    port = free_port()
    svc = service(settings(port))
    with svc.store.transaction() as con:
        add(con, svc.store.config, "clients", dict(client_id="ACME", name="Acme", tier="enterprise",
                                                   statement_recipients="cfo@acme.example"))
    assert svc.run("statements", 3) == [False] * 3
    assert_unwell(svc, "statements", "did not take it")
    assert svc.metric("support_undelivered_statements") == 1

    server = Inbox(port).start()
    try:
        assert svc.run("alerts") == [True]
        assert admin_alerts(server)[0].startswith("[SLA] statements is failing since ")
        assert svc.run("statements") == [True]
        assert [to for to, m in server.messages if m["Subject"].startswith("Your SLA statement")] == [
            ["cfo@acme.example"]]
    finally:
        server.stop()
    assert svc.metric("support_undelivered_statements") == 0
    assert_recovered(svc, "statements")


def test_an_unwritable_backup_folder_is_named_and_each_new_streak_alerts_again(inbox, service):
    svc = service(settings(inbox.port))
    blocker = svc.store.path.parent / "backups"
    blocker.write_text("a file where the backup folder should be")
    assert svc.run("backup", 3) == [False] * 3
    assert_unwell(svc, "backup", "BackupError")
    assert svc.run("alerts") == [True]
    assert len(admin_alerts(inbox)) == 1 and "[SLA] backup is failing since" in admin_alerts(inbox)[0]

    blocker.unlink()
    assert svc.run("backup") == [True]
    assert_recovered(svc, "backup")
    assert svc.run("alerts") == [True] and len(admin_alerts(inbox)) == 1

    shutil.rmtree(blocker)
    blocker.write_text("in the way again")
    assert svc.run("backup", 3) == [False] * 3
    assert svc.run("alerts") == [True]
    assert len(admin_alerts(inbox)) == 2  # a new streak after a recovery: told again


def test_webhook_deliveries_that_cannot_be_stored_are_named_until_one_is(inbox, service):
    set_now(datetime(2026, 12, 31, tzinfo=UTC))
    svc = service(settings(inbox.port))
    with svc.store.transaction() as con:
        add(con, svc.store.config, "clients", dict(client_id="ENT", name="Enterprise Co", tier="enterprise"))
        add(con, svc.store.config, "environments", dict(environment_id="ENV-1", name="Prod", kind="dedicated",
                                                        deployment="on_premise", client_id="ENT",
                                                        active_from="2026-01-01"))

    def deliver(environment: str, token: str | None = svc.sender) -> int:
        body = {"version": "4", "status": "firing", "alerts": [{
            "status": "firing", "labels": {"alertname": "Down", "environment": environment, "severity": "critical"},
            "annotations": {}, "startsAt": "2026-11-25T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": f"fp-{environment}"}]}
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return svc.http.post("/api/v1/webhooks/alertmanager", content=json.dumps(body), headers=headers).status_code

    assert deliver("NOPE") == 422
    assert svc.failing()["webhook:alertmanager"]["consecutive_failures"] == 1  # one refused delivery is enough
    assert deliver("NOPE", token=None) == 401 and deliver("NOPE", token="kb_forged") == 401
    assert svc.failing()["webhook:alertmanager"]["consecutive_failures"] == 1  # callers without a token: not counted
    assert [deliver("NOPE") for _ in range(2)] == [422, 422]
    assert_unwell(svc, "webhook:alertmanager", "422: unknown environment 'NOPE'")
    assert svc.run("alerts") == [True]
    [subject] = admin_alerts(inbox)
    assert subject.startswith("[SLA] webhook:alertmanager is failing since ")

    assert deliver("ENV-1") == 200
    assert_recovered(svc, "webhook:alertmanager")


# --- The mail quarantine: working as designed, but a person must act ------------------------------------------

def hold(svc: Service, mid: str, at: datetime) -> None:
    """A message from the support mailbox that the store refuses (its subject is taken, under a unique index),
    held in the quarantine at ``at``."""
    raw = (f"From: Pat <pat@client.example>\nTo: support@support.example\nSubject: Refused\n"
           f"Date: {format_datetime(at)}\nMessage-ID: <{mid}>\n\nHello\n").encode()
    record = parse_message(raw, support_matcher(("@support.example",)), mailbox="support", folder="INBOX",
                           where="test", vouched=False, internaldate=at, now=at)
    assert svc.store.write(take, svc.store.config, [record], ADMIN, source="tests", now=at).held


def test_a_growing_mail_quarantine_tells_the_admins_once_per_message_until_it_is_empty(inbox, service):
    quiet = settings(inbox.port).replace('dashboard_url = "https://sla.example"',
                                         'dashboard_url = "https://sla.example"\nquiet_hours = ["00:00", "23:59"]')
    set_now(datetime(2026, 11, 25, 3, 0, tzinfo=HKT))  # in the quiet hours: the admins hear of it all the same
    svc = service(quiet)
    with svc.store.transaction() as con:
        add(con, svc.store.config, "clients", dict(client_id="OLD", name="Old", tier="free"))
        add(con, svc.store.config, "cases", dict(case_id="OLD-1", client_id="OLD", received_at="2026-01-05 09:00",
                                                 category="platform_issue", subject="Refused"))
        con.execute("CREATE UNIQUE INDEX cases_one_subject ON cases (subject)")
    hold(svc, "held-1@client", datetime(2026, 11, 25, 2, 0, tzinfo=HKT))

    assert svc.run("alerts") == [True]
    [subject] = admin_alerts(inbox)
    assert subject == "[SLA] 1 message held in the mail quarantine (support) since Wed 2026-11-25 02:00 HKT (UTC+08:00)"
    [(_, message)] = [(to, m) for to, m in inbox.messages if to == [ADMIN_ADDRESS]]
    assert "https://sla.example/mail_quarantine" in message.get_content()
    assert svc.run("alerts") == [True] and len(admin_alerts(inbox)) == 1  # a steady quarantine: told once
    status, body = svc.healthz()
    assert (status, body["status"]) == (200, "ok")  # nothing is failing: a person must act, the service is well
    assert body["attention"] == [{"what": "mail quarantine", "mailbox": "support", "held": 1,
                                  "since": "2026-11-25T02:00:00+08:00", "newest": "2026-11-25T02:00:00+08:00"}]
    assert notices(ADMIN_ADDRESS) == ["1 message held in the mail quarantine since Wed 2026-11-25 02:00 HKT "
                                      "(UTC+08:00) — Mail quarantine page"]
    assert notices(LEAD_ADDRESS) == []

    hold(svc, "held-2@client", datetime(2026, 11, 25, 2, 30, tzinfo=HKT))
    assert svc.run("alerts") == [True]
    assert admin_alerts(inbox)[1] == ("[SLA] 2 messages held in the mail quarantine (support) since "
                                      "Wed 2026-11-25 02:00 HKT (UTC+08:00)")
    assert svc.run("alerts") == [True] and len(admin_alerts(inbox)) == 2
    assert notices(ADMIN_ADDRESS) == ["2 messages held in the mail quarantine since Wed 2026-11-25 02:00 HKT "
                                      "(UTC+08:00) — Mail quarantine page"]

    for key in ("held-1@client", "held-2@client"):
        svc.store.write(quarantine.discard, ADMIN, key)
    assert notices(ADMIN_ADDRESS) == []
    assert "attention" not in svc.healthz()[1]
    assert svc.run("alerts") == [True] and len(admin_alerts(inbox)) == 2


def notices(email: str) -> list[str]:
    """The warning lines at the top of the dashboard for ``email``."""
    at = signed_in_as(email).run()
    assert not at.exception
    return [shown(w) for w in at.warning]


# --- The rules behind them ----------------------------------------------------------------------------------

def test_a_job_is_failing_when_it_has_not_succeeded_in_three_periods_and_a_grace(tmp_path):
    clock = [datetime(2026, 11, 25, 1, 0, tzinfo=UTC)]
    outcomes = iter([OSError("disk full"), None, None])

    def tick(store):
        failure = next(outcomes)
        if failure:
            raise failure
        return "ok"

    (tmp_path / "support.toml").write_text(SPEC_TOML)
    store = Store(tmp_path / "s.duckdb", load_config(tmp_path / "support.toml"))
    jobs = Jobs(store, [Job("tick", "Tick", timedelta(minutes=1), tick)], start_delay=3600, clock=lambda: clock[0])
    try:
        assert late_after(timedelta(minutes=1)) == timedelta(minutes=8)
        jobs.start()
        [health] = jobs.health()
        assert not health.failing  # it has not had time to run since the start
        assert jobs.run_now("tick") is False
        assert not jobs.health()[0].failing  # one failure, within its interval
        clock[0] += timedelta(minutes=8, seconds=1)  # no success since the start, for three periods and a grace
        [health] = jobs.health()
        assert health.failing and health.since == datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
        assert health.reason == "OSError: disk full"
        assert jobs.run_now("tick") is True
        assert not jobs.health()[0].failing
        clock[0] += timedelta(minutes=9)  # it hangs, or its thread died: nothing recorded, and it is failing
        [health] = jobs.health()
        assert health.failing and health.reason == "no success in 8 min"
    finally:
        jobs.stop()
        if service_jobs.running() is not None:
            service_jobs.register(None)
        store.close()


def test_no_secret_leaves_in_the_health_answer(service, inbox):
    leaks = ["imap://bob:hunter2@mail.example/INBOX", "Authorization: Bearer kb_Zq3xY8wV2uT1sR0pO9nM8lK7jI6hG5fE4dC",
             "smtp password=hunter3 refused", "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX",
             "token: 8f9AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"]

    def leaky(store):
        raise RuntimeError(" | ".join(leaks))

    svc = service(settings(inbox.port), [Job("leaky", "Leaky", timedelta(hours=1), leaky)])
    assert svc.run("leaky", 3) == [False] * 3
    status, body = svc.healthz()
    text = json.dumps(body)
    assert status == 503 and body["failing"][0]["job"] == "leaky"
    for secret in ("hunter2", "hunter3", "Zq3xY8wV2uT1sR0pO9nM8lK7jI6hG5fE4dC", "XXXXSECRETXXXX",
                   "8f9AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"):
        assert secret not in text
    assert "imap://***@mail.example/INBOX" in text and "password=***" in text
    # what must stay readable does: hosts, paths, backup names, the reasons
    kept = "cannot write /var/lib/support-sla/backups/support-auto-20261125T020000Z.duckdb: login refused"
    assert redact(kept) == kept


def test_an_unusable_store_is_503_with_its_reason_and_no_secret():
    registry.register(registry.Running(store=None, demo=False, path=None, state={
        "store": None, "jobs": None, "local_token": None,
        "error": "alerts.smtp_url = 'ftp://ops:s3cret@mail.example' must start with smtp:// or smtps://"}))
    try:
        response = TestClient(Starlette(routes=ROUTES, middleware=MIDDLEWARE)).get("/healthz")
    finally:
        registry.register(None)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "reason": "alerts.smtp_url = 'ftp://***@mail.example' must "
                                                                  "start with smtp:// or smtps://"}
