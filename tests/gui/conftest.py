"""GUI test fixtures: isolated config folders, a moto S3 with the demo's backups, a
window on it, and a guard that fails any test leaving a thread, timer or window."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")

pytest.importorskip("PySide6")

from PySide6.QtCore import QEvent, QThreadPool, QTimer
from PySide6.QtWidgets import QApplication

from fixtures.pipelines import openssl_variant, sh
from sealcheck.gui.demo import samples as demo
from sealcheck.gui.jobs.worker import live_workers
from sealcheck.gui.state.settings import KeyChoice, SourceConfig

BIG_BUCKET = "sealcheck-gui-big"
BIG_KEY = "big/warehouse.sql.gz.enc"


@dataclass
class DemoS3:
    endpoint: str
    keys: dict[str, Path]
    expect: list[demo.Expectation]
    big_passphrase: Path

    def source(self, keys: KeyChoice | None = None) -> SourceConfig:
        return SourceConfig(
            name="Demo (local S3)",
            bucket=demo.BUCKET,
            endpoint_url=self.endpoint,
            region="us-east-1",
            keys=keys
            or KeyChoice(
                key_specs=(str(self.keys["rsa"]),),
                passphrase_file=str(self.keys["pass"]),
                gpg_key_file=str(self.keys["gpg"]),
            ),
        )

    def big_source(self) -> SourceConfig:
        return SourceConfig(
            name="Big",
            bucket=BIG_BUCKET,
            endpoint_url=self.endpoint,
            region="us-east-1",
            keys=KeyChoice(passphrase_file=str(self.big_passphrase)),
        )


def _big_backup(work: Path) -> tuple[Path, Path]:
    """~48 MB of a dump that compresses poorly, gzip | openssl enc -pass file: (real tools)."""
    dump = work / "big.sql"
    sh(
        "head -c 36000000 /dev/urandom | base64 -w 96 "
        "| sed \"s/.*/INSERT INTO t VALUES ('&');/\" > big.sql\n"
        "echo '-- Dump completed on 2026-11-27 10:00:00' >> big.sql",
        work,
    )
    b = openssl_variant(dump, work / "out", compress="gzip -1", name="warehouse.sql.gz.enc")
    assert b.passphrase_file is not None
    return b.data, b.passphrase_file


@pytest.fixture(scope="session")
def demo_s3_bucket() -> Iterator[DemoS3]:
    work = Path(tempfile.mkdtemp(prefix="sealcheck-gui-test-"))
    try:
        uploads, expect, keys = demo.make_samples(work)
        big, big_pass = _big_backup(work)
        with demo.demo_s3() as endpoint:
            demo._fill_bucket(endpoint, uploads)
            from sealcheck.core.storage.s3.client import S3Settings, make_client

            c = make_client(S3Settings(endpoint_url=endpoint))
            c.create_bucket(Bucket=BIG_BUCKET)
            c.put_bucket_versioning(
                Bucket=BIG_BUCKET, VersioningConfiguration={"Status": "Enabled"}
            )
            with big.open("rb") as f:
                c.put_object(Bucket=BIG_BUCKET, Key=BIG_KEY, Body=f)
            yield DemoS3(endpoint, keys, expect, big_pass)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings and key custody go to the test's temp folder, never the user's."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that asks for a quiet machine is a timing test: ./dev test runs those alone."""
    for item in items:
        if "quiet_machine" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timing)


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture: a skipped timing test does not first build its big backup.
    if item.get_closest_marker("timing") is not None:
        _skip_when_busy()


def _skip_when_busy() -> None:
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    if load > cpus:
        pytest.skip(f"machine too busy for a timing measurement (load {load:.1f} on {cpus} CPUs)")


@pytest.fixture
def quiet_machine() -> Iterator[None]:
    """Timing tests measure the app, not other processes: skip when the CPUs are
    oversubscribed. The test process's own heap (every collected test, earlier tests'
    objects) is frozen as the app freezes what its start-up made (gui/app.py): a full
    collection scanning it stopped the event loop ~300 ms in CI, and it is not the app's."""
    _skip_when_busy()
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _active_timers(app: QApplication) -> list[str]:
    roots = [app, *app.topLevelWidgets()]
    out = []
    for root in roots:
        for t in root.findChildren(QTimer):
            if t.isActive():
                out.append(f"{t.objectName() or 'QTimer'} (parent {type(t.parent()).__name__})")
    return out


@pytest.fixture(autouse=True)
def no_leaks(qapp: QApplication) -> Iterator[None]:
    """Fail a test that leaves a worker, a thread, an active timer or a window behind."""
    threads_before = set(threading.enumerate())
    widgets_before = {id(w) for w in qapp.topLevelWidgets()}
    yield
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        qapp.processEvents()
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
        busy = live_workers() or QThreadPool.globalInstance().activeThreadCount()
        new_threads = [
            t
            for t in threading.enumerate()
            if t not in threads_before
            and t.is_alive()
            and (not t.daemon or t.name.startswith("sealcheck"))
        ]
        if not busy and not new_threads:
            break
        time.sleep(0.02)
    problems = []
    if live_workers():
        problems.append(f"workers still running: {live_workers()}")
    if QThreadPool.globalInstance().activeThreadCount():
        problems.append("the global thread pool is still busy")
    if new_threads:
        problems.append(f"threads left running: {[t.name for t in new_threads]}")
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
    qapp.processEvents()
    left = [
        w
        for w in qapp.topLevelWidgets()
        if id(w) not in widgets_before
        and (w.isVisible() or type(w).__module__.startswith("sealcheck"))
    ]
    if left:
        problems.append(f"windows left open: {[type(w).__name__ for w in left]}")
        for w in left:
            w.close()
            w.deleteLater()
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
    timers = _active_timers(qapp)
    if timers:
        problems.append(f"timers left active: {timers}")
    if problems:
        pytest.fail("test left things behind: " + "; ".join(problems))
