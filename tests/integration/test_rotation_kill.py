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
from fixtures.s3servers import Bucket, S3Store
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


def upload(moto_store: S3Store, backups: list[Backup]) -> Bucket:
    bucket = moto_store.bucket()
    for b in backups:
        bucket.put_backup(PREFIX, b)
    return bucket


def killed_run(bucket: Bucket, old: RsaKey, new: RsaKey, point: str, nth: int) -> None:
    """``sealcheck rotate run`` in a subprocess that SIGKILLs itself at ``point``."""
    r = run_cli(
        "rotate",
        "run",
        bucket.uri(PREFIX),
        "--endpoint-url",
        bucket.endpoint,
        "--to",
        str(new.private),
        "--from",
        str(old.private),
        "--versions",
        "all",
        env={**os.environ, CRASH_ENV: f"{point}:{nth}"},
    )
    assert r.returncode == -signal.SIGKILL, (point, nth, r.returncode, r.stdout, r.stderr)


def check_converged(
    store: S3Store, bucket: Bucket, before: list, report: dict, old: RsaKey, new: RsaKey
) -> None:
    """0 keys lost: the producer's objects unchanged, one link per data version written
    once, each version opening with the new key alone and with the old key alone."""
    assert report["complete"]
    # A step the journal lost (torn) is found done in the store: "already rotated".
    assert sum(report["counts"].values()) == 3
    assert set(report["counts"]) <= {"done", "already rotated"}
    assert producer_objects(bucket) == before
    written = links(bucket)
    assert len(written) == 3 and len({k for k, _ in written}) == 3
    for v in report["versions"]:
        data = (v["data_object"], v["data_version_id"])
        new_key = (v["new_key_object"], v["new_key_version_id"])
        assert new_key in written
        opens_with(store, bucket.name, data, new_key, new.private)
        opens_with(
            store, bucket.name, data, (v["old_key_object"], v["old_key_version_id"]), old.private
        )


RUNS = int(os.environ.get("SEALCHECK_KILL_RUNS", "1"))  # the figure: 20


@pytest.mark.slow
@pytest.mark.parametrize("run", range(RUNS))
@pytest.mark.parametrize("point", POINTS)
def test_kill_and_resume_converges(
    point: str, run: int, moto_store: S3Store, backups, rsa_key: RsaKey, other_rsa_key: RsaKey
) -> None:
    rng = random.Random(f"{SEED}-{point}-{run}")
    bucket = upload(moto_store, backups)
    before = producer_objects(bucket)
    nth = 1 if point == "listed" else rng.randint(1, 3 if point != "before-commit" else 12)
    killed_run(bucket, rsa_key, other_rsa_key, point, nth)
    again = rotate_keys("run", bucket, rsa_key, other_rsa_key, "--versions", "all")
    assert again.returncode == 2 and "--resume" in again.stderr  # never silently restarted
    resumed = rotate_keys(
        "run", bucket, rsa_key, other_rsa_key, "--versions", "all", "--resume", "--json"
    )
    assert resumed.returncode == 0, (point, nth, resumed.stdout, resumed.stderr)
    check_converged(moto_store, bucket, before, resumed.json(), rsa_key, other_rsa_key)


def journal_files() -> tuple[Path, Path]:
    (journal,) = (Path(os.environ["SEALCHECK_DATA_DIR"]) / "rotations").glob("*.sqlite3")
    return journal, journal.with_name(journal.name + "-wal")


@pytest.mark.slow
def test_a_torn_journal_write_resumes(
    moto_store: S3Store, backups, rsa_key: RsaKey, other_rsa_key: RsaKey
) -> None:
    """The write-ahead log cut at a random byte (a write torn by the crash): SQLite drops
    the torn commits, the resume redoes those steps, and converges."""
    bucket = upload(moto_store, backups)
    before = producer_objects(bucket)
    killed_run(bucket, rsa_key, other_rsa_key, "written", 2)
    _, wal = journal_files()
    size = wal.stat().st_size
    cut = random.Random(SEED).randint(size // 2, size - 1)
    os.truncate(wal, cut)
    resumed = rotate_keys(
        "run", bucket, rsa_key, other_rsa_key, "--versions", "all", "--resume", "--json"
    )
    assert resumed.returncode == 0, (cut, size, resumed.stdout, resumed.stderr)
    check_converged(moto_store, bucket, before, resumed.json(), rsa_key, other_rsa_key)


@pytest.mark.slow
def test_a_destroyed_journal_is_refused_and_a_fresh_one_converges(
    moto_store: S3Store, backups, rsa_key: RsaKey, other_rsa_key: RsaKey, tmp_path: Path
) -> None:
    """The store describes itself: with the journal gone, a new run finds the links
    already written (by name and fingerprint) and finishes the rest; nothing twice."""
    bucket = upload(moto_store, backups)
    before = producer_objects(bucket)
    killed_run(bucket, rsa_key, other_rsa_key, "written", 2)
    journal, wal = journal_files()
    wal.unlink()
    with journal.open("r+b") as f:
        f.write(b"torn" * 25)  # the header gone: not a database any more
    torn = rotate_keys("run", bucket, rsa_key, other_rsa_key, "--versions", "all", "--resume")
    assert torn.returncode == 2 and "journal cannot be used" in torn.stderr, torn.stderr
    args = ("--versions", "all", "--json", "--journal", str(tmp_path / "fresh.sqlite3"))
    held = rotate_keys("run", bucket, rsa_key, other_rsa_key, *args)
    assert held.returncode == 2 and "--take-over-lock" in held.stderr  # the dead run's lock
    fresh = rotate_keys("run", bucket, rsa_key, other_rsa_key, *args, "--take-over-lock")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    check_converged(moto_store, bucket, before, fresh.json(), rsa_key, other_rsa_key)
