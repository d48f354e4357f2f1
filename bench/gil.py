"""What the GIL benchmarks share (aes_gil.py, zstd_gil.py; issue 17): a probe thread
that shows how long another thread held the GIL, and a busy thread beside the work.

Imported by those scripts from their own folder (``python bench/aes_gil.py``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

MiB = 1 << 20


def gaps_during(fn: Callable[[], object]) -> tuple[float, list[float]]:
    """Run ``fn`` beside a thread that wakes every 0.5 ms: ``fn``'s wall time and the
    time each of the probe's wake-ups took. While ``fn`` holds the GIL the probe
    cannot run (a thread that never lets go of it gives it up only when asked, after
    the 5 ms switch interval), so long gaps are the time the GIL was held."""
    gaps: list[float] = []
    stop = threading.Event()

    def wake() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.0005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    t = threading.Thread(target=wake, daemon=True)
    t.start()
    time.sleep(0.05)
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    stop.set()
    t.join()
    return wall, gaps


class Busy:
    """The other thread, counting its loops until stopped: ``python``, a pure-Python
    loop (holds the GIL but at the switch interval: the worst case for work that must
    take the GIL back after each C call); ``consumer``, per MiB what Sealcheck's
    consumer thread does with a plaintext chunk (SHA-256, the payload marks searched
    through payload/search.py)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.loops = 0
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self.kind == "python":
            while not self._stop:
                for _ in range(1000):
                    pass
                self.loops += 1
            return
        from sealcheck.core.payload import search

        chunk = (b"INSERT INTO `t1` VALUES (1,'alpha bravo','x@y.example',12.50)," * 20000)[:MiB]
        while not self._stop:
            hashlib.sha256(chunk)
            search.find(chunk, b"Distrib ")
            search.find(chunk, b"\n-- Dump completed")
            search.count(chunk, b"CREATE TABLE ")
            self.loops += 1

    def __enter__(self) -> Busy:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._t.join()


def busy_rate(kind: str, seconds: float = 1.0) -> float:
    """The busy thread's loops per second alone."""
    with Busy(kind) as b:
        time.sleep(seconds)
    return b.loops / seconds
