"""What a page reads about mail (rules §9): a case's thread (for the Queue), the free clients mail made (for a
review and merge page), and the state of the polled mailboxes: for the Queue, the Mail clients page and the
Configuration page."""

from __future__ import annotations

import pandas as pd


def case_thread(store, case_id: str) -> pd.DataFrame:
    """The messages of one case, oldest first: when (receipt, or a team message's Date), who (``sender``, as
    the Queue shows it: a response recorded on the Queue or an imported message has no address), its ``side``
    (client, team, or "team (unverified)": claiming to be the team's with nothing to vouch for it, so it counts
    for nothing), automatic (and why), subject, where it was read, whether it is the message that opened the
    case, and whether it is the case's first response (the team's trusted, non-automatic message at the case's
    ``first_response_at``; none when a person recorded an earlier response by hand)."""
    return store.query(
        """SELECT m.received_at, m.from_address, m.from_name,
                  CASE WHEN m.from_address IS NULL
                       THEN CASE m.source WHEN 'queue' THEN '(recorded on the Queue)' ELSE '(imported)' END
                       WHEN coalesce(m.from_name, '') <> '' THEN m.from_name || ' <' || m.from_address || '>'
                       ELSE m.from_address END AS sender,
                  m.is_team, m.is_automatic, m.automatic_reason,
                  m.subject, m.mailbox, m.folder, m.message_id, coalesce(m.unverified, false) AS unverified,
                  CASE WHEN NOT m.is_team THEN 'client' WHEN coalesce(m.unverified, false) THEN 'team (unverified)'
                       ELSE 'team' END AS side,
                  coalesce(m.message_key = c.message_id, false) AS opened_case,
                  coalesce(m.message_key = (
                      SELECT t.message_key FROM messages t
                      WHERE t.case_id = c.case_id AND t.is_team AND NOT t.is_automatic
                        AND NOT coalesce(t.unverified, false) AND t.received_at = c.first_response_at
                      ORDER BY t.message_key LIMIT 1), false) AS first_response
           FROM messages m LEFT JOIN cases c ON c.case_id = m.case_id
           WHERE m.case_id = ?
           ORDER BY m.received_at NULLS LAST, m.message_key""",
        [case_id],
    )


def mail_clients(store, limit: int = 1000) -> pd.DataFrame:
    """The free clients mail made (one per unknown sender), newest first, with their cases: to review, move
    the cases to the right client, or give a company its ``email_domain``. ``domain_clients``: how many
    clients have the sender's domain as their ``email_domain``; ``domain_owners`` names the others, and
    ``domain_owner_id`` is the first of them (the likely merge target)."""
    return store.query(
        """SELECT cl.client_id, cl.name, cl.tier,
                  split_part(cl.client_id, '@', 2) AS domain,
                  count(c.case_id) AS cases,
                  min(c.received_at) AS first_case_at,
                  max(c.received_at) AS last_case_at,
                  (SELECT count(*) FROM clients o WHERE o.email_domain IS NOT NULL
                     AND lower(ltrim(trim(o.email_domain), '@')) = split_part(cl.client_id, '@', 2)) AS domain_clients,
                  (SELECT string_agg(o.name || ' (' || o.client_id || ')', ', ' ORDER BY o.client_id)
                     FROM clients o WHERE o.email_domain IS NOT NULL AND o.client_id <> cl.client_id
                     AND lower(ltrim(trim(o.email_domain), '@')) = split_part(cl.client_id, '@', 2)) AS domain_owners,
                  (SELECT min(o.client_id) FROM clients o WHERE o.email_domain IS NOT NULL
                     AND o.client_id <> cl.client_id
                     AND lower(ltrim(trim(o.email_domain), '@')) = split_part(cl.client_id, '@', 2)) AS domain_owner_id
           FROM clients cl LEFT JOIN cases c ON c.client_id = cl.client_id AND c.voided_at IS NULL
           WHERE cl.source = 'mail'
           GROUP BY ALL
           ORDER BY last_case_at DESC NULLS LAST, cl.client_id
           LIMIT ?""",
        [limit],
    )


def merge_targets(store, source_id: str) -> dict[str, str]:
    """Every client a mail-made client can be merged into (all but itself) → 'name (id)', by name."""
    frame = store.query(
        """SELECT client_id, name FROM clients WHERE client_id <> ? AND coalesce(source, '') <> 'merged'
           ORDER BY lower(name), client_id""",
        [source_id])
    return {cid: f"{name} ({cid})" for cid, name in zip(frame.client_id, frame.name, strict=True)}


def mailbox_state(store) -> pd.DataFrame:
    """Each polled mailbox and folder: the last UID taken, when it was polled, and the last error."""
    return store.query(
        "SELECT mailbox, folder, uidvalidity, last_uid, polled_at, last_error FROM imap_state ORDER BY mailbox, folder")


def intake_has_run(store) -> bool:
    """Whether mail intake ever ran: a polling run recorded, a mailbox folder polled, or a message stored from
    mail (a mailbox or an imported mail file; not a response recorded on the Queue, nor a CSV import's)."""
    frame = store.query("SELECT EXISTS (SELECT 1 FROM job_runs WHERE kind = 'mail') "
                        "OR EXISTS (SELECT 1 FROM imap_state) "
                        "OR EXISTS (SELECT 1 FROM messages WHERE source = 'mail') AS ran")
    return bool(frame.ran.iloc[0])


def quarantine(store, status: str = "held") -> pd.DataFrame:
    """The messages of the mail quarantine with ``status`` (held, retried or discarded), oldest first: where each
    was read, who it claims to be from, its subject and why it could not be stored, and who decided about it."""
    return store.query(
        """SELECT message_key, message_id, mailbox, folder, uid, read_from, from_address, subject, received_at,
                  reason, first_seen_at, status, decided_by, decided_at, octet_length(raw) AS size
           FROM mail_quarantine WHERE status = ? ORDER BY first_seen_at, message_key""",
        [status])


def held_by_folder(store) -> dict[tuple[str, str], int]:
    """How many messages the quarantine holds, by (mailbox, folder): a mailbox name, or ``import`` and a file."""
    frame = store.query(
        "SELECT mailbox, folder, count(*) AS n FROM mail_quarantine WHERE status = 'held' GROUP BY ALL")
    return {(m, f): int(n) for m, f, n in zip(frame.mailbox, frame.folder, frame.n, strict=True)}
