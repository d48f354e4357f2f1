"""Sidecar files (issue 18): what backup scripts write beside a backup (X.sha256, X.md5,
X.info, X.log, X.json) is listed with the backup, never as a backup, and verify compares
the checksums and sizes they carry with the object it read. The sidecars are made by the
real tools (sha256sum, md5sum, stat) and everything goes through a real (moto) S3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.adversarial import assert_failed
from fixtures.pipelines import sh
from fixtures.restoretest import hostile_pg_dump
from fixtures.s3scenarios import sealcheck
from fixtures.s3servers import Bucket
from sealcheck.core.storage.sidecar import Sidecar, read_sidecar

NAME = "db.sql.enc"
SIDECARS = (".sha256", ".md5", ".info", ".log", ".json")


def producer(folder: Path) -> Path:
    """A plain pg_dump-like dump, openssl enc in CTR mode (no padding, no MAC: a flipped
    bit in a comment passes every other layer), and the sidecars its script writes."""
    folder.mkdir()
    hostile_pg_dump(folder / "db.sql", "SELECT 1;")
    sh(
        "openssl rand -base64 32 > pass\n"
        f"openssl enc -aes-256-ctr -pbkdf2 -pass file:pass -in db.sql -out {NAME}\n"
        f"sha256sum {NAME} > {NAME}.sha256\n"
        f"md5sum {NAME} > {NAME}.md5\n"
        f"printf 'database: shop\\nsize: %s\\n' $(stat -c %s {NAME}) > {NAME}.info\n"
        f"echo 'backup of shop finished' > {NAME}.log\n"
        f'printf \'{{"file": "{NAME}", "bytes": %s, "sha256": "%s"}}\' '
        f"$(stat -c %s {NAME}) $(sha256sum {NAME} | cut -c1-64) > {NAME}.json\n",
        folder,
    )
    return folder


def upload(bucket: Bucket, folder: Path, data: bytes | None = None) -> None:
    bucket.put(f"db/{NAME}", data if data is not None else folder / NAME)
    for s in SIDECARS:
        bucket.put(f"db/{NAME}{s}", folder / f"{NAME}{s}")


def verify(bucket: Bucket, folder: Path) -> tuple[int, dict]:
    r = sealcheck(
        "verify", bucket.uri(f"db/{NAME}"), "--endpoint-url", bucket.endpoint,
        "--passphrase-file", str(folder / "pass"), "--json", "--no-progress",
    )  # fmt: skip
    return r.returncode, json.loads(r.stdout)


def source(rep: dict) -> dict:
    return next(x for x in rep["layers"] if x["layer"] == "source")


def test_sidecars_are_listed_with_their_backup(moto_s3: Bucket, tmp_path: Path) -> None:
    upload(moto_s3, producer(tmp_path / "p"))
    r = sealcheck("list", moto_s3.uri("db/"), "--endpoint-url", moto_s3.endpoint, "--json")
    assert r.returncode == 0, r.stderr
    (s,) = json.loads(r.stdout)["backup_sets"]
    assert s["name"] == f"db/{NAME}" and s["recognised"] is True
    assert sorted(s["sidecars"]) == sorted(f"db/{NAME}{x}" for x in SIDECARS)
    r = sealcheck("list", moto_s3.uri("db/"), "--endpoint-url", moto_s3.endpoint)
    assert f"  sidecars: {NAME}.sha256, {NAME}.md5, {NAME}.info, {NAME}.log, {NAME}.json" in (
        r.stdout
    )
    assert r.stdout.splitlines()[-1].startswith("1 backup set(s), 1 version(s)")


def test_a_sidecar_without_its_backup_is_not_a_backup(moto_s3: Bucket, tmp_path: Path) -> None:
    folder = producer(tmp_path / "p")
    moto_s3.put(f"db/{NAME}.sha256", folder / f"{NAME}.sha256")
    r = sealcheck("list", moto_s3.uri("db/"), "--endpoint-url", moto_s3.endpoint, "--json")
    (s,) = json.loads(r.stdout)["backup_sets"]
    assert s["recognised"] is False


def test_verify_says_each_sidecar_matches(moto_s3: Bucket, tmp_path: Path) -> None:
    folder = producer(tmp_path / "p")
    upload(moto_s3, folder)
    rc, rep = verify(moto_s3, folder)
    assert rc == 0, rep["error"]
    proved = source(rep)["proved"]
    assert f"sidecar {NAME}.sha256: SHA-256 matches" in proved
    assert f"sidecar {NAME}.md5: MD5 matches" in proved
    assert f"sidecar {NAME}.info: size matches" in proved
    assert f"sidecar {NAME}.json: size matches; SHA-256 matches" in proved
    results = {Path(x["name"]).name: x["result"] for x in source(rep)["details"]["sidecars"]}
    assert results[f"{NAME}.log"] == "a log: shown, nothing to compare"


def test_a_damaged_object_fails_at_the_source_by_its_sidecar(
    moto_s3: Bucket, tmp_path: Path
) -> None:
    """One bit flipped in a comment of the dump (CTR: in the plaintext too): every other
    layer passes; the producer's own checksum does not, and says which sidecar."""
    folder = producer(tmp_path / "p")
    raw = bytearray((folder / NAME).read_bytes())
    at = (folder / "db.sql").read_bytes().index(b"database version 15.18") + 17
    raw[16 + at] ^= 0x01  # "Salted__" + salt, then the ciphertext
    upload(moto_s3, folder, bytes(raw))
    rc, rep = verify(moto_s3, folder)
    assert rc == 1
    err = assert_failed(rep, obj=moto_s3.uri(f"db/{NAME}"), layer="source", kind="IntegrityError")
    assert f"sidecar {NAME}.sha256" in err["message"] or f"sidecar {NAME}.md5" in err["message"]
    layers = {x["layer"]: x["status"] for x in rep["layers"]}
    assert layers["payload"] == "ok" and layers["source"] == "failed"


