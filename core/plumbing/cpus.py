"""How many CPUs a job can use now: the ones it may run on that others leave free.

``os.cpu_count()`` is the machine's CPUs, not this process's (a container or
``taskset`` narrows them: ``sched_getaffinity``) and not the free ones. On a busy
machine (issue 17: one other CPU-bound process per core) a decoder split over
threads gains nothing, since every core is taken, and pays its split's overhead
(the parallel bzip2 reader costs ~20 % more CPU than libbz2 alone): there the
cheaper single-thread road is the faster one.

Busy is what two signals, taken over the same short window (~60 ms), both see:

* the CPU time the usable CPUs spent working in the window (``/proc/stat``) less
  this process's own (``time.process_time``, exact): CPUs others kept busy, a
  CPU counted when others took more than half of it;
* the tasks runnable on the machine besides this process's threads
  (``/proc/loadavg``'s 4th field less our own running threads), the median of
  samples spread over the window.

Each alone can be fooled. The runnable count subtracts our threads as they are a
moment after the machine's count was read, and a pipeline that has just started
(its fetch thread handing the GIL back and forth with the caller) flips between
running and waiting in between: the count then sees one of our own threads as
another's work (the likely reason one bzip2 verify on the quiet machine took the
sequential reader: bench/RESULTS.md, 28.6 s against 15-16 s). CPU time is exact about
ourselves but is the window's average. Work that is really there (a CPU-bound
process per core) shows in both; so the smaller of the two is taken, erring
towards more threads. Neither lags: the 1-minute load average, the fallback where
/proc is missing, does (work ended a minute ago is still in it). The runnable
count is the whole machine's, so with a narrowed affinity it errs towards fewer
threads; the CPU time is read for the usable CPUs only.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path

_LOADAVG = Path("/proc/loadavg")
_STAT = Path("/proc/stat")
_OWN_TASKS = Path("/proc/self/task")
_SAMPLES = 7  # runnable counts over the window, one every _SAMPLE_GAP_S
_SAMPLE_GAP_S = 0.01


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


def _cpu_ticks(which: set[int]) -> tuple[int, int]:
    """Clock ticks the CPUs ``which`` spent working, and in all, since boot."""
    busy = total = 0
    for line in _STAT.read_text().splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or not name[3:].isdigit() or int(name[3:]) not in which:
            continue
        # user nice system idle iowait irq softirq steal (guest time is inside user):
        # idle and iowait are the CPU waiting; steal is a CPU the host gave away.
        f = [int(x) for x in rest.split()[:8]]
        total += sum(f)
        busy += sum(f) - f[3] - f[4]
    return busy, total


def _measure() -> float:
    """Busy elsewhere over one window (see the module docstring)."""
    which = os.sched_getaffinity(0)
    busy0, total0 = _cpu_ticks(which)
    own0 = time.process_time()
    counts = []
    for i in range(_SAMPLES):
        if i:
            time.sleep(_SAMPLE_GAP_S)
        counts.append(_others_running())
    busy1, total1 = _cpu_ticks(which)
    own1 = time.process_time()
    running = float(statistics.median(counts))
    if total1 <= total0:  # no tick in the window: the counts alone
        return running
    own_ticks = (own1 - own0) * os.sysconf("SC_CLK_TCK")
    others = len(which) * (busy1 - busy0 - own_ticks) / (total1 - total0)
    return min(float(math.floor(others + 0.5)), running)


def busy_elsewhere() -> float:
    """CPUs other work keeps busy now (see the module docstring)."""
    try:
        return max(_measure(), 0.0)
    except (AttributeError, OSError, ValueError, IndexError):  # no /proc, not Linux
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
