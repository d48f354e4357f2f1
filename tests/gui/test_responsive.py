"""The event loop never stalls more than 50 ms while a ~200 MB verify runs at full speed."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer

from fixtures.common import listed_file
from fixtures.dumps import random_dump
from fixtures.pipelines import openssl_variant
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.gui.jobs.queue import JobQueue, JobState
from sealcheck.gui.jobs.spec import JobSpec
from sealcheck.gui.state.results import ResultStore
from sealcheck.gui.views.jobpanel import JobPanel

# gzip: ISA-L's igzip makes the stream (10x faster than gzip -1 here, same format).
# zstd: the fastest decode, so the most plaintext per second for the GUI thread to
# share the GIL with (hashing and inspection).
# bzip2: the block-parallel decoder's threads beside the GUI thread (issue 17: all
# three compressions at the speeds they now run).
COMPRESSORS = {
    "gzip": (f"{shlex.quote(sys.executable)} -m isal.igzip -1 -c", "big.sql.gz.enc"),
    "zstd": ("zstd -1 -q -c -T2", "big.sql.zst.enc"),
    "bzip2": ("bzip2 -1 -c", "big.sql.bz2.enc"),
}


@pytest.fixture(scope="module", params=sorted(COMPRESSORS))
def big_backup(request, tmp_path_factory) -> tuple[Path, Path]:
    """~200 MB of ciphertext: a dump with base64 rows (compresses poorly) | openssl enc."""
    compress, name = COMPRESSORS[request.param]
    work = tmp_path_factory.mktemp("big200")
    random_dump(work / "big.sql", 200_000_000)
    b = openssl_variant(work / "big.sql", work / "out", compress=compress, name=name)
    (work / "big.sql").unlink()
    assert b.passphrase_file is not None
    return b.data, b.passphrase_file


def test_event_loop_lateness_during_200mb_verify(qtbot, quiet_machine, big_backup):
    data, passfile = big_backup
    assert data.stat().st_size > 190_000_000
    queue = JobQueue(ResultStore())
    panel = JobPanel(queue)
    qtbot.addWidget(panel)
    panel.resize(600, 300)
    panel.show()
    lateness: list[float] = []
    last = [0.0]
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(10)

    def tick() -> None:
        now = time.monotonic()
        if last[0]:
            lateness.append(now - last[0] - 0.010)
        last[0] = now

    timer.timeout.connect(tick)
    timer.start()
    # Control: the same timer with the app idle. If the machine itself (other processes)
    # makes it late, this is not a measurement of the app.
    qtbot.wait(1000)
    baseline = max(lateness, default=0.0)
    if baseline > 0.025:
        timer.stop()
        pytest.skip(f"machine too busy to measure: {baseline * 1000:.0f} ms late while idle")
    lateness.clear()
    spec = JobSpec("verify", listed_file(data), title="Verify 200 MB")
    rec = queue.submit(spec, Secrets(passphrase=bytearray(passfile.read_bytes())))
    qtbot.waitUntil(lambda: not queue.busy, timeout=120_000)
    timer.stop()
    assert rec.state is JobState.DONE, rec.message
    assert rec.progress is not None and rec.progress.total == data.stat().st_size
    worst = max(lateness)
    print(
        f"verify took {rec.elapsed:.1f} s; {len(lateness)} ticks; worst lateness {worst * 1000:.1f} ms"
    )
    assert worst < 0.050, f"the event loop stalled {worst * 1000:.0f} ms"
    queue.deleteLater()
