"""Key rotation (issue 13) on a versioned moto bucket, with backups made by the seed
pipelines' real openssl commands and PEM keys made by openssl genrsa."""

from __future__ import annotations

import json
import shlex
import sqlite3
from pathlib import Path

import pytest

from fixtures.pipelines import RsaKey, make_rsa_key, securecircle, sh
from fixtures.rotation import (
    PREFIX,
    Scenario,
    all_object_versions,
    fault_on_puts,
    fetch,
    links,
    make_scenario,
    producer_objects,
    rotate_keys,
    secret_of,
    someones_lock,
)
from fixtures.s3scenarios import sealcheck
from fixtures.s3servers import Bucket, ChaosS3, S3Store, lost_answer, unconditional


@pytest.fixture
def old_key(rsa_key: RsaKey) -> RsaKey:
    return rsa_key


@pytest.fixture
def new_key(other_rsa_key: RsaKey) -> RsaKey:
    return other_rsa_key


@pytest.fixture
def scenario(moto_s3: Bucket, tmp_path: Path, old_key: RsaKey, small_dump: Path) -> Scenario:
    return make_scenario(moto_s3, tmp_path, old_key, small_dump)


@pytest.fixture
def rotated(scenario: Scenario, old_key: RsaKey, new_key: RsaKey) -> list[dict]:
    """Every version of the scenario rotated; the report's versions."""
    r = rotate_keys("run", scenario.bucket, old_key, new_key, "--versions", "all", "--json")
    assert r.returncode == 0, r.stderr
    return r.json()["versions"]


def verify(bucket: Bucket, data_key: str, version: str | None, key: Path) -> int:
    r = sealcheck(
        "verify",
        bucket.uri(data_key),
        *(["--version-id", version] if version else []),
        "--key",
        str(key),
        "--endpoint-url",
        bucket.endpoint,
        "--no-history",
    )
    return r.returncode


# --- plan ------------------------------------------------------------------------------


def test_plan_lists_every_version_and_writes_nothing(scenario, old_key, new_key) -> None:
    before = all_object_versions(scenario.bucket)
    r = rotate_keys("plan", scenario.bucket, old_key, new_key, "--versions", "all", "--json")
    assert r.returncode == 0, r.stderr
    report = r.json()
    assert all_object_versions(scenario.bucket) == before  # a dry run writes nothing
    got = {(v["data_object"], v["data_version_id"]): v for v in report["versions"]}
    assert set(got) == {(d, v) for d, v, _, _ in scenario.versions}
    for v in got.values():
        assert v["result"] == "planned"
        assert v["padding"] == "PKCS#1 v1.5"
        assert v["opened_with"] == f"PEM file {old_key.private}"
        assert v["new_key_object"].startswith(v["old_key_object"] + ".rewrap/")
    assert "not revocation" in report["not_revocation"]
    current = rotate_keys("plan", scenario.bucket, old_key, new_key, "--json")
    assert len(current.json()["versions"]) == 2  # one newest version per backup


def test_plan_says_why_a_version_cannot_be_opened(scenario, old_key, new_key, tmp_path) -> None:
    stranger = make_rsa_key(tmp_path / "stranger", "stranger", 2048)
    bucket = scenario.bucket
    other = securecircle(scenario.dump, tmp_path / "other", stranger, name="42")
    bucket.put_backup(PREFIX, other)
    pf = tmp_path / "cc.pass"
    sh(
        f"openssl rand -base64 24 > {pf}; gzip -c {shlex.quote(str(scenario.dump))} | "
        f"openssl enc -aes-256-cbc -pass file:{pf} > {tmp_path / 'cc.sql.gz.aes256'}",
        tmp_path,
    )
    bucket.put(PREFIX + "cc.sql.gz.aes256", tmp_path / "cc.sql.gz.aes256")
    bucket.put(PREFIX + "empty.sql.gz", b"")  # a cut-short upload: 0 bytes
    bucket.put(PREFIX + "empty.sql.gz.key", b"x")
    r = rotate_keys("plan", bucket, old_key, new_key, "--json")
    assert r.returncode == 1
    why = {v["data_object"]: v for v in r.json()["versions"]}
    assert why[PREFIX + "42.sql.gz"]["result"] == "cannot"
    assert "no held key" in why[PREFIX + "42.sql.gz"]["reason"]
    assert "symmetric" in why[PREFIX + "cc.sql.gz.aes256"]["reason"]
    assert "not openssl enc output" in why[PREFIX + "empty.sql.gz"]["reason"]


