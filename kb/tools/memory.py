"""The memory a benchmark reports, read from Linux's ``/proc``.

``peak_mb`` is a process's own peak (``VmHWM``). Not ``resource.getrusage``'s ``ru_maxrss``: a process
started by another keeps, across its ``exec``, the resident size its parent had when it forked, so a bench
worker started by the process that has just generated a million cases would report that process's memory.
``ChildrenMemory`` samples what a process's children (``mail import``'s parser processes and
multiprocessing's resource tracker) hold together, every ``SAMPLE_SECONDS``: a shorter peak can pass unseen.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


class ChildrenMemory(threading.Thread):
    """The most resident memory this process's children held together, sampled from /proc every
    ``SAMPLE_SECONDS`` while the block runs."""

    SAMPLE_SECONDS = 0.05

    def __init__(self):
        super().__init__(name="children-memory", daemon=True)
        self.peak_mb = 0.0
        self._done = threading.Event()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        while not self._done.wait(self.SAMPLE_SECONDS):
            self.peak_mb = max(self.peak_mb, sum(resident_mb(pid) for pid in _children()))


def _children() -> list[str]:
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids += (task / "children").read_text().split()
        except OSError:  # the thread ended meanwhile
            pass
    return pids


def resident_mb(pid: str = "self") -> float:
    """The process's resident memory now, in MB (0 once it has ended)."""
    return _status_mb(pid, "VmRSS")


def peak_mb(pid: str = "self") -> float:
    """The most resident memory the process has held since it started its program, in MB."""
    return _status_mb(pid, "VmHWM")


def _status_mb(pid: str, field: str) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # it ended meanwhile
        return 0.0
    kb = next((line.split()[1] for line in status.splitlines() if line.startswith(f"{field}:")), "0")
    return int(kb) / 1024
