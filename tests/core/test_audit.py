"""``sealcheck audit`` and ``sealcheck coverage`` (issue 14) through the real CLI on a real
S3 (moto_server): backups made by real openssl commands, one of them cut short, one
version in Glacier; each test keeps its history in its own folder."""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fixtures.common import run_cli
from fixtures.dumps import MYSQL_HEADER, MYSQL_TRAILER
from fixtures.keyring_session import KeyringSession
from fixtures.pipelines import RsaKey
from fixtures.s3scenarios import put_audit_estate
from fixtures.s3servers import Bucket, S3Store
from sealcheck.core.audit.coverage import State, state_of
from sealcheck.core.records.history import Entry, History, Kind, Subject

NIGHTS = 6


@dataclass(frozen=True)
class Estate:
    bucket: Bucket
    key: RsaKey
    good: int  # versions that verify
    damaged: str  # the cut one's object key
    glacier: str


def restorable(path: Path, rows: int) -> Path:
    """A mysqldump-like dump a restore test loads whole (header, one table, trailer)."""
    body = "".join(f"INSERT INTO `t` VALUES ({i},'row {i} of the audit');\n" for i in range(rows))
    path.write_text(
        MYSQL_HEADER
        + "CREATE TABLE `t` (`id` int NOT NULL, `v` varchar(64));\n"
        + body
        + MYSQL_TRAILER
    )
    return path


@pytest.fixture(scope="module")
def estate(
    moto_store: S3Store, rsa_key: RsaKey, tmp_path_factory: pytest.TempPathFactory
) -> Estate:
    root = tmp_path_factory.mktemp("estate")
    bucket = moto_store.bucket()
    dump = restorable(root / "dump.sql", rows=3000)
    put_audit_estate(bucket, dump, rsa_key, root, NIGHTS)
    return Estate(bucket, rsa_key, NIGHTS + 1, "db/cut.sql.gz", "db/cold.sql.gz")


