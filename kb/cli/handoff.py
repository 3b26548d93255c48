"""Whether a command does its work here or hands it to a service (``--server``, else the running service that
holds the database), and the instant it takes as now (``--now``, else ``$SUPPORT_NOW``)."""

from __future__ import annotations

import os

from kb.db import connection
from kb.service.handoff import Client, client_for, running_service


def clock_setting(args) -> str | None:
    """``--now``, else ``$SUPPORT_NOW``: the instant taken as now, as given; None: the clock."""
    return args.now or os.environ.get("SUPPORT_NOW") or None


HANDED_OFF = ("import", "export", "backup", "token", "mail import")


def service_for(args) -> Client | None:
    """The service to hand the command's work to: ``--server``, else the running service that holds the
    database and proves it (``kb.service.handoff.running_service``), else None: do the work here."""
    if args.server:
        return client_for(args.server, args.token or os.environ.get("SUPPORT_TOKEN", ""))
    return running_service(connection.db_path(args.db))
