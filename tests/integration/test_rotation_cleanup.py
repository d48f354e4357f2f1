"""Rotation's scratch objects under ``PREFIX.sealcheck-rotation/`` do not accumulate
(issue 13): the store probe's object and the lock generations a run wrote are deleted
again, and nothing else ever is: on a versioned bucket exactly the version written (by
its version id, no delete marker), unversioned only while its ETag is the one written."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import pytest

from fixtures.pipelines import RsaKey, securecircle
from fixtures.rotation import PREFIX, all_object_versions, links, rotate_keys, someones_lock
from fixtures.s3servers import Bucket, S3Store
from sealcheck.core.rotation.store import Lock, _create, control_prefix, delete_own

CONTROL = control_prefix(PREFIX)


def control_objects(bucket: Bucket) -> list[tuple[str, str]]:
    """Every version and delete marker under the control prefix."""
    return sorted((k, v) for k, v in all_object_versions(bucket) if k.startswith(CONTROL))


@pytest.fixture
def one_backup(tmp_path: Path, rsa_key: RsaKey, small_dump: Path):
    return securecircle(small_dump, tmp_path / "sc", rsa_key, name="7")


@pytest.mark.parametrize("versioned", [True, False])
def test_a_run_leaves_no_scratch_object(
    moto_store: S3Store, one_backup, rsa_key: RsaKey, other_rsa_key: RsaKey, versioned: bool
) -> None:
    bucket = moto_store.bucket(versioned=versioned)
    bucket.put_backup(PREFIX, one_backup)
    extra = () if versioned else ("--allow-unversioned",)
    for _ in range(2):  # the second run finds it rotated: a probe and a lock all the same
        r = rotate_keys("run", bucket, rsa_key, other_rsa_key, *extra)
        assert r.returncode == 0, r.stdout + r.stderr
    assert control_objects(bucket) == []  # no version, no delete marker
    assert len(links(bucket)) == 1


def test_an_earlier_runs_lock_is_kept_and_ours_leaves_its_released_marker(
    moto_s3: Bucket, one_backup, rsa_key: RsaKey, other_rsa_key: RsaKey
) -> None:
    """Generations below ours are another run's: never deleted. Our released marker stays
    above them (without it the newest would be theirs)."""
    theirs = someones_lock(moto_s3, "2001-01-01T00:00:00+00:00")  # expired long ago
    moto_s3.put_backup(PREFIX, one_backup)
    r = rotate_keys("run", moto_s3, rsa_key, other_rsa_key)
    assert r.returncode == 0, r.stdout + r.stderr
    left = control_objects(moto_s3)
    assert (CONTROL + "lock.00000001", theirs) in left
    assert [k for k, _ in left] == [CONTROL + "lock.00000001", CONTROL + "lock.00000003"]
    meta = moto_s3.store.client.head_object(Bucket=moto_s3.name, Key=CONTROL + "lock.00000003")
    assert meta["Metadata"]["sealcheck-state"] == "released"


def test_delete_own_deletes_only_the_version_it_wrote(moto_s3: Bucket) -> None:
    c, key = moto_s3.store.client, CONTROL + "probe/x"
    mine = _create(c, moto_s3.name, key, b"mine")
    other = moto_s3.put(key, b"someone else's")  # a later version under the same name
    assert delete_own(c, moto_s3.name, mine)
    assert [(k, v) for k, v in control_objects(moto_s3)] == [(key, other)]


def test_unversioned_delete_own_leaves_an_object_it_did_not_write(
    moto_store: S3Store,
) -> None:
    bucket = moto_store.bucket(versioned=False)
    c, key = bucket.store.client, CONTROL + "probe/y"
    mine = _create(c, bucket.name, key, b"mine")
    assert mine.version_id is None and mine.etag
    bucket.put(key, b"replaced by someone else")
    assert not delete_own(c, bucket.name, mine)  # its ETag is not ours: left alone
    assert c.get_object(Bucket=bucket.name, Key=key)["Body"].read() == b"replaced by someone else"
    again = _create(c, bucket.name, CONTROL + "probe/z", b"mine")
    assert delete_own(c, bucket.name, again)
    assert [k for k, _ in control_objects(bucket)] == [key]


def test_a_lock_released_deletes_its_renewals(moto_s3: Bucket) -> None:
    c = moto_s3.store.client
    lock = Lock(c, moto_s3.name, PREFIX, "me", _dt.timedelta(seconds=0))
    lock.acquire()
    lock.renew_if_due()  # a zero TTL is always due: a second generation
    lock.renew_if_due()
    assert len(control_objects(moto_s3)) == 3
    lock.release()
    assert control_objects(moto_s3) == []
