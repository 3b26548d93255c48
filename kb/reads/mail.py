"""What a page reads about mail (SPEC 9): a case's thread (for the Queue), the free clients mail made (for a
review and merge page), and the state of the polled mailboxes. No page uses them yet."""

from __future__ import annotations

import pandas as pd


def case_thread(store, case_id: str) -> pd.DataFrame:
    """The messages of one case, oldest first: when (receipt, or a team message's Date), who, team or client,
    automatic (and why), subject, where it was read, and whether it is the message that opened the case."""
    return store.query(
        """SELECT m.received_at, m.from_address, m.from_name, m.is_team, m.is_automatic, m.automatic_reason,
                  m.subject, m.mailbox, m.folder, m.message_id,
                  m.message_key = c.message_id AS opened_case
           FROM messages m LEFT JOIN cases c ON c.case_id = m.case_id
           WHERE m.case_id = ?
           ORDER BY m.received_at NULLS LAST, m.message_key""",
        [case_id],
    )


def mail_clients(store, limit: int = 1000) -> pd.DataFrame:
    """The free clients mail made (one per unknown sender), newest first, with their cases: to review, move
    the cases to the right client, or give a company its ``email_domain``."""
    return store.query(
        """SELECT cl.client_id, cl.name, cl.tier,
                  split_part(cl.client_id, '@', 2) AS domain,
                  count(c.case_id) AS cases,
                  min(c.received_at) AS first_case_at,
                  max(c.received_at) AS last_case_at,
                  (SELECT count(*) FROM clients o WHERE o.email_domain IS NOT NULL
                     AND lower(ltrim(trim(o.email_domain), '@')) = split_part(cl.client_id, '@', 2)) AS domain_clients
           FROM clients cl LEFT JOIN cases c ON c.client_id = cl.client_id AND c.voided_at IS NULL
           WHERE cl.source = 'mail'
           GROUP BY ALL
           ORDER BY last_case_at DESC NULLS LAST, cl.client_id
           LIMIT ?""",
        [limit],
    )


def mailbox_state(store) -> pd.DataFrame:
    """Each polled mailbox and folder: the last UID taken, when it was polled, and the last error."""
    return store.query(
        "SELECT mailbox, folder, uidvalidity, last_uid, polled_at, last_error FROM imap_state ORDER BY mailbox, folder")
