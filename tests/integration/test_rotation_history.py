"""A rotation run's report is a record of the history (issue 13): kind ``rotation``, in
the hash chain, shown by ``sealcheck history``, exported and verified as evidence, and
never taken for a version's verdict."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fixtures.common import run_cli
from fixtures.keyring_session import KeyringSession
from fixtures.pipelines import RsaKey
from fixtures.rotation import PREFIX, make_scenario, rotate_keys
from fixtures.s3scenarios import sealcheck
from fixtures.s3servers import Bucket
from sealcheck.core.records.history import History, Kind


def test_a_run_is_recorded_shown_and_exported(
    moto_s3: Bucket,
    tmp_path: Path,
    rsa_key: RsaKey,
    other_rsa_key: RsaKey,
    small_dump: Path,
    keyring_session: KeyringSession,
) -> None:
    make_scenario(moto_s3, tmp_path, rsa_key, small_dump)
    plan = rotate_keys("plan", moto_s3, rsa_key, other_rsa_key)
    assert plan.returncode == 0
    assert History.default().entries(rotations=True) == []  # a dry run records nothing
    quiet = rotate_keys("run", moto_s3, rsa_key, other_rsa_key, "--no-history")
    assert quiet.returncode == 0 and History.default().entries(rotations=True) == []
    r = rotate_keys("run", moto_s3, rsa_key, other_rsa_key, "--versions", "all", "--json")
    assert r.returncode == 0, r.stderr
    report = r.json()

    hist = History.default()
    (e,) = hist.entries(rotations=True)
    assert e.kind is Kind.ROTATION and e.ok and e.exit_code == 0
    assert e.subject.uri == moto_s3.uri(PREFIX)
    assert json.loads(e.result_json) == report  # every version, as the report has it
    assert hist.check_chain() == []
    # Not a version's verdict: the per-version readers (coverage, --latest) skip it.
    assert hist.entries() == [] and hist.latest_by_version() == {}

    shown = sealcheck("history")
    assert shown.returncode == 0
    (line,) = shown.stdout.splitlines()
    assert f"#{e.id}" in line and "rotation" in line and moto_s3.uri(PREFIX) in line
    assert "complete (4 done)" in line
    as_json = sealcheck("history", "--json").json()["entries"]
    assert [x["kind"] for x in as_json] == ["rotation"]

    # Evidence: signed with the key in custody (a real gnome-keyring), verified offline.
    env = {**os.environ, **keyring_session.env}
    for fmt in ("json", "html", "pdf"):
        out = tmp_path / f"evidence.{fmt}"
        x = run_cli("report", "export", str(e.id), "--format", fmt, "-o", str(out), env=env)
        assert x.returncode == 0, x.stdout + x.stderr
        v = run_cli("report", "verify", str(out), env=env)
        assert v.returncode == 0 and "report intact" in v.stdout, v.stdout
    page = (tmp_path / "evidence.html").read_text()
    assert "key rotation" in page and report["new_key"]["spki_sha256"] in page
