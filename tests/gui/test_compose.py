"""The window's compose module, without widgets: a selection of listed versions becomes
job specs (the version as listed, with its paired key version), restored files get their
own names, restore tests run oldest first and each picks its drift baselines."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sealcheck.core.storage.listing import BackupSet, ObjectVersion, VersionPair
from sealcheck.core.storage.locate import ListedVersion
from sealcheck.gui.jobs.spec import RestoreTestSpec
from sealcheck.gui.state.settings import SourceConfig
from sealcheck.gui.state.versions import VersionRow
from sealcheck.gui.views.mainwindow import compose

KEY = "db/shop.sql.gz"
T0 = dt.datetime(2026, 11, 27, 3, 0, 7, tzinfo=dt.UTC)
S3 = SourceConfig(name="s3", bucket="backups", prefix="db/", endpoint_url="http://127.0.0.1:9")


def _v(key: str, vid: str | None, minutes: int, *, marker: bool = False) -> ObjectVersion:
    when = T0 + dt.timedelta(minutes=minutes)
    return ObjectVersion(key, vid, 0 if marker else 10, when, None, False, delete_marker=marker)


def _pair(vid: str, minutes: int, *, marker: bool = False) -> VersionPair:
    key = None if marker else _v(KEY + ".key", "k" + vid, minutes)
    return VersionPair(_v(KEY, vid, minutes, marker=marker), key)


def _backup(*pairs: VersionPair, name: str = KEY, recognised: bool = True) -> BackupSet:
    """A backup as the listing groups it: its versions newest first."""
    return BackupSet(name, name + ".key", pairs, (), (), recognised=recognised)


def _row(p: VersionPair) -> VersionRow:
    return VersionRow(p.data, p.key, p.issue)


def test_a_job_spec_carries_the_listed_version_and_its_key_version(tmp_path: Path) -> None:
    p = _pair("v2", 0)
    spec = compose.job_spec(S3, _row(p), "verify")
    assert spec.version == ListedVersion("backups", p.data, p.key)
    assert spec.operation == "verify" and spec.s3 == S3.s3()
    assert (spec.object_key, spec.version_id) == (KEY, "v2")
    assert spec.title.startswith(f"Verify {KEY} (") and spec.title.endswith(", version v2)")
    assert spec.destination is None and not spec.overwrite
    local = SourceConfig.local(tmp_path)
    f = _v(str(tmp_path / "x.sql.gz.enc"), None, 0)
    assert compose.job_spec(local, VersionRow(f, None, None), "verify").version.bucket is None


def test_only_a_confirmed_existing_file_is_replaced(tmp_path: Path) -> None:
    row = _row(_pair("v1", 0))
    there = tmp_path / "shop.sql"
    assert not compose.job_spec(S3, row, "restore", there).overwrite  # not there yet
    there.write_text("old")
    assert compose.job_spec(S3, row, "restore", there).overwrite  # the save dialog asked
    assert not compose.job_spec(S3, row, "restore", there, confirmed=False).overwrite


def test_several_restores_go_to_their_own_files_never_replacing_one(tmp_path: Path) -> None:
    rows = [_row(_pair("3HL4kqtJlcpXzz", 1)), _row(_pair("null", 0))]
    (tmp_path / "shop.3HL4kqtJlcpX.sql").write_text("already there")
    specs = compose.restore_specs(S3, rows, tmp_path)
    assert [s.destination for s in specs] == [
        tmp_path / "shop.3HL4kqtJlcpX.sql",
        tmp_path / "shop.unversioned.sql",
    ]
    assert all(s.operation == "restore" and not s.overwrite for s in specs)


def test_several_backups_selected_give_the_newest_live_version_of_each() -> None:
    a = _backup(_pair("a2", 2), _pair("a1", 1))
    deleted = _backup(_pair("m", 3, marker=True), _pair("b1", 1), name="db/b.sql.gz")
    readme = _backup(_pair("r1", 0), name="db/readme.txt", recognised=False)
    gone = _backup(_pair("m2", 3, marker=True), name="db/c.sql.gz")
    got = compose.newest_of_each([a, deleted, readme, gone])
    assert [r.data.version_id for r in got] == ["a2", "b1"]
    assert got[0].key is not None and got[0].key.version_id == "ka2"


def test_restore_tests_run_oldest_first_each_compared_with_the_one_before() -> None:
    # v3 and v2 were uploaded in the same second: the listing (newest first) orders them.
    v4, v3, v2, m, v1 = (
        _pair("v4", 9),
        _pair("v3", 5),
        _pair("v2", 5),
        _pair("m", 3, marker=True),
        _pair("v1", 1),
    )
    backup = _backup(v4, v3, v2, m, v1)
    chosen = [_row(v2), _row(v4), _row(v3)]
    assert [r.data.version_id for r in compose.oldest_first(chosen, [backup])] == [
        "v2",
        "v3",
        "v4",
    ]
    # Drift: the older live versions, newest first (the delete marker left out), then itself.
    assert compose.drift_baselines(_row(v3), [None, backup]) == (
        (KEY, "v2"),
        (KEY, "v1"),
        (KEY, "v3"),
    )
    other = _row(_pair("x", 0))
    assert compose.drift_baselines(other, [None]) == ((KEY, "x"),)
    options = RestoreTestSpec(engine="postgres", server="postgresql://me@localhost/")
    specs = compose.restore_test_specs(S3, chosen, options, [backup])
    assert [s.version_id for s in specs] == ["v2", "v3", "v4"]
    for s in specs:
        rt = s.restore_test
        assert s.operation == "restore-test" and rt is not None
        assert (rt.engine, rt.server) == ("postgres", "postgresql://me@localhost/")
        assert rt.compare_with == compose.drift_baselines(
            VersionRow(s.version.data, None, None), [backup]
        )
    assert specs[0].restore_test is not None
    assert specs[0].restore_test.compare_with == ((KEY, "v1"), (KEY, "v2"))
