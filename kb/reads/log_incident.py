"""The environments to log an incident or a check on, and the incidents still ongoing, for the Log incident page."""

from __future__ import annotations

import pandas as pd

from kb.store import Store


def environments(store: Store) -> pd.DataFrame:
    """Every environment: id, name and kind, by kind and name."""
    return store.query("SELECT environment_id, name, kind FROM environments ORDER BY kind, name")


def ongoing_incidents(store: Store) -> pd.DataFrame:
    """Incidents without an end, oldest first."""
    return store.query("SELECT incident_id, environment_id, impact, started_at, summary FROM incidents "
                       "WHERE ended_at IS NULL AND voided_at IS NULL ORDER BY started_at")


def recent_incidents(store: Store, limit: int = 200) -> pd.DataFrame:
    """The latest incidents not voided, newest first: what a lead may void as logged in error."""
    return store.query("SELECT incident_id, environment_id, impact, started_at, summary FROM incidents "
                       "WHERE voided_at IS NULL ORDER BY started_at DESC LIMIT $limit", {"limit": limit})
