"""Worker threads are sized by the CPUs actually free, not by the machine's count (issue 17)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealcheck.core.decompress.bzip2 import pool
from sealcheck.core.plumbing import cpus

pytestmark = pytest.mark.skipif(not Path("/proc/loadavg").exists(), reason="reads /proc")


@pytest.fixture
def hogs() -> Iterator[int]:
    """One CPU-bound process per usable CPU, started (and stopped) by this test."""
    n = cpus.usable_cpus()
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5)  # running
        yield n
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def test_usable_is_the_affinity_not_the_machine() -> None:
    assert cpus.usable_cpus() == len(os.sched_getaffinity(0))


def test_a_busy_machine_leaves_one_cpu(hogs: int) -> None:
    # Others' work can only add to the hogs this test started.
    assert cpus.busy_elsewhere() >= hogs
    assert cpus.free_cpus() == 1
    assert pool.default_workers() == 1


def test_this_process_threads_are_not_counted_as_others() -> None:
    stop = threading.Event()
    block = b"x" * (8 << 20)

    def spin() -> None:  # hashlib releases the GIL: these threads are runnable
        while not stop.is_set():
            hashlib.sha256(block).digest()

    threads = [threading.Thread(target=spin) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.1)
        seen = max(cpus._own_running() for _ in range(20))
        assert seen >= 2  # the caller and at least one spinner, seen as ours
    finally:
        stop.set()
        for t in threads:
            t.join()


def test_without_proc_the_load_average_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpus, "_LOADAVG", Path("/nonexistent/loadavg"))
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 0.0, 0.0))
    assert cpus.busy_elsewhere() == 64.0
    assert cpus.free_cpus() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert cpus.free_cpus() == cpus.usable_cpus()
    assert cpus.free_cpus(cap=1) == 1