@pytest.mark.parametrize(
    ("text", "claims", "note"),
    [
        ("{h}  db.sql.enc\n", [("sha256", "{h}")], None),
        ("{h} *db.sql.enc\n", [("sha256", "{h}")], None),  # sha256sum -b
        ("{h}  -\n", [("sha256", "{h}")], None),  # sha256sum < file
        ("{h}\n", [("sha256", "{h}")], None),  # a bare digest
        ("SHA256 (db.sql.enc) = {h}\n", [("sha256", "{h}")], None),  # BSD, shasum --tag
        ("{h}  /backups/db.sql.enc\n", [("sha256", "{h}")], None),
        ("{h}  other.sql.enc\n", [], "names another file (other.sql.enc)"),
        ("{h}  other.sql.enc\n{g}  db.sql.enc\n", [("sha256", "{g}")], None),
        ("no digest here\n", [], "no sha256 digest"),
    ],
)
def test_checksum_file_forms(text: str, claims: list, note: str | None) -> None:
    h, g = "a" * 64, "b" * 64
    r = read_sidecar(Sidecar("x/db.sql.enc.sha256", text.format(h=h, g=g).encode()), "db.sql.enc")
    assert [(c.kind, c.value) for c in r.claims] == [(k, v.format(h=h, g=g)) for k, v in claims]
    if note:
        assert r.note is not None and note in r.note


def test_a_folder_backup_is_checked_by_its_sidecar(tmp_path: Path) -> None:
    folder = producer(tmp_path / "p")
    r = sealcheck("list", str(folder), "--json")
    sets = {Path(x["name"]).name: x for x in json.loads(r.stdout)["backup_sets"]}
    assert not any(n.startswith(NAME + ".") for n in sets)  # the sidecars are no sets
    assert len(sets[NAME]["sidecars"]) == len(SIDECARS)
    r = sealcheck(
        "verify", str(folder / NAME), "--passphrase-file", str(folder / "pass"), "--json"
    )  # fmt: skip
    assert r.returncode == 0, r.stdout
    assert f"sidecar {NAME}.sha256: SHA-256 matches" in source(json.loads(r.stdout))["proved"]


