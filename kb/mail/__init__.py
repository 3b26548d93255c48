"""Cases from email (rules §9): the support mailboxes as the source of cases and first responses.

* ``messages``: one raw message → a plain ``MailRecord`` (or a ``Skipped`` with its reason);
* ``sources``: mbox files (streamed), Maildir folders and ``.eml`` files → raw messages;
* ``intake``: a batch of records → threads, new cases, new free clients and first responses, written in one
  transaction through the intake rules (validation and audit);
* ``imap``: the configured IMAP mailboxes polled by UID, with their state kept in the store.
"""
