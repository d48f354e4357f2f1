"""``sealcheck history`` and ``sealcheck report export`` through the real CLI, on
backups made by the real tools; the history lives under tmp_path in every test."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.pipelines import Backup, RsaKey, openssl_variant, securecircle
from fixtures.s3servers import Bucket
from sealcheck.core.records.history import FILENAME, History, Kind


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "SEALCHECK_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def good(tmp_path: Path, small_dump: Path, rsa_key: RsaKey) -> Backup:
    return securecircle(small_dump, tmp_path / "s3", rsa_key)


def cli(env: dict[str, str], *args: str):
    return run_cli(*args, env=env, timeout=120)


def verify(env: dict[str, str], b: Backup, key: RsaKey, *extra: str):
    return cli(env, "verify", str(b.data), "--key", str(key.private), "--no-progress", *extra)


def cut_copy(b: Backup, out: Path) -> Backup:
    """The backup cut short, beside its own copy of the wrapped key (found by name)."""
    out.write_bytes(b.data.read_bytes()[:-600])
    assert b.wrapped_key is not None
    key = out.with_name(out.name + ".key")
    key.write_bytes(b.wrapped_key.read_bytes())
    return Backup(out, key)


def history(env: dict[str, str], *args: str) -> list[dict]:
    r = cli(env, "history", "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["entries"]


def test_verify_twice_shows_both_newest_first(
    env: dict[str, str], good: Backup, rsa_key: RsaKey, tmp_path: Path
) -> None:
    assert verify(env, good, rsa_key).returncode == 0
    bad = cut_copy(good, tmp_path / "s3" / "cut.sql.gz")
    assert verify(env, bad, rsa_key).returncode == 1
    r = cli(env, "history")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    assert str(bad.data) in lines[0] and "FAILED (" in lines[0] and " verify " in lines[0]
    assert str(good.data) in lines[1] and lines[1].rstrip().endswith("OK")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", lines[1])
    entries = history(env)
    assert [e["ok"] for e in entries] == [False, True]
    assert entries[0]["failed_layer"] in ("decompress", "cipher", "payload")
    assert entries[1]["sha256"] and entries[1]["size"] == good.data.stat().st_size
    assert [e["ok"] for e in history(env, "--failed")] == [False]
    assert [e["key"] for e in history(env, "--source", "cut.sql")] == [str(bad.data)]
    assert history(env, "--source", "*/nothing/*") == []
    assert len(history(env, "--limit", "1")) == 1


def test_no_history_records_nothing(env: dict[str, str], good: Backup, rsa_key: RsaKey) -> None:
    assert verify(env, good, rsa_key, "--no-history").returncode == 0
    assert history(env) == []
    r = cli(env, "history")
    assert r.returncode == 0 and "No entries" in r.stdout


def test_restore_is_recorded_as_a_restore(
    env: dict[str, str], good: Backup, rsa_key: RsaKey, tmp_path: Path
) -> None:
    out = tmp_path / "restored.sql"
    r = cli(env, "restore", str(good.data), "-o", str(out), "--key", str(rsa_key.private))
    assert r.returncode == 0, r.stderr
    [e] = history(env)
    assert e["kind"] == "restore" and e["ok"] is True


def test_restore_test_is_recorded(
    env: dict[str, str], good: Backup, other_rsa_key: RsaKey, tmp_path: Path
) -> None:
    """A restore test stopped by a wrong key (no server needed) is still a result."""
    env = {**env, "SEALCHECK_STATE_DIR": str(tmp_path / "state")}
    key = str(other_rsa_key.private)
    args = ("restore-test", str(good.data), "--key", key, "--no-progress")
    r = cli(env, *args, "--no-history")
    assert r.returncode == 1, r.stderr
    assert history(env) == []
    r = cli(env, *args)
    assert r.returncode == 1, r.stderr
    [e] = history(env)
    assert e["kind"] == Kind.RESTORE_TEST.value and e["ok"] is False and e["failed_layer"] == "key"
    out = tmp_path / "rt.json"
    r = cli(env, "report", "export", str(e["id"]), "--format", "json", "-o", str(out))
    assert r.returncode == 0, r.stderr
    [rec] = json.loads(out.read_text())["evidence"]["entries"]
    layers = {x["layer"]: x["status"] for x in rec["layers"]}
    assert layers["key"] == "failed" and layers["database"] == "failed"
    assert rec["kind"] == "restore-test" and rec["restore_test"]["tables"] == []


def test_a_damaged_history_never_changes_a_verdict(
    env: dict[str, str], good: Backup, rsa_key: RsaKey, tmp_path: Path
) -> None:
    data = Path(env["SEALCHECK_DATA_DIR"])
    data.mkdir()
    (data / FILENAME).write_bytes(b"\x00garbage, not SQLite\n" * 200)
    r = verify(env, good, rsa_key, "--json")
    assert r.returncode == 0
    assert json.loads(r.stdout)["ok"] is True  # stdout stays one JSON object
    assert "warning" in r.stderr and "not recorded" in r.stderr and FILENAME in r.stderr
    bad = cut_copy(good, tmp_path / "s3" / "cut.sql.gz")
    assert verify(env, bad, rsa_key).returncode == 1
    # Reading it is the command's own job: there it is an environment error.
    r = cli(env, "history")
    assert r.returncode == 2 and "not a database" in r.stderr


def test_an_unwritable_data_folder_never_changes_a_verdict(
    good: Backup, rsa_key: RsaKey, tmp_path: Path
) -> None:
    (tmp_path / "not-a-folder").write_text("x")
    env = {**os.environ, "SEALCHECK_DATA_DIR": str(tmp_path / "not-a-folder")}
    r = verify(env, good, rsa_key)
    assert r.returncode == 0 and "VERIFIED" in r.stdout
    assert "warning" in r.stderr


# --- evidence reports -------------------------------------------------------------------


def _canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def test_export_json_by_id_with_a_verifiable_hash(
    env: dict[str, str], good: Backup, rsa_key: RsaKey, tmp_path: Path
) -> None:
    verify(env, good, rsa_key)
    verify(env, cut_copy(good, tmp_path / "s3" / "cut.sql.gz"), rsa_key)
    out = tmp_path / "evidence.json"
    r = cli(env, "report", "export", "1", "2", "--format", "json", "-o", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert list(doc)[-1] == "sha256"
    assert hashlib.sha256(_canonical(doc["evidence"])).hexdigest() == doc["sha256"]
    ok, bad = doc["evidence"]["entries"]
    assert (ok["history_id"], ok["verdict"], bad["verdict"]) == (1, "OK", "FAILED")
    assert bad["failed_layer"] and bad["error"]["message"]
    stored = History(Path(env["SEALCHECK_DATA_DIR"]) / FILENAME).get(1).result()
    assert [(x["layer"], x["status"], x["proved"]) for x in ok["layers"]] == [
        (x.layer, x.status.value, x.proved) for x in stored.layers
    ]
    obj = ok["object"]
    assert obj["key"] == str(good.data) and obj["size"] == good.data.stat().st_size
    assert obj["object_sha256"] == hashlib.sha256(good.data.read_bytes()).hexdigest()
    assert obj["plaintext_sha256"] == stored.layer("hashes").details["plaintext_sha256"]
    assert ok["timings"]["duration_s"] >= 0 and ok["host"] and ok["sealcheck_version"]
    # Tampering shows: flip the verdict, the hash no longer matches.
    doc["evidence"]["entries"][1]["verdict"] = "OK"
    assert hashlib.sha256(_canonical(doc["evidence"])).hexdigest() != doc["sha256"]


def test_export_html_latest_is_self_contained_escaped_and_sealed(
    env: dict[str, str], small_dump: Path, rsa_key: RsaKey, tmp_path: Path
) -> None:
    odd = securecircle(small_dump, tmp_path / "s3", rsa_key, name="<b>x&y<i>'\"")
    assert verify(env, odd, rsa_key).returncode == 0
    assert verify(env, odd, rsa_key).returncode == 0  # the same version again: latest wins
    other = openssl_variant(small_dump, tmp_path / "v", name="other.sql.gz.enc")
    cli(env, "verify", str(other.data), "--passphrase-file", str(other.passphrase_file))
    out = tmp_path / "evidence.html"
    r = cli(
        env, "report", "export", "--latest", "--source", "*<b>*", "--format", "html", "-o", str(out)
    )
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    text = data.decode()
    assert "<b>x&y<i>" not in text and "&lt;b&gt;x&amp;y&lt;i&gt;&#x27;&quot;" in text
    assert "<script" not in text.lower() and "http://" not in text and "https://" not in text
    assert "<link" not in text and "<img" not in text and "<style>" in text
    assert text.count("<h2>") == 1 and "#2 verify" in text  # the newest of that version only
    assert "other.sql.gz.enc" not in text
    for sentence in ("read all", "SHA-256 of the object and of the restored plaintext"):
        assert sentence in text
    # The seal is the last line: the SHA-256 of every byte before it (test_evidence_seal).
    m = re.search(r"the first (\d+) bytes of the file", text)
    assert m, text[-600:]
    n, digest = int(m.group(1)), data[-65:-1].decode()
    assert len(data) == n + 65 and data.endswith(b"\n")
    assert hashlib.sha256(data[:n]).hexdigest() == digest
    assert data[:n].endswith(b"<p class='seal'>")
    tampered = data[:n].replace(b"OK", b"KO", 1)
    assert hashlib.sha256(tampered).hexdigest() != digest


def test_export_an_s3_version_names_bucket_key_version_and_etag(
    env: dict[str, str], moto_s3: Bucket, small_dump: Path, rsa_key: RsaKey, tmp_path: Path
) -> None:
    b1 = securecircle(small_dump, tmp_path / "one", rsa_key, name="nightly")
    b2 = securecircle(small_dump, tmp_path / "two", rsa_key, name="nightly")
    v1 = moto_s3.put_backup("db/", b1)["db/nightly.sql.gz"]
    v2 = moto_s3.put_backup("db/", b2)["db/nightly.sql.gz"]
    # Built now: moto_s3 set the test credentials in os.environ.
    env = {**os.environ, "SEALCHECK_DATA_DIR": env["SEALCHECK_DATA_DIR"]}
    env["AWS_ENDPOINT_URL"] = moto_s3.endpoint
    uri = moto_s3.uri("db/nightly.sql.gz")
    for v in (v1, v2):
        r = cli(env, "verify", uri, "--version-id", v or "", "--key", str(rsa_key.private))
        assert r.returncode == 0, r.stderr
    lines = cli(env, "history").stdout.splitlines()
    assert [ln.split()[-2] for ln in lines] == [
        f"{moto_s3.uri('db/nightly.sql.gz')}@{v}" for v in (v2, v1)
    ]
    out = tmp_path / "e.json"
    r = cli(
        env,
        "report",
        "export",
        "--latest",
        "--source",
        "s3://*/db/*",
        "--format",
        "json",
        "-o",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    objs = [e["object"] for e in json.loads(out.read_text())["evidence"]["entries"]]
    assert [(o["bucket"], o["key"], o["version_id"]) for o in objs] == [
        (moto_s3.name, "db/nightly.sql.gz", v) for v in (v2, v1)
    ]
    assert all(o["etag"] and o["last_modified"] and o["object_sha256"] for o in objs)
    assert objs[0]["etag"].strip('"') == hashlib.md5(b2.data.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "args",
    [
        ("report",),
        ("report", "export", "--format", "json", "-o", "OUT"),
        ("report", "export", "1", "--latest", "--format", "json", "-o", "OUT"),
        ("report", "export", "1", "--source", "x", "--format", "json", "-o", "OUT"),
        ("report", "export", "42", "--format", "json", "-o", "OUT"),
        ("report", "export", "1", "--format", "pdf", "-o", "OUT"),
        ("report", "export", "--latest", "--format", "html", "-o", "OUT"),  # nothing recorded
        ("history", "--limit", "0"),
    ],
)
def test_usage_errors_exit_2(env: dict[str, str], tmp_path: Path, args: tuple[str, ...]) -> None:
    r = cli(env, *(str(tmp_path / "out") if a == "OUT" else a for a in args))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert not (tmp_path / "out").exists()


def test_export_refuses_to_replace_without_force(
    env: dict[str, str], good: Backup, rsa_key: RsaKey, tmp_path: Path
) -> None:
    verify(env, good, rsa_key)
    out = tmp_path / "e.json"
    out.write_text("an earlier report")
    args = ("report", "export", "1", "--format", "json", "-o", str(out))
    r = cli(env, *args)
    assert r.returncode == 2 and "exists" in r.stderr
    assert out.read_text() == "an earlier report"
    assert cli(env, *args, "--force").returncode == 0
    assert json.loads(out.read_text())["sha256"]
