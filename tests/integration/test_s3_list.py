"""`sealcheck list` against a real S3 endpoint (moto), and the pairing rules behind it."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from fixtures.s3scenarios import (
    PREFIX,
    ListingScenario,
    SeedPipeline,
    check_listing,
    sealcheck,
    upload_listing_scenario,
)
from fixtures.s3servers import Bucket, S3Store
from sealcheck.core.storage.listing import (
    NO_KEY_VERSION,
    ObjectVersion,
    group,
    list_backup_sets,
    pair_versions,
)
from sealcheck.core.storage.s3.client import S3Settings, make_client


@pytest.fixture(scope="module")
def listed(
    moto_store: S3Store, seed_pipelines: dict[str, SeedPipeline]
) -> tuple[Bucket, ListingScenario]:
    bucket = moto_store.bucket()
    return bucket, upload_listing_scenario(bucket, seed_pipelines)


def test_list_json_groups_pairs_and_flags(listed, seed_pipelines) -> None:
    bucket, sc = listed
    r = sealcheck(
        "list", bucket.uri(PREFIX), "--json", "--endpoint-url", bucket.endpoint, subprocess=True
    )
    assert r.returncode == 0, r.stderr
    check_listing(r.json(), sc, seed_pipelines)


def test_list_text_shows_versions_and_issues(listed, seed_pipelines) -> None:
    bucket, sc = listed
    r = sealcheck("list", bucket.uri(PREFIX), "--endpoint-url", bucket.endpoint)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for seed in seed_pipelines.values():
        assert PREFIX + seed.data_name in out
    assert f"! orphan key version {sc.orphan_key_version}" in out
    assert "!! the newest version is a delete marker" in out
    assert "!! a wrapped key with no data object" in out
    assert "(none: single object)" in out


def test_small_pages_give_the_same_listing(listed, seed_pipelines) -> None:
    """Pagination (>1000 versions in real buckets) exercised with 2 versions per page."""
    bucket, sc = listed
    client = make_client(S3Settings(endpoint_url=bucket.endpoint))
    pages: list[list] = []
    small = list_backup_sets(client, bucket.name, PREFIX, page_size=2, on_page=pages.append)
    full = list_backup_sets(client, bucket.name, PREFIX)
    assert len(pages) >= 10
    assert [s.to_dict() for s in small] == [s.to_dict() for s in full]
    check_listing({"backup_sets": [s.to_dict() for s in small]}, sc, seed_pipelines)


def test_list_empty_prefix(moto_s3: Bucket) -> None:
    r = sealcheck("list", moto_s3.uri("nothing/"), "--endpoint-url", moto_s3.endpoint)
    assert r.returncode == 0
    assert r.stdout.startswith(f"Nothing under {moto_s3.uri('nothing/')}. A prefix matches")


def test_list_missing_bucket_is_a_clean_error(moto_store: S3Store) -> None:
    r = sealcheck("list", "s3://no-such-bucket-here/x/", "--endpoint-url", moto_store.endpoint)
    assert r.returncode == 2
    assert "s3://no-such-bucket-here/x/: Bucket not found: check the bucket name" in r.stderr
    assert r.stdout == ""


def test_unversioned_and_pre_versioning_null_versions(moto_store: S3Store, seed_pipelines) -> None:
    """Objects written before versioning was enabled have VersionId "null": the
    current one is listed as the current object (None), an older one as "null",
    which stays addressable."""
    bucket = moto_store.bucket(versioned=False)
    runs = seed_pipelines["securecircle"].runs
    bucket.put_backup(PREFIX, runs[0].backup)
    r = sealcheck("list", bucket.uri(PREFIX), "--json", "--endpoint-url", bucket.endpoint)
    (s,) = r.json()["backup_sets"]
    assert [(v["data"]["version_id"], v["key"]["version_id"]) for v in s["versions"]] == [
        (None, None)
    ]

    moto_store.client.put_bucket_versioning(
        Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"}
    )
    v1 = bucket.put_backup(PREFIX, runs[1].backup)
    r = sealcheck("list", bucket.uri(PREFIX), "--json", "--endpoint-url", bucket.endpoint)
    (s,) = r.json()["backup_sets"]
    data, key = PREFIX + runs[1].backup.data.name, PREFIX + runs[1].backup.wrapped_key.name
    pairs = [(v["data"]["version_id"], v["key"]["version_id"]) for v in s["versions"]]
    assert pairs == [(v1[data], v1[key]), ("null", "null")]
    assert s["issues"] == []


def test_objects_that_are_not_backups_and_an_unversioned_bucket_are_flagged(
    moto_store: S3Store, seed_pipelines
) -> None:
    """readme.txt and a photo are listed as what they are, never as "encrypted"; the
    bucket keeps no versions (an overwrite destroys the backup), which is said first;
    S3's "null" version id of an unversioned object is never shown as such."""
    bucket = moto_store.bucket(versioned=False)
    bucket.put("readme.txt", b"This bucket holds the nightly database backups.\n")
    bucket.put("photos/cat.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(300))
    backup = seed_pipelines["securecircle"].runs[0].backup
    bucket.put_backup(PREFIX, backup)
    args = ("list", bucket.uri(), "--endpoint-url", bucket.endpoint)
    r = sealcheck(*args)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"!! bucket {bucket.name}: versioning is off")
    assert "overwrite or a delete destroys the earlier backup" in lines[0]
    assert "readme.txt  (not a recognised backup)" in lines
    assert "photos/cat.jpg  (not a recognised backup)" in lines
    assert PREFIX + backup.data.name in lines
    assert "(unversioned)" in r.stdout and "null" not in r.stdout
    doc = sealcheck(*args, "--json").json()
    assert doc["versioning"] == "off"
    sets = {s["name"]: s for s in doc["backup_sets"]}
    assert (sets["readme.txt"]["recognised"], sets["photos/cat.jpg"]["recognised"]) == (False,) * 2
    assert sets[PREFIX + backup.data.name]["recognised"] is True
    # Verified all the same, the README is said to be no backup (exit 1: see the README).
    r = sealcheck(
        "verify", bucket.uri("readme.txt"), "--endpoint-url", bucket.endpoint, "--no-history"
    )
    assert r.returncode == 1 and "not a recognised backup" in r.stdout, r.stdout + r.stderr


