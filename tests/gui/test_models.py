"""The listing models (qtmodeltester), sorting, filtering, paging and its overhead."""

from __future__ import annotations

import datetime as dt
import time

from PySide6.QtCore import Qt

from fixtures.lateness import Lateness
from sealcheck.core.records.report import ErrorInfo
from sealcheck.core.storage.listing import ObjectVersion, group
from sealcheck.gui.errortext import describe
from sealcheck.gui.state.models import BackupFilterProxy, BackupSetModel, VersionModel
from sealcheck.gui.state.results import Outcome, ResultStore
from sealcheck.gui.state.settings import SourceConfig
from sealcheck.gui.views.browser import BackupBrowser

T0 = dt.datetime(2026, 11, 27, 3, 0, tzinfo=dt.UTC)


def _v(key: str, i: int, size: int = 1000, latest: bool = False) -> ObjectVersion:
    return ObjectVersion(key, f"v{i:05d}", size, T0 + dt.timedelta(days=i), '"e"', latest)


def _sample_sets():
    versions = []
    for i in range(3):
        versions.append(_v("sc/1.sql.gz", i, 3000 + i, latest=i == 2))
        versions.append(_v("sc/1.sql.gz.key", i, 256, latest=i == 2))
    versions.append(_v("sc/1.sql.gz.key", 9, 256))  # a key version with no data: orphan
    versions += [
        _v("pg/shop.sql.bz.enc", 0, 50_000_000, True),
        _v("pg/shop.key.txt.enc", 0, 256, True),
    ]
    versions.append(_v("cc/full.sql.gz.aes256", 1, 7, True))
    return group(versions)


def test_backup_model_and_proxy_pass_qtmodeltester(qtmodeltester, qapp):
    results = ResultStore()
    model = BackupSetModel(results)
    model.update_sets(_sample_sets())
    assert model.rowCount() == 3
    qtmodeltester.check(model)
    proxy = BackupFilterProxy()
    proxy.setSourceModel(model)
    qtmodeltester.check(proxy)


def test_version_model_pass_qtmodeltester_and_flags(qtmodeltester, qapp):
    results = ResultStore()
    vm = VersionModel(results)
    sc = next(s for s in _sample_sets() if s.name == "sc/1.sql.gz")
    vm.set_backup(sc)
    qtmodeltester.check(vm)
    flags = [vm.index(r, 4).data() for r in range(vm.rowCount())]
    assert any(f.startswith("orphan key") for f in flags)
    keys = [vm.index(r, 3).data() for r in range(3)]
    assert all(k.startswith("v") for k in keys)  # each data version has its key version
    assert not vm.verifiable(vm.rowCount() - 1)  # the orphan row cannot be verified


def test_sort_by_raw_values_and_filter(qapp):
    results = ResultStore()
    model = BackupSetModel(results)
    model.update_sets(_sample_sets())
    proxy = BackupFilterProxy()
    proxy.setSourceModel(model)
    proxy.sort(3, Qt.SortOrder.DescendingOrder)  # size: 50 MB first, not "7 B" by text
    assert proxy.index(0, 0).data() == "pg/shop.sql.bz.enc"
    proxy.setFilterFixedString("bzip2")
    assert proxy.rowCount() == 1
    proxy.setFilterFixedString("")
    proxy.set_problems_only(True)
    assert [proxy.index(r, 0).data() for r in range(proxy.rowCount())] == ["sc/1.sql.gz"]


def test_failure_shows_on_the_row_in_words(qapp):
    results = ResultStore()
    model = BackupSetModel(results)
    model.update_sets(_sample_sets())
    err = ErrorInfo("IncompleteDump", "payload", "the trailer is missing", 1)
    results.put(("cc/full.sql.gz.aes256", "v00001"), Outcome(None, describe(err), T0))
    row = next(
        r for r in range(model.rowCount()) if model.index(r, 0).data() == "cc/full.sql.gz.aes256"
    )
    assert (
        model.index(row, model.RESULT_COLUMN).data()
        == "FAILED: The dump inside the backup is incomplete"
    )
    assert "checking the dump is complete" in model.index(row, 0).data(Qt.ItemDataRole.ToolTipRole)