# --- run -------------------------------------------------------------------------------


def test_run_rotates_and_keeps_everything(scenario, old_key, new_key, tmp_path) -> None:
    bucket = scenario.bucket
    before = producer_objects(bucket)
    report_path = tmp_path / "rotation.json"
    r = rotate_keys(
        "run", bucket, old_key, new_key, "--versions", "all", "--report", str(report_path)
    )
    assert r.returncode == 0, r.stderr + r.stdout
    assert "Re-wrapping is not revocation" in r.stdout
    assert producer_objects(bucket) == before  # nothing replaced, nothing deleted
    written = links(bucket)
    assert len(written) == len(scenario.versions)  # one link per data version, one version each
    report = json.loads(report_path.read_text())
    assert report["complete"] and report["counts"] == {"done": 4}
    assert report["new_key"]["proof_of_possession"].startswith("challenge decrypted")
    for v in report["versions"]:
        assert v["new_key_version_id"] and v["old_key_version_id"]
        assert v["wrapped_sha256_before"] != v["wrapped_sha256_after"]
        assert v["padding"] == "PKCS#1 v1.5" and v["wire_format"] == "binary"
        head = bucket.store.client.head_object(
            Bucket=bucket.name, Key=v["new_key_object"], VersionId=v["new_key_version_id"]
        )
        meta = head["Metadata"]
        assert meta["sealcheck-data-version"] == v["data_version_id"]
        assert meta["sealcheck-old-key-version"] == v["old_key_version_id"]
        assert "SHA256:" + meta["sealcheck-new-key-spki-sha256"] == report["new_key"]["spki_sha256"]
    # With the new key alone, and with the old key alone, every version still verifies.
    for data_key, version, _, _ in scenario.versions:
        assert verify(bucket, data_key, version, new_key.private) == 0
        assert verify(bucket, data_key, version, old_key.private) == 0
    # Listing: the links are not backups.
    listed = sealcheck("list", bucket.uri(PREFIX), "--json", "--endpoint-url", bucket.endpoint)
    names = [s["name"] for s in listed.json()["backup_sets"]]
    assert sorted(names) == [PREFIX + "1567744961188141183.sql.gz", PREFIX + "nightly.sql.bz.enc"]
    # Secrets: never in the journal, the report or the output.
    journal = Path(report["journal"]).read_bytes()
    for _, _, _, secret in scenario.versions:
        first_line = secret.split(b"\n")[0]
        for blob in (journal, report_path.read_bytes(), r.stdout.encode(), r.stderr.encode()):
            assert first_line not in blob
    # A second run finds everything rotated and writes no key.
    again = rotate_keys("run", bucket, old_key, new_key, "--versions", "all", "--json")
    assert again.returncode == 0, again.stderr
    assert again.json()["counts"] == {"done": 4}
    assert links(bucket) == written


def test_a_rotated_backup_opens_with_the_seed_documents_openssl_commands(
    scenario, rotated, new_key, tmp_path
) -> None:
    bucket = scenario.bucket
    for v in rotated:
        data = tmp_path / "data.enc"
        key = tmp_path / "key.enc"
        data.write_bytes(fetch(bucket, v["data_object"], v["data_version_id"]))
        key.write_bytes(fetch(bucket, v["new_key_object"], v["new_key_version_id"]))
        out = tmp_path / "plain.sql"
        q = shlex.quote
        if v["data_object"].endswith(".sql.gz"):
            # SecureCircle's page: openssl enc -d ... -pass pass:$(openssl rsautl -decrypt ...)
            sh(
                f"openssl enc -d -aes-256-cbc -md md5 -in {q(str(data))} -pass "
                f"pass:$(openssl rsautl -decrypt -inkey {q(str(new_key.private))} -in {q(str(key))}) "
                f"| zcat > {q(str(out))}",
                tmp_path,
            )
        else:
            # rds-postgres-backup-s3-secure's README: rsautl -decrypt to key.bin.dec, then
            # openssl enc -d -pass file:./key.bin.dec, then bzip2 -d.
            sh(
                f"openssl rsautl -decrypt -inkey {q(str(new_key.private))} -in {q(str(key))} "
                f"-out key.bin.dec\n"
                f"openssl enc -d -aes-256-cbc -salt -md sha256 -in {q(str(data))} "
                f"--pass file:./key.bin.dec | bzip2 -d > {q(str(out))}\nrm -f key.bin.dec",
                tmp_path,
            )
        assert out.read_bytes() == scenario.dump.read_bytes()


