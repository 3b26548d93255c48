"""Work nobody waits for yields the cores to work somebody waits for.

A backup copies the database on both cores for seconds (DuckDB copies every table in parallel), and keeping
every case's rows beside the database writes half a gigabyte; a page or a form's write beside either shared
the two cores with it. So each runs on a thread of its own that lowers its own CPU priority first
(``yield_cores``): the operating system gives the cores to a page or a write first, and to the copy whenever
nobody else wants them, so a backup alone takes as long as before. At a million cases, a form's write beside
a backup took 74–78 ms at the 95th percentile, and 39–42 ms with the backup's thread lowered (35–45 ms with
no backup).

Only work that holds none of the store's locks yields: a thread holding the write lock or the snapshot's
lock at a low priority would keep every page and write waiting on that lock while other work has the cores.
The service's jobs hold them (a mail batch's write, the alerts reading the snapshot), so they run at the
priority they were started with, and hand their backup to ``Store.backup``, whose copy yields. A thread a
lowered thread starts is lowered too, and nothing can raise it again: so a lowered thread starts none.

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
