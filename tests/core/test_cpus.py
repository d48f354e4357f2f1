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


@pytest.fixture
def spinners() -> Iterator[None]:
    """Two threads of this process hashing (hashlib releases the GIL: they are runnable),
    as a verify's fetch and decode threads are."""
    stop = threading.Event()
    block = b"x" * (8 << 20)

    def spin() -> None:
        while not stop.is_set():
            hashlib.sha256(block).digest()

    threads = [threading.Thread(target=spin) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.1)
        yield
    finally:
        stop.set()
        for t in threads:
            t.join()


def test_this_process_threads_are_not_counted_as_others(spinners: None) -> None:
    seen = max(cpus._own_running() for _ in range(20))
    assert seen >= 2  # the caller and at least one spinner, seen as ours


def test_without_proc_the_load_average_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpus, "_LOADAVG", Path("/nonexistent/loadavg"))
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 0.0, 0.0))
    assert cpus.busy_elsewhere() == 64.0
    assert cpus.free_cpus() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert cpus.free_cpus() == cpus.usable_cpus()
    assert cpus.free_cpus(cap=1) == 1


# --- the two signals against each other: fake /proc readings inject what one of them
# gets wrong (a runnable count that includes our own threads or work already gone; CPU
# time that is only a burst), the other reading being the truth of the window.

TCK = os.sysconf("SC_CLK_TCK")


class FakeStat:
    """/proc/stat for the usable CPUs: their time since this fake was made, of which
    ``others`` CPUs' worth worked for other processes, plus this process's own CPU time
    (the real one: our threads work while the window is read)."""

    def __init__(self, others: float) -> None:
        self.cpus = sorted(os.sched_getaffinity(0))
        self.others = others
        self.t0 = time.monotonic()
        self.own0 = time.process_time()

    def read_text(self) -> str:
        n = len(self.cpus)
        elapsed = (time.monotonic() - self.t0) * TCK + 1000  # per CPU, a running clock
        busy = self.others * elapsed / n + (time.process_time() - self.own0) * TCK / n
        idle = max(elapsed - busy, 0)
        cpu_lines = [f"cpu{c} {int(busy)} 0 0 {int(idle)} 0 0 0 0 0 0" for c in self.cpus]
        return "\n".join([f"cpu  {int(busy * n)} 0 0 {int(idle * n)} 0 0 0 0 0 0", *cpu_lines])


class FakeLoadavg:
    def __init__(self, runnable: int) -> None:
        self.runnable = runnable

    def read_text(self) -> str:
        return f"0.00 0.00 0.00 {self.runnable}/300 4242\n"


def test_a_runnable_count_the_cpu_time_does_not_bear_out_is_not_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The count says 64 others runnable (our own threads miscounted, hogs already
    gone); the usable CPUs did no one else's work meanwhile: all of them are free."""
    monkeypatch.setattr(cpus, "_STAT", FakeStat(others=0))
    monkeypatch.setattr(cpus, "_LOADAVG", FakeLoadavg(64))
    assert cpus.busy_elsewhere() == 0
    assert cpus.free_cpus() == cpus.usable_cpus()


def test_our_own_threads_cpu_time_is_not_others(
    monkeypatch: pytest.MonkeyPatch, spinners: None
) -> None:
    """This process keeps CPUs busy during the window: that work is ours, not others'."""
    monkeypatch.setattr(cpus, "_STAT", FakeStat(others=0))
    monkeypatch.setattr(cpus, "_LOADAVG", FakeLoadavg(64))
    assert cpus.busy_elsewhere() == 0


def test_busy_when_both_signals_see_others(monkeypatch: pytest.MonkeyPatch) -> None:
    n = cpus.usable_cpus()
    monkeypatch.setattr(cpus, "_STAT", FakeStat(others=n))
    monkeypatch.setattr(cpus, "_LOADAVG", FakeLoadavg(64))
    assert cpus.busy_elsewhere() == n
    assert cpus.free_cpus() == 1
    # One CPU's worth of others' work: that one is taken (on a machine with more).
    monkeypatch.setattr(cpus, "_STAT", FakeStat(others=1))
    assert cpus.busy_elsewhere() == 1


def test_cpu_time_without_runnable_others_is_not_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The window's CPU time says others worked (a burst), yet nothing of theirs is
    runnable through the window: it ended. Only this test's thread is counted."""
    monkeypatch.setattr(cpus, "_STAT", FakeStat(others=cpus.usable_cpus()))
    monkeypatch.setattr(cpus, "_LOADAVG", FakeLoadavg(1))  # the reader itself
    assert cpus.busy_elsewhere() == 0