def test_the_three_line_key_file_is_rewrapped_whole(scenario, rotated, new_key, tmp_path) -> None:
    secrets = {(d, v): s for d, v, _, s in scenario.versions}
    for v in rotated:
        key = tmp_path / "k"
        key.write_bytes(fetch(scenario.bucket, v["new_key_object"], v["new_key_version_id"]))
        assert secret_of(new_key, key) == secrets[(v["data_object"], v["data_version_id"])]
    assert any(s.count(b"\n") == 3 for s in secrets.values())  # the rds key.txt, whole


def test_base64_wrapped_keys_stay_base64(moto_s3, tmp_path, old_key, new_key, small_dump) -> None:
    sc = securecircle(small_dump, tmp_path / "sc", old_key, name="77")
    assert sc.wrapped_key is not None
    sh(f"openssl base64 -in {sc.wrapped_key} -out {sc.wrapped_key}.b64", tmp_path)
    moto_s3.put(PREFIX + "77.sql.gz", sc.data)
    moto_s3.put(PREFIX + "77.sql.gz.key", Path(f"{sc.wrapped_key}.b64"))
    r = rotate_keys("run", moto_s3, old_key, new_key, "--json")
    assert r.returncode == 0, r.stdout
    (v,) = r.json()["versions"]
    assert v["wire_format"] == "base64, 64-column lines, LF, final newline"
    body = fetch(moto_s3, v["new_key_object"], None)
    lines = body.split(b"\n")
    assert body.endswith(b"\n") and {len(x) for x in lines[:-2]} == {64}
    b64 = tmp_path / "new.b64"
    b64.write_bytes(body)
    sh(f"openssl base64 -d -in {b64} -out {b64}.bin", tmp_path)
    assert secret_of(new_key, Path(f"{b64}.bin")) == secret_of(old_key, sc.wrapped_key)


# --- refusals --------------------------------------------------------------------------


def test_a_public_key_without_public_only_exits_2_before_any_write(
    scenario, old_key, new_key
) -> None:
    before = all_object_versions(scenario.bucket)
    r = rotate_keys("run", scenario.bucket, old_key, new_key.public)
    assert r.returncode == 2
    assert "private half is not available" in r.stderr
    assert all_object_versions(scenario.bucket) == before
    ok = rotate_keys("run", scenario.bucket, old_key, new_key.public, "--public-only", "--json")
    assert ok.returncode == 0, ok.stderr
    assert ok.json()["new_key"]["proof_of_possession"].startswith("public key only")
    d, v, _, _ = scenario.versions[-1]
    assert verify(scenario.bucket, d, v, new_key.private) == 0


def test_weak_new_key_refused(scenario, old_key, tmp_path) -> None:
    weak = make_rsa_key(tmp_path / "weak", "weak", 1024)
    r = rotate_keys("plan", scenario.bucket, old_key, weak)
    assert r.returncode == 2
    assert "at least RSA-2048" in r.stderr


def test_unversioned_bucket_refused(
    moto_store: S3Store, tmp_path, old_key, new_key, small_dump
) -> None:
    bucket = moto_store.bucket(versioned=False)
    bucket.put_backup(PREFIX, securecircle(small_dump, tmp_path / "sc", old_key, name="9"))
    before = all_object_versions(bucket)
    r = rotate_keys("run", bucket, old_key, new_key)
    assert r.returncode == 2
    assert "Versioning is not Enabled" in r.stderr
    assert all_object_versions(bucket) == before
    ok = rotate_keys("run", bucket, old_key, new_key, "--allow-unversioned")
    assert ok.returncode == 0, ok.stderr + ok.stdout
    assert verify(bucket, PREFIX + "9.sql.gz", None, new_key.private) == 0


