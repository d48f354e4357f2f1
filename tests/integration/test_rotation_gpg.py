"""Rotating gpg backups (issue 13, "gpg backups"): the dpb587 pipeline's real
``gpg --recipient OLD --encrypt`` objects on a versioned moto bucket, rotated to a new
OpenPGP key by adding its recipient packet in front of the original's bytes, and opened
by ``gpg --decrypt`` with the new secret key alone in a fresh GNUPGHOME, byte for byte.
A large backup (> 5 MiB) is assembled in the store: the logging proxy shows its body
copied with UploadPartCopy, not uploaded through this machine."""

from __future__ import annotations

import contextlib
import gzip
import os
import shlex
import signal
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.openpgp_pem import openpgp_secret_key
from fixtures.pipelines import (
    GPG_HOMES,
    RsaKey,
    dpb587_gpg,
    export_secret_key,
    gpg_home_with_key,
    sh,
)
from fixtures.rotation import PREFIX, fetch, links, producer_objects, rotate
from fixtures.s3scenarios import sealcheck
from fixtures.s3servers import Bucket, ChaosS3
from sealcheck.core.decrypt.gpg import packets as pgp
from sealcheck.core.rotation.journal import CRASH_ENV, Journal, journals

MIB = 1024 * 1024


@dataclass
class GpgKeys:
    old_home: Path
    old_secret: Path
    new_secret: Path
    new_public: Path
    new_key_id: str
    new_home: Path


