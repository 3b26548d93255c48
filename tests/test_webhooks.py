"""The monitoring webhooks (rules §10): Alertmanager and Uptime Kuma open and close incidents, once.

The handlers run in a Starlette app of their own built from ``kb.service.webhooks.ROUTES`` (the
service mounts the same routes), over a store on a temporary file with tokens made as ``python -m kb
token create`` makes them. The last test runs Debian's real Alertmanager (``prometheus-alertmanager``)
against them, when it is installed (``scripts/test`` installs it).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import threading
import time
import urllib.request
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from kb.config import load_config
from kb.engine.asof import open_views
from kb.reads.exports import export_sql
from kb.service import tokens, webhooks
from kb.service.webhooks import ROUTES
from kb.store import Store
from kb.timestamps import set_now
from tests.fixtures import ADMIN, SPEC_TOML, add
from tests.servers import free_port, serving

NOW = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)  # Wed 16:30 in Hong Kong
AM = "/api/v1/webhooks/alertmanager"
NOTHING_SET_ASIDE = {"voided": [], "unknown_environments": [], "closed_months": []}
KUMA = "/api/v1/webhooks/uptime-kuma"


def make_store(tmp_path) -> Store:
    config_file = tmp_path / "support.toml"
    config_file.write_text(SPEC_TOML)
    config = load_config(config_file)
    store = Store(tmp_path / "support.duckdb", config)
    with store.transaction() as con:
        add(con, config, "clients", dict(client_id="ENT", name="Enterprise Co", tier="enterprise"))
        add(con, config, "environments",
            dict(environment_id="E1", name="Enterprise prod", kind="dedicated", deployment="on_premise",
                 client_id="ENT", active_from="2026-01-01"),
            dict(environment_id="S1", name="Shared", kind="shared", deployment="shared_cloud",
                 active_from="2026-01-01"))
    return store


def token(store: Store, role: str, name: str | None = None) -> str:
    return store.write(tokens.create_token, ADMIN, name=name or f"monitoring-{role}", role=role).token


def webhook_app(store: Store) -> Starlette:
    @asynccontextmanager
    async def lifespan(app):
        yield {"store": store}

    return Starlette(routes=ROUTES, lifespan=lifespan)


@pytest.fixture
def service(tmp_path):
    """(client, store, staff token): the webhook routes over a fresh store, "now" at NOW."""
    set_now(NOW)
    store = make_store(tmp_path)
    staff = token(store, "staff")
    with TestClient(webhook_app(store)) as client:
        yield client, store, staff
    store.close()


def bearer(value: str) -> dict:
    return {"Authorization": f"Bearer {value}"}


def alert(status="firing", *, env="E1", severity="critical", fingerprint="a1b2c3d4e5f60718",
          starts="2026-11-25T06:00:00.123456789Z", ends="0001-01-01T00:00:00Z", **labels) -> dict:
    return {"status": status,
            "labels": {"alertname": "ApiDown", "environment": env, "severity": severity, **labels},
            "annotations": {"summary": "the API answers 503"},
            "startsAt": starts, "endsAt": ends, "generatorURL": "http://prometheus/graph",
            "fingerprint": fingerprint}


def payload(*alerts: dict, status: str | None = None) -> dict:
    status = status or ("firing" if any(a["status"] == "firing" for a in alerts) else "resolved")
    return {"version": "4", "groupKey": '{}:{environment="E1"}', "truncatedAlerts": 0, "status": status,
            "receiver": "support", "groupLabels": {"environment": "E1"}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "alerts": list(alerts)}


def heartbeat(status: int, *, time_="2026-11-25 07:00:00.123", name="E1", monitor_id=3, tags=None,
              msg="connect ETIMEDOUT") -> dict:
    return {"heartbeat": {"monitorID": monitor_id, "status": status, "time": time_, "msg": msg, "ping": None,
                          "important": True, "duration": 60, "timezone": "Asia/Hong_Kong",
                          "timezoneOffset": "+08:00", "localDateTime": "2026-11-25 15:00:00"},
            "monitor": {"id": monitor_id, "name": name, "type": "http", "url": "https://e1.example/health",
                        "interval": 60, "tags": tags or []},
            "msg": f"[{name}] [{'🔴 Down' if status == 0 else '✅ Up'}] {msg}"}


def counts(store: Store) -> dict[str, int]:
    return {table: int(store.query(f"SELECT count(*) AS n FROM {table}")["n"][0])
            for table in ("incidents", "monitoring_checks", "webhook_events", "audit_log")}


def incidents(store: Store) -> list[dict]:
    with store.reader() as cur:
        result = cur.execute("SELECT incident_id, environment_id, impact, started_at, ended_at, summary "
                             "FROM incidents ORDER BY incident_id")
        names = [d[0] for d in result.description]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def uptime(store: Store, as_of: datetime) -> list[dict]:
    """The `uptime` export as of ``as_of``, as its CSV rows."""
    with store.reader() as cur:
        open_views(cur, store.config, as_of)
        frame = cur.execute(export_sql(cur, "uptime", store.config)).fetchdf()
    return list(csv.DictReader(io.StringIO(frame.to_csv(index=False))))


def downtime_minutes(store: Store, env: str, as_of: datetime) -> float:
    return sum(float(row["downtime_minutes"]) for row in uptime(store, as_of) if row["environment_id"] == env)


# --- Alertmanager -----------------------------------------------------------------------------------------

def test_firing_opens_an_outage_and_resolved_closes_it_once(service):
    client, store, staff = service
    before = counts(store)
    response = client.post(AM, json=payload(alert()), headers=bearer(staff))
    assert response.status_code == 200, response.text
    assert response.json() == {"opened": ["INC-00001"], "closed": [], "unchanged": 0, **NOTHING_SET_ASIDE}
    [row] = incidents(store)
    assert row["environment_id"] == "E1" and row["impact"] == "outage" and row["ended_at"] is None
    assert row["started_at"] == datetime(2026, 11, 25, 6, 0, 0, 123456, tzinfo=UTC)
    assert "ApiDown" in row["summary"] and "a1b2c3d4e5f60718" in row["summary"]
    audit = store.query("SELECT actor, action, table_name FROM audit_log ORDER BY audit_id DESC LIMIT 1")
    assert audit.to_dict("records") == [{"actor": "token:monitoring-staff", "action": "add", "table_name": "incidents"}]

    # Alertmanager repeats a firing alert every repeat_interval, and retries: nothing changes.
    again = client.post(AM, json=payload(alert()), headers=bearer(staff))
    assert again.status_code == 200
    assert again.json() == {"opened": [], "closed": [], "unchanged": 1, **NOTHING_SET_ASIDE}
    assert counts(store) == {**before, "incidents": 1, "webhook_events": 1, "audit_log": before["audit_log"] + 1}

    resolved = payload(alert("resolved", ends="2026-11-25T06:30:00.123456Z"))
    response = client.post(AM, json=resolved, headers=bearer(staff))
    assert response.json() == {"opened": [], "closed": ["INC-00001"], "unchanged": 0, **NOTHING_SET_ASIDE}
    assert incidents(store)[0]["ended_at"] == datetime(2026, 11, 25, 6, 30, 0, 123456, tzinfo=UTC)
    assert downtime_minutes(store, "E1", NOW) == 30.0
    settled = counts(store)

    for body in (resolved, payload(alert())):  # replays, in any order
        response = client.post(AM, json=body, headers=bearer(staff))
        assert response.json() == {"opened": [], "closed": [], "unchanged": 1, **NOTHING_SET_ASIDE}
    assert counts(store) == settled
    assert downtime_minutes(store, "E1", NOW) == 30.0


def test_severity_other_than_critical_is_degraded_and_no_downtime(service):
    client, store, staff = service
    for severity in ("warning", "info", ""):
        client.post(AM, json=payload(alert(severity=severity, fingerprint=f"fp-{severity or 'none'}")),
                    headers=bearer(staff)).raise_for_status()
    client.post(AM, json=payload(alert(severity="CRITICAL", fingerprint="fp-upper")),
                headers=bearer(staff)).raise_for_status()
    assert [i["impact"] for i in incidents(store)] == ["degraded", "degraded", "degraded", "outage"]


def test_a_group_is_applied_alert_by_alert(service):
    client, store, staff = service
    first = alert(fingerprint="f1")
    client.post(AM, json=payload(first), headers=bearer(staff)).raise_for_status()
    # the next group notification carries the old alert (firing still) and a new one, on another environment
    second = alert(fingerprint="f2", env="S1", starts="2026-11-25T06:10:00Z")
    response = client.post(AM, json=payload(first, second), headers=bearer(staff))
    assert response.json() == {"opened": ["INC-00002"], "closed": [], "unchanged": 1, **NOTHING_SET_ASIDE}
    response = client.post(AM, json=payload(alert("resolved", fingerprint="f1", ends="2026-11-25T06:20:00Z"),
                                            second), headers=bearer(staff))
    assert response.json() == {"opened": [], "closed": ["INC-00001"], "unchanged": 1, **NOTHING_SET_ASIDE}
    assert [(i["incident_id"], i["environment_id"], i["ended_at"] is None) for i in incidents(store)] == [
        ("INC-00001", "E1", False), ("INC-00002", "S1", True)]


def test_the_same_alert_firing_again_later_is_a_new_incident(service):
    client, store, staff = service
    client.post(AM, json=payload(alert()), headers=bearer(staff)).raise_for_status()
    client.post(AM, json=payload(alert("resolved", ends="2026-11-25T06:30:00Z")), headers=bearer(staff))
    client.post(AM, json=payload(alert(starts="2026-11-25T07:00:00Z")), headers=bearer(staff)).raise_for_status()
    client.post(AM, json=payload(alert("resolved", starts="2026-11-25T07:00:00Z", ends="2026-11-25T07:15:00Z")),
                headers=bearer(staff)).raise_for_status()
    assert [(i["incident_id"], i["ended_at"] is not None) for i in incidents(store)] == [
        ("INC-00001", True), ("INC-00002", True)]
    assert downtime_minutes(store, "E1", NOW) == pytest.approx(45.0 - 0.123456789 / 60, abs=0.01)


def test_a_resolution_without_its_firing_logs_the_whole_incident(service):
    client, store, staff = service
    response = client.post(AM, json=payload(alert("resolved", starts="2026-11-25T05:00:00Z",
                                                  ends="2026-11-25T05:10:00Z")), headers=bearer(staff))
    assert response.json() == {"opened": ["INC-00001"], "closed": ["INC-00001"], "unchanged": 0, **NOTHING_SET_ASIDE}
    # the firing delivery, retried late, changes nothing
    response = client.post(AM, json=payload(alert(starts="2026-11-25T05:00:00Z")), headers=bearer(staff))
    assert response.json() == {"opened": [], "closed": [], "unchanged": 1, **NOTHING_SET_ASIDE}
    assert len(incidents(store)) == 1 and downtime_minutes(store, "E1", NOW) == 10.0


def test_an_incident_someone_closed_stays_as_they_left_it(service):
    from kb.intake.writes import close_incident

    client, store, staff = service
    client.post(AM, json=payload(alert()), headers=bearer(staff)).raise_for_status()
    closed_by_hand = datetime(2026, 11, 25, 6, 20, tzinfo=UTC)
    store.write(close_incident, store.config, ADMIN, "INC-00001", closed_by_hand)
    response = client.post(AM, json=payload(alert("resolved", ends="2026-11-25T06:30:00Z")), headers=bearer(staff))
    assert response.status_code == 200 and response.json()["closed"] == []
    assert incidents(store)[0]["ended_at"] == closed_by_hand


def events(store: Store, source: str = "alertmanager") -> list[tuple]:
    """(event_key, incident_id, outcome) of every delivery recorded from ``source``, by key."""
    with store.reader() as cur:
        return cur.execute("SELECT event_key, incident_id, outcome FROM webhook_events WHERE source = ? "
                           "ORDER BY event_key", [source]).fetchall()


def test_an_unknown_environment_is_set_aside_and_the_rest_of_the_group_taken(service, caplog):
    client, store, staff = service
    group = payload(alert(fingerprint="ok"), alert(env="NOPE", fingerprint="x", starts="2026-11-25T06:00:00Z"))
    with caplog.at_level(logging.WARNING, logger="kb.service.webhooks"):
        response = client.post(AM, json=group, headers=bearer(staff))
    assert response.status_code == 200, response.text
    assert response.json() == {"opened": ["INC-00001"], "closed": [], "unchanged": 0, "voided": [],
                               "unknown_environments": ["NOPE"], "closed_months": []}
    assert "unknown environment 'NOPE'" in caplog.text
    assert [(i["incident_id"], i["environment_id"]) for i in incidents(store)] == [("INC-00001", "E1")]
    assert events(store) == [("ok@2026-11-25T06:00:00.123456+00:00:firing", "INC-00001", "opened"),
                             ("x@2026-11-25T06:00:00+00:00:firing", None, "unknown environment 'NOPE'")]
    # once the environment exists, the same delivery takes what it set aside, and only that
    with store.transaction() as con:
        add(con, store.config, "environments", dict(environment_id="NOPE", name="New", kind="shared",
                                                     deployment="shared_cloud", active_from="2026-01-01"))
    response = client.post(AM, json=group, headers=bearer(staff))
    assert response.json() == {"opened": ["INC-00002"], "closed": [], "unchanged": 1, **NOTHING_SET_ASIDE}
    assert events(store)[1] == ("x@2026-11-25T06:00:00+00:00:firing", "INC-00002", "opened")


def test_a_delivery_of_unknown_environments_only_is_refused_and_recorded(service):
    client, store, staff = service
    before = counts(store)
    response = client.post(AM, json=payload(alert(env="NOPE"), alert(env="GONE", fingerprint="y")),
                           headers=bearer(staff))
    assert response.status_code == 422
    assert response.json()["error"].startswith("unknown environment 'GONE', 'NOPE': add it")
    assert counts(store) == {**before, "webhook_events": 2}
    assert [outcome for _, _, outcome in events(store)] == ["unknown environment 'NOPE'", "unknown environment 'GONE'"]


def test_a_resolve_for_a_voided_incident_closes_nothing_and_creates_nothing(service):
    from kb.intake.corrections import void_incident

    client, store, staff = service
    client.post(AM, json=payload(alert()), headers=bearer(staff)).raise_for_status()
    store.write(void_incident, store.config, ADMIN, "INC-00001", "false alarm: the probe lost its DNS")
    before = counts(store)
    response = client.post(AM, json=payload(alert("resolved", ends="2026-11-25T08:00:00Z")), headers=bearer(staff))
    assert response.status_code == 200, response.text
    assert response.json() == {"opened": [], "closed": [], "unchanged": 0, "voided": ["INC-00001"],
                               "unknown_environments": [], "closed_months": []}
    assert counts(store) == {**before, "webhook_events": before["webhook_events"] + 1}
    [row] = incidents(store)
    assert row["ended_at"] is None and downtime_minutes(store, "E1", NOW) == 0.0
    assert events(store)[-1] == ("a1b2c3d4e5f60718@2026-11-25T06:00:00.123456+00:00:resolved", "INC-00001",
                                 "voided")
    # the firing repeated (repeat_interval) brings nothing back either
    response = client.post(AM, json=payload(alert()), headers=bearer(staff))
    assert response.json()["opened"] == [] and len(incidents(store)) == 1


def test_a_thousand_alerts_do_not_hold_up_the_forms(service):
    from kb.intake.writes import log_check

    client, store, staff = service
    starts = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    group = payload(*[alert(fingerprint=f"fp{n:04d}", env=("E1", "S1")[n % 2],
                            starts=(starts + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ"))
                      for n in range(webhooks.MAX_ALERTS)])
    answer = {}

    def deliver():
        started = time.monotonic()
        answer["response"] = client.post(AM, json=group, headers=bearer(staff))
        answer["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=deliver)
    thread.start()
    waits = []
    while thread.is_alive():  # a person logging checks meanwhile: each write as quick as ever
        started = time.monotonic()
        store.write(log_check, store.config, ADMIN, "E1", NOW, "looked")
        waits.append(time.monotonic() - started)
        time.sleep(0.05)
    thread.join()
    response = answer["response"]
    assert response.status_code == 200, response.text
    assert len(response.json()["opened"]) == webhooks.MAX_ALERTS
    assert counts(store)["incidents"] == webhooks.MAX_ALERTS
    assert len(waits) >= 2 and max(waits) < 5, waits
    assert answer["seconds"] < 20


@pytest.mark.parametrize(("body", "status", "says"), [
    (b"{not json", 400, "not JSON"),
    (b"\xff\xfe", 400, "not JSON"),
    (b"[" * 100_000, 400, "nested more deeply than"),
    (b'{"version": "4", "alerts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "nested more deeply than"),
    (b"[]", 422, "JSON object"),
    (json.dumps({"version": "3", "alerts": []}).encode(), 422, "version"),
    (json.dumps({"version": "4"}).encode(), 422, "alerts: must be a list"),
    (json.dumps(payload({**alert(), "status": "pending"})).encode(), 422, "alerts[0].status"),
    (json.dumps(payload({**alert(), "fingerprint": ""})).encode(), 422, "alerts[0].fingerprint: is missing"),
    (json.dumps(payload(alert(env=""))).encode(), 422, "labels.environment"),
    (json.dumps(payload({**alert(), "labels": {"environment": "E1", "n": 1}})).encode(), 422, "labels"),
    (json.dumps(payload(alert(starts="yesterday"))).encode(), 422, "startsAt"),
    (json.dumps(payload(alert(starts="2026-11-25T06:00:00+25:00"))).encode(), 422, "offset"),
    (json.dumps(payload(alert(starts="2026-11-25T24:00:00Z"))).encode(), 422, "startsAt"),
    (json.dumps(payload(alert(starts=None))).encode(), 422, "startsAt: is missing"),
    (json.dumps(payload(alert("resolved"))).encode(), 422, "endsAt"),
    (json.dumps(payload(alert(), alert(fingerprint="late", starts="2026-11-26T06:00:00Z"))).encode(), 422,
     "in the future"),
    (json.dumps(payload(alert("resolved", ends="2026-11-25T05:00:00Z"))).encode(), 422, "before"),
])
def test_malformed_or_refused_deliveries_write_nothing(service, body, status, says):
    client, store, staff = service
    before = counts(store)
    response = client.post(AM, content=body, headers={**bearer(staff), "Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert says in response.json()["error"]
    assert counts(store) == before


def test_tokens_and_roles(service, tmp_path):
    client, store, staff = service
    viewer = token(store, "viewer")
    before = counts(store)
    for path, body in ((AM, payload(alert())), (KUMA, heartbeat(0))):
        assert client.post(path, json=body).status_code == 401
        assert client.post(path, json=body, headers=bearer("kb_not-a-token")).status_code == 401
        response = client.post(path, json=body, headers=bearer(viewer))
        assert response.status_code == 403 and "staff" in response.json()["error"]
    assert counts(store) == before
    lead = token(store, "lead")
    assert client.post(AM, json=payload(alert()), headers=bearer(lead)).status_code == 200


# --- Uptime Kuma ------------------------------------------------------------------------------------------

def test_kuma_down_opens_up_closes_every_heartbeat_a_check(service):
    client, store, staff = service
    response = client.post(KUMA, json=heartbeat(0), headers=bearer(staff))
    assert response.status_code == 200, response.text
    assert response.json() == {"opened": ["INC-00001"], "closed": [], "checks": 1, "unchanged": 0, "voided": []}
    [row] = incidents(store)
    assert (row["environment_id"], row["impact"]) == ("E1", "outage")
    assert row["started_at"] == datetime(2026, 11, 25, 7, 0, 0, 123000, tzinfo=UTC)  # Kuma's time is UTC
    assert "connect ETIMEDOUT" in row["summary"]

    # down again (Kuma's resend interval): a check, no second incident
    response = client.post(KUMA, json=heartbeat(0, time_="2026-11-25 07:10:00.000"), headers=bearer(staff))
    assert response.json() == {"opened": [], "closed": [], "checks": 1, "unchanged": 0, "voided": []}
    response = client.post(KUMA, json=heartbeat(1, time_="2026-11-25 07:20:00.123", msg="200 - OK"),
                           headers=bearer(staff))
    assert response.json() == {"opened": [], "closed": ["INC-00001"], "checks": 1, "unchanged": 0, "voided": []}
    assert downtime_minutes(store, "E1", NOW) == 20.0
    checks = store.query("SELECT checked_at, checked_by, note FROM monitoring_checks ORDER BY checked_at")
    assert len(checks) == 3 and set(checks["checked_by"]) == {"token:monitoring-staff"}
    assert checks["note"].iloc[-1] == "Uptime Kuma: E1 up: 200 - OK"

    settled = counts(store)
    for body in (heartbeat(0), heartbeat(1, time_="2026-11-25 07:20:00.123", msg="200 - OK")):
        response = client.post(KUMA, json=body, headers=bearer(staff))
        assert response.json()["unchanged"] == 1
    assert counts(store) == settled


def test_kuma_heartbeats_count_at_their_own_time_whatever_order_they_arrive_in(service):
    client, store, staff = service

    def beat(status: int, clock: str) -> dict:
        response = client.post(KUMA, json=heartbeat(status, time_=f"2026-11-25 {clock}:00.000"), headers=bearer(staff))
        assert response.status_code == 200, response.text
        return {key: value for key, value in response.json().items() if key != "checks"}

    def spans() -> list[tuple]:
        return [(i["incident_id"], i["started_at"].strftime("%H:%M"),
                 i["ended_at"] and i["ended_at"].strftime("%H:%M")) for i in incidents(store)]

    quiet = {"unchanged": 0, "voided": []}
    assert beat(1, "07:20") == {"opened": [], "closed": [], **quiet}
    # the older down, arriving after the up: the outage it began ended at that up
    assert beat(0, "07:00") == {"opened": ["INC-00001"], "closed": ["INC-00001"], **quiet}
    assert spans() == [("INC-00001", "07:00", "07:20")]
    # an up older than the outage it arrives in does not end it
    assert beat(0, "07:30") == {"opened": ["INC-00002"], "closed": [], **quiet}
    assert beat(1, "07:10") == {"opened": [], "closed": [], **quiet}
    assert beat(0, "07:50") == {"opened": [], "closed": [], **quiet}  # down still
    # an up between two downs, arriving last: the outage ends at it and begins again at the later down
    assert beat(1, "07:40") == {"opened": ["INC-00003"], "closed": ["INC-00002"], **quiet}
    assert spans() == [("INC-00001", "07:00", "07:20"), ("INC-00002", "07:30", "07:40"), ("INC-00003", "07:50", None)]
    assert beat(1, "08:00") == {"opened": [], "closed": ["INC-00003"], **quiet}
    assert downtime_minutes(store, "E1", NOW) == 20 + 10 + 10


def test_kuma_environment_by_tag_else_by_monitor_name(service):
    client, store, staff = service
    tagged = heartbeat(0, name="Production API", monitor_id=7, tags=[
        {"id": 1, "monitor_id": 7, "tag_id": 2, "name": "team", "value": "core", "color": "#fff"},
        {"id": 2, "monitor_id": 7, "tag_id": 3, "name": "environment", "value": "S1", "color": "#000"}])
    client.post(KUMA, json=tagged, headers=bearer(staff)).raise_for_status()
    client.post(KUMA, json=heartbeat(2, name="E1", monitor_id=8), headers=bearer(staff)).raise_for_status()
    assert [i["environment_id"] for i in incidents(store)] == ["S1"]  # pending is a check only
    assert store.query("SELECT environment_id FROM monitoring_checks ORDER BY environment_id")[
        "environment_id"].tolist() == ["E1", "S1"]


def test_kuma_test_notification_writes_nothing(service):
    client, store, staff = service
    before = counts(store)
    response = client.post(KUMA, json={"heartbeat": None, "monitor": None, "msg": "Uptime Kuma Testing"},
                           headers=bearer(staff))
    assert response.status_code == 200 and "test notification" in response.json()["note"]
    assert counts(store) == before


def test_kuma_unknown_environment_and_malformed(service, caplog):
    client, store, staff = service
    before = counts(store)
    with caplog.at_level(logging.WARNING, logger="kb.service.webhooks"):
        response = client.post(KUMA, json=heartbeat(0, name="Website"), headers=bearer(staff))
    assert response.status_code == 422 and "unknown environment 'Website'" in response.json()["error"]
    assert "Website" in caplog.text
    bad = [
        {"heartbeat": {"status": 0, "time": "2026-11-25 07:00:00"}},
        {**heartbeat(0), "heartbeat": {**heartbeat(0)["heartbeat"], "status": 5}},
        {**heartbeat(0), "heartbeat": {**heartbeat(0)["heartbeat"], "status": True}},
        {**heartbeat(0), "heartbeat": {**heartbeat(0)["heartbeat"], "time": "now"}},
        {**heartbeat(0), "heartbeat": {**heartbeat(0)["heartbeat"], "time": None}},
        heartbeat(0, time_="2026-11-26 07:00:00"),  # tomorrow: the clock rule
        heartbeat(0, name=""),
        {**heartbeat(0), "monitor": {"name": "E1", "tags": "environment"}},
    ]
    for body in bad:
        response = client.post(KUMA, json=body, headers=bearer(staff))
        assert response.status_code == 422, (body, response.text)
    assert counts(store) == before


# --- The real Alertmanager --------------------------------------------------------------------------------

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


@contextmanager
def uvicorn_server(app, port: int):
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the webhook server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def alertmanager_process(tmp_path, webhook_url: str, bearer_token: str):
    port = free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text(f"""
