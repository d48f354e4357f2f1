"""The app verifies a rotated backup with the new key alone (issue 13): the job prefers
the re-wrapped key (X.key.rewrap/<data version>/<new key>) written for a key it holds,
and the listing shows no extra backup for it. Real backups (openssl) on moto."""

from __future__ import annotations

from pathlib import Path

from fixtures.gui_flow import open_window, select_version
from fixtures.pipelines import RsaKey
from fixtures.rotation import rotate_keys
from fixtures.s3servers import NIGHTLY, Bucket
from sealcheck.gui.jobs.queue import JobState
from sealcheck.gui.state.settings import KeyChoice, SourceConfig


def test_the_app_verifies_a_rotated_version_with_the_new_key_alone(
    qtbot, tmp_path: Path, moto_s3: Bucket, rsa_key: RsaKey, other_rsa_key: RsaKey, two_nights
) -> None:
    r = rotate_keys("run", moto_s3, rsa_key, other_rsa_key, "--versions", "all")
    assert r.returncode == 0, r.stdout + r.stderr
    source = SourceConfig(
        name="moto",
        bucket=moto_s3.name,
        prefix="db/",
        endpoint_url=moto_s3.endpoint,
        region="us-east-1",
        keys=KeyChoice(key_specs=(str(other_rsa_key.private),)),  # the new key only
    )
    win = open_window(qtbot, tmp_path, [source])
    for index, (data_id, _) in enumerate(two_nights):
        select_version(win, NIGHTLY, index)
        (job,) = win.verify_selected()
        qtbot.waitUntil(lambda: not win.queue.busy, timeout=30000)
        assert job.state is JobState.DONE, job.message
        report = job.report
        assert report is not None and report.source is not None
        assert report.source.version_id == data_id
        assert report.wrapped_key is not None and ".key.rewrap/" in report.wrapped_key.uri
