"""The key-rotation wizard (issue 13) on a versioned moto bucket, with backups made by the
seed pipelines' real openssl commands: every page, a version that cannot be opened shown
in the plan, Pause mid-run and Resume, the report export, and the offer to resume an
interrupted rotation when the app starts."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox, QWizard

from fixtures.gui_flow import bucket_source, open_window
from fixtures.openpgp_pem import openpgp_secret_key
from fixtures.pipelines import (
    GPG_HOMES,
    RsaKey,
    dpb587_gpg,
    export_secret_key,
    gpg_home_with_key,
    make_rsa_key,
    securecircle,
    sh,
)
from fixtures.rotation import (
    PREFIX,
    Scenario,
    after_versions,
    fetch,
    links,
    make_scenario,
    producer_objects,
    rotate,
)
from fixtures.s3servers import Bucket
from sealcheck.core.decrypt.secrets import GpgOptions
from sealcheck.core.keys.spec import KeyContext
from sealcheck.core.records.history import Kind
from sealcheck.core.rotation.engine import NOT_REVOCATION, Rotation, Settings
from sealcheck.core.rotation.gpgresume import ResumeContradicts
from sealcheck.core.rotation.journal import Journal, Start, Step, begin, journal_for
from sealcheck.core.rotation.newkey import open_new_key
from sealcheck.core.storage.s3.client import S3Settings
from sealcheck.gui.state.keysession import KeySession
from sealcheck.gui.state.settings import KeyChoice, SourceConfig
from sealcheck.gui.views.historyview import Scope as HistoryScope
from sealcheck.gui.views.rotation import Page, RotationWizard
from sealcheck.gui.views.rotation.plan import Show
from sealcheck.gui.views.rotation.wizard import Resume, _first, pending_resumes
from sealcheck.gui.views.rotation.work import run_job

WAIT = 60_000


@pytest.fixture
def scenario(moto_s3: Bucket, tmp_path: Path, rsa_key: RsaKey, small_dump: Path) -> Scenario:
    """Four versions of two seed-pipeline backups, and one made for a key nobody here holds."""
    sc = make_scenario(moto_s3, tmp_path, rsa_key, small_dump)
    stranger = make_rsa_key(tmp_path / "stranger", "stranger", 2048)
    moto_s3.put_backup(PREFIX, securecircle(small_dump, tmp_path / "other", stranger, name="42"))
    return sc


def source_of(bucket: Bucket, key: RsaKey) -> SourceConfig:
    return bucket_source(bucket, PREFIX, KeyChoice(key_specs=(str(key.private),)))


def next_enabled(wiz: QWizard) -> bool:
    for b in (QWizard.WizardButton.NextButton, QWizard.WizardButton.CommitButton):
        if wiz.button(b).isVisible() and wiz.button(b).isEnabled():
            return True
    return False


def go_to_plan(qtbot, wiz: RotationWizard, new_key: RsaKey) -> None:
    """Scope (all versions) → old keys → new key proved → plan finished."""
    assert wiz.currentId() == Page.SCOPE
    wiz.scope_page.all.setChecked(True)
    wiz.next()
    assert wiz.currentId() == Page.OLD_KEYS
    qtbot.waitUntil(wiz.old_page.isComplete, timeout=WAIT)
    assert next_enabled(wiz)
    wiz.next()
    assert wiz.currentId() == Page.NEW_KEY
    wiz.new_page.spec.setText(str(new_key.private))
    assert not next_enabled(wiz)  # no proof yet
    wiz.new_page.check.click()
    qtbot.waitUntil(wiz.new_page.isComplete, timeout=WAIT)
    assert "decrypted a random challenge" in wiz.new_page.result.text()
    wiz.next()
    assert wiz.currentId() == Page.PLAN
    qtbot.waitUntil(lambda: wiz.plan_page.isComplete(), timeout=WAIT)


@contextlib.contextmanager
def mid_run(monkeypatch: pytest.MonkeyPatch, qtbot, wiz: RotationWizard) -> Iterator[None]:
    """Start the run (one version in flight), hold it after its first version while the
    body presses Pause or Cancel, then let it reach the pause."""
    wiz.workers = 1
    rotate_one = Rotation._rotate
    first_done, go_on = threading.Event(), threading.Event()

    def hold_after_first(self, journal, item, listed):
        rotate_one(self, journal, item, listed)
        first_done.set()
        go_on.wait(30)

    with monkeypatch.context() as m:
        m.setattr(Rotation, "_rotate", hold_after_first)
        wiz.next()
        assert wiz.currentId() == Page.RUN
        qtbot.waitUntil(first_done.is_set, timeout=WAIT)
        assert not next_enabled(wiz)
        yield
        go_on.set()
        qtbot.waitUntil(lambda: wiz.run_page.paused, timeout=WAIT)


def accept_the_offer(qtbot, win, bucket: Bucket, new_key: RsaKey) -> RotationWizard:
    """What the app does on start: offer the interrupted rotation; Yes opens the wizard on
    it (all versions, the new key as recorded)."""
    box = win.offer_rotation_resume()
    assert isinstance(box, QMessageBox) and bucket.name in box.text()
    box.button(QMessageBox.StandardButton.Yes).click()
    wiz = win.rotation_wizard
    assert wiz is not None and wiz.resume is not None
    assert wiz.scope_page.all.isChecked()
    assert wiz.new_page.spec.text() == str(new_key.private)
    return wiz


def prove_and_plan(qtbot, wiz: RotationWizard) -> None:
    """From the old keys page: the new key proved again, then the plan finished."""
    wiz.next()
    wiz.new_page.check.click()
    qtbot.waitUntil(wiz.new_page.isComplete, timeout=WAIT)
    wiz.next()
    qtbot.waitUntil(lambda: wiz.plan_page.isComplete(), timeout=WAIT)


def decrypts_with(key: RsaKey, body: bytes, tmp_path: Path) -> bytes:
    f = tmp_path / "link.bin"
    f.write_bytes(body)
    return subprocess.run(
        ["openssl", "rsautl", "-decrypt", "-inkey", str(key.private), "-in", str(f)],
        capture_output=True,
        check=True,
    ).stdout


def test_every_page_pause_resume_and_report(
    qtbot,
    qtmodeltester,
    tmp_path: Path,
    scenario: Scenario,
    rsa_key: RsaKey,
    other_rsa_key: RsaKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = scenario.bucket
    before = producer_objects(bucket)
    keys = KeySession(lambda _p: None, lambda _p: None)
    wiz = RotationWizard([source_of(bucket, rsa_key)], keys)
    qtbot.addWidget(wiz)
    wiz.show()

    # The old keys page lists the source's PEM key; the new key page refuses a public key
    # alone unless the public-only choice is made, said plainly.
    wiz.next()
    qtbot.waitUntil(wiz.old_page.isComplete, timeout=WAIT)
    assert len(wiz.old_page.chosen()) == 1
    assert str(rsa_key.private) in wiz.old_page.list.item(0).text()
    wiz.next()
    wiz.new_page.spec.setText(str(other_rsa_key.public))
    wiz.new_page.check.click()
    assert "private half" in wiz.new_page.result.text() and not wiz.new_page.isComplete()
    wiz.new_page.public_only.setChecked(True)
    assert wiz.new_page.public_warning.isVisibleTo(wiz)
    wiz.new_page.public_only.setChecked(False)
    wiz.back()
    wiz.back()

    go_to_plan(qtbot, wiz, other_rsa_key)
    model, proxy = wiz.plan_page.model, wiz.plan_page.proxy
    qtmodeltester.check(model)
    qtmodeltester.check(proxy)
    assert model.rowCount() == 5
    assert links(bucket) == []  # the plan wrote nothing
    wiz.plan_page.outcome_filter.setCurrentIndex(list(Show).index(Show.CANNOT))
    assert proxy.rowCount() == 1
    cannot = proxy.index(0, 2).data()
    assert proxy.index(0, 0).data() == PREFIX + "42.sql.gz"
    assert cannot.startswith("Cannot be rotated") and "no held key" in cannot
    wiz.plan_page.outcome_filter.setCurrentIndex(list(Show).index(Show.ROTATE))
    wiz.plan_page.text.setText("nightly")
    assert proxy.rowCount() == 2
    wiz.plan_page.text.setText("")

    with mid_run(monkeypatch, qtbot, wiz):
        wiz.run_page.pause.click()
    assert not wiz.run_page.isComplete() and wiz.run_page.resume.isEnabled()
    assert "nothing is half-written" in wiz.run_page.status.text()
    assert not wiz.button(QWizard.WizardButton.BackButton).isEnabled()  # what is written stays
    assert len(links(bucket)) == 1
    (resume,) = pending_resumes()
    assert resume.to == str(other_rsa_key.private) and resume.source.prefix == PREFIX

    wiz.run_page.resume.click()
    qtbot.waitUntil(wiz.run_page.isComplete, timeout=WAIT)
    assert next_enabled(wiz)
    assert pending_resumes() == []
    result = wiz.run_page.result
    assert result is not None
    assert result.report["counts"] == {"done": 4, "cannot": 1}
    assert [i.step for i in result.outcome.items].count(Step.DONE) == 4
    assert producer_objects(bucket) == before  # nothing replaced, nothing deleted
    # Each re-wrapped key opens with the new key alone, by the runbooks' openssl command.
    secrets = {s for _, _, _, s in scenario.versions}
    got = {decrypts_with(other_rsa_key, fetch(bucket, k, v), tmp_path) for k, v in links(bucket)}
    assert got == secrets

    wiz.next()
    assert wiz.currentId() == Page.RESULT
    assert "not revocation" in wiz.result_page.revocation.text()
    assert "42.sql.gz" in wiz.result_page.text.text()
    wiz.result_page.export(tmp_path / "r.json", "json")
    wiz.result_page.export(tmp_path / "r.html", "html")
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["counts"] == {"done": 4, "cannot": 1} and len(report["versions"]) == 5
    page = (tmp_path / "r.html").read_text()
    assert NOT_REVOCATION in page and PREFIX + "42.sql.gz" in page
    wiz.accept()


def test_the_app_offers_to_resume_an_interrupted_rotation(
    qtbot,
    tmp_path: Path,
    scenario: Scenario,
    rsa_key: RsaKey,
    other_rsa_key: RsaKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = scenario.bucket
    win = open_window(qtbot, tmp_path, [source_of(bucket, rsa_key)])
    assert win.offer_rotation_resume() is None  # nothing pending
    win.rotate_act.trigger()  # Keys → Rotate key pair…
    wiz = win.rotation_wizard
    assert wiz is not None and wiz.isVisible()
    go_to_plan(qtbot, wiz, other_rsa_key)
    with mid_run(monkeypatch, qtbot, wiz):
        wiz.reject()  # Cancel while it runs is Pause: the wizard stays open
    assert wiz.isVisible()
    wiz.reject()  # now it closes; the rotation stays resumable
    qtbot.waitUntil(lambda: win.rotation_wizard is None, timeout=5000)
    assert len(links(bucket)) == 1

    wiz = accept_the_offer(qtbot, win, bucket, other_rsa_key)
    assert wiz.scope_page.banner.isVisibleTo(wiz)
    wiz.next()
    qtbot.waitUntil(wiz.old_page.isComplete, timeout=WAIT)
    prove_and_plan(qtbot, wiz)
    wiz.plan_page.outcome_filter.setCurrentIndex(list(Show).index(Show.ALREADY))
    assert wiz.plan_page.proxy.rowCount() == 1
    wiz.next()
    qtbot.waitUntil(wiz.run_page.isComplete, timeout=WAIT)
    assert len(links(bucket)) == 4
    assert wiz.run_page.result is not None
    assert wiz.run_page.result.report["counts"] == {"done": 4, "cannot": 1}
    wiz.next()
    wiz.accept()
    qtbot.waitUntil(lambda: win.rotation_wizard is None, timeout=5000)


def test_the_app_offers_to_resume_a_rotation_the_cli_started(
    qtbot,
    tmp_path: Path,
    scenario: Scenario,
    rsa_key: RsaKey,
    other_rsa_key: RsaKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``sealcheck rotate run`` paused by Ctrl-C records its start as the app's runs do
    (journal.Start: the new key given by a relative path kept absolute, its --from key):
    the app offers to resume it, opens that old key and finishes the same journal."""
    bucket = scenario.bucket
    monkeypatch.chdir(tmp_path)
    given = tmp_path / "given-old.pem"  # not the saved source's key file
    given.write_bytes(rsa_key.private.read_bytes())
    new_rel = Path(os.path.relpath(other_rsa_key.private, tmp_path))
    with monkeypatch.context() as m:
        after_versions(m, 1, lambda: os.kill(os.getpid(), signal.SIGINT))
        r = rotate("run", bucket, "--to", str(new_rel), "--from", given.name, "--versions",
                   "all", "--workers", "1")  # fmt: skip
    assert r.returncode == 130, r.stdout + r.stderr
    assert len(links(bucket)) == 1

    win = open_window(qtbot, tmp_path, [source_of(bucket, rsa_key)])
    wiz = accept_the_offer(qtbot, win, bucket, other_rsa_key)
    assert wiz.scope_page.prefix.text() == PREFIX
    wiz.next()
    qtbot.waitUntil(wiz.old_page.isComplete, timeout=WAIT)
    assert str(given) in wiz.old_page.list.item(0).text()  # the CLI's --from key
    prove_and_plan(qtbot, wiz)
    wiz.next()
    qtbot.waitUntil(wiz.run_page.isComplete, timeout=WAIT)
    result = wiz.run_page.result
    assert result is not None and result.report["counts"] == {"done": 4, "cannot": 1}
    assert result.journal == wiz.resume.journal  # the CLI's journal, carried on
    assert len(links(bucket)) == 4 and pending_resumes() == []
    wiz.next()
    assert "Recorded in the history as entry #" in wiz.result_page.text.text()
    wiz.accept()
    qtbot.waitUntil(lambda: win.rotation_wizard is None, timeout=5000)
    # The History page shows the run (the CLI's cancelled run recorded nothing).
    win.tabs.setCurrentWidget(win.history_view)
    win.history_view.scope.setCurrentIndex(list(HistoryScope).index(HistoryScope.SOURCE))
    hv = win.history_view
    qtbot.waitUntil(lambda: not hv.loading and not hv._reload_timer.isActive(), timeout=10_000)
    rows = [hv.model.entry(r) for r in range(hv.model.rowCount())]
    assert [e.kind for e in rows] == [Kind.ROTATION]
    shown = [hv.model.index(0, c).data() for c in range(hv.model.columnCount())]
    assert shown[1] == "key rotation" and shown[4] == "NOT complete (1 cannot, 4 done)"


