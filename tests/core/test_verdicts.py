"""A run that could not check a backup is no verdict on it (issue 12): the history, the
evidence and ``sealcheck history`` keep it apart from OK and FAILED, and the per-layer
evidence says "not reached" or what a layer did, never "not checked: an earlier step
failed". Real backups (real openssl/gzip), real setup problems (no key, a server that is
not there), the real CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_cli_history import cli, verify

from fixtures.dumps import mysql_like
from fixtures.pipelines import Backup, RsaKey, openssl_variant, securecircle, sh
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.keys.pem import PemKey
from sealcheck.core.pipeline.job import Job
from sealcheck.core.pipeline.run import run
from sealcheck.core.records import evidence
from sealcheck.core.records.evidence_check import check, read
from sealcheck.core.records.history import FILENAME, History
from sealcheck.core.records.report import Report, Status
from sealcheck.core.records.verdict import Verdict
from sealcheck.core.storage.source import LocalFile


def run_local(b: Backup, *, key: RsaKey | None = None, passphrase: bytes | None = None, **job):
    secrets = Secrets(
        keys=[PemKey.from_file(key.private)] if key else [],
        passphrase=bytearray(passphrase) if passphrase is not None else None,
    )
    wrapped = LocalFile(b.wrapped_key) if b.wrapped_key else None
    return run(Job(data=LocalFile(b.data), secrets=secrets, wrapped_key=wrapped, **job))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "SEALCHECK_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def good(tmp_path: Path, small_dump: Path, rsa_key: RsaKey) -> Backup:
    return securecircle(small_dump, tmp_path / "s3", rsa_key)


def test_the_exit_code_is_the_verdict() -> None:
    assert [Verdict.of(c) for c in (0, 1, 2, 70, 130)] == [
        Verdict.OK,
        Verdict.FAILED,
        Verdict.NOT_CHECKED,
        Verdict.NOT_CHECKED,
        Verdict.NOT_CHECKED,
    ]
    assert Verdict.NOT_CHECKED.label == "NOT CHECKED (setup problem)"
    assert Verdict.NOT_CHECKED.short_label == "NOT CHECKED (setup)"


# --- the history ------------------------------------------------------------------------


def test_the_last_verdict_stands_beside_a_run_that_could_not_check(
    tmp_path: Path, good: Backup, rsa_key: RsaKey, other_rsa_key: RsaKey
) -> None:
    hist = History(tmp_path / "h" / FILENAME)
    ok = hist.record(run_local(good, key=rsa_key))
    no_key = run_local(good)  # no key at all: a setup problem
    assert no_key.exit_code == 2 and no_key.error and no_key.error.kind == "KeyUnavailable"
    setup = hist.record(no_key)
    assert (ok.verdict, setup.verdict) == (Verdict.OK, Verdict.NOT_CHECKED)
    assert setup.summary()["verdict"] == "not-checked"
    version = ok.version_key
    assert hist.latest_by_version()[version].id == setup.id
    assert hist.latest_by_version(verdicts_only=True)[version].id == ok.id
    assert hist.entries(failed=True) == []  # a setup problem is no FAILED verdict
    wrong = hist.record(run_local(good, key=other_rsa_key))  # a verdict: see verdict.py
    assert wrong.verdict is Verdict.FAILED
    assert [e.id for e in hist.entries(failed=True)] == [wrong.id]
    assert hist.latest_by_version(verdicts_only=True)[version].id == wrong.id


# --- the evidence -----------------------------------------------------------------------


def test_evidence_labels_a_setup_problem_plainly(
    tmp_path: Path, good: Backup, rsa_key: RsaKey
) -> None:
    hist = History(tmp_path / "h" / FILENAME)
    ok = hist.record(run_local(good, key=rsa_key))
    setup = hist.record(run_local(good))
    body = evidence.build([ok, setup])
    rec_ok, rec_setup = body["entries"]
    assert (rec_ok["verdict"], rec_ok["verdict_code"]) == ("OK", "ok")
    assert rec_setup["verdict"] == "NOT CHECKED (setup problem)"
    assert rec_setup["verdict_code"] == "not-checked" and rec_setup["exit_code"] == 2
    key_layer = next(x for x in rec_setup["layers"] if x["layer"] == "key")
    assert key_layer["status"] == "not checked"  # no finding on the backup
    html = evidence.to_html(body).decode()
    assert "FAILED" not in html.split("<details>")[0]  # nowhere before the raw record
    assert "<span class='notchecked'>NOT CHECKED (setup problem)</span>" in html
    assert "this is no verdict" in html or "no verdict on the backup" in html
    path = tmp_path / "report.html"
    path.write_bytes(evidence.to_html(body))
    assert check(read(path)).problem is None


def test_cli_history_and_latest_evidence_leave_setup_problems_out(
    env: dict[str, str], good: Backup, rsa_key: RsaKey, tmp_path: Path
) -> None:
    assert verify(env, good, rsa_key).returncode == 0
    # The same backup with no key: exit 2 stays for cron gates, but it is no verdict.
    r = cli(env, "verify", str(good.data), "--no-progress")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "FAILED" not in r.stdout and "NOT CHECKED (setup problem)" in r.stdout, r.stdout
    lines = cli(env, "history").stdout.splitlines()
    assert lines[0].rstrip().endswith("NOT CHECKED (setup)") and "FAILED" not in lines[0]
    assert lines[1].rstrip().endswith("OK")
    r = cli(env, "history", "--json")
    assert [e["verdict"] for e in json.loads(r.stdout)["entries"]] == ["not-checked", "ok"]
    r = cli(env, "history", "--failed")
    assert r.returncode == 0 and "No entries" in r.stdout
    out = tmp_path / "latest.json"
    r = cli(env, "report", "export", "--latest", "--format", "json", "-o", str(out))
    assert r.returncode == 0, r.stderr
    [rec] = json.loads(out.read_text())["evidence"]["entries"]
    assert (rec["history_id"], rec["verdict"], rec["exit_code"]) == (1, "OK", 0)
    html = tmp_path / "latest.html"
    r = cli(env, "report", "export", "--latest", "--format", "html", "-o", str(html))
    assert r.returncode == 0, r.stderr
    assert "FAILED" not in html.read_text() and "Verdict: <span class='ok'>OK" in html.read_text()
    # By id it is there, labelled for what it is.
    by_id = tmp_path / "two.html"
    r = cli(env, "report", "export", "2", "--format", "html", "-o", str(by_id))
    assert r.returncode == 0, r.stderr
    text = by_id.read_text()
    assert "NOT CHECKED (setup problem)" in text and "Verdict: <span class='failed'>" not in text
    assert cli(env, "report", "check", str(by_id)).returncode == 0


def test_only_setup_problems_in_the_history_make_latest_say_so(
    env: dict[str, str], good: Backup, tmp_path: Path
) -> None:
    assert cli(env, "verify", str(good.data), "--no-progress").returncode == 2
    out = tmp_path / "e.json"
    r = cli(env, "report", "export", "--latest", "--format", "json", "-o", str(out))
    assert r.returncode == 2 and "no verdicts" in r.stderr and not out.exists()


def test_a_restore_test_server_that_is_not_there_is_no_verdict(
    env: dict[str, str], tmp_path: Path
) -> None:
    b = openssl_variant(mysql_like(tmp_path / "dump.sql", rows=50), tmp_path / "b")
    assert b.passphrase_file is not None
    env = {**env, "SEALCHECK_STATE_DIR": str(tmp_path / "state")}
    sock = tmp_path / "no-server.sock"  # nothing listens here
    r = cli(
        env,
        "restore-test",
        str(b.data),
        "--passphrase-file",
        str(b.passphrase_file),
        "--server",
        f"mysql://nobody@localhost/?socket={sock}",
        "--no-progress",
        "--json",
    )
    assert r.returncode == 2, r.stdout + r.stderr
    result = json.loads(r.stdout)
    assert result["error"]["kind"] == "ServerUnreachable" and result["cleanup"] == []
    [line] = cli(env, "history").stdout.splitlines()
    assert "restore-test" in line and line.rstrip().endswith("NOT CHECKED (setup)")
    out = tmp_path / "rt.json"
    assert cli(env, "report", "export", "1", "--format", "json", "-o", str(out)).returncode == 0
    [rec] = json.loads(out.read_text())["evidence"]["entries"]
    db = next(x for x in rec["layers"] if x["layer"] == "database")
    assert rec["verdict_code"] == "not-checked" and db["status"] == "not checked"


# --- the per-layer evidence -----------------------------------------------------------


def _layers(rep: Report) -> dict[str, tuple[Status, str]]:
    return {x.layer: (x.status, x.proved) for x in rep.layers}


def test_a_key_that_fails_leaves_the_download_not_reached_with_what_was_read(
    tmp_path: Path, small_dump: Path
) -> None:
    b = openssl_variant(small_dump, tmp_path / "b")
    rep = run_local(b, passphrase=b"not the passphrase\n")
    assert rep.exit_code == 1 and rep.error and rep.error.kind == "WrongKey"
    got = _layers(rep)
    status, text = got["source"]
    assert status is Status.NOT_REACHED and "not checked" not in text
    assert f"({b.data.stat().st_size} bytes)" in text and "to test the key" in text
    assert got["key"][0] is Status.FAILED
    for later in ("cipher", "decompress", "payload", "hashes"):
        assert got[later] == (Status.NOT_REACHED, "not reached (the key step failed)"), later
    assert "destination" not in got  # a verify writes nothing


def test_a_setup_problem_marks_its_layer_not_checked(tmp_path: Path, small_dump: Path) -> None:
    b = openssl_variant(small_dump, tmp_path / "b")
    rep = run_local(b)  # no passphrase given
    got = _layers(rep)
    assert rep.exit_code == 2 and got["key"][0] is Status.NOT_CHECKED
    assert got["cipher"] == (Status.NOT_REACHED, "not reached (the key step could not run)")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Backup:
    """~20 MB of dump that compresses poorly: the run stops long before its end."""
    w = tmp_path_factory.mktemp("big")
    sh(
        "head -c 15000000 /dev/urandom | base64 -w 96 "
        "| sed \"s/.*/INSERT INTO t VALUES ('&');/\" > big.sql",
        w,
    )
    return openssl_variant(w / "big.sql", w / "out", compress="gzip -1 -c", name="big.sql.gz.enc")


def test_layers_before_a_failure_say_what_they_did(big: Backup, tmp_path: Path) -> None:
    assert big.passphrase_file is not None
    limit = 1 << 20  # the bomb guard stops decompression early
    rep = run_local(big, passphrase=big.passphrase_file.read_bytes(), max_output_bytes=limit)
    assert rep.error and rep.error.kind == "SizeLimitExceeded" and rep.exit_code == 1
    got = _layers(rep)
    size = big.data.stat().st_size
    status, text = got["source"]
    assert status is Status.INCOMPLETE and f" of {size} bytes without error" in text, text
    assert "ETag" in text and text.endswith("(decompression failed)")
    assert got["key"][0] is Status.OK  # proved before the failure, kept as it is
    status, text = got["cipher"]
    assert status is Status.INCOMPLETE and "aes-256-cbc" in text and "decrypted " in text
    assert "padding is checked, was not reached" in text
    assert got["decompress"][0] is Status.FAILED
    status, text = got["payload"]
    assert status is Status.INCOMPLETE and "inspected the first" in text
    assert got["hashes"] == (Status.NOT_REACHED, "not reached (decompression failed)")


def test_a_decompressor_failure_at_the_end_keeps_the_decryption_proved(
    tmp_path: Path, small_dump: Path
) -> None:
    """The gzip CRC is damaged: gzip finds it at the very end, after decryption had read
    every byte and checked the padding, which the report keeps (it said "not checked")."""
    damage = (
        "(gzip -c > z.gz; size=$(stat -c %s z.gz); "
        "printf 'UUUU' | dd of=z.gz bs=1 seek=$((size - 8)) conv=notrunc status=none; cat z.gz)"
    )
    b = openssl_variant(small_dump, tmp_path / "b", compress=damage)
    assert b.passphrase_file is not None
    rep = run_local(b, passphrase=b.passphrase_file.read_bytes())
    assert rep.exit_code == 1 and rep.error and rep.error.layer == "decompress", rep.error
    got = _layers(rep)
    status, text = got["cipher"]
    assert status is Status.OK and "PKCS#7 padding of the last block valid" in text
    assert got["source"][0] is Status.OK and got["source"][1].startswith("read all")


def test_a_failed_restore_says_nothing_was_left(tmp_path: Path, small_dump: Path) -> None:
    b = openssl_variant(small_dump, tmp_path / "b")
    dest = tmp_path / "restored.sql"
    rep = run_local(b, passphrase=b"wrong\n", operation="restore", destination=dest)
    status, text = _layers(rep)["destination"]
    assert status is Status.NOT_REACHED and "no file was left" in text and not dest.exists()
