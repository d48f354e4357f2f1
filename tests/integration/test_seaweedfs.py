"""The S3 listing and verify scenarios against SeaweedFS (``weed server -s3``).

SeaweedFS 4.48 supports bucket versioning (VersionId, ListObjectVersions,
delete markers, ``versionId=null``). LastModified has whole seconds, as on moto.
Its paginated ListObjectVersions drops versions (see the pagination tests):
Sealcheck's listing re-lists the affected keys on their own.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from fixtures.s3scenarios import (
    PREFIX,
    ListingScenario,
    SeedPipeline,
    check_listing,
    layer,
    sealcheck,
    upload_listing_scenario,
)
from fixtures.s3servers import Bucket, S3Store
from sealcheck.core.storage.listing import list_backup_sets
from sealcheck.core.storage.s3.client import S3Settings, make_client

pytestmark = pytest.mark.seaweedfs


@pytest.fixture(scope="module")
def listed(seaweedfs: S3Store, seed_pipelines) -> tuple[Bucket, ListingScenario]:
    bucket = seaweedfs.bucket()
    return bucket, upload_listing_scenario(bucket, seed_pipelines)


def test_versioning_is_enabled(seaweedfs: S3Store, listed) -> None:
    bucket, _ = listed
    assert seaweedfs.client.get_bucket_versioning(Bucket=bucket.name)["Status"] == "Enabled"


def test_list_json(listed, seed_pipelines) -> None:
    bucket, sc = listed
    r = sealcheck("list", bucket.uri(PREFIX), "--json", "--endpoint-url", bucket.endpoint)
    assert r.returncode == 0, r.stderr
    check_listing(r.json(), sc, seed_pipelines)


def test_paginated_listing_is_complete(listed, seed_pipelines) -> None:
    """With 2 versions a page SeaweedFS drops versions of X when X.key exists;
    Sealcheck's listing finds them all, exactly as unpaginated."""
    bucket, sc = listed
    client = make_client(S3Settings(endpoint_url=bucket.endpoint))
    small = list_backup_sets(client, bucket.name, PREFIX, page_size=2)
    full = list_backup_sets(client, bucket.name, PREFIX)
    assert [s.to_dict() for s in small] == [s.to_dict() for s in full]
    check_listing({"backup_sets": [s.to_dict() for s in small]}, sc, seed_pipelines)


@pytest.mark.xfail(
    reason="SeaweedFS 4.48: a paginated ListObjectVersions drops versions of X when X "
    "has several versions and X.key exists (upstream bug; worked around in core/storage/listing.py)",
    strict=False,
)
def test_upstream_paginated_list_object_versions(listed) -> None:
    bucket, _ = listed
    client = bucket.store.client

    def count(page_size: int) -> collections.Counter[str]:
        pages = client.get_paginator("list_object_versions").paginate(
            Bucket=bucket.name, Prefix=PREFIX, PaginationConfig={"PageSize": page_size}
        )
        return collections.Counter(v["Key"] for p in pages for v in p.get("Versions", []))

    assert count(2) == count(1000)


@pytest.mark.parametrize("name", ["securecircle", "rds-modern", "gpg", "clustercontrol"])
def test_restore_an_older_version_with_its_own_wrapped_key(
    name: str, seaweed_s3: Bucket, seed_pipelines: dict[str, SeedPipeline], tmp_path: Path
) -> None:
    seed = seed_pipelines[name]
    versions = [seaweed_s3.put_backup(PREFIX, run.backup) for run in seed.runs]
    data = PREFIX + seed.data_name
    key = PREFIX + seed.key_name if seed.key_name else None
    base = [seaweed_s3.uri(data), "--endpoint-url", seaweed_s3.endpoint, "--json"]

    r = sealcheck("verify", *base, *seed.runs[-1].key_args)
    rep = r.json()
    assert r.returncode == 0, rep["error"]
    assert rep["source"]["version_id"] == versions[-1][data]
    if key:
        assert rep["wrapped_key"]["version_id"] == versions[-1][key]

    out = tmp_path / "restored.sql"
    r = sealcheck(
        "restore",
        *base,
        "--version-id",
        versions[0][data] or "",
        "-o",
        str(out),
        *seed.runs[0].key_args,
    )
    rep = r.json()
    assert r.returncode == 0, rep["error"]
    assert rep["source"]["version_id"] == versions[0][data]
    if key:
        assert rep["wrapped_key"]["version_id"] == versions[0][key]
    assert "MD5 matches the object's ETag" in layer(rep, "source")["proved"]
    assert out.read_bytes() == seed.runs[0].dump.read_bytes()


def test_deleted_backup_and_missing_object(seaweed_s3: Bucket, seed_pipelines) -> None:
    seed = seed_pipelines["securecircle"]
    data = PREFIX + seed.data_name
    v = seaweed_s3.put_backup(PREFIX, seed.runs[0].backup)
    seaweed_s3.delete(data)
    base = ["--endpoint-url", seaweed_s3.endpoint, *seed.runs[0].key_args]

    # SeaweedFS's 404 does not say "delete marker"; Sealcheck's listing does.
    r = sealcheck("verify", seaweed_s3.uri(data), *base)
    assert r.returncode == 2 and "delete marker" in r.stderr

    r = sealcheck("verify", seaweed_s3.uri(data), "--version-id", v[data] or "", "--json", *base)
    assert r.returncode == 0, r.json()["error"]

    r = sealcheck("verify", seaweed_s3.uri(PREFIX + "missing.sql.gz"), *base)
    assert r.returncode == 2 and "does not exist" in r.stderr
