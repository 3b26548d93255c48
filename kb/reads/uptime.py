"""Uptime by environment and month, incidents over time, and when each environment was last seen."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from kb.store import Snapshot, Store


def monthly_uptime(store: Store, snap: Snapshot, since_month: str) -> pd.DataFrame:
    """Environments that carry a target (dedicated ones, shared ones under contract), per month."""
    return store.snapshot_query(
        """
        SELECT environment_id, environment_name, kind, month, downtime_minutes, uptime_pct, target_pct,
               budget_minutes, budget_left_minutes, target_met, status
        FROM env_uptime WHERE target_pct IS NOT NULL AND month >= ?
        ORDER BY environment_id, month
        """,
        [since_month],
        snap,
    )


def worst_environments(store: Store, snap: Snapshot, since_month: str, limit: int) -> tuple[list[str], int]:
    """At most ``limit`` environments with a target: most months below it since ``since_month`` first, then
    the lowest uptime; and how many environments carry a target in all."""
    frame = store.snapshot_query(
        """
        SELECT environment_id, count(*) OVER () AS environments
        FROM env_uptime WHERE target_pct IS NOT NULL AND month >= ?
        GROUP BY environment_id
        ORDER BY count(*) FILTER (WHERE NOT target_met) DESC, min(uptime_pct), environment_id
        LIMIT ?
        """,
        [since_month, limit],
        snap,
    )
    return frame.environment_id.tolist(), int(frame.environments.iloc[0]) if len(frame) else 0


def incidents_between(store: Store, snap: Snapshot, start: datetime) -> pd.DataFrame:
    """Incidents overlapping [start, T], an ongoing one drawn until T."""
    return store.snapshot_query(
        """
        SELECT i.incident_id, i.environment_id, e.name AS environment_name, i.impact, i.started_at,
               CASE WHEN i.ended_at IS NULL OR i.ended_at > $as_of THEN $as_of ELSE i.ended_at END AS drawn_until,
               i.ended_at IS NULL OR i.ended_at > $as_of AS ongoing, i.summary
        FROM incidents i JOIN environments e USING (environment_id)
        WHERE i.started_at <= $as_of AND coalesce(i.ended_at, $as_of) >= $start AND i.voided_at IS NULL
        ORDER BY i.started_at
        """,
        {"as_of": snap.as_of, "start": start},
        snap,
    )


def last_seen(store: Store, snap: Snapshot) -> pd.DataFrame:
    """Each dedicated environment's last monitoring check and last incident, and whether it is stale: neither
    within ``stale_after_days`` of T, counted from the start of its ``active_from`` day when it has had none
    since (an environment a few days old is not overdue for its first check)."""
    return store.snapshot_query(
        """
        WITH checks AS (
            SELECT environment_id, max(checked_at) AS last_checked FROM monitoring_checks
            WHERE checked_at <= $as_of GROUP BY environment_id
        ),
        logged AS (
            SELECT environment_id, max(started_at) AS last_incident FROM incidents
            WHERE started_at <= $as_of AND voided_at IS NULL GROUP BY environment_id
        )
        SELECT e.environment_id, e.name AS environment_name, e.client_id, k.name AS client_name,
               c.last_checked, l.last_incident,
               greatest(c.last_checked, l.last_incident) AS last_seen,
               (epoch($as_of::TIMESTAMPTZ) - epoch(greatest(c.last_checked, l.last_incident))) / 86400 AS days_since,
               greatest(c.last_checked, l.last_incident, timezone($zone, e.active_from::TIMESTAMP))
                   < $as_of::TIMESTAMPTZ - to_days($stale_after_days) AS stale
        FROM environments e LEFT JOIN checks c USING (environment_id) LEFT JOIN logged l USING (environment_id)
        LEFT JOIN clients k ON k.client_id = e.client_id
        WHERE e.kind = 'dedicated'
        ORDER BY stale DESC, last_seen NULLS FIRST
        """,
        {"as_of": snap.as_of, "stale_after_days": store.config.stale_after_days,
         "zone": store.config.calendar.timezone},
        snap,
    )
