"""Verify and restore each seed pipeline's backup from a versioned bucket (moto), by version."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.s3scenarios import PREFIX, SeedPipeline, layer, no_partial_files, sealcheck
from fixtures.s3servers import Bucket, S3Store

PIPELINES = ["securecircle", "rds-modern", "rds-old", "gpg", "clustercontrol"]


@pytest.fixture(scope="module")
def seeded(moto_store: S3Store, seed_pipelines: dict[str, SeedPipeline]):
    """Every seed pipeline, RUNS versions each, in one versioned bucket; per
    pipeline the {object key: VersionId} of each run, oldest first."""
    bucket = moto_store.bucket()
    versions = {
        name: [bucket.put_backup(PREFIX, run.backup) for run in seed.runs]
        for name, seed in seed_pipelines.items()
    }
    return bucket, versions


def s3_args(bucket: Bucket, key: str) -> list[str]:
    return [bucket.uri(key), "--endpoint-url", bucket.endpoint, "--json"]


@pytest.mark.parametrize("name", PIPELINES)
def test_restore_an_older_version_with_its_own_wrapped_key(
    name: str, seeded, seed_pipelines, tmp_path: Path
) -> None:
    bucket, versions = seeded
    seed = seed_pipelines[name]
    data = PREFIX + seed.data_name
    key = PREFIX + seed.key_name if seed.key_name else None
    cli = name == "securecircle"  # one pipeline through a real process, the rest in-process

    if cli:  # the current version, found without --version-id
        r = sealcheck("verify", *s3_args(bucket, data), *seed.runs[-1].key_args, subprocess=True)
        rep = r.json()
        assert r.returncode == 0, rep["error"]
        assert rep["source"]["version_id"] == versions[name][-1][data]
        assert rep["wrapped_key"]["version_id"] == versions[name][-1][key]

    # The oldest version, with the wrapped-key version written with it.
    out = tmp_path / "restored.sql"
    oldest = versions[name][0]
    r = sealcheck(
        "restore",
        *s3_args(bucket, data),
        "--version-id",
        oldest[data] or "",
        "-o",
        str(out),
        *seed.runs[0].key_args,
        subprocess=cli,
    )
    rep = r.json()
    assert r.returncode == 0, rep["error"]
    assert rep["source"]["version_id"] == oldest[data]
    if key:
        assert rep["wrapped_key"]["version_id"] == oldest[key]
    assert "MD5 matches the object's ETag" in layer(rep, "source")["proved"]
    assert out.read_bytes() == seed.runs[0].dump.read_bytes()


def test_unversioned_bucket_is_pinned_by_etag(moto_store: S3Store, seed_pipelines) -> None:
    bucket = moto_store.bucket(versioned=False)
    seed = seed_pipelines["rds-modern"]
    bucket.put_backup(PREFIX, seed.runs[1].backup)
    r = sealcheck("verify", *s3_args(bucket, PREFIX + seed.data_name), *seed.runs[1].key_args)
    rep = r.json()
    assert r.returncode == 0, rep["error"]
    assert rep["source"]["version_id"] is None
    assert rep["source"]["etag"]
    assert rep["wrapped_key"]["uri"] == bucket.uri(PREFIX + (seed.key_name or ""))


def test_deleted_backup_fails_cleanly_and_older_versions_still_verify(
    moto_s3: Bucket, seed_pipelines
) -> None:
    seed = seed_pipelines["securecircle"]
    data, key = PREFIX + seed.data_name, PREFIX + (seed.key_name or "")
    v = [moto_s3.put_backup(PREFIX, run.backup) for run in seed.runs[:2]]
    marker = moto_s3.delete(data)

    r = sealcheck("verify", *s3_args(moto_s3, data), *seed.runs[1].key_args)
    assert r.returncode == 2
    assert "delete marker" in r.stderr and "--version-id" in r.stderr

    r = sealcheck(
        "verify", *s3_args(moto_s3, data), "--version-id", marker or "", *seed.runs[1].key_args
    )
    assert r.returncode == 2
    assert "delete marker" in r.stderr

    r = sealcheck(
        "verify", *s3_args(moto_s3, data), "--version-id", v[1][data] or "", *seed.runs[1].key_args
    )
    rep = r.json()
    assert r.returncode == 0, rep["error"]
    assert rep["wrapped_key"]["version_id"] == v[1][key]


def test_pre_versioning_null_version_restores_with_its_null_key(
    moto_store: S3Store, seed_pipelines, tmp_path: Path
) -> None:
    bucket = moto_store.bucket(versioned=False)
    seed = seed_pipelines["securecircle"]
    data = PREFIX + seed.data_name
    bucket.put_backup(PREFIX, seed.runs[0].backup)
    moto_store.client.put_bucket_versioning(
        Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"}
    )
    bucket.put_backup(PREFIX, seed.runs[1].backup)
    out = tmp_path / "null.sql"
    r = sealcheck(
        "restore",
        *s3_args(bucket, data),
        "--version-id",
        "null",
        "-o",
        str(out),
        *seed.runs[0].key_args,
    )
    rep = r.json()
    assert r.returncode == 0, rep["error"]
    assert rep["source"]["version_id"] == "null"
    assert rep["wrapped_key"]["version_id"] == "null"
    assert out.read_bytes() == seed.runs[0].dump.read_bytes()


def test_missing_object_version_and_bucket_are_clean_errors(seeded, tmp_path: Path) -> None:
    bucket, _ = seeded
    data = PREFIX + "1567744961188141183.sql.gz"
    cases = [
        (bucket.uri(PREFIX + "nope.sql.gz"), [], "does not exist"),
        (bucket.uri(data), ["--version-id", "no-such-version"], "no such object or version"),
        ("s3://no-such-bucket-at-all/x.sql.gz", [], "does not exist"),
    ]
    for uri, extra, words in cases:
        out = tmp_path / "never.sql"
        r = sealcheck("restore", uri, "--endpoint-url", bucket.endpoint, "-o", str(out), *extra)
        assert r.returncode == 2, (uri, r.stderr)
        assert words in r.stderr, (uri, r.stderr)
        assert not out.exists()
    assert no_partial_files(tmp_path)
