"""Progress is throttled once, in core (issue 11): at most 10 reports a second,
every change of stage reported at once, one ETA for the whole job.

A UI forwards what the Meter reports; these tests hold the Meter to the rate the
GUI relies on, with a controlled clock and then on a real restore.
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

from fixtures.adversarial import Seed
from fixtures.dumps import mysql_like
from fixtures.pipelines import openssl_variant
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.pipeline.job import Job
from sealcheck.core.pipeline.run import run
from sealcheck.core.plumbing.progress import INTERVAL, Meter, ProgressEvent, Throttle
from sealcheck.core.storage.source import LocalFile


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_meter_reports_at_most_ten_a_second_and_every_stage_change() -> None:
    clock = Clock()
    seen: list[ProgressEvent] = []
    meter = Meter(seen.append, clock=clock)
    meter.stage("download", 10_000_000, is_input=True)
    for _ in range(1000):  # one simulated second of chunks, 1 ms apart
        clock.now += 0.001
        meter.add("download", 10_000)
    per_second = [e for e in seen if e.stage == "download"]
    assert 9 <= len(per_second) <= 11
    before = len(seen)
    # Stage changes a moment apart still each get through, in order.
    meter.set_current("unlock")
    meter.set_current("download")
    meter.stage("decompress")
    meter.set_current("verify")
    assert [e.stage for e in seen[before:]] == ["unlock", "download", "decompress", "verify"]
    # The same stage again is no change: throttled like any report.
    meter.set_current("verify")
    assert len(seen) == before + 4
    meter.finish()
    assert seen[-1].done == 10_000_000 and seen[-1].fraction == 1.0


def test_throttle_is_one_report_per_interval_across_threads() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    passed: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(2000):
            if throttle.due():
                with lock:
                    passed.append(True)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert passed == [True]  # the clock stood still: one report, whichever thread
    clock.now += INTERVAL
    assert throttle.due() and not throttle.due() and throttle.due(force=True)


def test_a_real_restore_reports_within_the_rate_with_one_eta(tmp_path: Path) -> None:
    dump = mysql_like(tmp_path / "dump.sql", rows=300_000)
    b = openssl_variant(dump, tmp_path / "s3", compress="gzip -c")
    assert b.passphrase_file is not None
    seed = Seed(b.data, None, dump.read_bytes(), b.passphrase_file.read_bytes())
    seen: list[ProgressEvent] = []
    job = Job(
        data=LocalFile(seed.data),
        secrets=Secrets(passphrase=bytearray(seed.passphrase)),
        operation="restore",
        destination=tmp_path / "out.sql",
        progress=seen.append,
    )
    report = run(job)
    assert report.ok, report.error
    stages = [e.stage for e in seen]
    changes = sum(1 for a, b in itertools.pairwise(stages) if a != b)
    elapsed = seen[-1].elapsed
    # The rate: 10 a second, plus the changes of stage and the final report.
    assert len(seen) <= 10 * elapsed + 1 + changes + 2, (len(seen), elapsed, changes)
    assert "restore" in stages
    # One whole-job measure: every report counts the job's input, never a stage's own.
    size = seed.data.stat().st_size
    assert all(e.total == size for e in seen)
    assert seen[-1].done == size
