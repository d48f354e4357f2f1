"""Rotation paused by Ctrl-C (exit 130) and resumed, a producer writing a backup while a
rotation runs, and a listing over many pages (issue 13)."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fixtures.pipelines import Backup, RsaKey, securecircle
from fixtures.rotation import (
    PREFIX,
    after_versions,
    links,
    make_scenario,
    producer_objects,
    rotate_keys,
)
from fixtures.s3scenarios import sealcheck
from fixtures.s3servers import Bucket
from sealcheck.core.keys.pem import PemKey
from sealcheck.core.keys.spec import KeyContext
from sealcheck.core.rotation.engine import Rotation, Settings
from sealcheck.core.rotation.journal import Journal
from sealcheck.core.rotation.newkey import open_new_key
from sealcheck.core.rotation.scope import Scope
from sealcheck.core.storage.listing import iter_version_pages
from sealcheck.core.storage.s3.client import S3Settings, make_client


@pytest.fixture
def scenario(moto_s3: Bucket, tmp_path: Path, rsa_key: RsaKey, small_dump: Path) -> Bucket:
    """Four versions of two seed-pipeline backups (fixtures.rotation.make_scenario)."""
    make_scenario(moto_s3, tmp_path, rsa_key, small_dump)
    return moto_s3


def test_ctrl_c_pauses_and_resume_finishes(
    scenario: Bucket, rsa_key: RsaKey, other_rsa_key: RsaKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3 = scenario
    with monkeypatch.context() as m:
        # A real SIGINT, as a terminal's Ctrl-C sends, after the first version.
        after_versions(m, 1, lambda: os.kill(os.getpid(), signal.SIGINT))
        # One worker: with more, the versions already in flight would finish too.
        r = rotate_keys(
            "run", moto_s3, rsa_key, other_rsa_key, "--versions", "all", "--workers", "1"
        )
    assert r.returncode == 130, r.stdout + r.stderr
    assert "--resume" in r.stderr and "nothing is half-written" in r.stderr
    assert len(links(moto_s3)) == 1
    again = rotate_keys("run", moto_s3, rsa_key, other_rsa_key, "--versions", "all")
    assert again.returncode == 2 and "pass --resume" in again.stderr
    done = rotate_keys(
        "run", moto_s3, rsa_key, other_rsa_key, "--versions", "all", "--resume", "--json"
    )
    assert done.returncode == 0, done.stderr
    assert done.json()["counts"] == {"done": 4}
    assert len(links(moto_s3)) == 4


def test_a_backup_written_during_a_rotation_is_rotated_by_the_next_run(
    scenario: Bucket,
    tmp_path: Path,
    rsa_key: RsaKey,
    other_rsa_key: RsaKey,
    small_dump: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moto_s3 = scenario
    late = securecircle(small_dump, tmp_path / "late", rsa_key, name="1567744961188141183")
    with monkeypatch.context() as m:
        after_versions(m, 1, lambda: moto_s3.put_backup(PREFIX, late))
        r = rotate_keys("run", moto_s3, rsa_key, other_rsa_key, "--versions", "all", "--json")
    assert r.returncode == 0, r.stderr
    assert r.json()["counts"] == {"done": 4}  # what the listing saw; the late one is new
    plan = rotate_keys("plan", moto_s3, rsa_key, other_rsa_key, "--versions", "all", "--json")
    results = sorted(v["result"] for v in plan.json()["versions"])
    assert results == ["already rotated"] * 4 + ["planned"]
    again = rotate_keys("run", moto_s3, rsa_key, other_rsa_key, "--versions", "all", "--json")
    assert again.returncode == 0 and again.json()["counts"] == {"done": 5}
    assert len(links(moto_s3)) == 5


def rotate_in_process(
    bucket: Bucket, old: RsaKey, new: RsaKey, scope: Scope, page_size: int, journal: Path
):
    """A run through core's API (the CLI has no page-size option), ``page_size`` versions
    per ListObjectVersions page."""
    settings = Settings(
        bucket=bucket.name,
        prefix=PREFIX,
        new=open_new_key(str(new.private), KeyContext(), public_only=False),
        old_keys=[PemKey.from_file(old.private)],
        scope=scope,
        page_size=page_size,
    )
    client = make_client(S3Settings(endpoint_url=bucket.endpoint))
    return Rotation(client, settings).run(Journal(journal), "pages")


def upload_sets(bucket: Bucket, backup: Backup, sets: int, runs: int = 1) -> list[str]:
    """``sets`` backup sets of ``backup``'s objects, each uploaded ``runs`` times (data,
    then its wrapped key); the data version ids."""
    assert backup.wrapped_key is not None
    key = backup.wrapped_key
    data, wrapped = backup.data.read_bytes(), key.read_bytes()

    def one(n: int) -> str:
        vid = str(bucket.put(f"{PREFIX}{n}.sql.gz", data))
        bucket.put(f"{PREFIX}{n}.sql.gz.key", wrapped)
        return vid

    out: list[str] = []
    with ThreadPoolExecutor(16) as pool:  # sets at once; each set's run stays in order
        for _ in range(runs):
            out += pool.map(one, range(sets))
    return out


def test_many_backup_sets_across_listing_pages(
    moto_s3: Bucket, tmp_path: Path, rsa_key: RsaKey, other_rsa_key: RsaKey, small_dump: Path
) -> None:
    sets = 13
    upload_sets(moto_s3, securecircle(small_dump, tmp_path / "sc", rsa_key, name="0"), sets)
    before = producer_objects(moto_s3)
    # 26 objects, 3 a page: 9 pages.
    outcome = rotate_in_process(
        moto_s3, rsa_key, other_rsa_key, Scope.CURRENT, 3, tmp_path / "j.sqlite3"
    )
    assert outcome.counts() == {"done": sets} and outcome.complete
    assert len(links(moto_s3)) == sets and producer_objects(moto_s3) == before


@pytest.mark.slow
def test_1201_backup_sets_over_three_listing_pages(
    moto_s3: Bucket, tmp_path: Path, rsa_key: RsaKey, other_rsa_key: RsaKey, small_dump: Path
) -> None:
    """1,201 sets, 2,402 objects: three ListObjectVersions pages of the store's own 1,000
    (no smaller page size), rotated by the CLI; every one once, nothing else touched."""
    sets = 1201
    backup = securecircle(small_dump, tmp_path / "sc", rsa_key, name="0")
    data_versions = upload_sets(moto_s3, backup, sets)
    before = producer_objects(moto_s3)
    r = rotate_keys("run", moto_s3, rsa_key, other_rsa_key, "--json")
    assert r.returncode == 0, r.stderr
    report = r.json()
    assert report["counts"] == {"done": sets} and report["complete"]
    assert sorted(v["data_version_id"] for v in report["versions"]) == sorted(data_versions)
    written = links(moto_s3)
    assert len(written) == sets and len({k for k, _ in written}) == sets
    assert producer_objects(moto_s3) == before
    for n in (0, sets - 1):  # the first and the last set open with the new key alone
        v = sealcheck(
            "verify", moto_s3.uri(f"{PREFIX}{n}.sql.gz"), "--key", str(other_rsa_key.private),
            "--endpoint-url", moto_s3.endpoint, "--no-history",
        )  # fmt: skip
        assert v.returncode == 0, v.stdout


@pytest.mark.seaweedfs
def test_seaweedfs_versions_its_pagination_drops_are_rotated(
    seaweed_s3: Bucket, tmp_path: Path, rsa_key: RsaKey, other_rsa_key: RsaKey, small_dump: Path
) -> None:
    """SeaweedFS 4.48's paginated ListObjectVersions drops versions of X when X has several
    versions and X.key exists; the rotation re-lists them as ``sealcheck list`` does
    (listing.iter_complete_pages), so every version of every set is rotated."""
    sets = 6
    backup = securecircle(small_dump, tmp_path / "sc", rsa_key, name="0")
    data_versions = upload_sets(seaweed_s3, backup, sets, runs=3)  # 36 objects
    before = producer_objects(seaweed_s3)
    raw = [
        v
        for page in iter_version_pages(
            seaweed_s3.store.client, seaweed_s3.name, PREFIX, page_size=3
        )
        for v in page
    ]
    assert len(raw) < 6 * sets  # the store's own pagination drops some (the bug guarded)
    outcome = rotate_in_process(
        seaweed_s3, rsa_key, other_rsa_key, Scope.ALL, 3, tmp_path / "j.sqlite3"
    )
    assert outcome.counts() == {"done": 3 * sets} and outcome.complete
    assert sorted(i.data_version for i in outcome.items) == sorted(data_versions)
    assert len(links(seaweed_s3)) == 3 * sets and producer_objects(seaweed_s3) == before
