"""The verification history: real results round-trip through JSON and the store, two
processes write at once, a damaged file is a typed error, and no secret gets in.

Every backup here is made by the real tools (fixtures.pipelines); every history
lives under tmp_path.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.dumps import mysql_like
from fixtures.pipelines import (
    Backup,
    RsaKey,
    clustercontrol,
    openssl_variant,
    rds_postgres,
    securecircle,
)
from fixtures.restoretest import hostile_pg_dump
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.keys.pem import PemKey
from sealcheck.core.pipeline.job import Job
from sealcheck.core.pipeline.run import run
from sealcheck.core.records import evidence
from sealcheck.core.records.history import (
    FILENAME,
    History,
    HistoryError,
    Kind,
    Subject,
    Trigger,
    failed_layer,
)
from sealcheck.core.records.identity import SourceIdentity
from sealcheck.core.records.report import Report
from sealcheck.core.records.restore_result import RestoreTestResult
from sealcheck.core.records.targets import Targets
from sealcheck.core.restoretest import RestoreTestOptions, restore_test
from sealcheck.core.storage.source import LocalFile


def verify(b: Backup, key: RsaKey | None = None, **job) -> Report:
    secrets = Secrets(
        keys=[PemKey.from_file(key.private)] if key else [],
        passphrase=bytearray(b.passphrase_file.read_bytes()) if b.passphrase_file else None,
    )
    wrapped = LocalFile(b.wrapped_key) if b.wrapped_key else None
    return run(Job(data=LocalFile(b.data), secrets=secrets, wrapped_key=wrapped, **job))


def flipped(b: Backup, out: Path) -> Backup:
    blob = bytearray(b.data.read_bytes())
    blob[len(blob) // 2] ^= 0x10  # bit rot in storage
    out.write_bytes(bytes(blob))
    return Backup(out, b.wrapped_key, b.passphrase_file)


@pytest.fixture(scope="module")
def reports(
    tmp_path_factory: pytest.TempPathFactory, rsa_key: RsaKey, other_rsa_key
) -> dict[str, Report]:
    """Real reports of every shape: passes, each kind of failure, a restore."""
    w = tmp_path_factory.mktemp("reports")
    dump = mysql_like(w / "dump.sql", rows=1500)
    sc = securecircle(dump, w / "sc", rsa_key)
    rds = rds_postgres(dump, w / "rds", rsa_key)
    cc = clustercontrol(dump, w / "cc")
    zst = openssl_variant(dump, w / "zst", compress="zstd -q -c", key=rsa_key, name="v.sql.zst.enc")
    cut = w / "cut.enc"
    cut.write_bytes(sc.data.read_bytes()[:-700])
    return {
        "securecircle": verify(sc, rsa_key),
        "rds-bzip2": verify(rds, rsa_key),
        "clustercontrol": verify(cc),
        "zstd": verify(zst, rsa_key),
        "restore": verify(sc, rsa_key, operation="restore", destination=w / "restored.sql"),
        "bit-flip": verify(flipped(cc, w / "flip.enc")),
        "truncated": verify(Backup(cut, sc.wrapped_key), rsa_key),
        "wrong-key": verify(sc, other_rsa_key),
    }


@pytest.fixture
def hist(tmp_path: Path) -> History:
    return History(tmp_path / "data" / FILENAME)


# --- round trips ----------------------------------------------------------------------


def test_real_reports_round_trip_exactly(reports: dict[str, Report]) -> None:
    assert {n for n, r in reports.items() if not r.ok} == {"bit-flip", "truncated", "wrong-key"}
    assert reports["restore"].destination and reports["securecircle"].wrapped_key
    for name, r in reports.items():
        assert Report.from_dict(r.to_dict()) == r, name
        assert Report.from_dict(json.loads(r.to_json())) == r, name


def test_from_dict_ignores_what_newer_writers_add(reports: dict[str, Report]) -> None:
    r = reports["truncated"]
    d = r.to_dict()
    d["signature"] = "from the future"
    d["layers"][0]["confidence"] = 0.99
    d["source"]["storage_class"] = "GLACIER"
    d["error"]["hint"] = "retry"
    assert Report.from_dict(d) == r


def _set(d: dict, path: list, value: object) -> dict:
    d = copy.deepcopy(d)
    target = d
    for k in path[:-1]:
        target = target[k]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return d


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (["ok"], KeyError, "report.ok: missing"),
        (["ok"], "yes", "report.ok"),
        (["layers"], {"source": 1}, "report.layers"),
        (["layers", 0, "status"], "fine", "report.layers[0].status"),
        (["layers", 1, "details"], [1, 2], "report.layers[1].details"),
        (["source", "size"], "1392", "report.source.size"),
        (["source", "uri"], None, "report.source.uri"),
        (["duration_s"], True, "report.duration_s"),
        (["formats"], ["gzip", 3], "report.formats[1]"),
        (["error", "exit_code"], 1.5, "report.error.exit_code"),
    ],
)
def test_malformed_report_is_a_value_error_naming_the_field(
    reports: dict[str, Report], path: list, value: object, where: str
) -> None:
    d = _set(reports["wrong-key"].to_dict(), path, value)
    with pytest.raises(ValueError, match="^" + re.escape(where)):
        Report.from_dict(d)


def test_not_an_object_is_a_value_error() -> None:
    for bad in (None, [], "report", 3):
        with pytest.raises(ValueError, match="expected an object"):
            Report.from_dict(bad)
        with pytest.raises(ValueError, match="expected an object"):
            RestoreTestResult.from_dict(bad)


def test_restore_test_result_round_trips_without_a_server(
    tmp_path: Path, rsa_key, other_rsa_key
) -> None:
    """A restore test stopped by a wrong key: no server started, a real result."""
    b = securecircle(mysql_like(tmp_path / "d.sql", rows=300), tmp_path / "s3", rsa_key)
    job = Job(
        data=LocalFile(b.data), secrets=Secrets(keys=[PemKey.from_file(other_rsa_key.private)])
    )
    res = restore_test(job, RestoreTestOptions(state_dir=tmp_path / "state"))
    assert not res.ok and res.verification is not None and res.error is not None
    assert RestoreTestResult.from_dict(res.to_dict()) == res
    assert RestoreTestResult.from_dict(json.loads(res.to_json())) == res


def test_restore_test_result_round_trips_from_real_postgres(tmp_path: Path) -> None:
    """Tables, checksums, hostile statements, a load error and drift, from a real
    throwaway PostgreSQL (skipped where PostgreSQL is not installed)."""
    state = tmp_path / "state"
    good = hostile_pg_dump(tmp_path / "good.sql", "SELECT pg_sleep(0);")
    first = restore_test(
        Job(data=LocalFile(good), secrets=Secrets(keys=[])), RestoreTestOptions(state_dir=state)
    )
    if first.error is not None and first.error.kind == "MissingTool":
        pytest.skip(first.error.message)
    assert first.ok and first.tables and first.hostile, first.error
    (tmp_path / "baseline.json").write_text(first.to_json())
    bad = hostile_pg_dump(tmp_path / "bad.sql", "\\! echo never")
    second = restore_test(
        Job(data=LocalFile(bad), secrets=Secrets(keys=[])),
        RestoreTestOptions(state_dir=state, baseline=tmp_path / "baseline.json"),
    )
    # The load stopped, so no table was checked: against the first run, all "removed".
    assert second.load_error is not None and second.drift is not None
    assert second.drift.tables_removed
    for res in (first, second):
        assert RestoreTestResult.from_dict(json.loads(res.to_json())) == res
    # Through the history and into an evidence report: the tables an auditor reads.
    hist = History(tmp_path / "data" / FILENAME)
    entries = [hist.record(res) for res in (first, second)]
    assert [e.kind for e in entries] == [Kind.RESTORE_TEST] * 2
    assert entries[1].failed_layer == "database" and hist.get(entries[0].id).result() == first
    html = evidence.to_html(evidence.build(entries)).decode()
    assert "public.before" in html and "public.after" in html and "Rows in dump" in html
    assert "checks passed" in html and "\\! echo never" in html  # the rejected statement


def test_malformed_restore_test_result_names_the_field(tmp_path: Path) -> None:
    from sealcheck.core.records.restore_result import Drift, LoadError, RowChange, TableResult

    res = RestoreTestResult(
        ok=False, engine="postgresql", server="PostgreSQL 15", mode="throwaway",
        databases=("public",), tables=(TableResult("t", "public", 1, 2, "ab", False, "short"),),
        views=(), triggers=(), routines=(), events=(), missing=(), load_seconds=1.5,
        checks_seconds=None, total_seconds=3.0, started_at="2026-11-27T10:00:00+00:00",
        warnings=(), hostile=({"line": 3, "kind": "x", "statement": "y"},), roles_created=(),
        rewritten=(), error=None, load_error=LoadError("boom", 4), verification=None,
        drift=Drift("b.json", None, row_changes=(RowChange("public.t", 2, 1),)),
    )  # fmt: skip
    d = res.to_dict()
    assert RestoreTestResult.from_dict(d) == res
    for path, value, where in (
        (["tables", 0, "rows"], "1", r"result\.tables\[0\]\.rows"),
        (["drift", "row_changes", 0, "before"], [], r"result\.drift\.row_changes\[0\]\.before"),
        (["load_error", "line"], "4", r"result\.load_error\.line"),
        (["hostile", 0], "x", r"result\.hostile\[0\]"),
        (["total_seconds"], None, r"result\.total_seconds"),
    ):
        with pytest.raises(ValueError, match=where):
            RestoreTestResult.from_dict(_set(d, path, value))


# --- the store ------------------------------------------------------------------------


def test_record_and_read_back(hist: History, reports: dict[str, Report]) -> None:
    ok, bad = reports["securecircle"], reports["truncated"]
    e1 = hist.record(ok)
    e2 = hist.record(bad)
    e3 = hist.record(reports["restore"])
    assert (e1.kind, e1.ok, e1.exit_code, e1.failed_layer) == (Kind.VERIFY, True, 0, None)
    assert (e2.kind, e2.ok, e2.exit_code) == (Kind.VERIFY, False, 1)
    assert e2.failed_layer == failed_layer(bad) and e2.failed_layer is not None
    assert e3.kind is Kind.RESTORE
    assert e1.subject.key == os.path.abspath(ok.source.uri) and e1.subject.bucket is None
    assert e1.subject.sha256 == ok.layer("source").details["sha256"]
    assert e1.host and e1.sealcheck_version and e1.when.endswith("+00:00")
    got = hist.get(e1.id)
    assert got == e1 and got.result() == ok
    assert hist.get(e2.id).result() == bad
    assert hist.get(9999) is None
    assert [e.id for e in hist.entries()] == [e3.id, e2.id, e1.id]  # newest first
    assert [e.id for e in hist.entries(failed=True)] == [e2.id]
    assert [e.id for e in hist.entries(kind=Kind.RESTORE)] == [e3.id]
    assert [e.id for e in hist.entries(limit=1)] == [e3.id]


def test_results_recorded_together_are_the_rows_recorded_one_by_one(
    tmp_path: Path, reports: dict[str, Report]
) -> None:
    """A merge records its results in one statement (issue 15): every column the same
    bytes as ``record`` of each result stores (the result's JSON text too), sealed and
    chained as the chain check recomputes them. Only the stamp (and so the chain's
    columns) may differ: the two were recorded at different moments."""
    targets = Targets(rto_s=60.0, rto_from="--target-rto")
    made = [
        (r, json.loads(json.dumps(r.to_dict())), targets if n % 2 else None)
        for n, r in enumerate(reports.values())
    ]
    one, many = History(tmp_path / "one" / FILENAME), History(tmp_path / "many" / FILENAME)
    for r, _, t in made:
        one.record(r, trigger=Trigger.AUDIT, campaign="c", targets=t)
    many.record_many(iter(made), trigger=Trigger.AUDIT, campaign="c")

    def rows(h: History) -> list[tuple[object, ...]]:
        db = sqlite3.connect(h.path)
        try:
            cols = [c[1] for c in db.execute("PRAGMA table_info(entries)")]
            keep = [
                c for c in cols if c not in ("recorded_at", "prev_hash", "digest", "record_hash")
            ]
            return db.execute(f"SELECT {', '.join(keep)} FROM entries ORDER BY id").fetchall()
        finally:
            db.close()

    assert len(rows(many)) == len(made) and rows(many) == rows(one)
    assert one.check_chain() == [] and many.check_chain() == []


def test_latest_by_version_and_source_patterns(hist: History, reports: dict[str, Report]) -> None:
    first = hist.record(reports["securecircle"])
    hist.record(reports["rds-bzip2"])
    again = hist.record(reports["wrong-key"])  # same object as the first, later
    latest = hist.latest_by_version()
    sc_key = (os.path.abspath(reports["securecircle"].source.uri), None)
    assert latest[sc_key].id == again.id != first.id
    assert len(latest) == 2
    assert list(hist.latest_by_version(source="1567744961188141183")) == [sc_key]
    assert len(hist.entries(source="*/rds/*.enc")) == 1
    assert hist.entries(source="*.nothing") == []


def test_opened_by_key_counts_the_versions_each_key_opened_last(
    hist: History, reports: dict[str, Report], rsa_key: RsaKey, other_rsa_key: RsaKey
) -> None:
    assert hist.opened_by_key() == {}  # nothing recorded yet, and nothing created
    assert not hist.path.exists()
    for name in ("securecircle", "zstd", "truncated", "clustercontrol"):
        hist.record(reports[name])
    fp = PemKey.from_file(rsa_key.private).fingerprint
    opened = hist.opened_by_key()
    sc, zst = (os.path.abspath(reports[n].source.uri) for n in ("securecircle", "zstd"))
    # The truncated copy failed before its key was tried; a passphrase opens no key.
    assert list(opened) == [fp]
    assert {s.key for s in opened[fp]} == {sc, zst}
    hist.record(reports["wrong-key"])  # the securecircle version, later, with the other key
    opened = hist.opened_by_key()
    assert [s.key for s in opened[fp]] == [zst]
    assert PemKey.from_file(other_rsa_key.private).fingerprint not in opened


def test_s3_identity_is_split_into_bucket_key_and_version() -> None:
    ident = SourceIdentity("s3://bk/db/x.sql.gz?versionId=a%2Bb", 12, "a+b", '"e1"', "2026-11-27")
    s = Subject.of(ident)
    assert (s.uri, s.bucket, s.key, s.version_id, s.etag, s.size) == (
        "s3://bk/db/x.sql.gz", "bk", "db/x.sql.gz", "a+b", '"e1"', 12,
    )  # fmt: skip
    assert s.label == "s3://bk/db/x.sql.gz@a+b"


def test_the_history_is_append_only(hist: History, reports: dict[str, Report]) -> None:
    e = hist.record(reports["securecircle"])
    db = sqlite3.connect(hist.path)
    try:
        for sql in ("UPDATE entries SET ok = 0", "DELETE FROM entries"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(sql)
    finally:
        db.close()
    assert hist.get(e.id) == e


def test_private_file_and_folder(hist: History, reports: dict[str, Report]) -> None:
    hist.record(reports["securecircle"])
    assert stat.S_IMODE(hist.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(hist.path.parent.stat().st_mode) == 0o700


def test_reading_a_missing_history_creates_nothing(hist: History) -> None:
    assert hist.entries() == [] and hist.latest_by_version() == {} and hist.get(1) is None
    assert not hist.path.exists()


_WRITER = """
import json, sys
from pathlib import Path
from sealcheck.core.records.history import History
from sealcheck.core.records.report import Report
report = Report.from_dict(json.loads(Path(sys.argv[2]).read_text()))
h = History(Path(sys.argv[1]), busy_timeout=30, keep_open=sys.argv[4] == "held")
sys.stdin.readline()  # start together
for _ in range(int(sys.argv[3])):
    h.record(report)
"""


def test_creating_waits_for_another_creator(hist: History, reports: dict[str, Report]) -> None:
    """Switching a new file to WAL needs an exclusive lock, and sqlite refuses it at once
    (no busy handler) while another connection holds one: the first record waits like
    any other write instead of failing "database is locked" (CI, two first records)."""
    hist.path.parent.mkdir(parents=True, exist_ok=True)
    other = sqlite3.connect(hist.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # a creator in the middle of its transaction
    timer = threading.Timer(0.5, other.execute, ("ROLLBACK",))
    timer.start()
    try:
        entry = hist.record(reports["securecircle"])
    finally:
        timer.join()
        other.close()
    assert hist.entries() == [entry]


def test_two_processes_write_at_once(
    hist: History, reports: dict[str, Report], tmp_path: Path
) -> None:
    """Both start on a file that does not exist yet: creating it races too. One holds
    its connection open (as the app does), the other opens one per call (the CLI)."""
    n = 40
    procs = []
    for name, mode in (("securecircle", "held"), ("bit-flip", "per-call")):
        src = tmp_path / f"{name}.json"
        src.write_text(reports[name].to_json())
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _WRITER, str(hist.path), str(src), str(n), mode],
                stdin=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    entries = hist.entries()
    assert len(entries) == 2 * n and len({e.id for e in entries}) == 2 * n
    assert sum(e.ok for e in entries) == n
    by_ok = {True: reports["securecircle"], False: reports["bit-flip"]}
    assert all(e.result() == by_ok[e.ok] for e in entries)


def test_a_held_connection_serves_its_thread_and_others_get_their_own(
    hist: History, reports: dict[str, Report]
) -> None:
    held = History(hist.path, keep_open=True)
    first = held.record(reports["securecircle"])
    got: list[object] = []
    worker = threading.Thread(target=lambda: got.append(held.record(reports["bit-flip"])))
    worker.start()
    worker.join(30)
    assert len(got) == 1 and held.get(first.id) == first
    assert [e.ok for e in hist.entries()] == [False, True]  # a second store sees both
    held.close()
    assert held.record(reports["zstd"]).id == 3  # reopens after close


def test_a_damaged_file_is_a_typed_error(hist: History, reports: dict[str, Report]) -> None:
    hist.path.parent.mkdir(parents=True)
    hist.path.write_bytes(b"this is not a database, it was overwritten by accident\n" * 100)
    with pytest.raises(HistoryError, match="not a database") as info:
        hist.record(reports["securecircle"])
    assert str(hist.path) in info.value.message()
    with pytest.raises(HistoryError):
        hist.entries()
    with pytest.raises(HistoryError):
        hist.latest_by_version()
    assert hist.path.read_bytes().startswith(b"this is not a database")  # evidence kept as is


def test_an_unusable_folder_is_a_typed_error(tmp_path: Path, reports: dict[str, Report]) -> None:
    (tmp_path / "file").write_text("a file where the data folder should be")
    h = History(tmp_path / "file" / FILENAME)
    with pytest.raises(HistoryError):
        h.record(reports["securecircle"])


# --- no secrets ---------------------------------------------------------------------


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_no_secret_reaches_the_history(tmp_path: Path, small_dump: Path, rsa_key: RsaKey) -> None:
    """A verify through the CLI: neither the passphrase that encrypted the data (the
    data key RSA unwraps), nor a canary passphrase given for another backup, nor the
    private key, is anywhere in the history's files."""
    data = tmp_path / "data"
    env = {**os.environ, "SEALCHECK_DATA_DIR": str(data)}
    wrapped = openssl_variant(small_dump, tmp_path / "a", key=rsa_key, name="a.sql.gz.enc")
    sym = openssl_variant(small_dump, tmp_path / "b", name="b.sql.gz.enc")
    canary = "CANARY-passphrase-7f3a9c1e-do-not-store"
    sym.passphrase_file.write_text(canary + "\n")  # not the real one: this verify fails
    r1 = run_cli(
        "verify", str(wrapped.data), "--key", str(rsa_key.private), "--no-progress", env=env
    )
    r2 = run_cli("verify", str(sym.data), "--passphrase-file", str(sym.passphrase_file), env=env)
    assert r1.returncode == 0, r1.stderr
    assert r2.returncode == 1, r2.stdout + r2.stderr
    assert len(History(data / FILENAME).entries()) == 2
    blob = _all_bytes(data)
    dek = wrapped.passphrase_file.read_text().strip()
    pem_body = "".join(rsa_key.private.read_text().splitlines()[1:-1])
    for secret in (dek, canary, pem_body[:64], pem_body[-64:]):
        assert secret.encode() not in blob


def test_entries_by_verdict_and_time(
    hist: History, reports: dict[str, Report], tmp_path: Path
) -> None:
    """The History page's filters: a verdict (NOT CHECKED too) and a time, in SQL."""
    import datetime as dt

    from sealcheck.core.records.verdict import Verdict

    # A restore whose destination folder does not exist: a setup problem (exit 2).
    cc = clustercontrol(mysql_like(tmp_path / "d.sql", rows=50), tmp_path / "cc")
    setup = verify(cc, None, operation="restore", destination=tmp_path / "no" / "x.sql")
    assert setup.exit_code == 2
    now = dt.datetime.now(dt.UTC)
    old = hist.record(reports["securecircle"], when=now - dt.timedelta(days=3))
    ok = hist.record(reports["clustercontrol"], when=now - dt.timedelta(hours=1))
    bad = hist.record(reports["truncated"], when=now)
    nc = hist.record(setup, when=now)
    assert [e.id for e in hist.entries(verdict=Verdict.OK)] == [ok.id, old.id]
    assert [e.id for e in hist.entries(verdict=Verdict.FAILED)] == [bad.id]
    assert [e.id for e in hist.entries(verdict=Verdict.NOT_CHECKED)] == [nc.id]
    day = now - dt.timedelta(days=1)
    assert [e.id for e in hist.entries(since=day)] == [nc.id, bad.id, ok.id]
    assert [e.id for e in hist.entries(since=day, verdict=Verdict.OK)] == [ok.id]
    assert hist.entries(since=now + dt.timedelta(minutes=1)) == []
