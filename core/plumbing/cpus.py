"""How many CPUs a job can use now: the ones it may run on that others leave free.

``os.cpu_count()`` is the machine's CPUs, not this process's (a container or
``taskset`` narrows them: ``sched_getaffinity``) and not the free ones. On a busy
machine (issue 17: one other CPU-bound process per core) a decoder split over
threads gains nothing, since every core is taken, and pays its split's overhead
(the parallel bzip2 reader costs ~20 % more CPU than libbz2 alone): there the
cheaper single-thread road is the faster one.

Busy is the tasks runnable on the machine besides this process's own, counted a
few times over a few milliseconds (the median: a task that only flickers through
does not count): steady CPU-bound work is always runnable. The 1-minute load
average is the fallback where /proc is missing; it lags by a minute (work started
just before is barely in it, work just ended still is). The count is the whole
machine's, so with a narrowed affinity the estimate errs towards fewer threads.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path

_LOADAVG = Path("/proc/loadavg")
_OWN_TASKS = Path("/proc/self/task")
_SAMPLES = 5
_SAMPLE_GAP_S = 0.002


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _own_running() -> int:
    """This process's threads that are running or runnable now."""
    n = 0
    for task in _OWN_TASKS.iterdir():
        try:
            stat = (task / "stat").read_bytes()
        except OSError:  # the thread ended meanwhile
            continue
        if stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] == b"R":
            n += 1
    return n


def _others_running() -> int:
    """Tasks runnable now on the machine that are not this process's threads."""
    total = int(_LOADAVG.read_text().split()[3].split("/")[0])  # "R/T"
    return max(total - _own_running(), 0)


def busy_elsewhere() -> float:
    """CPUs other work keeps busy now (see the module docstring)."""
    try:
        samples = []
        for i in range(_SAMPLES):
            if i:
                time.sleep(_SAMPLE_GAP_S)
            samples.append(_others_running())
        return float(statistics.median(samples))
    except (OSError, ValueError, IndexError):
        pass
    try:
        return max(os.getloadavg()[0], 0.0)
    except (AttributeError, OSError):
        return 0.0


def free_cpus(cap: int | None = None) -> int:
    """The usable CPUs that other work leaves free (at least 1, at most ``cap``)."""
    usable = usable_cpus()
    free = usable - math.floor(busy_elsewhere())
    return max(1, min(free, cap if cap is not None else usable))