def test_a_store_ignoring_conditions_is_refused(
    scenario, old_key, new_key, chaos: ChaosS3, monkeypatch
) -> None:
    bucket = scenario.bucket
    fault_on_puts(monkeypatch, chaos, [unconditional() for _ in range(5)], bucket.name + "/")
    before = producer_objects(bucket)
    r = rotate_keys("run", bucket, old_key, new_key, endpoint=chaos.endpoint)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "ignores create-only writes" in r.stderr
    assert producer_objects(bucket) == before and not links(bucket)


def test_a_lost_put_answer_is_resolved_by_reading_back(
    scenario, old_key, new_key, chaos: ChaosS3, monkeypatch
) -> None:
    bucket = scenario.bucket
    d, v, _, _ = scenario.versions[-1]
    lost = [lost_answer()]
    fault_on_puts(monkeypatch, chaos, lost, ".rewrap/")
    r = rotate_keys("run", bucket, old_key, new_key, "--json", endpoint=chaos.endpoint)
    assert r.returncode == 0, r.stderr
    assert not lost  # the fault fired
    puts = [x for x in chaos.log if x.method == "PUT" and ".rewrap/" in x.target]
    assert any(x.status == 412 for x in puts)  # the retry met the first write
    assert len(links(bucket)) == 2
    assert verify(bucket, d, v, new_key.private) == 0


def test_lock_stops_a_second_rotation(scenario, old_key, new_key) -> None:
    bucket = scenario.bucket
    someones_lock(bucket, "2999-01-01T00:00:00+00:00")
    r = rotate_keys("run", bucket, old_key, new_key)
    assert r.returncode == 2
    assert "Another rotation holds this prefix" in r.stderr
    assert not links(bucket)


def test_status_reports_the_journal(scenario, old_key, new_key) -> None:
    r = rotate_keys("run", scenario.bucket, old_key, new_key)
    assert r.returncode == 0
    s = sealcheck("rotate", "status", "--json")
    (row,) = s.json()
    assert row["status"] == "finished" and row["counts"] == {"done": 2}
    with sqlite3.connect(row["journal"]) as db:
        assert db.execute("PRAGMA synchronous").fetchone()[0] in (0, 1, 2)


@pytest.mark.seaweedfs
def test_rotation_on_seaweedfs(seaweed_s3, tmp_path, old_key, new_key, small_dump) -> None:
    """SeaweedFS honours If-None-Match (4.48): the probe passes, every version rotates and
    then opens with the new key alone; the producer's objects are untouched."""
    sc = make_scenario(seaweed_s3, tmp_path, old_key, small_dump)
    before = producer_objects(seaweed_s3)
    r = rotate_keys("run", seaweed_s3, old_key, new_key, "--versions", "all", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.json()["counts"] == {"done": 4}
    assert producer_objects(seaweed_s3) == before
    # The probe's and the lock's scratch objects deleted again, each by its version id.
    assert not [k for k, _ in all_object_versions(seaweed_s3) if ".sealcheck-rotation/" in k]
    for data_key, version, _, _ in sc.versions:
        assert verify(seaweed_s3, data_key, version, new_key.private) == 0


def test_run_follows_a_saved_plan(scenario, old_key, new_key, tmp_path) -> None:
    bucket = scenario.bucket
    plan = rotate_keys("plan", bucket, old_key, new_key, "--versions", "all", "--json")
    saved = tmp_path / "plan.json"
    saved.write_text(plan.stdout)
    other = make_rsa_key(tmp_path / "k3", "third", 2048)
    args = (str(saved), "--endpoint-url", bucket.endpoint, "--from", str(old_key.private))
    wrong = sealcheck("rotate", "run", *args, "--to", str(other.private))
    assert wrong.returncode == 2 and "the plan was made for the new key" in wrong.stderr
    assert not links(bucket)
    r = sealcheck("rotate", "run", *args, "--to", str(new_key.private), "--json")
    assert r.returncode == 0, r.stderr
    assert r.json()["scope"] == "all" and r.json()["counts"] == {"done": 4}
