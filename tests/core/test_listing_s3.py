"""Nightly series and storage errors in a real (moto) S3 bucket (issue 12): the nights of
a backup are one set, each night's S3 versions beside it; a listing that fails says what
is wrong where it is wrong (a misspelled bucket, a dead endpoint, access denied, the wrong
region); an empty prefix says so and shows what is one level up."""

from __future__ import annotations

import time

from fixtures.s3scenarios import sealcheck
from fixtures.s3servers import Bucket, ChaosS3, S3Store, free_port, status
from sealcheck.core.errors import AccessDenied
from sealcheck.core.storage.listing import Versioning, list_backup_sets, probe_bucket
from sealcheck.core.storage.s3.client import S3Settings, make_client
from sealcheck.core.storage.s3.errors import BucketNotFound, EndpointUnreachable

BODY = b"Salted__" + bytes(56)  # the names are under test; nothing here is verified
SERIES = "clustercontrol/YYYY-MM-DD/backup-full.sql.gz.aes256"


def night(d: str) -> str:
    return f"clustercontrol/{d}/backup-full.sql.gz.aes256"


def _client(endpoint: str) -> object:
    return make_client(S3Settings(endpoint_url=endpoint, region="us-east-1"))


def test_a_versioned_bucket_shows_nights_then_their_versions(moto_s3: Bucket) -> None:
    """Three nights; the second night uploaded twice (a re-run). One set, four versions:
    newest night first, and within a night its versions newest first."""
    v = {d: moto_s3.put(night(d), BODY) for d in ("2025-01-01", "2025-01-02", "2025-01-03")}
    time.sleep(1.1)  # LastModified has whole seconds
    rerun = moto_s3.put(night("2025-01-02"), BODY + b"x")
    (s,) = list_backup_sets(_client(moto_s3.endpoint), moto_s3.name, "")
    assert s.name == SERIES and s.is_series
    got = [(p.night, p.data.version_id, p.data.is_latest) for p in s.pairs]
    assert got == [
        ("2025-01-03", v["2025-01-03"], True),
        ("2025-01-02", rerun, True),
        ("2025-01-02", v["2025-01-02"], False),
        ("2025-01-01", v["2025-01-01"], True),
    ]
    r = sealcheck("list", moto_s3.uri(), "--endpoint-url", moto_s3.endpoint)
    assert r.returncode == 0, r.stderr
    assert "  nightly series: 3 night(s), 2025-01-01 … 2025-01-03" in r.stdout
    assert r.stdout.splitlines()[-1] == f"1 backup set(s), 4 version(s) under {moto_s3.uri()}"


def test_a_misspelled_bucket_says_check_the_bucket_name(moto_s3: Bucket) -> None:
    wrong = moto_s3.name + "x"
    r = sealcheck("list", f"s3://{wrong}/db/", "--endpoint-url", moto_s3.endpoint)
    assert r.returncode == 2 and r.stdout == ""
    assert f"s3://{wrong}/db/: Bucket not found: check the bucket name." in r.stderr
    try:
        probe_bucket(_client(moto_s3.endpoint), wrong, "db/")
    except BucketNotFound as exc:
        assert exc.obj == f"s3://{wrong}/db/"
    else:
        raise AssertionError("no error for a missing bucket")


def test_a_dead_endpoint_says_cannot_reach_it(moto_s3: Bucket) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # a closed loopback port
    r = sealcheck("list", "s3://backups/db/", "--endpoint-url", dead)
    assert r.returncode == 2 and r.stdout == ""
    assert f"s3://backups/db/: Cannot reach the endpoint. {dead} (nothing answers)" in r.stderr
    assert "download" not in r.stderr
    try:
        probe_bucket(_client(dead), "backups", "db/")
    except EndpointUnreachable as exc:
        assert dead in exc.message() and "check the endpoint URL" in exc.message()
    else:
        raise AssertionError("no error for a dead endpoint")


def test_access_denied_and_wrong_region_while_listing(moto_store: S3Store, chaos: ChaosS3) -> None:
    bucket = moto_store.bucket()
    bucket.put(night("2025-01-01"), BODY)
    client = _client(chaos.endpoint)
    chaos.plan(bucket.name, status(403, "AccessDenied", on="list"))
    try:
        list_backup_sets(client, bucket.name, "")
    except AccessDenied as exc:
        assert exc.message() == (
            f"s3://{bucket.name}/: Access denied: these credentials may not list this bucket. "
            "They need s3:ListBucketVersions on it (AccessDenied)"
        )
    else:
        raise AssertionError("no error for a denied listing")
    # botocore follows one redirect by itself: the store keeps answering 301.
    chaos.plan(bucket.name, *[status(301, "PermanentRedirect", on="list")] * 3)
    r = sealcheck("list", bucket.uri(), "--endpoint-url", chaos.endpoint)
    assert r.returncode == 2
    assert (
        f"s3://{bucket.name}/: Wrong region: the bucket is in another region. Set the region "
        "to the bucket's (--region, or Region in the source) (PermanentRedirect)"
    ) in r.stderr


def test_an_empty_prefix_says_so_and_shows_one_level_up(moto_s3: Bucket) -> None:
    moto_s3.put("mysql/shop.sql.gz.enc", BODY)
    moto_s3.put("readme.txt", b"backups\n")
    r = sealcheck("list", moto_s3.uri("mysq/"), "--endpoint-url", moto_s3.endpoint)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"Nothing under {moto_s3.uri('mysq/')}. A prefix matches")
    assert f"One level up, {moto_s3.uri()} holds: mysql/, readme.txt." in r.stdout
    assert "naming rule DATA_SUFFIX:KEY_SUFFIX" in r.stdout


def test_an_empty_bucket_says_so(moto_store: S3Store) -> None:
    bucket = moto_store.bucket(versioned=False)
    r = sealcheck("list", bucket.uri(), "--endpoint-url", bucket.endpoint)
    assert r.returncode == 0, r.stderr
    assert f"The bucket {bucket.name} is empty." in r.stdout
    p = probe_bucket(_client(bucket.endpoint), bucket.name, "")
    assert p.count == 0 and p.versioning is Versioning.OFF
    assert p.text().startswith(f"Connected. The bucket {bucket.name} is empty.")


def test_probe_lists_one_page_and_reports_versioning(moto_s3: Bucket) -> None:
    for d in ("2025-01-01", "2025-01-02", "2025-01-03"):
        moto_s3.put(night(d), BODY)
    p = probe_bucket(_client(moto_s3.endpoint), moto_s3.name, "clustercontrol/", page_size=2)
    assert (p.count, p.more, p.versioning) == (2, True, Versioning.ENABLED)
    assert p.text() == (
        f"Connected: 2+ object versions under {moto_s3.uri('clustercontrol/')} (the first "
        "page; more follow). Versioning is enabled: every version is kept."
    )
