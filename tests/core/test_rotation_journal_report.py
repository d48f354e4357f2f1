"""Core pieces the app's rotation wizard uses (issue 13), without Qt: one journal per
prefix and new key, the interrupted rotations it lists, and the report as HTML."""

from __future__ import annotations

from pathlib import Path

from fixtures.pipelines import RsaKey
from sealcheck.core.keys.pem import PemKey
from sealcheck.core.keys.spec import KeyContext
from sealcheck.core.rotation.engine import NOT_REVOCATION, Outcome, Settings
from sealcheck.core.rotation.journal import (
    Item,
    Journal,
    Start,
    Step,
    begin,
    journal_for,
    key_location,
    pending,
)
from sealcheck.core.rotation.newkey import open_new_key
from sealcheck.core.rotation.report import build
from sealcheck.core.rotation.report_html import to_html


def test_one_journal_per_prefix_and_key_and_the_pending_ones(tmp_path: Path) -> None:
    a = journal_for("b", "db/", "SHA256:aa", tmp_path)
    assert a == journal_for("b", "db/", "SHA256:aa", tmp_path)
    assert a != journal_for("b", "db/", "SHA256:bb", tmp_path)
    assert a != journal_for("b", "other/", "SHA256:aa", tmp_path)
    assert pending(tmp_path) == []
    for path, status in ((a, "running"), (journal_for("b", "x/", "k", tmp_path), "finished")):
        j = Journal(path)
        j.set_meta(status=status, source="s3://b/db/")
        j.close()
    ((path, meta),) = pending(tmp_path)
    assert path == a and meta["source"] == "s3://b/db/"


def test_the_report_as_html_names_every_version_and_says_it_is_not_revocation(
    rsa_key: RsaKey, other_rsa_key: RsaKey
) -> None:
    old = PemKey.from_file(rsa_key.private)
    new = open_new_key(str(other_rsa_key.private), KeyContext(), public_only=False)
    items = [
        Item("db/a.sql.gz", "v1", "db/a.sql.gz.key", "k1", Step.DONE, link_name="db/a.key.rewrap"),
        Item("db/<b>.sql.gz", "v2", None, None, Step.CANNOT, reason="a symmetric backup"),
    ]
    settings = Settings(bucket="b", prefix="db/", new=new, old_keys=[old])
    report = build("run", settings, Outcome(items), [old], started="2026-12-07T00:00:00+00:00")
    page = to_html(report).decode()
    assert NOT_REVOCATION in page
    assert "db/a.key.rewrap" in page and "a symmetric backup" in page
    assert "db/&lt;b&gt;.sql.gz" in page and "<b>.sql" not in page  # escaped
    assert new.fingerprint in page and old.fingerprint in page


def test_the_start_is_recorded_once_and_read_back(tmp_path: Path, monkeypatch) -> None:
    """One record of a run's start (journal.Start) for the CLI and the app: a PEM given by
    a relative path is kept absolute, keyring and token names as given; a resumed run keeps
    its owner and first start; a journal that never said where or to which key is skipped."""
    monkeypatch.chdir(tmp_path)
    start = Start(
        source="s3://b/db/",
        new_key="SHA256:aa",
        new_label="PEM file new.pem",
        scope="all",
        to=key_location("new.pem"),
        public_only=False,
        old=(key_location("keys/old.pem"), key_location("keyring:ops")),
        pkcs11_module="/usr/lib/softhsm/libsofthsm2.so",
        endpoint="http://127.0.0.1:9",
        rules=("_dump.gz:_dump.key",),
    )
    assert start.to == str(tmp_path / "new.pem")
    assert start.old == (str(tmp_path / "keys/old.pem"), "keyring:ops")
    assert key_location("pkcs11:token=t;object=k") == "pkcs11:token=t;object=k"
    j = Journal(tmp_path / "j.sqlite3")
    owner = begin(j, start, "2026-12-07T00:00:00+00:00")
    j.set_meta(status="running")
    assert begin(j, start, "2026-12-08T00:00:00+00:00") == owner  # a resume: same owner
    meta = j.meta()
    j.close()
    assert meta["started"] == "2026-12-07T00:00:00+00:00" and meta["status"] == "running"
    assert Start.read(meta) == start
    assert Start.read({"source": "s3://b/db/", "new_key": "SHA256:aa"}) is None