global:
  resolve_timeout: 1m
route:
  receiver: support
  group_by: ['alertname', 'environment']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: support
    webhook_configs:
      - url: {json.dumps(webhook_url)}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {json.dumps(bearer_token)}
""")
    base = f"http://127.0.0.1:{port}"
    with serving([ALERTMANAGER, f"--config.file={config}", f"--storage.path={tmp_path / 'am-data'}",
                  f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=debug"],
                 f"{base}/-/ready", log=tmp_path / "alertmanager.log", timeout=30):
        yield base


def post_alerts(base: str, alerts: list[dict]) -> None:
    request = urllib.request.Request(f"{base}/api/v2/alerts", data=json.dumps(alerts).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def wait_for(condition, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.skipif(ALERTMANAGER is None, reason="prometheus-alertmanager is not installed (scripts/test installs it)")
def test_the_real_alertmanager_opens_and_closes_an_outage_once(tmp_path):
    set_now(None)  # the real clock: Alertmanager stamps and keeps alerts by it
    store = make_store(tmp_path)
    staff = token(store, "staff", "alertmanager")
    deliveries: list[bytes] = []

    async def keep_deliveries(request):  # what Alertmanager sent, kept, then handled as the service does
        deliveries.append(await request.body())
        return await webhooks.alertmanager(request)

    @asynccontextmanager
    async def lifespan(app):
        yield {"store": store}

    app = Starlette(routes=[Route(AM, keep_deliveries, methods=["POST"])], lifespan=lifespan)

    start = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    end = start + timedelta(minutes=30)
    labels = {"alertname": "SupportApiDown", "environment": "E1", "severity": "critical"}
    stamp = lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    try:
        with uvicorn_server(app, free_port()) as url, \
                alertmanager_process(tmp_path, url + AM, staff) as am:
            post_alerts(am, [{"labels": labels, "annotations": {"summary": "the support API is down"},
                              "startsAt": stamp(start)}])
            wait_for(lambda: len(incidents(store)) == 1, what="the firing notification")
            [row] = incidents(store)
            assert (row["environment_id"], row["impact"], row["ended_at"]) == ("E1", "outage", None)
            assert row["started_at"] == start

            post_alerts(am, [{"labels": labels, "annotations": {"summary": "the support API is down"},
                              "startsAt": stamp(start), "endsAt": stamp(end)}])
            wait_for(lambda: incidents(store)[0]["ended_at"] is not None, what="the resolved notification")
        assert incidents(store)[0]["ended_at"] == end
        as_of = datetime.now(UTC)
        assert downtime_minutes(store, "E1", as_of) == 30.0
        firing = [json.loads(d) for d in deliveries if json.loads(d)["status"] == "firing"]
        resolved = [json.loads(d) for d in deliveries if json.loads(d)["status"] == "resolved"]
        assert firing and resolved and firing[0]["version"] == "4"
        settled = counts(store)

        # replay what Alertmanager delivered: nothing changes
        with TestClient(webhook_app(store)) as client:
            for body in deliveries:
                response = client.post(AM, content=body, headers=bearer(staff))
                assert response.status_code == 200 and response.json()["unchanged"] >= 1
                assert not response.json()["opened"] and not response.json()["closed"]
        assert counts(store) == settled
        assert downtime_minutes(store, "E1", as_of) == 30.0
    finally:
        store.close()