def test_a_versioned_bucket_is_not_flagged(listed) -> None:
    bucket, _sc = listed
    r = sealcheck("list", bucket.uri(PREFIX), "--endpoint-url", bucket.endpoint)
    assert r.returncode == 0 and "!! bucket" not in r.stdout
    doc = sealcheck("list", bucket.uri(PREFIX), "--json", "--endpoint-url", bucket.endpoint)
    assert doc.json()["versioning"] == "enabled"


# --- pairing rules, on synthetic versions --------------------------------------------

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def ov(
    key: str, vid: str, seconds: float, *, latest: bool = False, dm: bool = False
) -> ObjectVersion:
    return ObjectVersion(
        key, vid, 0 if dm else 100, T0 + dt.timedelta(seconds=seconds), None, latest, dm
    )


def listing_order(vs: list[ObjectVersion]) -> list[ObjectVersion]:
    """As S3 lists one key: newest first (the input here is oldest first)."""
    return list(reversed(vs))


def pairs_of(data: list[ObjectVersion], keys: list[ObjectVersion]) -> list[tuple[str, str | None]]:
    pairs, _ = pair_versions(listing_order(data), listing_order(keys))
    return [(p.data.version_id or "", p.key.version_id if p.key else None) for p in pairs]


def test_pairs_never_cross_when_seconds_tie() -> None:
    """Three runs within two seconds (whole-second LastModified): nearest-in-time
    alone pairs d2 with k1 and d1 with k2; the order of writing does not."""
    d = [ov("x", "d1", 10), ov("x", "d2", 10), ov("x", "d3", 11, latest=True)]
    k = [ov("x.key", "k1", 10), ov("x.key", "k2", 11), ov("x.key", "k3", 11, latest=True)]
    assert pairs_of(d, k) == [("d3", "k3"), ("d2", "k2"), ("d1", "k1")]


def test_exact_tie_goes_to_the_key_written_after_its_data() -> None:
    # d3 at second 0, its key at second 1, then a data version without a key at second 2.
    d = [ov("x", "d3", 0), ov("x", "d4", 2, latest=True)]
    k = [ov("x.key", "k3", 1, latest=True)]
    assert pairs_of(d, k) == [("d4", None), ("d3", "k3")]


def test_daily_backups_with_a_missing_key_and_a_later_rewrap() -> None:
    day = 86400
    d = [ov("x", f"d{i}", i * day) for i in range(5)]
    k = [ov("x.key", f"k{i}", i * day + 5) for i in (0, 1, 3, 4)]
    k.append(ov("x.key", "rewrap", 7 * day, latest=True))
    d[-1] = ov("x", "d4", 4 * day, latest=True)
    pairs, orphans = pair_versions(listing_order(d), listing_order(k))
    got = [(p.data.version_id, p.key.version_id if p.key else None, p.issue) for p in pairs]
    assert got == [
        ("d4", "k4", None),
        ("d3", "k3", None),
        ("d2", None, NO_KEY_VERSION),
        ("d1", "k1", None),
        ("d0", "k0", None),
    ]
    assert [o.version_id for o in orphans] == ["rewrap"]


def test_delete_marker_in_the_same_second_is_the_newest() -> None:
    """ListObjectVersions returns versions and delete markers in separate lists;
    IsLatest, not the timestamp, says which is newest."""
    versions = [ov("x", "v1", 5), ov("x", "dm", 5, latest=True, dm=True)]
    (s,) = group(versions)
    assert s.pairs[0].data.delete_marker and s.pairs[0].issue == "delete marker"
    assert "the newest version is a delete marker (the object was deleted)" in s.issues
    assert s.newest is not None and s.newest.version_id == "v1"


def test_deleted_wrapped_key_is_flagged() -> None:
    versions = [
        ov("x", "d1", 0, latest=True),
        ov("x.key", "k1", 1),
        ov("x.key", "kdm", 9, latest=True, dm=True),
    ]
    (s,) = group(versions)
    assert s.pairs[0].key is not None and s.pairs[0].key.version_id == "k1"
    assert "the wrapped key was deleted (its newest version is a delete marker)" in s.issues


@pytest.mark.parametrize("name", ["a.key", "a.key.enc", "a.key.txt", "a.key.bin", "a.key.txt.enc"])
def test_a_wrapped_key_alone_is_flagged_whatever_its_suffix(name: str) -> None:
    (s,) = group([ov(name, "k1", 0, latest=True)])
    assert s.key_name is None
    assert "a wrapped key with no data object" in s.issues


def test_a_huge_burst_pairs_by_rank_quickly() -> None:
    """1200 runs in one second (a bulk upload): far above the alignment budget,
    paired by rank, in well under a second."""
    n = 1200
    d = [ov("x", f"d{i}", 0, latest=i == n - 1) for i in range(n)]
    k = [ov("x.key", f"k{i}", 0, latest=i == n - 1) for i in range(n)]
    t = time.monotonic()
    pairs, orphans = pair_versions(listing_order(d), listing_order(k))
    assert time.monotonic() - t < 2
    assert all(p.key is not None and p.key.version_id[1:] == p.data.version_id[1:] for p in pairs)
    assert orphans == []