def test_the_evidence_report_says_what_each_sidecar_proved(
    moto_s3: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEALCHECK_DATA_DIR", str(tmp_path / "data"))
    folder = producer(tmp_path / "p")
    upload(moto_s3, folder)
    r = sealcheck(
        "verify", moto_s3.uri(f"db/{NAME}"), "--endpoint-url", moto_s3.endpoint,
        "--passphrase-file", str(folder / "pass"), "--no-progress",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    for fmt in ("html", "json"):
        out = tmp_path / f"evidence.{fmt}"
        r = sealcheck("report", "export", "--latest", "--format", fmt, "-o", str(out))
        assert r.returncode == 0, r.stderr
        text = out.read_text()
        assert f"sidecar {NAME}.sha256: SHA-256 matches" in text
        assert f"sidecar {NAME}.md5: MD5 matches" in text


def test_a_digest_of_the_dump_before_encryption_is_said_so(tmp_path: Path) -> None:
    """Some scripts checksum the dump, then encrypt it: accepted, and said which it is."""
    folder = tmp_path / "p"
    folder.mkdir()
    hostile_pg_dump(folder / "db.sql", "SELECT 1;")
    sh(
        "openssl rand -base64 32 > pass\n"
        f"openssl enc -aes-256-cbc -pbkdf2 -pass file:pass -in db.sql -out {NAME}\n"
        f"sha256sum < db.sql > {NAME}.sha256\n"
        f"printf '{{\"size\": %s}}' $(stat -c %s db.sql) > {NAME}.json\n",
        folder,
    )
    r = sealcheck(
        "verify", str(folder / NAME), "--passphrase-file", str(folder / "pass"), "--json"
    )  # fmt: skip
    assert r.returncode == 0, r.stdout
    proved = source(json.loads(r.stdout))["proved"]
    assert f"sidecar {NAME}.sha256: SHA-256 matches the restored plaintext (not the object)" in (
        proved
    )
    assert f"sidecar {NAME}.json: size matches the restored plaintext (not the object)" in proved


@pytest.mark.parametrize(
    ("text", "claims"),
    [
        # A script that logs its sha256sum/md5sum output, or the size it wrote.
        ("backup started\n{h}  /backups/db.sql.enc\ndone\n", [("sha256", "{h}")]),
        ("uploaded db.sql.enc: 1234 bytes\n", [("size", "1234")]),
        # The seed producers' logs (ClusterControl, xtrabackup): nothing about the object.
        (
            "[21:24:46]: 10.0.0.1: Launching ( mariabackup --backup | gzip -6 - | openssl enc "
            "-aes-256-cbc -pass file:/var/tmp/k.tmp | socat - TCP4:10.0.0.2:9999 ) 2>&1.\n"
            "xtrabackup: Transaction log of lsn (2567302) to (2567311) was copied.\n"
            "completed OK!\n",
            [],
        ),
        ("{h}  db.sql.enc.gz\nwrote db.sql.enc.tmp: 99 bytes\n", []),  # other files
        ("db.sql.enc: 10 bytes, then 12 bytes\n", []),  # two figures: which is it?
    ],
)
def test_a_log_is_compared_only_where_it_states_the_backups_checksum_or_size(
    text: str, claims: list
) -> None:
    h = "c" * 64
    r = read_sidecar(Sidecar("x/db.sql.enc.log", text.format(h=h).encode()), "db.sql.enc")
    assert [(c.kind, c.value) for c in r.claims] == [(k, v.format(h=h)) for k, v in claims]
    if not claims:
        assert r.note == "a log: shown, nothing to compare"


def test_verify_compares_a_log_that_states_the_checksum(moto_s3: Bucket, tmp_path: Path) -> None:
    folder = producer(tmp_path / "p")
    sh(f"sha256sum {NAME} | tee -a {NAME}.log > /dev/null\n", folder)
    upload(moto_s3, folder)
    rc, rep = verify(moto_s3, folder)
    assert rc == 0, rep["error"]
    assert f"sidecar {NAME}.log: SHA-256 matches" in source(rep)["proved"]
