"""S3 transfer faults (reliability.md §1.10, §1.11, cases C1–C8, C10) through the chaos proxy.

Objects are uploaded straight to moto; Sealcheck reads them through the chaos
proxy, which injects the planned faults and logs every request.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.dumps import mysql_like
from fixtures.pipelines import openssl_variant
from fixtures.s3scenarios import PREFIX, Run, SeedPipeline, layer, no_partial_files, sealcheck
from fixtures.s3servers import (
    Bucket,
    ChaosS3,
    Logged,
    S3Store,
    call_before,
    flip_bit,
    ignore_range,
    reset_after,
    short_body,
    status,
)
from sealcheck.core.errors import TransferCorrupted, TransientStorageError
from sealcheck.core.storage.s3.client import S3Settings, make_client
from sealcheck.core.storage.s3.object import S3Object
from sealcheck.core.storage.s3.retry import MAX_RESUMES


@dataclass
class Target:
    bucket: Bucket
    key: str  # object key
    version: str | None
    run: Run
    body: bytes

    @property
    def path(self) -> str:
        return f"{self.bucket.name}/{self.key}"


def upload(bucket: Bucket, seed: SeedPipeline, run_index: int = 0) -> Target:
    run = seed.runs[run_index]
    versions = bucket.put_backup(PREFIX, run.backup)
    key = PREFIX + seed.data_name
    return Target(bucket, key, versions[key], run, run.backup.data.read_bytes())


@pytest.fixture
def cc(moto_store: S3Store, seed_pipelines) -> Target:
    """A ClusterControl backup (one object, a passphrase file) in a fresh versioned bucket."""
    return upload(moto_store.bucket(), seed_pipelines["clustercontrol"])


@pytest.fixture(scope="module")
def big_seed(tmp_path_factory: pytest.TempPathFactory) -> SeedPipeline:
    """A 2.4 MB uncompressed openssl-enc backup. Sealcheck reads 1 MiB at a time
    and a reset loses the chunk being read, so resumes need objects this big to
    start anywhere but byte 0."""
    work = tmp_path_factory.mktemp("big")
    dump = mysql_like(work / "big.sql", rows=40_000)
    b = openssl_variant(dump, work / "out", compress="cat", name="big.sql.enc")
    assert b.passphrase_file is not None
    return SeedPipeline("big", [Run(b, dump, ["--passphrase-file", str(b.passphrase_file)])])


@pytest.fixture
def big(moto_store: S3Store, big_seed: SeedPipeline) -> Target:
    return upload(moto_store.bucket(), big_seed)


def restore(chaos: ChaosS3, t: Target, dest: Path, *extra: str, subprocess: bool = False):
    r = sealcheck(
        "restore",
        t.bucket.uri(t.key),
        "--endpoint-url",
        chaos.endpoint,
        "-o",
        str(dest),
        "--json",
        *t.run.key_args,
        *extra,
        subprocess=subprocess,
    )
    return r, (r.json() if r.stdout.strip() else None)


def assert_restored(r, rep, t: Target, dest: Path) -> None:
    assert r.returncode == 0, (rep or {}).get("error") or r.stderr
    assert dest.read_bytes() == t.run.dump.read_bytes()
    # The ciphertext hashed on the way is the object itself: nothing doubled or lost.
    assert layer(rep, "source")["details"]["sha256"] == hashlib.sha256(t.body).hexdigest()
    assert "MD5 matches the object's ETag" in layer(rep, "source")["proved"]


def assert_nothing_written(r, dest: Path) -> None:
    assert r.returncode != 0
    assert not dest.exists()
    assert no_partial_files(dest.parent)


def stream_gets(chaos: ChaosS3, t: Target) -> list[Logged]:
    """The streaming GETs (whole object or ``bytes=N-``), not the small probes."""
    return [
        r for r in chaos.requests(t.path) if r.range is None or re.fullmatch(r"bytes=\d+-", r.range)
    ]


# --- C1: 5xx then success -----------------------------------------------------------


def test_c1_server_errors_then_success(chaos: ChaosS3, cc: Target, tmp_path: Path) -> None:
    chaos.plan(
        cc.path,
        status(500, "InternalError", on="full"),
        status(503, "ServiceUnavailable", on="full"),
        status(500, "InternalError", on="full"),
    )
    dest = tmp_path / "out.sql"
    r, rep = restore(chaos, cc, dest)
    assert_restored(r, rep, cc, dest)
    assert [g.status for g in stream_gets(chaos, cc)] == [500, 503, 500, 200]
    assert chaos.pending() == []


def test_c1_retries_are_counted(chaos: ChaosS3, cc: Target) -> None:
    chaos.plan(cc.path, *[status(500, "InternalError", on="full")] * 3)
    obj = S3Object(make_client(S3Settings(endpoint_url=chaos.endpoint)), cc.bucket.name, cc.key)
    stream = obj.open()
    assert read_all(stream) == cc.body
    assert stream.retries == 3 and stream.resumes == 0 and stream.digest_checked


def test_c1_persistent_errors_stop_after_a_few_attempts(
    chaos: ChaosS3, cc: Target, tmp_path: Path
) -> None:
    chaos.plan(cc.path, *[status(500, "InternalError", on="full")] * 20)
    dest = tmp_path / "out.sql"
    r, rep = restore(chaos, cc, dest)
    assert_nothing_written(r, dest)
    assert r.returncode == 2 and rep["error"]["kind"] == "TransientStorageError"
    # make_client's retries={'max_attempts': 5}: the first attempt and 5 retries, no storm.
    assert len(stream_gets(chaos, cc)) == 6


# --- C2, C8: the connection drops mid-body -----------------------------------------


@pytest.mark.parametrize("where", ["0", "1", "half", "N-1"])
def test_c2_reset_resumes_with_range(
    chaos: ChaosS3, big: Target, tmp_path: Path, where: str
) -> None:
    n = {"0": 0, "1": 1, "half": len(big.body) // 2, "N-1": len(big.body) - 1}[where]
    chaos.plan(big.path, reset_after(n))
    dest = tmp_path / "out.sql"
    r, rep = restore(chaos, big, dest)
    assert_restored(r, rep, big, dest)
    first, second = stream_gets(chaos, big)
    assert first.fault == "reset"
    # Resumed at or before the byte where the connection dropped (the chunk
    # being read when it dropped is read again), pinned to the version.
    start = int(second.range[6:-1]) if second.range else 0
    assert start <= n
    if where == "N-1":  # two whole 1 MiB chunks were read before the reset
        assert start >= 2 << 20
    assert f"versionId={big.version}" in second.query and second.if_match
    assert layer(rep, "source")["details"]["resumes"] == 1


def test_c8_short_body_resumes(chaos: ChaosS3, cc: Target, tmp_path: Path) -> None:
    n = len(cc.body) // 3
    chaos.plan(cc.path, short_body(n), short_body(n, on="resume"))
    dest = tmp_path / "out.sql"
    r, rep = restore(chaos, cc, dest, subprocess=True)
    assert_restored(r, rep, cc, dest)
    ranges = [g.range for g in stream_gets(chaos, cc)]
    assert ranges == [None, f"bytes={n}-", f"bytes={2 * n}-"]
    assert layer(rep, "source")["details"]["resumes"] == 2


# --- C3: Range ignored ----------------------------------------------------------------


def test_c3_range_ignored_on_resume(chaos: ChaosS3, big: Target, tmp_path: Path) -> None:
    chaos.plan(big.path, short_body(len(big.body) * 2 // 3), ignore_range())
    dest = tmp_path / "out.sql"
    r, rep = restore(chaos, big, dest)
    assert_restored(r, rep, big, dest)
    resumed = stream_gets(chaos, big)[1]
    assert resumed.range is not None and resumed.status == 200 and resumed.fault == "ignore_range"


def test_c3_a_proxy_that_never_honours_range(chaos: ChaosS3, big: Target, tmp_path: Path) -> None:
    """Probes of the first and last blocks and the resume all get the whole object."""
    chaos.plan(big.path, short_body(len(big.body) * 2 // 3), *[ignore_range(on="get")] * 30)
    dest = tmp_path / "out.sql"
    r, rep = restore(chaos, big, dest)
    assert_restored(r, rep, big, dest)
    ranged = [g for g in chaos.requests(big.path) if g.range]
    assert len(ranged) >= 2 and all(g.status == 200 for g in ranged)


def test_c3_skipping_a_large_resent_prefix(chaos: ChaosS3, moto_s3: Bucket) -> None:
    """A 3 MiB object reset at 2.5 MiB, resumed by a server that ignores Range:
    the 2.5 MiB prefix is dropped, never appended, never held in memory at once."""
    body = os.urandom(3 << 20)
    moto_s3.put("big.bin", body)
    path = f"{moto_s3.name}/big.bin"
    chaos.plan(path, reset_after(5 << 19), ignore_range())
    obj = S3Object(make_client(S3Settings(endpoint_url=chaos.endpoint)), moto_s3.name, "big.bin")
    stream = obj.open()
    assert hashlib.sha256(read_all(stream)).digest() == hashlib.sha256(body).digest()
    assert stream.resumes == 1 and stream.digest_checked
    assert obj.read_range(1000, 10) == body[1000:1010]


# --- C4: the object is replaced during the download ----------------------------------


def test_c4_versioned_new_upload_mid_download_keeps_the_pinned_version(
    chaos: ChaosS3, big: Target, tmp_path: Path
) -> None:
    newer = big.body[::-1]
    chaos.plan(
        big.path,
        short_body(len(big.body) * 2 // 3),
        call_before(lambda: big.bucket.put(big.key, newer)),
    )
    dest = tmp_path / "out.sql"
    r, rep = restore(chaos, big, dest)
    assert_restored(r, rep, big, dest)  # the old version's bytes, whole
    assert rep["source"]["version_id"] == big.version
    assert chaos.pending() == []


def test_c4_unversioned_replacement_is_refused_by_if_match(
    chaos: ChaosS3, moto_store: S3Store, big_seed: SeedPipeline, tmp_path: Path
) -> None:
    t = upload(moto_store.bucket(versioned=False), big_seed)
    newer = t.body[::-1]
    chaos.plan(
        t.path, short_body(len(t.body) * 2 // 3), call_before(lambda: t.bucket.put(t.key, newer))
    )
    dest = tmp_path / "out.sql"
    r, rep = restore(chaos, t, dest)
    assert_nothing_written(r, dest)
    assert r.returncode == 2 and rep["error"]["kind"] == "TransferCorrupted"
    assert "changed during the download" in rep["error"]["message"]
    resumed = stream_gets(chaos, t)[-1]
    assert resumed.status == 412 and resumed.if_match


# --- C5–C7: one flipped bit, no usable checksum ---------------------------------------


@pytest.mark.parametrize(
    "checksum", [None, "composite", "crc32"], ids=["C5-none", "C6-composite", "C7-crc32"]
)
def test_bit_flip_is_rejected_and_nothing_is_written(
    chaos: ChaosS3, cc: Target, tmp_path: Path, checksum: str | None
) -> None:
    chaos.plan(cc.path, flip_bit(len(cc.body) // 2, checksum=checksum))
    dest = tmp_path / "out.sql"
    r, rep = restore(chaos, cc, dest)
    assert_nothing_written(r, dest)
    # Our MD5-vs-ETag check or the inner gzip/CBC checks, whichever sees it first.
    assert rep["error"]["kind"] in ("TransferCorrupted", "IntegrityError", "TruncatedBackup")


def test_c5_md5_is_the_only_gate_for_an_unencrypted_gzip_header(
    chaos: ChaosS3, moto_s3: Bucket, small_dump: Path, tmp_path: Path
) -> None:
    """A flipped bit in gzip's MTIME field passes every inner check (no header
    CRC): only the end-to-end MD5 against the ETag can reject it."""
    body = gzip.compress(small_dump.read_bytes(), mtime=0)
    moto_s3.put("plain.sql.gz", body)
    path = f"{moto_s3.name}/plain.sql.gz"
    args = [moto_s3.uri("plain.sql.gz"), "--endpoint-url", chaos.endpoint, "--json"]

    ok = sealcheck("verify", *args)
    assert ok.returncode == 0, ok.stdout

    chaos.plan(path, flip_bit(5))
    dest = tmp_path / "out.sql"
    r = sealcheck("restore", *args, "-o", str(dest))
    assert_nothing_written(r, dest)
    rep = r.json()
    assert r.returncode == 2 and rep["error"]["kind"] == "TransferCorrupted"
    assert "MD5" in rep["error"]["message"]


# --- C10: permanent errors --------------------------------------------------------------


def test_c10_missing_key_is_one_request_and_exit_2(
    chaos: ChaosS3, cc: Target, tmp_path: Path
) -> None:
    missing = f"{cc.bucket.name}/{PREFIX}missing.sql.gz.aes256"
    dest = tmp_path / "out.sql"
    r = sealcheck(
        "restore",
        f"s3://{missing}",
        "--endpoint-url",
        chaos.endpoint,
        "-o",
        str(dest),
        subprocess=True,
    )
    assert r.returncode == 2
    assert "does not exist" in r.stderr
    assert_nothing_written(r, dest)
    assert len(chaos.requests(missing, "HEAD")) == 1


@pytest.mark.parametrize("on", ["head", "full"])
def test_c10_access_denied_is_not_retried(
    chaos: ChaosS3, cc: Target, tmp_path: Path, on: str
) -> None:
    chaos.plan(cc.path, *[status(403, "AccessDenied", on=on)] * 10)
    dest = tmp_path / "out.sql"
    r, _ = restore(chaos, cc, dest)
    assert r.returncode == 2
    assert "denied" in (r.stderr + r.stdout)
    assert_nothing_written(r, dest)
    assert len(chaos.pending()) == 9  # exactly one request was refused


@pytest.mark.parametrize(
    ("code", "s3code", "words"),
    [(400, "ExpiredToken", "credentials have expired"), (403, "RequestTimeTooSkewed", "clock")],
)
def test_c11_expired_credentials_and_clock_skew_say_so(
    chaos: ChaosS3, cc: Target, code: int, s3code: str, words: str
) -> None:
    chaos.plan(cc.path, *[status(code, s3code, on="full")] * 10)
    r = sealcheck(
        "verify",
        cc.bucket.uri(cc.key),
        "--endpoint-url",
        chaos.endpoint,
        "--json",
        *cc.run.key_args,
    )
    assert r.returncode == 2
    assert words in r.json()["error"]["message"]
    assert len(chaos.pending()) >= 8  # refused at once (botocore may re-sign once for skew)


def test_listing_denied_falls_back_to_the_current_wrapped_key(
    chaos: ChaosS3, moto_store: S3Store, seed_pipelines
) -> None:
    """GetObject allowed, ListBucketVersions denied (a least-privilege policy)."""
    t = upload(moto_store.bucket(), seed_pipelines["securecircle"])
    chaos.plan(t.bucket.name, *[status(403, "AccessDenied", on="list")] * 20)
    r = sealcheck(
        "verify", t.bucket.uri(t.key), "--endpoint-url", chaos.endpoint, "--json", *t.run.key_args
    )
    rep = r.json()
    assert r.returncode == 0, rep["error"]
    assert rep["wrapped_key"]["uri"].endswith(".key?versionId=" + rep["wrapped_key"]["version_id"])


# --- the stream's resume budget -------------------------------------------------------


def read_all(stream) -> bytes:
    parts = []
    while chunk := stream.read(1 << 16):
        parts.append(chunk)
    return b"".join(parts)


def test_drops_without_progress_give_up(chaos: ChaosS3, cc: Target, monkeypatch) -> None:
    monkeypatch.setattr(S3Object, "_backoff", lambda self, attempt: None)
    chaos.plan(cc.path, *[short_body(0, on="get")] * 20)
    obj = S3Object(make_client(S3Settings(endpoint_url=chaos.endpoint)), cc.bucket.name, cc.key)
    with pytest.raises(TransientStorageError, match="dropped 7 times in a row"):
        read_all(obj.open())
    assert len(stream_gets(chaos, cc)) == MAX_RESUMES + 1


def test_drops_with_progress_do_not_exhaust_the_budget(
    chaos: ChaosS3, moto_s3: Bucket, monkeypatch
) -> None:
    """A long download over a flaky link: a drop after every 1.125 MiB, 8 in all."""
    monkeypatch.setattr(S3Object, "_backoff", lambda self, attempt: None)
    body = os.urandom(10 << 20)
    moto_s3.put("flaky.bin", body)
    path = f"{moto_s3.name}/flaky.bin"
    step = (1 << 20) + (1 << 17)
    chaos.plan(path, short_body(step), *[short_body(step, on="resume")] * 7)
    obj = S3Object(make_client(S3Settings(endpoint_url=chaos.endpoint)), moto_s3.name, "flaky.bin")
    stream = obj.open()
    assert hashlib.sha256(read_all(stream)).digest() == hashlib.sha256(body).digest()
    assert stream.resumes == 8 > MAX_RESUMES


def test_a_wrong_content_range_is_refused(chaos: ChaosS3, big: Target, monkeypatch) -> None:
    """A resume answered from the wrong offset is a corruption, not data."""
    obj = S3Object(make_client(S3Settings(endpoint_url=chaos.endpoint)), big.bucket.name, big.key)
    real_get = obj._get
    monkeypatch.setattr(obj, "_get", lambda rng: real_get("bytes=0-" if rng else None))
    monkeypatch.setattr(S3Object, "_backoff", lambda self, attempt: None)
    chaos.plan(big.path, short_body(len(big.body) * 2 // 3))
    with pytest.raises(TransferCorrupted, match="answered a resume"):
        read_all(obj.open())
