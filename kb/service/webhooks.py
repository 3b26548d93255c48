"""Webhooks from monitoring (rules §10): Alertmanager and Uptime Kuma open and close incidents.

Both need a token whose role may log incidents (staff or above). A delivery is read whole first (400 for
a body that is not JSON or is nested too deeply to read, 422 for one that is not the sender's format,
naming the field), then applied through the forms' rules (``kb.service.webhook_writes``: validated, the
clock rule, audited) in one transaction: an alert or heartbeat that breaks a rule answers 422 and writes
nothing. Every alert and heartbeat is recorded in ``webhook_events`` (``source``, ``event_key``, the
sender's own time and state, and what it did: ``outcome``) in the same transaction, and one taken before
changes nothing: Alertmanager repeats firing alerts every ``repeat_interval`` and retries failed
deliveries, both harmless. What each sender with a valid token was answered is recorded too
(``kb.health.recorded``): a refused delivery makes the webhook unwell until one is taken again.

**Alertmanager** (webhook payload ``"version": "4"``): each alert of ``alerts`` on its own.

- environment: the label ``environment`` (an ``environment_id``); impact: ``outage`` when the label
  ``severity`` is ``critical``, else ``degraded``. An alert naming an environment that does not exist is
  set aside by itself: the rest of the group is taken, the answer lists it (``unknown_environments``),
  ``webhook_events`` records it (outcome ``unknown environment '…'``) and the log says so; once the
  environment is added, the same alert is taken. An alert that would open or close an incident in a closed month
  (rules §13) is set aside the same way (answered in ``closed_months`` with the reason, outcome ``closed month:
  …``), and taken when it comes again after an admin reopened the month. A delivery whose every alert was set
  aside answers 422.
- An alert is one incident, keyed by its ``fingerprint`` and ``startsAt`` (``subject``). ``firing``
  opens it at ``startsAt``; ``resolved`` closes it at ``endsAt``. A resolved alert whose firing was
  never received is logged whole (``startsAt`` to ``endsAt``); an incident a person closed already
  stays as it is, and one a person voided (a false alarm) stays voided: its ``resolved`` closes nothing
  and logs nothing (answered in ``voided``, outcome ``voided``). The summary names the alert
  (``alertname``, its ``summary`` annotation, the fingerprint).

**Uptime Kuma** (its webhook JSON: ``heartbeat``, ``monitor``, ``msg``):

- environment: the value of the monitor's tag ``environment`` when it has one, else the monitor's
  name, taken as the ``environment_id``; one that does not exist answers 422 and writes nothing.
- every heartbeat is a monitoring check at ``heartbeat.time`` (Kuma sends it in UTC, without an
  offset). A monitor's state follows its heartbeats' times, not the order they arrive in: status 0
  (down) opens an outage unless the monitor was down just before; status 1 (up) ends the outage it falls
  in. 2 (pending) and 3 (maintenance) are checks only. A down or up dated in a closed month answers 422 and
  writes nothing. Kuma calls the webhook on changes of state (and on its "resend" interval), not on every
  beat. A test notification (no heartbeat) is answered 200 and writes nothing.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kb.config import Config
from kb.health import recorded
from kb.intake.importing import Rejected
from kb.service.api import json_of, read_body
from kb.service.auth import ApiError, caller, guarded
from kb.service.webhook_writes import (
    ALERTMANAGER,
    KUMA_STATES,
    UPTIME_KUMA,
    AlertChange,
    Heartbeat,
    UnknownEnvironment,
    apply_alerts,
    apply_heartbeat,
)
from kb.store import Store, WriteFailed
from kb.timestamps import TimestampError, parse_timestamp

log = logging.getLogger("kb.service.webhooks")

MAX_BODY_BYTES = 1_000_000
MAX_ALERTS = 1000
MAX_KEY = 200  # fingerprints, monitor names: longer is not a real sender
PERMISSION = "log_incident"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time: Alertmanager's endsAt of an alert with no end

# RFC 3339 as Alertmanager writes it (nanoseconds allowed), and Kuma's "2024-09-24 23:51:35.527" (UTC).
_INSTANT = re.compile(r"(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})?", re.ASCII)


# --- Reading the deliveries ------------------------------------------------------------------------------

def parse_alertmanager(body: Any, config: Config) -> list[AlertChange]:
    """The alerts of an Alertmanager webhook payload (version 4); ApiError(422) naming what is wrong."""
    if not isinstance(body, dict):
        raise ApiError(422, "the payload must be a JSON object (Alertmanager's webhook payload, version 4)")
    if body.get("version") != "4":
        raise ApiError(422, f"version: {_shown(body.get('version'))} is not \"4\" (Alertmanager's webhook payload)")
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise ApiError(422, "alerts: must be a list")
    if len(alerts) > MAX_ALERTS:
        raise ApiError(422, f"alerts: {len(alerts)} alerts in one delivery, more than {MAX_ALERTS}")
    changes = []
    for n, alert in enumerate(alerts):
        where = f"alerts[{n}]"
        if not isinstance(alert, dict):
            raise ApiError(422, f"{where}: must be an object")
        status = alert.get("status")
        if status not in ("firing", "resolved"):
            raise ApiError(422, f"{where}.status: {_shown(status)} is not firing or resolved")
        labels = alert.get("labels")
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise ApiError(422, f"{where}.labels: must be an object of text labels")
        annotations = alert.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise ApiError(422, f"{where}.annotations: must be an object")
        environment = _key_text(labels.get("environment"), f"{where}.labels.environment")
        fingerprint = _key_text(alert.get("fingerprint"), f"{where}.fingerprint")
        started = _instant(alert.get("startsAt"), f"{where}.startsAt", config)
        if started is None:
            raise ApiError(422, f"{where}.startsAt: is missing")
        ended = None
        if status == "resolved":
            ended = _instant(alert.get("endsAt"), f"{where}.endsAt", config)
            if ended is None:
                raise ApiError(422, f"{where}.endsAt: a resolved alert needs its end")
        name = labels.get("alertname") or "alert"
        said = annotations.get("summary") or annotations.get("description") or ""
        said = said if isinstance(said, str) else ""
        summary = f"{name}: {said}".strip().rstrip(":") + f" [Alertmanager {fingerprint}]"
        changes.append(AlertChange(
            environment_id=environment,
            subject=f"{fingerprint}@{started.isoformat()}",
            firing=status == "firing",
            impact="outage" if labels.get("severity", "").strip().lower() == "critical" else "degraded",
            started_at=started,
            ended_at=ended,
            summary=summary,
        ))
    return changes


def parse_uptime_kuma(body: Any, config: Config) -> Heartbeat | None:
    """The heartbeat of an Uptime Kuma webhook call; None for a test notification (no heartbeat)."""
    if not isinstance(body, dict):
        raise ApiError(422, "the payload must be a JSON object (Uptime Kuma's webhook JSON)")
    beat, monitor = body.get("heartbeat"), body.get("monitor")
    if beat is None and monitor is None:
        return None
    if not isinstance(beat, dict):
        raise ApiError(422, "heartbeat: must be an object")
    if not isinstance(monitor, dict):
        raise ApiError(422, "monitor: must be an object")
    status = beat.get("status")
    if isinstance(status, bool) or status not in KUMA_STATES:
        raise ApiError(422, f"heartbeat.status: {_shown(status)} is not 0 (down), 1 (up), 2 (pending) "
                            "or 3 (maintenance)")
    at = _instant(beat.get("time"), "heartbeat.time", config, default_utc=True)
    if at is None:
        raise ApiError(422, "heartbeat.time: is missing")
    name = _key_text(monitor.get("name"), "monitor.name")
    environment = _tagged_environment(monitor.get("tags")) or name
    monitor_id = monitor.get("id", beat.get("monitorID"))
    if isinstance(monitor_id, bool) or not isinstance(monitor_id, int | str | None):
        raise ApiError(422, f"monitor.id: {_shown(monitor_id)} is not a number")
    subject = f"monitor {monitor_id}" if monitor_id not in (None, "") else f"monitor {name}"
    message = beat.get("msg")
    if not isinstance(message, str):
        message = body.get("msg") if isinstance(body.get("msg"), str) else ""
    return Heartbeat(environment_id=environment, subject=subject, status=status, at=at, monitor=name,
                     message=message)


def _tagged_environment(tags: Any) -> str | None:
    """The value of the monitor's tag named ``environment``, if it has one."""
    if tags is None:
        return None
    if not isinstance(tags, list):
        raise ApiError(422, "monitor.tags: must be a list")
    for tag in tags:
        if isinstance(tag, dict) and str(tag.get("name", "")).strip().lower() == "environment":
            return _key_text(tag.get("value"), "monitor.tags[environment].value")
    return None


