"""Rotation paused by Ctrl-C (exit 130) and resumed, a producer writing a backup while a
rotation runs, and a listing over many pages (issue 13)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from fixtures.pipelines import RsaKey, securecircle
from fixtures.rotation import (
    PREFIX,
    after_versions,
    links,
    make_scenario,
    producer_objects,
    rotate_keys,
)
from fixtures.s3servers import Bucket
from sealcheck.core.keys.pem import PemKey
from sealcheck.core.keys.spec import KeyContext
from sealcheck.core.rotation.engine import Rotation, Settings
from sealcheck.core.rotation.journal import Journal
from sealcheck.core.rotation.newkey import open_new_key
from sealcheck.core.rotation.scope import Scope
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


def test_many_backup_sets_across_listing_pages(
    moto_s3: Bucket, tmp_path: Path, rsa_key: RsaKey, other_rsa_key: RsaKey, small_dump: Path
) -> None:
    b = securecircle(small_dump, tmp_path / "sc", rsa_key, name="0")
    assert b.wrapped_key is not None
    sets = 13
    for n in range(sets):
        moto_s3.put(f"{PREFIX}{n}.sql.gz", b.data)
        moto_s3.put(f"{PREFIX}{n}.sql.gz.key", b.wrapped_key)
    before = producer_objects(moto_s3)
    settings = Settings(
        bucket=moto_s3.name,
        prefix=PREFIX,
        new=open_new_key(str(other_rsa_key.private), KeyContext(), public_only=False),
        old_keys=[PemKey.from_file(rsa_key.private)],
        scope=Scope.CURRENT,
        page_size=3,  # 26 objects: 9 pages
    )
    client = make_client(S3Settings(endpoint_url=moto_s3.endpoint))
    outcome = Rotation(client, settings).run(Journal(tmp_path / "j.sqlite3"), "pages")
    assert outcome.counts() == {"done": sets} and outcome.complete
    assert len(links(moto_s3)) == sets and producer_objects(moto_s3) == before
