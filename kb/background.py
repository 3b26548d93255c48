"""Work nobody waits for yields the cores to work somebody waits for.

The service's jobs (backups, alerts, statements, mail polls), moving the snapshot on to the next minute and
keeping every case's rows beside the database run on threads of their own, beside the pages and the forms'
writes, on a machine of two cores. A backup alone keeps both busy for seconds (DuckDB copies every table in
parallel), and a form's write that shares the cores with it took twice as long. So each such thread lowers
its own CPU priority when it starts (``yield_cores``): the operating system then gives the cores to a page or
a write first, and to the background work whenever nobody else wants them, so a backup alone takes as long
as before.

Linux keeps a priority (its "nice" value) per thread, and lets any process lower its threads' priority;
elsewhere this does nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger("kb.background")
NICENESS = 10  # added to the thread's nice value: a tenth of a normal thread's share when both want a core


def yield_cores() -> None:
    """Lower the calling thread's CPU priority by ``NICENESS`` (Linux); nothing elsewhere, or when refused."""
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + NICENESS))
    except OSError as e:  # a sandbox that forbids it: the thread runs at the priority it had
        log.info("thread %s keeps its CPU priority: %s", threading.current_thread().name, e)