@pytest.fixture(scope="module")
def gpg_keys(tmp_path_factory: pytest.TempPathFactory) -> GpgKeys:
    root = tmp_path_factory.mktemp("gpg-rotation")
    old = gpg_home_with_key(root / "old", "old@example.com")
    new = gpg_home_with_key(root / "new", "new@example.com")
    old_secret = export_secret_key(old, root / "old.sec.asc", "old@example.com")
    new_secret = export_secret_key(new, root / "new.sec.asc", "new@example.com")
    new_public = root / "new.pub.gpg"
    sh(
        f"gpg --batch --homedir {shlex.quote(str(new))} --export new@example.com > {new_public}",
        root,
    )
    colons = subprocess.run(
        ["gpg", "--homedir", str(new), "--with-colons", "--list-keys", "new@example.com"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    sub = next(ln.split(":") for ln in colons.splitlines() if ln.startswith("sub:"))
    return GpgKeys(old, old_secret, new_secret, new_public, sub[4], new)


def gpg_decrypt(secret: Path | bytes, data: bytes, folder: Path) -> bytes:
    """``gpg --decrypt`` in a fresh GNUPGHOME holding only ``secret`` (a file, or the
    key's packets)."""
    home = folder / f"home-{len(list(folder.glob('home-*')))}"
    home.mkdir(mode=0o700)
    GPG_HOMES.append(home)
    key = secret if isinstance(secret, bytes) else secret.read_bytes()
    subprocess.run(["gpg", "--batch", "--homedir", str(home), "--import"],
                   input=key, capture_output=True, check=True)  # fmt: skip
    r = subprocess.run(["gpg", "--batch", "--homedir", str(home), "--decrypt"],
                       input=data, capture_output=True, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def upload(bucket: Bucket, tmp: Path, keys: GpgKeys, dump: Path, name: str) -> tuple[str, bytes]:
    backup = dpb587_gpg(dump, tmp / name, keys.old_home, email="old@example.com", name=name)
    data = backup.data.read_bytes()
    vid = bucket.put(f"{PREFIX}{name}", data)
    assert vid
    return vid, data


def run(bucket: Bucket, keys: GpgKeys, *args: str, endpoint: str | None = None):
    return rotate(
        "run", bucket, "--to", str(keys.new_secret), "--gpg-key", str(keys.old_secret),
        "--versions", "all", "--json", *args, endpoint=endpoint,
    )  # fmt: skip


def test_gpg_backups_rotate_and_open_with_the_new_key_alone(
    moto_s3: Bucket, chaos: ChaosS3, tmp_path: Path, gpg_keys: GpgKeys, small_dump: Path
) -> None:
    big_dump = tmp_path / "big.sql"
    big_dump.write_bytes(subprocess.run(["head", "-c", str(6 * MIB + 12345), "/dev/urandom"],
                                        capture_output=True, check=True).stdout)  # fmt: skip
    small_vid, small = upload(moto_s3, tmp_path, gpg_keys, small_dump, "small.sql.gz.enc")
    big_vid, big = upload(moto_s3, tmp_path, gpg_keys, big_dump, "big.sql.gz.enc")
    before = producer_objects(moto_s3)

    r = run(moto_s3, gpg_keys, endpoint=chaos.endpoint)
    assert r.returncode == 0, r.stderr + r.stdout
    rep = r.json()
    assert {v["result"] for v in rep["versions"]} == {"done"}
    assert producer_objects(moto_s3) == before  # the originals: not one version more or less
    rotated = dict(links(moto_s3))
    assert len(rotated) == 2
    for name, vid, original in (("small", small_vid, small), ("big", big_vid, big)):
        (link,) = [k for k in rotated if k.startswith(f"{PREFIX}{name}.sql.gz.enc.rewrap/{vid}/")]
        stored = fetch(moto_s3, link, rotated[link])
        # The original's bytes, with one recipient packet for the new key in front.
        assert stored.endswith(original)
        message = pgp.read_message(stored[:65536])
        assert message.recipients[0].key_id.hex().upper() == gpg_keys.new_key_id
        want = gpg_decrypt(gpg_keys.old_secret, original, tmp_path)
        assert gpg_decrypt(gpg_keys.new_secret, stored, tmp_path) == want
        assert gpg_decrypt(gpg_keys.old_secret, stored, tmp_path) == want  # old still opens

    # The large body was copied inside the store, not uploaded: part 1 is the new packet
    # and the first 5 MiB, part 2 an UploadPartCopy of the original version's range.
    (big_link,) = [k for k in rotated if k.startswith(f"{PREFIX}big.")]
    puts = [x for x in chaos.log if x.method == "PUT" and x.target.endswith(big_link)]
    parts = {
        x.query.split("partNumber=")[1].split("&")[0]: x for x in puts if "partNumber" in x.query
    }
    assert set(parts) == {"1", "2"}
    assert 5 * MIB < parts["1"].sent < 5 * MIB + 1024 and parts["1"].copy_source is None
    assert parts["2"].sent == 0 and parts["2"].copy_source is not None
    assert f"versionId={big_vid}" in parts["2"].copy_source
    gets = [
        x for x in chaos.log if x.method == "GET" and x.target.endswith(f"{PREFIX}big.sql.gz.enc")
    ]
    assert gets and all(x.range for x in gets)
    read = sum(int(b) - int(a) + 1 for x in gets for a, b in [x.range.split("=")[1].split("-")])
    assert read < 5 * MIB + 256 * 1024, read  # never the whole 6 MiB body

    # A second run (its journal says done; a fresh plan finds the links) writes nothing.
    again = run(moto_s3, gpg_keys)
    assert again.returncode == 0
    assert {v["result"] for v in again.json()["versions"]} == {"done"}
    plan = rotate("plan", moto_s3, "--to", str(gpg_keys.new_secret),
                  "--gpg-key", str(gpg_keys.old_secret), "--versions", "all", "--json")  # fmt: skip
    assert {v["result"] for v in plan.json()["versions"]} == {"already rotated"}
    assert dict(links(moto_s3)) == rotated

    # verify and restore of the original's name, given the new key alone, open the
    # rotated object (the original does not open with it).
    (small_link,) = [k for k in rotated if k.startswith(f"{PREFIX}small.")]
    out = tmp_path / "restored"
    r = sealcheck("restore", moto_s3.uri(f"{PREFIX}small.sql.gz.enc"), "--version-id", small_vid,
                  "--gpg-key", str(gpg_keys.new_secret), "--endpoint-url", moto_s3.endpoint,
                  "-o", str(out), "--json", "--no-progress", "--no-history")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert small_link in r.stdout
    assert out.read_bytes() == gzip.decompress(gpg_decrypt(gpg_keys.old_secret, small, tmp_path))
    # The same with a GNUPGHOME that holds the new key (its keys read by gpg --export).
    home = tmp_path / "new-home"
    home.mkdir(mode=0o700)
    GPG_HOMES.append(home)
    subprocess.run(["gpg", "--batch", "--homedir", str(home), "--import", str(gpg_keys.new_secret)],
                   capture_output=True, check=True)  # fmt: skip
    r = sealcheck("verify", moto_s3.uri(f"{PREFIX}small.sql.gz.enc"), "--version-id", small_vid,
                  "--gpg-homedir", str(home), "--endpoint-url", moto_s3.endpoint,
                  "--json", "--no-progress", "--no-history")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert small_link in r.stdout


def test_a_public_only_openpgp_key_and_a_pem_key(
    moto_s3: Bucket, tmp_path: Path, gpg_keys: GpgKeys, small_dump: Path, other_rsa_key: RsaKey
) -> None:
    """An exported public key (with --public-only) is re-wrapped to under its key id; a
    PEM key, which has no OpenPGP identity, under the wildcard id: the read-back unwraps
    it with the PEM, and gpg, given that RSA key as an OpenPGP key, tries it and opens
    the object byte for byte."""
    _, original = upload(moto_s3, tmp_path, gpg_keys, small_dump, "db.sql.gz.enc")
    r = rotate("run", moto_s3, "--to", str(gpg_keys.new_public), "--public-only",
               "--gpg-key", str(gpg_keys.old_secret), "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr + r.stdout
    (link,) = links(moto_s3)
    stored = fetch(moto_s3, *link)
    want = gpg_decrypt(gpg_keys.old_secret, original, tmp_path)
    assert gpg_decrypt(gpg_keys.new_secret, stored, tmp_path) == want

    r = rotate("run", moto_s3, "--to", str(other_rsa_key.private),
               "--gpg-key", str(gpg_keys.old_secret), "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr + r.stdout
    assert r.json()["versions"][0]["result"] == "done"
    pem_link = [x for x in links(moto_s3) if x != link]
    assert len(pem_link) == 1
    stored = fetch(moto_s3, *pem_link[0])
    assert pgp.read_message(stored[:65536]).recipients[0].key_id == pgp.WILDCARD
    assert stored.endswith(original)
    as_openpgp = openpgp_secret_key(other_rsa_key.private.read_bytes())
    assert gpg_decrypt(as_openpgp, stored, tmp_path) == want


def test_no_old_key_for_it_says_so(
    moto_s3: Bucket, tmp_path: Path, gpg_keys: GpgKeys, small_dump: Path, rsa_key: RsaKey
) -> None:
    upload(moto_s3, tmp_path, gpg_keys, small_dump, "db.sql.gz.enc")
    r = rotate("plan", moto_s3, "--to", str(gpg_keys.new_secret), "--from", str(rsa_key.private),
               "--json")  # fmt: skip
    assert r.returncode == 1, r.stderr + r.stdout
    (v,) = r.json()["versions"]
    assert v["result"] == "cannot" and "no held key recovers a session key" in v["reason"]
    assert links(moto_s3) == []


def test_an_armored_gpg_backup_is_armored_again(
    moto_s3: Bucket, tmp_path: Path, gpg_keys: GpgKeys, small_dump: Path
) -> None:
    """``gpg --armor --encrypt`` (small): read whole, the new packet added, armored again
    in the same layout with its CRC-24 recomputed; gpg reads it with the new key alone."""
    backup = dpb587_gpg(small_dump, tmp_path / "a", gpg_keys.old_home, armor=True,
                        email="old@example.com", name="db.sql.gz.asc")  # fmt: skip
    original = backup.data.read_bytes()
    moto_s3.put(f"{PREFIX}db.sql.gz.asc", original)
    r = run(moto_s3, gpg_keys)
    assert r.returncode == 0, r.stderr + r.stdout
    (v,) = r.json()["versions"]
    assert v["result"] == "done" and v["wire_format"] == "gpg (ASCII armor)"
    ((link, vid),) = links(moto_s3)
    stored = fetch(moto_s3, link, vid)
    assert stored.splitlines()[:2] == original.splitlines()[:2]  # BEGIN line, blank line
    assert stored.endswith(b"-----END PGP MESSAGE-----\n")
    want = gpg_decrypt(gpg_keys.old_secret, original, tmp_path)
    assert gpg_decrypt(gpg_keys.new_secret, stored, tmp_path) == want
    assert gpg_decrypt(gpg_keys.old_secret, stored, tmp_path) == want


def primary_fingerprint(home: Path, email: str) -> str:
    colons = subprocess.run(
        ["gpg", "--homedir", str(home), "--with-colons", "--list-keys", email],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return next(ln.split(":")[9] for ln in colons.splitlines() if ln.startswith("fpr:"))


def killed_after_one(bucket: Bucket, keys: GpgKeys, *given: str) -> Path:
    """A run over the prefix's gpg backups, SIGKILLed after its first version: its journal."""
    killed = run_cli(
        "rotate", "run", bucket.uri(PREFIX), "--endpoint-url", bucket.endpoint,
        "--to", str(keys.new_secret), *given, "--versions", "all", "--workers", "1",
        env={**os.environ, CRASH_ENV: "done:1"},
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    (path,) = journals()
    return path


def journal_meta(path: Path) -> dict[str, str]:
    journal = Journal(path)
    try:
        return journal.meta()
    finally:
        journal.close()


def resume(bucket: Bucket, keys: GpgKeys, *args: str):
    return rotate("run", bucket, "--to", str(keys.new_secret), "--versions", "all",
                  "--resume", "--json", *args)  # fmt: skip


@pytest.mark.parametrize("given", ["--gpg-key", "--gpg-homedir"])
def test_a_resume_takes_the_old_gpg_key_from_the_journal(
    moto_s3: Bucket, tmp_path: Path, gpg_keys: GpgKeys, small_dump: Path, given: str
) -> None:
    """A run killed (SIGKILL) after its first version resumes with ``--resume`` alone: the
    journal's start holds the old key's file and fingerprint, or its GNUPGHOME (never a
    passphrase). Another key or folder given on resume is refused (exit 2, naming both),
    and so is the journal's key file holding another key now; the journal untouched."""
    for name in ("a.sql.gz.enc", "b.sql.gz.enc"):
        upload(moto_s3, tmp_path, gpg_keys, small_dump, name)
    if given == "--gpg-key":
        key_file = tmp_path / "old.sec.asc"  # a copy: replaced by another key below
        key_file.write_bytes(gpg_keys.old_secret.read_bytes())
        old = str(key_file)
    else:
        old = str(gpg_keys.old_home)
    path = killed_after_one(moto_s3, gpg_keys, given, old)
    meta = journal_meta(path)
    assert meta["status"] == "running"
    old_fpr = primary_fingerprint(gpg_keys.old_home, "old@example.com")
    if given == "--gpg-key":
        assert (meta["gpg_key"], meta["gpg_fingerprint"], meta["gpg_homedir"]) == (old, old_fpr, "")
    else:
        assert (meta["gpg_key"], meta["gpg_fingerprint"], meta["gpg_homedir"]) == ("", "", old)
    assert not [k for k in meta if "passphrase" in k]

    other = str(gpg_keys.new_secret if given == "--gpg-key" else tmp_path / "another-home")
    refused = resume(moto_s3, gpg_keys, given, other)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "contradicts the interrupted rotation's journal" in refused.stderr
    assert str(path) in refused.stderr and other in refused.stderr
    if given == "--gpg-key":
        new_fpr = primary_fingerprint(gpg_keys.new_home, "new@example.com")
        assert old_fpr in refused.stderr and new_fpr in refused.stderr
        # The journal's key file now holding another key: refused too, naming both.
        key_file.write_bytes(gpg_keys.new_secret.read_bytes())
        changed = resume(moto_s3, gpg_keys)
        assert changed.returncode == 2, changed.stdout + changed.stderr
        assert "no longer holds its key" in changed.stderr
        assert old_fpr in changed.stderr and new_fpr in changed.stderr
        key_file.write_bytes(gpg_keys.old_secret.read_bytes())
    assert journal_meta(path) == meta  # nothing recorded by the refused resumes
    assert len(links(moto_s3)) == 1

    r = resume(moto_s3, gpg_keys)
    assert r.returncode == 0, r.stdout + r.stderr
    assert {v["result"] for v in r.json()["versions"]} == {"done"}
    assert len(links(moto_s3)) == 2
    # The same key given again is not a contradiction (nothing left to do).
    again = resume(moto_s3, gpg_keys, given, old)
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_journal_from_before_resumes_with_the_options_given(
    moto_s3: Bucket, tmp_path: Path, gpg_keys: GpgKeys, small_dump: Path
) -> None:
    """A journal written before the old OpenPGP key was recorded (no gpg fields) resumes
    as it always did: with --gpg-key given again (without it there is no old key)."""
    for name in ("a.sql.gz.enc", "b.sql.gz.enc"):
        upload(moto_s3, tmp_path, gpg_keys, small_dump, name)
    path = killed_after_one(moto_s3, gpg_keys, "--gpg-key", str(gpg_keys.old_secret))
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("DELETE FROM meta WHERE k IN ('gpg_key', 'gpg_fingerprint', 'gpg_homedir')")
    assert not [k for k in journal_meta(path) if k.startswith("gpg")]

    bare = resume(moto_s3, gpg_keys)
    assert bare.returncode == 2, bare.stdout + bare.stderr
    assert "no old key" in bare.stderr
    r = resume(moto_s3, gpg_keys, "--gpg-key", str(gpg_keys.old_secret))
    assert r.returncode == 0, r.stdout + r.stderr
    assert {v["result"] for v in r.json()["versions"]} == {"done"}
    assert len(links(moto_s3)) == 2
    assert journal_meta(path)["gpg_key"] == str(gpg_keys.old_secret)  # recorded from now on
