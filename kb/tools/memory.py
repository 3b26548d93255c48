"""The memory a benchmark reports, read from Linux's ``/proc``.

``peak_mb`` is a process's own peak (``VmHWM``). Not ``resource.getrusage``'s ``ru_maxrss``: a process
started by another keeps, across its ``exec``, the resident size its parent had when it forked, so a bench
worker started by the process that has just generated a million cases would report that process's memory.
``ChildrenMemory`` adds up the peaks of a process's children (``mail import``'s parser processes and
multiprocessing's resource tracker).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


class ChildrenMemory(threading.Thread):
    """The peaks of this process's children while the block runs, added up (at most what they held together),
    read from /proc every ``SAMPLE_SECONDS``: each child's last ``VmHWM``, which its ``exec`` resets, so a child
    read while it still shared its parent's pages, before its ``exec``, counts what it held after."""

    SAMPLE_SECONDS = 0.05

    def __init__(self):
        super().__init__(name="children-memory", daemon=True)
        self._peaks: dict[str, float] = {}
        self._done = threading.Event()

    @property
    def peak_mb(self) -> float:
        return sum(self._peaks.values())

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        while not self._done.wait(self.SAMPLE_SECONDS):
            for pid in _children():
                peak = peak_mb(pid)
                if peak:  # 0: it ended meanwhile, and its last reading stands
                    self._peaks[pid] = peak


def _children() -> list[str]:
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids += (task / "children").read_text().split()
        except OSError:  # the thread ended meanwhile
            pass
    return pids


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