def test_gpg_and_cms_backups_in_the_wizard(
    qtbot, moto_s3: Bucket, tmp_path: Path, rsa_key: RsaKey, small_dump: Path
) -> None:
    """A dpb587 gpg backup (opened with the source's OpenPGP key file) and an openssl cms
    backup (with its PEM key), rotated to a new OpenPGP key: both get a recipient for it,
    and gpg --decrypt with the new secret key alone reads the gpg one byte for byte."""
    old_home = gpg_home_with_key(tmp_path / "old", "old@example.com")
    new_home = gpg_home_with_key(tmp_path / "new", "new@example.com")
    old_gpg = export_secret_key(old_home, tmp_path / "old.asc", "old@example.com")
    new_gpg = export_secret_key(new_home, tmp_path / "new.asc", "new@example.com")
    gpg_backup = dpb587_gpg(small_dump, tmp_path / "g", old_home, email="old@example.com")
    moto_s3.put(f"{PREFIX}db.sql.gz.enc", gpg_backup.data)
    sh(
        f"openssl req -x509 -new -key {rsa_key.private} -subj /CN=old -days 30 -out old.crt\n"
        f"gzip -c {small_dump} | openssl cms -encrypt -binary -aes-256-cbc -outform DER "
        "-out db2.sql.gz.p7m -recip old.crt",
        tmp_path,
    )
    moto_s3.put(f"{PREFIX}db2.sql.gz.p7m", tmp_path / "db2.sql.gz.p7m")
    keys = KeyChoice(key_specs=(str(rsa_key.private),), gpg_key_file=str(old_gpg))
    src = dataclasses.replace(source_of(moto_s3, rsa_key), keys=keys)
    wiz = RotationWizard([src], KeySession(lambda _p: None, lambda _p: None))
    qtbot.addWidget(wiz)
    wiz.show()
    wiz.next()
    qtbot.waitUntil(wiz.old_page.isComplete, timeout=WAIT)
    assert str(old_gpg) in wiz.old_page.status.text()
    wiz.next()
    wiz.new_page.spec.setText(str(new_gpg))
    wiz.new_page.check.click()
    qtbot.waitUntil(wiz.new_page.isComplete, timeout=WAIT)
    wiz.next()
    qtbot.waitUntil(lambda: wiz.plan_page.isComplete(), timeout=WAIT)
    assert wiz.plan_page.model.rowCount() == 2
    wiz.next()
    qtbot.waitUntil(wiz.run_page.isComplete, timeout=WAIT)
    result = wiz.run_page.result
    assert result is not None and result.report["counts"] == {"done": 2}
    ((gpg_link, vid),) = [x for x in links(moto_s3) if ".enc.rewrap/" in x[0]]
    home = tmp_path / "fresh"
    home.mkdir(mode=0o700)
    GPG_HOMES.append(home)
    subprocess.run(["gpg", "--batch", "--homedir", str(home), "--import", str(new_gpg)],
                   capture_output=True, check=True)  # fmt: skip
    out = subprocess.run(["gpg", "--batch", "--homedir", str(home), "--decrypt"],
                         input=fetch(moto_s3, gpg_link, vid), capture_output=True, check=True)  # fmt: skip
    producer = subprocess.run(
        ["gpg", "--batch", "--homedir", str(old_home), "--decrypt", str(gpg_backup.data)],
        capture_output=True, check=True,
    )  # fmt: skip
    assert out.stdout == producer.stdout
    wiz.accept()