def audit(
    estate: Estate,
    data: Path,
    *args: str,
    env: dict[str, str] | None = None,
    prefix: str = "db/",
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    full = {**(env or os.environ), "SEALCHECK_DATA_DIR": str(data)}
    r = run_cli(
        "audit",
        estate.bucket.uri(prefix),
        "--key",
        str(estate.key.private),
        "--endpoint-url",
        estate.bucket.endpoint,
        "--json",
        *args,
        env=full,
        timeout=300,
    )
    assert r.stdout.strip(), r.stderr
    return r, json.loads(r.stdout)


def versions(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(r["key"], r["version_id"]) for r in doc["results"]}


def test_whole_estate_gate_records_and_signed_report(
    estate: Estate, tmp_path: Path, keyring_session: KeyringSession
) -> None:
    env = {**os.environ, **keyring_session.env}
    report = tmp_path / "audit.pdf"
    r, doc = audit(estate, tmp_path / "data", "--parallel", "2", "--report", str(report), env=env)
    assert r.returncode == 1, r.stderr  # one version is damaged
    c = doc["campaign"]
    assert c["population"] == estate.good + 2 and c["sample_size"] == estate.good + 1
    assert c["totals"] == {"ok": estate.good, "failed": 1}
    assert c["complete"] and c["stopped"] is None
    (cold,) = c["skipped"]
    assert cold["storage_class"] == "GLACIER" and "not a failure" in cold["why"]
    assert estate.glacier in cold["version"]
    failed = [x for x in doc["results"] if x["verdict"] == "failed"]
    assert [x["key"] for x in failed] == [estate.damaged]
    # Every result and the campaign are history records, in one chain.
    hist = History(tmp_path / "data" / "history.sqlite3")
    (rec,) = hist.entries(kind=Kind.AUDIT)
    assert rec.campaign == c["id"] and rec.exit_code == 1 and rec.trigger == "audit"
    assert all(e.trigger == "audit" and e.os_user for e in hist.entries())
    assert hist.check_chain() == []
    v = run_cli("report", "verify", str(report), env={**env, "SEALCHECK_DATA_DIR": str(tmp_path)})
    assert v.returncode == 0 and "report intact" in v.stdout, v.stdout
    assert c["signed_by"] and c["signed_by"] in v.stdout


def test_sample_is_reproducible_from_its_seed(estate: Estate, tmp_path: Path) -> None:
    _, a = audit(estate, tmp_path / "a", "--sample", "3", "--seed", "42")
    _, b = audit(estate, tmp_path / "b", "--sample", "3", "--seed", "42")
    assert len(versions(a)) == 3 and versions(a) == versions(b)
    assert a["campaign"]["seed"] == 42 and "random 3" in a["campaign"]["method"]
    _, c = audit(estate, tmp_path / "c", "--sample", "50%")
    assert isinstance(c["campaign"]["seed"], int)  # drawn, and recorded
    seed = str(c["campaign"]["seed"])
    _, d = audit(estate, tmp_path / "d", "--sample", "50%", "--seed", seed)
    assert versions(c) == versions(d) and len(versions(c)) == 4


def test_slices_cover_every_version_exactly_once(estate: Estate, tmp_path: Path) -> None:
    k = 3
    seen: list[tuple[str, str]] = []
    for i in range(1, k + 1):
        _, doc = audit(estate, tmp_path / "data", "--slice", f"{i}/{k}")
        assert doc["campaign"]["method"].startswith(f"slice {i}/{k}")
        seen += sorted(versions(doc))
    _, whole = audit(estate, tmp_path / "whole")
    assert len(seen) == len(set(seen)) and set(seen) == versions(whole)


def test_max_duration_stops_and_the_next_run_resumes(estate: Estate, tmp_path: Path) -> None:
    data = tmp_path / "data"
    # Well under one version's verify: a campaign without per-version HEADs and
    # listings can finish all eight within 0.3 s on an idle machine.
    r, first = audit(estate, data, "--parallel", "1", "--max-duration", "0.05")
    c1 = first["campaign"]
    assert c1["stopped"] == "max-duration" and not c1["complete"], r.stderr
    assert c1["not_yet_checked"] > 0
    proved = {v for v in versions(first)}
    r, second = audit(estate, data, "--parallel", "2")
    c2 = second["campaign"]
    assert c2["id"] == c1["id"] and c2["resumed"] and c2["complete"]
    assert c2["totals"] == {"ok": estate.good, "failed": 1} and r.returncode == 1
    hist = History(data / "history.sqlite3")
    checked = [e for e in hist.entries(campaign=c1["id"]) if e.verdict.is_verdict]
    # Nothing proved by the first run was checked again.
    keys = [(e.subject.key, e.subject.version_id) for e in checked]
    assert len(keys) == len(set(keys)) == estate.good + 1
    assert proved <= set(keys)
    # A finished campaign is not resumed: the same command starts a new one.
    _, third = audit(estate, data)
    assert third["campaign"]["id"] != c1["id"] and not third["campaign"]["resumed"]


def test_coverage_states(estate: Estate, tmp_path: Path) -> None:
    data = tmp_path / "data"
    audit(estate, data, "--versions", "current")
    env = {**os.environ, "SEALCHECK_DATA_DIR": str(data)}
    args = ["coverage", estate.bucket.uri("db/"), "--endpoint-url", estate.bucket.endpoint]
    r = run_cli(*args, "--json", env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    states = {(v["backup"].rsplit("/", 1)[-1], v["state"]) for v in doc["versions"]}
    assert ("cut.sql.gz", "failed") in states
    assert ("nightly.sql.gz", "partly") in states  # verified, never restore-tested
    assert ("nightly.sql.gz", "never checked") in states  # older nights: --versions current
    assert doc["backups"][estate.bucket.uri("db/cut.sql.gz")]["state"] == "failed"
    r = run_cli(*args, "--json", "--outdated-after", "0", env=env, timeout=120)
    states = {v["state"] for v in json.loads(r.stdout)["versions"]}
    # Verified long ago and never restore-tested: both, not "outdated" alone.
    assert "partly, outdated" in states and "partly" not in states
    r = run_cli(*args, env=env, timeout=120)
    assert r.returncode == 0 and "FAILED" in r.stdout and "never checked" in r.stdout
    r = run_cli(*args, "--outdated-after", "0", env=env, timeout=120)
    assert "  partly, outdated " in r.stdout
    # The report's coverage says both too (the same rows, rendered by core).
    report = tmp_path / "cov.json"
    audit(estate, data, "--versions", "current", "--outdated-after", "0", "--report", str(report))
    rows = json.loads(report.read_text())["evidence"]["coverage"]
    nightly = [r["state"] for r in rows if r["backup"].endswith("nightly.sql.gz")]
    assert "partly, outdated" in nightly and "partly" not in nightly


def _entry(kind: Kind, ok: bool, days: float, result: dict[str, Any] | None = None) -> Entry:
    when = _dt.datetime.now(_dt.UTC) - _dt.timedelta(days=days)
    return Entry(
        id=1,
        when=when.isoformat(timespec="seconds"),
        kind=kind,
        subject=Subject.from_uri("s3://b/k", "v"),
        ok=ok,
        exit_code=0 if ok else 1,
        failed_layer=None,
        result_json=json.dumps(result or {}),
        sealcheck_version="t",
        host="h",
    )


def test_state_rules() -> None:
    now = _dt.datetime.now(_dt.UTC)
    rt = _entry(Kind.RESTORE_TEST, True, 1)
    assert state_of(None, None, now, 30)[0] is State.NEVER
    assert state_of(rt, rt, now, 30)[0] is State.OK
    assert state_of(_entry(Kind.VERIFY, True, 1), None, now, 30)[0] is State.PARTLY
    drift = _entry(Kind.RESTORE_TEST, True, 1, {"drift": {"emptied": ["t1"]}})
    assert state_of(drift, drift, now, 30)[0] is State.PARTLY
    assert state_of(_entry(Kind.VERIFY, True, 40), rt, now, 30)[0] is State.OUTDATED
    old = _entry(Kind.VERIFY, True, 40)
    state, why = state_of(old, None, now, 30)
    assert state is State.PARTLY_OUTDATED and state.value == "partly, outdated"
    assert why == "verified, never restore-tested; last checked 40 days ago (limit 30)"
    old_drift = _entry(Kind.RESTORE_TEST, True, 40, {"drift": {"tables_removed": ["t"]}})
    assert state_of(old_drift, old_drift, now, 30)[0] is State.PARTLY_OUTDATED
    assert state_of(_entry(Kind.VERIFY, False, 40), None, now, 30)[0] is State.FAILED
    assert state_of(_entry(Kind.VERIFY, False, 1), rt, now, 30)[0] is State.FAILED


def test_a_version_no_key_opens_is_a_setup_problem_not_a_failure(
    estate: Estate, tmp_path: Path
) -> None:
    """A passphrase file for RSA-wrapped backups opens none of them: exit 2, each
    version NOT CHECKED (no verdict on the backup), never FAILED."""
    pw = tmp_path / "pw"
    pw.write_text("not the secret\n")
    env = {**os.environ, "SEALCHECK_DATA_DIR": str(tmp_path / "data")}
    r = run_cli(
        "audit",
        estate.bucket.uri("db/nightly"),
        "--passphrase-file",
        str(pw),
        "--endpoint-url",
        estate.bucket.endpoint,
        "--versions",
        "current",
        "--json",
        env=env,
        timeout=300,
    )
    doc = json.loads(r.stdout)
    assert r.returncode == doc["campaign"]["exit_code"], r.stderr
    assert r.returncode == 2 and doc["campaign"]["totals"] == {"not-checked": 1}
    (res,) = doc["results"]
    assert res["verdict"] == "not-checked" and res["failed_layer"] == "key"
    assert "INCOMPLETE" not in r.stdout  # --json: the words are for the terminal


def sources_file(folder: Path, estate: Estate, *targets: tuple[str, str, dict]) -> Path:
    """The app's sources file (sources.json) with these (name, prefix, targets)."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = [
        {"name": n, "bucket": estate.bucket.name, "prefix": prefix, **t} for n, prefix, t in targets
    ]
    (folder / "sources.json").write_text(json.dumps({"version": 1, "sources": sources}))
    return folder


def test_restore_test_newest_and_coverage_ok(estate: Estate, tmp_path: Path) -> None:
    """--restore-test newest restores the newest night into a throwaway MariaDB; that
    version's coverage is then ok (verified and restore-tested); the measured recovery
    time and the backups' age are reported against the targets (the RTO the source
    sets in the sources file, the RPO given on the command line)."""
    if not shutil.which("mariadbd"):
        pytest.skip("no MariaDB server binaries (apt: mariadb-server)")
    conf = sources_file(tmp_path / "conf", estate, ("estate", "db/", {"target_rto_s": 0.001}))
    env = {
        **os.environ,
        "SEALCHECK_STATE_DIR": str(tmp_path / "state"),
        "SEALCHECK_CONFIG_DIR": str(conf),
    }
    r, doc = audit(
        estate,
        tmp_path / "data",
        "--sample",
        "2",
        "--seed",
        "1",
        "--restore-test",
        "newest",
        "--target-rpo",
        "1000",
        "--report",
        str(tmp_path / "rt.pdf"),
        env=env,
    )
    c = doc["campaign"]
    assert r.returncode in (0, 1), r.stderr
    # Targets are reported, never failures: a restore takes longer than 1 ms, every
    # backup here is younger than 1,000 hours.
    t = c["targets"]
    assert t["rto"] and all(x["met"] is False and x["recovery_s"] > 0 for x in t["rto"])
    assert t["rpo"] and all(x["met"] is True for x in t["rpo"])
    assert {(x["target_s"], x["from"]) for x in t["rto"]} == {(0.001, "source estate")}
    assert {x["from"] for x in t["rpo"]} == {"--target-rpo"}
    # Each restore test's record says it cleaned up after itself (issue 14).
    pdf = pytest.importorskip("pypdf").PdfReader(tmp_path / "rt.pdf")
    assert "Clean-up: cleaned" in "\n".join(p.extract_text() for p in pdf.pages)
    kinds = {x["kind"] for x in doc["results"]}
    assert "restore-test" in kinds and len(c["restore_tested"]) >= 1
    tested = [x for x in doc["results"] if x["kind"] == "restore-test"]
    assert all(x["verdict"] == "ok" for x in tested if "cut" not in x["key"]), tested
    cov = run_cli(
        "coverage",
        "--json",
        env={**env, "SEALCHECK_DATA_DIR": str(tmp_path / "data")},
        timeout=60,
    )
    states = {
        (v["backup"], v["version_id"]): v["state"] for v in json.loads(cov.stdout)["versions"]
    }
    ok = [x for x in tested if x["verdict"] == "ok"]
    assert ok and all(states[(x["uri"], x["version_id"])] == "ok" for x in ok), states


def test_targets_per_source_from_the_sources_file(estate: Estate, tmp_path: Path) -> None:
    """Each backup is measured against the most specific source's RPO (the app's sources
    file); each record keeps its targets, the report says met or MISSED; the command
    line overrides them."""
    conf = sources_file(
        tmp_path / "conf",
        estate,
        ("estate", "db/", {"target_rpo_h": 1000}),
        ("cut backups", "db/cut", {"target_rpo_h": 0.0001}),
    )
    env = {**os.environ, "SEALCHECK_CONFIG_DIR": str(conf)}
    report = tmp_path / "r.json"
    data = tmp_path / "data"
    _, doc = audit(estate, data, "--versions", "current", "--report", str(report), env=env)
    rpo = {x["backup"].rsplit("/", 1)[-1]: x for x in doc["campaign"]["targets"]["rpo"]}
    assert (rpo["nightly.sql.gz"]["target_h"], rpo["nightly.sql.gz"]["from"]) == (
        1000,
        "source estate",
    )
    assert rpo["nightly.sql.gz"]["met"] is True
    assert rpo["cut.sql.gz"]["from"] == "source cut backups" and rpo["cut.sql.gz"]["met"] is False
    # Every record keeps the targets it was measured against (in its signed content).
    body = json.loads(report.read_text())["evidence"]
    records = {r["object"]["key"]: r for r in body["entries"] if r["kind"] != "audit"}
    cut = records["db/cut.sql.gz"]
    assert cut["result"]["targets"]["rpo_from"] == "source cut backups"
    assert cut["targets"]["rpo_h"] == 0.0001 and cut["targets"]["rpo_met"] is False
    nightly = records["db/nightly.sql.gz"]["targets"]
    assert nightly["rpo_from"] == "source estate" and nightly["rpo_met"] is True
    html = tmp_path / "r.html"
    audit(estate, data, "--versions", "current", "--report", str(html), env=env)
    text = html.read_text()
    assert "RPO 0.0001 h (source cut backups): MISSED" in text
    assert "RPO 1000 h (source estate): met" in text
    assert (
        "targets per source 0.0001 h (source cut backups), 1000 h (source estate): "
        "3 measured, 1 missed" in text
    )
    pdf = tmp_path / "r.pdf"
    audit(estate, data, "--versions", "current", "--report", str(pdf), env=env)
    pages = "\n".join(p.extract_text() for p in pytest.importorskip("pypdf").PdfReader(pdf).pages)
    assert "RPO 0.0001 h (source cut backups): MISSED" in " ".join(pages.split())
    # The command line overrides the sources' targets, for every backup.
    _, doc = audit(estate, data, "--versions", "current", "--target-rpo", "5000", env=env)
    rpo = doc["campaign"]["targets"]["rpo"]
    assert {(x["target_h"], x["from"], x["met"]) for x in rpo} == {(5000, "--target-rpo", True)}
    # A plain verify records its source's targets too.
    ver = run_cli(
        "verify",
        estate.bucket.uri("db/cut.sql.gz"),
        "--key",
        str(estate.key.private),
        "--endpoint-url",
        estate.bucket.endpoint,
        "--no-progress",
        env={**env, "SEALCHECK_DATA_DIR": str(data)},
        timeout=120,
    )
    assert ver.returncode == 1, ver.stderr
    (newest,) = History(data / "history.sqlite3").entries(limit=1)
    assert json.loads(newest.result_json)["targets"]["rpo_from"] == "source cut backups"


def test_an_empty_prefix_gets_its_pdf_report(estate: Estate, tmp_path: Path) -> None:
    """A scope with no version is a finding to report, not a crash of the PDF writer
    (reportlab refuses a table without rows: the coverage section had none)."""
    pdf = tmp_path / "empty.pdf"
    r, _ = audit(estate, tmp_path / "data", "--report", str(pdf), prefix="nothing-here/")
    assert "Traceback" not in r.stderr and pdf.exists(), r.stderr
    pages = pytest.importorskip("pypdf").PdfReader(pdf).pages
    assert "Coverage" in "\n".join(p.extract_text() for p in pages)
