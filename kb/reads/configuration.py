"""The schema version of the database in use, the tier policies ``[sla]`` makes and the polled mailboxes, for
the Configuration page."""

from __future__ import annotations

import pandas as pd

from kb import formats
from kb.config import SlaConfig
from kb.db.connection import schema_version as _schema_version
from kb.engine.policies import tier_rules
from kb.engine.targets import FIRST_RESPONSE
from kb.store import Store
from kb.timestamps import format_for_people


def schema_version(store: Store) -> int:
    """The schema version the database file is at."""
    with store.reader() as cur:
        return _schema_version(cur)


def tier_policies(sla: SlaConfig) -> list[str]:
    """Each tier policy as ``[sla]`` makes it, in words (Markdown): "`enterprise` — any priority: first response
    within 1 business day"."""
    return [f"`{policy}` — " + formats.policy_row("*", FIRST_RESPONSE.label, kind, amount, "support", "1970-01-01")
            for policy, kind, amount in tier_rules(sla)]


MAILBOX_COLUMNS = ["mailbox", "folder", "configured", "last UID", "last poll", "last error", "held"]


def mailboxes(store: Store) -> pd.DataFrame:
    """Each mailbox and folder, configured (``[[mail.mailboxes]]``) or polled before (``imap_state``): the last
    UID taken, when it was last polled (support zone), its last error (empty when the last poll went well) and
    how many of its messages the mail quarantine holds."""
    from kb.reads.mail import held_by_folder, mailbox_state

    zone = store.config.calendar.zone
    state = {(r.mailbox, r.folder): r for r in mailbox_state(store).itertuples()}
    held = held_by_folder(store)
    configured = [(box.name, folder) for box in store.config.mail.mailboxes for folder in box.folders]
    rows = []
    for key in configured + sorted((set(state) | set(held)) - set(configured)):
        r = state.get(key)
        rows.append({
            "mailbox": key[0], "folder": key[1],
            "configured": "yes" if key in configured else "no (mail import)" if key[0] == "import" else "no (removed)",
            "last UID": "" if r is None else str(int(r.last_uid)),
            "last poll": "never" if r is None or pd.isna(r.polled_at) else format_for_people(r.polled_at, zone),
            "last error": "" if r is None or r.last_error is None or pd.isna(r.last_error) else str(r.last_error),
            "held": held.get(key, 0),
        })
    return pd.DataFrame(rows, columns=MAILBOX_COLUMNS)