def test_a_resume_opens_the_runs_openpgp_key(tmp_path: Path) -> None:
    """A run over gpg backups records its --gpg-key in the journal's
    start: the app's resume opens that key file, before the saved source's keys."""
    start = Start(
        source="s3://bucket/db/", new_key="SHA256:00", new_label="new", scope="all",
        to=str(tmp_path / "new.pem"), public_only=False,
        gpg_key=str(tmp_path / "old.sec.asc"), gpg_fingerprint="0123ABCD",
    )  # fmt: skip
    resume = Resume.of(tmp_path / "journal.sqlite3", start.meta())
    assert resume is not None
    assert resume.source.keys.gpg_key_file == str(tmp_path / "old.sec.asc")
    saved = SourceConfig(name="saved", bucket="bucket", prefix="db/")
    assert _first([saved], resume.source)[0] == resume.source


def test_the_apps_run_refuses_another_openpgp_key_than_the_journals(
    tmp_path: Path, rsa_key: RsaKey, other_rsa_key: RsaKey
) -> None:
    """The app's run of an interrupted rotation (the CLI's or its own) with another
    OpenPGP key file than the journal's start names is refused before anything is
    written or recorded; the journal stays as it was."""
    old_asc, other_asc = tmp_path / "old.asc", tmp_path / "other.asc"
    old_asc.write_bytes(openpgp_secret_key(rsa_key.private.read_bytes()))
    other_asc.write_bytes(openpgp_secret_key(other_rsa_key.private.read_bytes()))
    new = open_new_key(str(other_rsa_key.private), KeyContext(), public_only=False)
    settings = Settings(bucket="bucket", prefix=PREFIX, new=new, old_keys=[],
                        gpg=GpgOptions(key_file=old_asc))  # fmt: skip
    start = settings.start(S3Settings(), to=str(other_rsa_key.private), pkcs11_module=None)
    assert start.gpg_fingerprint and start.gpg_key == str(old_asc)
    folder = tmp_path / "journals"
    journal = Journal(journal_for("bucket", PREFIX, new.fingerprint, folder))
    try:
        begin(journal, start, "2026-01-01T00:00:00+00:00")
        journal.set_meta(status="running")
        before = journal.meta()
    finally:
        journal.close()
    other = dataclasses.replace(settings, gpg=GpgOptions(key_file=other_asc))
    with pytest.raises(ResumeContradicts) as refused:
        run_job(None, other, S3Settings(), other.start(S3Settings(), to=start.to,
                pkcs11_module=None), folder)  # fmt: skip
    assert start.gpg_fingerprint in refused.value.message() and str(other_asc) in str(refused.value)
    journal = Journal(journal_for("bucket", PREFIX, new.fingerprint, folder))
    try:
        assert journal.meta() == before
    finally:
        journal.close()
