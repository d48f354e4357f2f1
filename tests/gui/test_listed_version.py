"""A job opens the version the listing produced, and the wrapped-key version paired with
it, through core's one road (storage.locate): nothing flattened to an s3:// string,
nothing re-listed. A delete marker is refused with core's typed error, in the app's words.
Real backups (openssl, gzip) on a real S3 server (moto), versioned bucket."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.gui_flow import open_window, select_version
from fixtures.pipelines import RsaKey, securecircle
from fixtures.s3servers import NIGHTLY, Bucket, ChaosS3, S3Store, status
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.errors import ObjectNotFound
from sealcheck.core.keys.pem import PemKey
from sealcheck.core.records.verdict import Verdict
from sealcheck.core.storage.listing import list_backup_sets
from sealcheck.core.storage.locate import Locator
from sealcheck.core.storage.s3.client import S3Settings, make_client
from sealcheck.core.storage.s3.errors import DELETED
from sealcheck.gui.jobs.queue import JobQueue, JobState
from sealcheck.gui.jobs.spec import JobSpec
from sealcheck.gui.state.results import ResultStore
from sealcheck.gui.state.settings import KeyChoice, SourceConfig

KEY = NIGHTLY


def _source(bucket: Bucket, rsa_key: RsaKey, endpoint: str | None = None) -> SourceConfig:
    return SourceConfig(
        name="moto",
        bucket=bucket.name,
        prefix="db/",
        endpoint_url=endpoint or bucket.endpoint,
        region="us-east-1",
        keys=KeyChoice(key_specs=(str(rsa_key.private),)),
    )


def test_a_job_opens_exactly_the_listed_version_and_its_key_version(
    qtbot, tmp_path: Path, moto_s3: Bucket, chaos: ChaosS3, rsa_key: RsaKey, two_nights
) -> None:
    """Each night verifies with its own key version; the job lists nothing (the S3
    requests go through a logging proxy), and reads only the versions it was given."""
    (old_data, old_key), (new_data, new_key) = two_nights
    assert len({old_data, new_data, old_key, new_key}) == 4
    win = open_window(qtbot, tmp_path, [_source(moto_s3, rsa_key, chaos.endpoint)])
    for index, (data_id, key_id) in enumerate(two_nights):
        chaos.reset()  # the log from here on: the job's requests only
        select_version(win, KEY, index)  # 0: the older night
        (job,) = win.verify_selected()
        qtbot.waitUntil(lambda: not win.queue.busy, timeout=30000)
        # The spec carries what the listing produced, not a URI to parse back.
        listed = job.spec.version
        assert (listed.bucket, listed.data.key, listed.data.version_id) == (
            moto_s3.name,
            KEY,
            data_id,
        )
        assert listed.key is not None and listed.key.version_id == key_id
        assert job.state is JobState.DONE, job.message
        report = job.report
        assert report is not None and report.source is not None
        assert report.wrapped_key is not None
        assert report.source.version_id == data_id
        assert report.wrapped_key.version_id == key_id
        # The job lists nothing. The Backups page's own listing of the source (prefix
        # db/, refreshed when a result comes in) is the browser's, not the job's.
        browser = "prefix=db%2F&"
        assert not [r for r in chaos.log if "versions" in r.query and browser not in r.query]
        for target, vid in ((KEY, data_id), (KEY + ".key", key_id)):
            asked = chaos.requests(f"{moto_s3.name}/{target}", "HEAD")
            asked += chaos.requests(f"{moto_s3.name}/{target}")
            assert asked and all(f"versionId={vid}" in r.query for r in asked)


def test_a_listed_delete_marker_is_refused_with_cores_error(
    qtbot, moto_s3: Bucket, rsa_key: RsaKey, two_nights
) -> None:
    """A version the listing shows as a delete marker is refused, in the app's words,
    with no request for an object that is not there."""
    moto_s3.delete(KEY)
    src = _source(moto_s3, rsa_key)
    client = make_client(src.s3())
    (backup,) = [s for s in list_backup_sets(client, moto_s3.name, "db/") if s.name == KEY]
    marker = next(p for p in backup.pairs if p.data.delete_marker)
    listed = src.listed(marker.data, marker.key)

    with pytest.raises(ObjectNotFound) as caught:
        Locator(S3Settings(endpoint_url=moto_s3.endpoint), client=client).open_listed(listed)
    assert DELETED in caught.value.detail

    results = ResultStore()
    queue = JobQueue(results)
    try:
        spec = JobSpec("verify", listed, s3=src.s3(), title="Verify the delete marker")
        rec = queue.submit(spec, Secrets(keys=[PemKey.from_file(rsa_key.private)]))
        qtbot.waitUntil(lambda: not queue.busy, timeout=30000)
        assert rec.state is JobState.FAILED and rec.message is not None
        assert rec.message.verdict is Verdict.NOT_CHECKED  # no verdict on the backup
        assert rec.message.headline == "The object or version no longer exists"
        assert DELETED in rec.message.details
    finally:
        queue.shutdown()
        queue.deleteLater()
        results.deleteLater()


def test_a_current_version_deleted_after_listing_is_refused_as_deleted(
    qtbot,
    tmp_path: Path,
    moto_store: S3Store,
    chaos: ChaosS3,
    small_dump: Path,
    rsa_key: RsaKey,
) -> None:
    """Written before versioning was enabled, the object is listed as the current version
    (no version id). Deleted after the list was shown, on a store whose 404 does not say
    "delete marker", its job is still refused as deleted: core asks the listing."""
    bucket = moto_store.bucket(versioned=False)
    bucket.put_backup("db/", securecircle(small_dump, tmp_path / "b", rsa_key, name="nightly"))
    moto_store.client.put_bucket_versioning(
        Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"}
    )
    win = open_window(qtbot, tmp_path, [_source(bucket, rsa_key, chaos.endpoint)])
    select_version(win, KEY, 0)
    assert win.targets()[0].data.version_id is None
    bucket.delete(KEY)
    bucket.delete(KEY + ".key")
    chaos.plan(f"{bucket.name}/{KEY}", status(404, "NoSuchKey", on="head"))  # no marker header
    (job,) = win.verify_selected()
    qtbot.waitUntil(lambda: not win.queue.busy, timeout=30000)
    assert not chaos.pending()
    assert job.state is JobState.FAILED and job.message is not None
    assert job.message.verdict is Verdict.NOT_CHECKED
    assert DELETED in job.message.details
