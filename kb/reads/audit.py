"""The audit trail, filtered by who, table and action, for the Audit trail page."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd

from kb.db.sqltext import where_in
from kb.engine.targets import TARGETS
from kb.formats import EMPTY, WORDS, count, field_label, instant, word
from kb.intake.policies import START
from kb.store import Store


def filter_choices(store: Store) -> dict[str, list[str]]:
    """The values each filter offers: the actors, tables and actions recorded so far."""
    frame = store.query("SELECT coalesce(list(DISTINCT actor ORDER BY actor), []) AS actors, "
                        "coalesce(list(DISTINCT table_name ORDER BY table_name), []) AS tables, "
                        "coalesce(list(DISTINCT action ORDER BY action), []) AS actions FROM audit_log")
    return {name: list(frame.iloc[0][name]) for name in ("actors", "tables", "actions")}


def audit_rows(store: Store, actors: Sequence[str] = (), tables: Sequence[str] = (), actions: Sequence[str] = (),
               limit: int = 1000) -> pd.DataFrame:
    """The latest ``limit`` writes by any of ``actors``, on any of ``tables``, of any of ``actions``
    (an empty filter lets every value through)."""
    where, params = where_in({"actor": actors, "table_name": tables, "action": actions})
    return store.query(f"SELECT audit_id, logged_at, actor, action, table_name, row_id, before, after "
                       f"FROM audit_log WHERE {where} ORDER BY audit_id DESC LIMIT {int(limit)}", params)


# --- A recorded change in words -------------------------------------------------------------------------

_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)")
LONGEST_VALUE = 80  # characters of one value shown in the trail; the export has all of it


def change_in_words(action: str, before: str | None, after: str | None, zone: ZoneInfo) -> str:
    """An audit row's before and after (JSON objects) as 'Assignee: — → Sam; …', fields by their labels and
    values as the pages show them (``kb.formats``), instants in ``zone``: for an edit the fields that changed,
    for an addition the fields set, for an import its rows, for the configuration file's rules what changed in
    them ("sla.enterprise_response_business_days: 1 → 2")."""
    old, new = _fields(before), _fields(after)
    if action == "rules" and "changes" in new:
        return "; ".join(new["changes"])
    if action == "import" and not old and "rows" in new:
        first, last = (_key_in_words(new.get(end), zone) for end in ("first_id", "last_id"))
        ids = f", {first} … {last}" if first != last else f", {first}"
        return f"{count(new['rows'], 'row')}{ids}" + (f", from {_value('source', new['source'], zone)}"
                                               if new.get("source") else "")
    if not old:
        return "; ".join(f"{field_label(key)}: {_value(key, value, zone)}" for key, value in new.items()
                         if value not in (None, ""))
    keys = list(old) + [key for key in new if key not in old]
    changed = [key for key in keys if old.get(key) != new.get(key)]
    return "; ".join(f"{field_label(key)}: {_value(key, old.get(key), zone)} → {_value(key, new.get(key), zone)}"
                     for key in changed) or "no field changed"


# The words of the values a row's key may hold besides ids and instants: a policy row's metric and priority.
_KEY_WORDS = {**{t.metric: t.label for t in TARGETS}, **WORDS["priority"]}


def _key_in_words(key: str | None, zone: ZoneInfo) -> str:
    """An imported row's key as the trail stores it (its values joined by spaces, instants in UTC:
    ``kb.intake.validation.key_text``) as people read it: instants in ``zone``, a metric or priority in words, a
    policy row's "from the start" (no ``valid_from``) left out."""
    if key is None:
        return EMPTY
    text = _INSTANT.sub(lambda m: instant(datetime.fromisoformat(m.group(0).replace("Z", "+00:00")), zone), key)
    words = [_KEY_WORDS.get(token, token) for token in text.split(" ") if token != START.isoformat()]
    return " ".join(words)


def _fields(text: str | None) -> dict:
    if text is None or (isinstance(text, float) and text != text):
        return {}
    try:
        values = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return {"value": text}
    return values if isinstance(values, dict) else {"value": values}


def _value(key: str, value, zone: ZoneInfo) -> str:
    if value is None or value == "":
        return EMPTY
    text = str(value)
    if _INSTANT.fullmatch(text):
        text = instant(datetime.fromisoformat(text.replace("Z", "+00:00")), zone)
    elif key in WORDS:
        text = word(key, text)
    return text if len(text) <= LONGEST_VALUE else text[:LONGEST_VALUE - 1] + "…"