def test_update_merges_in_place(qapp):
    results = ResultStore()
    model = BackupSetModel(results)
    sets = _sample_sets()
    model.update_sets(sets[:1])
    model.update_sets(sets)
    model.update_sets(sets)
    assert model.rowCount() == 3
    model.retain({sets[0].name})
    assert model.rowCount() == 1


class _FakePaginator:
    """ListObjectVersions pages of 1000, as a store would send them (no moto: measure the app)."""

    def __init__(self, n_sets: int, per_set: int, page_delay: float) -> None:
        self.items = [
            {
                "Key": f"db{s:04d}/dump.sql.gz.enc",
                "VersionId": f"{s:04d}-{i:03d}",
                "Size": 1000 + i,
                "LastModified": T0 + dt.timedelta(hours=i),
                "ETag": '"x"',
                "IsLatest": i == per_set - 1,
            }
            for s in range(n_sets)
            for i in range(per_set)
        ]
        self.delay = page_delay

    def paginate(self, **kw):
        size = kw["PaginationConfig"]["PageSize"]
        for start in range(0, len(self.items), size):
            time.sleep(self.delay)
            yield {"Versions": self.items[start : start + size]}


class _FakeCurrent:
    """ListObjectsV2, which a listing of several pages asks to cross-check the versions."""

    def __init__(self, pager: _FakePaginator) -> None:
        self._keys = sorted({v["Key"] for v in pager.items})

    def paginate(self, **kw):
        yield {"Contents": [{"Key": k} for k in self._keys]}


class _FakeClient:
    def __init__(self, pager: _FakePaginator) -> None:
        self._p = pager

    def get_paginator(self, name: str) -> _FakePaginator | _FakeCurrent:
        if name == "list_objects_v2":
            return _FakeCurrent(self._p)
        assert name == "list_object_versions"
        return self._p

    def get_bucket_versioning(self, **kw):
        return {"Status": "Enabled"}


def test_ten_thousand_versions_fill_page_by_page_without_stalling(qtbot, quiet_machine):
    pager = _FakePaginator(n_sets=2000, per_set=5, page_delay=0.15)
    browser = BackupBrowser(ResultStore(), lambda _src: _FakeClient(pager))
    qtbot.addWidget(browser)
    browser.resize(1000, 700)
    browser.show()
    late = Lateness()

    def scroll() -> None:
        # Scrolling stays possible: the view answers while the model grows.
        bar = browser.sets_view.verticalScrollBar()
        bar.setValue((bar.value() + 7) % max(1, bar.maximum() + 1))

    late.on_tick.append(scroll)
    src = SourceConfig(name="fake", bucket="b")
    t0 = time.monotonic()
    with qtbot.waitSignal(browser.listing_finished, timeout=20000, raising=True) as ended:
        browser.load(src)
        late.start()
        qtbot.waitUntil(lambda: browser.model.rowCount() > 0, timeout=5000)
        first_rows = time.monotonic() - t0
    late.stop()
    assert ended.args == [2000], browser.banner.text()
    assert browser.model.rowCount() == 2000
    assert sum(len(s.pairs) for s in (browser.model.backup_at(r) for r in range(2000))) == 10_000
    # Rows appear with the first page (0.15 s of "network"), not after the whole listing.
    assert first_rows < 0.15 + 0.5
    # What the app adds to the first page: worker hand-over to rows in the model.
    assert browser.page_latencies[0] < 0.100, browser.page_latencies
    # Scrollable while loading. Counted in this process's own CPU time: the full suite
    # once measured a 1.4 s stall here that it could not repeat alone (tests/fixtures/lateness.py).
    print(late.summary())
    assert late.app_worst < 0.500, f"event loop stalled: {late.summary()}"
