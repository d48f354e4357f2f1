"""The GUI forwards core's progress as it comes (issue 11): throttled once, in core.

A real verify (gzip | openssl enc, made by the tools) runs through the job queue;
what reaches the GUI thread is at most 10 reports a second plus the changes of
stage, every stage the job went through arrives, and the last report is the
whole job's (one ETA: the job's input, never a stage's own count).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from fixtures.common import listed_file
from fixtures.dumps import random_dump
from fixtures.pipelines import openssl_variant
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.plumbing.progress import ProgressEvent
from sealcheck.gui.jobs.queue import JobQueue, JobRecord, JobSpec, JobState
from sealcheck.gui.state.results import ResultStore


@pytest.fixture(scope="module")
def backup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """~30 MB of base64 rows (compresses poorly), gzip | openssl enc."""
    work = tmp_path_factory.mktemp("progress")
    dump = random_dump(work / "dump.sql", 30_000_000)
    b = openssl_variant(dump, work / "out", compress="gzip -1 -c")
    assert b.passphrase_file is not None
    return b.data, b.passphrase_file


def test_gui_gets_core_progress_at_most_ten_a_second_and_every_stage(qtbot, backup) -> None:
    data, passfile = backup
    queue = JobQueue(ResultStore())
    seen: list[tuple[float, ProgressEvent]] = []

    def on_changed(rec: JobRecord) -> None:
        if rec.progress is not None and (not seen or seen[-1][1] is not rec.progress):
            seen.append((time.monotonic(), rec.progress))

    queue.changed.connect(on_changed)
    rec = queue.submit(
        JobSpec("verify", listed_file(data), title="Verify"),
        Secrets(passphrase=bytearray(passfile.read_bytes())),
    )
    qtbot.waitUntil(lambda: not queue.busy, timeout=120_000)
    assert rec.state is JobState.DONE, rec.message
    stages = [ev.stage for _, ev in seen]
    changes = sum(1 for a, b in itertools.pairwise(stages) if a != b)
    span = seen[-1][0] - seen[0][0]
    # 10 a second, plus each change of stage and the final report; a second of slack
    # for the queued signals that the GUI thread delivers in a burst.
    assert len(seen) <= 10 * (span + 1) + changes + 1, (len(seen), span, changes)
    assert {"download", "verify"} <= set(stages)
    size = data.stat().st_size
    assert all(ev.total == size for _, ev in seen)
    assert seen[-1][1].done == size
    queue.deleteLater()
