"""Rotation killed with SIGKILL at each journal step, then resumed: it converges, with
0 keys lost and every version opening with the new key alone (issue 13).

The CLI runs in a subprocess that kills itself (SIGKILL, no clean-up of any kind) the
Nth time it reaches a point (``SEALCHECK_ROTATE_KILL_AT=point:N``); N is drawn at
random per point. The resume runs ``sealcheck rotate run --resume``.
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.pipelines import Backup, RsaKey, rds_postgres, securecircle
from fixtures.rotation import PREFIX, links, producer_objects, rotate_keys
from fixtures.s3servers import S3Store
from sealcheck.core.keys.pem import PemKey
from sealcheck.core.plumbing.progress import CancelToken
from sealcheck.core.rotation.journal import CRASH_ENV, Item
from sealcheck.core.rotation.opener import open_version
from sealcheck.core.storage.s3.client import S3Settings, make_client

# Every journal step, the PUT whose answer is not yet journaled, and a commit cut
# short before its fsync (counted over all commits of the run).
POINTS = [
    "listed",
    "fetched",
    "unwrapped",
    "wrapped",
    "put",
    "written",
    "read back",
    "done",
    "before-commit",
]
SEED = int(os.environ.get("SEALCHECK_KILL_SEED", "13"))


@pytest.fixture(scope="module")
def backups(tmp_path_factory: pytest.TempPathFactory, rsa_key: RsaKey) -> list[Backup]:
    from fixtures.dumps import mysql_like

    tmp = tmp_path_factory.mktemp("kill-backups")
    dump = mysql_like(tmp / "dump.sql", rows=500)
    return [
        securecircle(dump, tmp / "a", rsa_key, name="100"),
        securecircle(dump, tmp / "b", rsa_key, name="100"),
        rds_postgres(dump, tmp / "c", rsa_key, stem="nightly"),
    ]


def opens_with(
    store: S3Store, bucket: str, data: tuple[str, str], wrapped: tuple[str, str], key: Path
) -> None:
    """The secret of ``wrapped`` (object, version) unwrapped with ``key`` opens the data
    version (first and last block, as verify checks); raises otherwise."""
    client = make_client(S3Settings(endpoint_url=store.endpoint))
    item = Item(data[0], data[1], wrapped[0], wrapped[1])
    open_version(client, bucket, item, [PemKey.from_file(key)], CancelToken()).wipe()


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_kill_and_resume_converges(
    point: str, moto_store: S3Store, backups, rsa_key: RsaKey, other_rsa_key: RsaKey
) -> None:
    rng = random.Random(f"{SEED}-{point}")
    bucket = moto_store.bucket()
    data_versions = []
    for b in backups:
        ids = bucket.put_backup(PREFIX, b)
        data_versions.append((PREFIX + b.data.name, ids[PREFIX + b.data.name]))
    before = producer_objects(bucket)
    nth = 1 if point == "listed" else rng.randint(1, 3 if point != "before-commit" else 12)
    r = run_cli(
        "rotate",
        "run",
        bucket.uri(PREFIX),
        "--endpoint-url",
        bucket.endpoint,
        "--to",
        str(other_rsa_key.private),
        "--from",
        str(rsa_key.private),
        "--versions",
        "all",
        env={**os.environ, CRASH_ENV: f"{point}:{nth}"},
    )
    assert r.returncode == -signal.SIGKILL, (point, nth, r.returncode, r.stdout, r.stderr)
    again = rotate_keys("run", bucket, rsa_key, other_rsa_key, "--versions", "all")
    assert again.returncode == 2 and "--resume" in again.stderr  # never silently restarted
    resumed = rotate_keys(
        "run", bucket, rsa_key, other_rsa_key, "--versions", "all", "--resume", "--json"
    )
    assert resumed.returncode == 0, (point, nth, resumed.stdout, resumed.stderr)
    assert resumed.json()["counts"] == {"done": 3}
    # Nothing of the producer's changed; one link per data version, each written once.
    assert producer_objects(bucket) == before
    written = links(bucket)
    assert len(written) == 3 and len({k for k, _ in written}) == 3
    for v in resumed.json()["versions"]:
        data = (v["data_object"], v["data_version_id"])
        new = (v["new_key_object"], v["new_key_version_id"])
        old = (v["old_key_object"], v["old_key_version_id"])
        assert new in written
        opens_with(moto_store, bucket.name, data, new, other_rsa_key.private)
        opens_with(moto_store, bucket.name, data, old, rsa_key.private)
    assert sorted(v for _, v in data_versions) == sorted(
        v["data_version_id"] for v in resumed.json()["versions"]
    )