def _key_text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, f"{where}: is missing")
    if len(value) > MAX_KEY:
        raise ApiError(422, f"{where}: is longer than {MAX_KEY} characters")
    return value.strip()


def _instant(value: Any, where: str, config: Config, *, default_utc: bool = False) -> datetime | None:
    """An aware UTC instant from RFC 3339 text (fractions beyond microseconds dropped); None for nothing
    or Go's zero time; ApiError(422) for anything else that is not one. Without an offset: UTC when
    ``default_utc`` (Uptime Kuma), else local time in the support zone."""
    if value is None or value == "" or value == ZERO_TIME:
        return None
    if not isinstance(value, str):
        raise ApiError(422, f"{where}: {_shown(value)} is not a timestamp")
    match = _INSTANT.fullmatch(value.strip())
    if not match:
        raise ApiError(422, f"{where}: {_shown(value)} is not an RFC 3339 timestamp")
    clock, fraction, offset = match.groups()
    if offset is None and default_utc:
        offset = "Z"
    text = clock + (f".{fraction[:6]}" if fraction else "") + (offset or "")
    try:
        moment = parse_timestamp(text, config.calendar.zone)
    except TimestampError as e:
        raise ApiError(422, f"{where}: {e}") from None
    if moment.year <= 1:
        return None
    return moment.astimezone(UTC)


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 60 else text[:57] + "..."


