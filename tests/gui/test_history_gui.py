"""The GUI's results survive a restart: ResultStore reads the history at start and
appends every new outcome. Real backups (real openssl/gzip) on a real (moto) S3."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace
from pathlib import Path

import pytest

from fixtures.pipelines import Backup, RsaKey, securecircle
from fixtures.s3servers import Bucket
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.keys.pem import PemKey
from sealcheck.core.pipeline.job import Job
from sealcheck.core.pipeline.run import run
from sealcheck.core.records.history import FILENAME, History
from sealcheck.core.records.report import ErrorInfo
from sealcheck.core.restoretest import RestoreTestOptions, restore_test
from sealcheck.core.storage.listing import list_backup_sets
from sealcheck.core.storage.s3.client import S3Settings, make_client
from sealcheck.core.storage.s3.object import S3Object
from sealcheck.core.storage.source import LocalFile
from sealcheck.gui.errortext import describe
from sealcheck.gui.state.models import BackupSetModel, VersionModel
from sealcheck.gui.state.results import Outcome, ResultStore

KEY = "db/nightly.sql.gz"


@pytest.fixture
def hist_path(tmp_path: Path) -> Path:
    return tmp_path / "history" / FILENAME


@pytest.fixture
def s3_backup(moto_s3: Bucket, small_dump: Path, rsa_key: RsaKey, tmp_path: Path):
    """One backup uploaded to moto; returns (client, bucket, version id, report)."""
    b: Backup = securecircle(small_dump, tmp_path / "out", rsa_key, name="nightly")
    version = moto_s3.put_backup("db/", b)[KEY]
    client = make_client(S3Settings(endpoint_url=moto_s3.endpoint))
    data = S3Object(client, moto_s3.name, KEY, version)
    wrapped = S3Object(client, moto_s3.name, KEY + ".key")
    secrets = Secrets(keys=[PemKey.from_file(rsa_key.private)])
    report = run(Job(data=data, secrets=secrets, wrapped_key=wrapped))
    assert report.ok, report.error
    return client, moto_s3.name, version, report


def test_an_outcome_written_is_seen_by_a_new_store(qapp, hist_path: Path, s3_backup) -> None:
    client, bucket, version, report = s3_backup
    when = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    first = ResultStore(History(hist_path))
    first.put((KEY, version), Outcome(report, None, when))

    again = ResultStore(History(hist_path))  # as after a restart
    got = again.get((KEY, version))
    assert got is not None and got.report == report and got.when == when and got.ok

    # The backups table shows the last result and its age without a new verify.
    model = BackupSetModel(again)
    model.update_sets(list_backup_sets(client, bucket, "db/"))
    row = next(r for r in range(model.rowCount()) if model.index(r, 0).data() == KEY)
    assert model.index(row, model.RESULT_COLUMN).data().startswith("OK")
    assert model.index(row, model.RESULT_COLUMN + 1).data() == "5 min ago"
    vm = VersionModel(again)
    vm.set_backup(next(s for s in list_backup_sets(client, bucket, "db/") if s.name == KEY))
    assert vm.outcome(0) is not None and vm.outcome(0).report == report


def test_the_newest_outcome_wins_after_a_restart(qapp, hist_path: Path, s3_backup) -> None:
    _client, _bucket, version, report = s3_backup
    store = ResultStore(History(hist_path))
    t0 = dt.datetime(2026, 11, 27, 3, 0, tzinfo=dt.UTC)
    err = ErrorInfo("IntegrityError", "decompress", "CRC mismatch", 1)
    failed = replace(report, ok=False, error=err)
    store.put((KEY, version), Outcome(report, None, t0))
    store.put((KEY, version), Outcome(failed, None, t0 + dt.timedelta(hours=1)))
    got = ResultStore(History(hist_path)).get((KEY, version))
    assert got is not None and got.report == failed and not got.ok
    assert got.message is not None and got.message.backup_is_bad


def test_a_restore_test_outcome_survives(
    qapp, hist_path: Path, tmp_path: Path, small_dump, rsa_key, other_rsa_key
) -> None:
    b = securecircle(small_dump, tmp_path / "rt", rsa_key)
    job = Job(
        data=LocalFile(b.data), secrets=Secrets(keys=[PemKey.from_file(other_rsa_key.private)])
    )
    result = restore_test(
        job, RestoreTestOptions(state_dir=tmp_path / "state")
    )  # wrong key: no server
    assert result.error is not None
    when = dt.datetime.now(dt.UTC).replace(microsecond=0)
    key = (str(b.data), None)
    ResultStore(History(hist_path)).put(
        key, Outcome(result.verification, describe(result.error), when, restore_test=result)
    )
    got = ResultStore(History(hist_path)).get(key)
    assert got is not None and got.restore_test == result and got.report == result.verification
    assert not got.ok and got.message == describe(result.error)


def test_a_failure_without_a_result_stays_in_memory(qapp, hist_path: Path) -> None:
    """No key, unreadable passphrase file: nothing about the backup was proved."""
    store = ResultStore(History(hist_path))
    err = ErrorInfo("KeyUnavailable", "key", "no key", 2)
    outcome = Outcome(None, describe(err), dt.datetime.now(dt.UTC))
    store.put(("x", "v1"), outcome)
    assert store.get(("x", "v1")) == outcome
    assert History(hist_path).entries() == []
    assert ResultStore(History(hist_path)).get(("x", "v1")) is None


def test_a_damaged_history_never_stops_the_app(qapp, qtbot, hist_path: Path, s3_backup) -> None:
    _client, _bucket, version, report = s3_backup
    hist_path.parent.mkdir(parents=True)
    hist_path.write_bytes(b"not sqlite at all\n" * 100)
    store = ResultStore(History(hist_path))
    assert store.problem and "not a database" in store.problem
    outcome = Outcome(report, None, dt.datetime.now(dt.UTC))
    with qtbot.assertNotEmitted(store.warning):  # said once, not on every job
        store.put((KEY, version), outcome)
    assert store.get((KEY, version)) == outcome
    assert hist_path.read_bytes().startswith(b"not sqlite at all")


def test_memory_only_store_writes_nothing(qapp, tmp_path: Path, s3_backup) -> None:
    _client, _bucket, version, report = s3_backup
    store = ResultStore()
    store.put((KEY, version), Outcome(report, None, dt.datetime.now(dt.UTC)))
    assert store.get((KEY, version)) is not None and store.history is None
    assert not list(tmp_path.rglob(FILENAME))


def test_writing_an_outcome_is_quick(qapp, hist_path: Path, s3_backup, quiet_machine) -> None:
    report = s3_backup[3]
    store = ResultStore(History(hist_path, keep_open=True))  # as the app opens it
    store.put(("warm", "up"), Outcome(report, None, dt.datetime.now(dt.UTC)))
    t = time.perf_counter()
    for i in range(20):
        store.put((KEY, f"v{i}"), Outcome(report, None, dt.datetime.now(dt.UTC)))
    per_put = (time.perf_counter() - t) / 20
    assert per_put < 0.05, f"{per_put * 1000:.1f} ms per outcome on the GUI thread"


def test_the_main_window_uses_the_data_dir_history(qtbot, tmp_path: Path, monkeypatch) -> None:
    from sealcheck.gui.state.settings import SourceStore
    from sealcheck.gui.views.mainwindow import MainWindow

    monkeypatch.setenv("SEALCHECK_DATA_DIR", str(tmp_path / "appdata"))
    win = MainWindow(SourceStore(tmp_path / "sources.json"))
    qtbot.addWidget(win)
    assert win.results.history is not None
    assert win.results.history.path == tmp_path / "appdata" / FILENAME