# --- The endpoints ---------------------------------------------------------------------------------------

async def _json_body(request: Request) -> Any:
    return json_of(await read_body(request, limit=MAX_BODY_BYTES), "the payload")  # refused before read whole


async def _deliver(request: Request, source: str, parse, apply) -> Response:
    store = request.state.store
    actor = await caller(request)
    if not actor.may(PERMISSION):
        raise ApiError(403, f"{actor.email} ({actor.role}) may not log incidents: the webhook needs a token "
                            "of role staff or above")
    parsed = parse(await _json_body(request), store.config)
    if parsed is None:
        return JSONResponse({"opened": [], "closed": [], "checks": 0, "unchanged": 0, "voided": [],
                             "note": "no heartbeat (a test notification): nothing recorded"})
    try:
        result = await run_in_threadpool(apply, store, actor, parsed)
    except WriteFailed as e:  # busy or a full disk: 503, so the sender delivers it again later
        log.warning("%s webhook not applied now: %s", source, e)
        raise ApiError(503, f"nothing was written, try again: {e}") from None
    except UnknownEnvironment as e:
        log.warning("%s webhook refused: unknown environment %s (nothing written)", source, e)
        raise ApiError(422, f"unknown environment {e}: add it (Clients and contracts) or fix the "
                            f"{'environment label' if source == ALERTMANAGER else 'monitor name or tag'}; "
                            "nothing was written") from None
    except Rejected as e:
        log.warning("%s webhook refused: %s", source, e)
        raise ApiError(422, f"nothing was written: {e}") from None
    unknown, closed = result.get("unknown_environments"), result.get("closed_months")
    if unknown:
        log.warning("%s webhook: alerts of unknown environment %s set aside", source, _names(unknown))
    if closed:
        log.warning("%s webhook: alerts set aside: %s", source, _set_aside(closed))
    if (unknown or closed) and not any(result[taken] for taken in ("opened", "closed", "unchanged", "voided")):
        reasons = [f"unknown environment {_names(unknown)}: add it (Clients and contracts) or fix the environment "
                   "label"] if unknown else []
        raise ApiError(422, "; ".join(reasons + ([_set_aside(closed)] if closed else []))
                       + "; nothing else was written")
    if result["opened"] or result["closed"] or result["voided"]:
        log.info("%s webhook: opened %s, closed %s, left voided %s", source, result["opened"], result["closed"],
                 result["voided"])
    return JSONResponse(result)


def _names(environments: list[str]) -> str:
    return ", ".join(repr(name) for name in environments)


def _set_aside(alerts: list[dict]) -> str:
    """The alerts set aside for a closed month, each with the reason."""
    return "; ".join(f"alert {alert['alert']}: {alert['reason']}" for alert in alerts)


def _apply_heartbeat(store: Store, actor, beat: Heartbeat) -> dict:
    return store.write(apply_heartbeat, store.config, actor, beat)


@recorded(ALERTMANAGER)
@guarded
async def alertmanager(request: Request) -> Response:
    """``POST /api/v1/webhooks/alertmanager``."""
    return await _deliver(request, ALERTMANAGER, parse_alertmanager, apply_alerts)


@recorded(UPTIME_KUMA)
@guarded
async def uptime_kuma(request: Request) -> Response:
    """``POST /api/v1/webhooks/uptime-kuma``."""
    return await _deliver(request, UPTIME_KUMA, parse_uptime_kuma, _apply_heartbeat)


ROUTES = [
    Route("/api/v1/webhooks/alertmanager", alertmanager, methods=["POST"]),
    Route("/api/v1/webhooks/uptime-kuma", uptime_kuma, methods=["POST"]),
]
