"""The app's wizard resumes a gpg rotation that ``sealcheck rotate run --gpg-homedir DIR``
started and a SIGKILL interrupted (issue 13 follow-up): its Old keys page shows what the
journal recorded (the folder; a key file's primary-key fingerprint; never a passphrase),
uses it, takes the key's passphrase through the app's secret prompt (kept nowhere), and
refuses another folder or key in the app's words. Real gpg homes, a versioned moto
bucket, backups made by the dpb587 pipeline's gpg command; every folder the test's own."""

from __future__ import annotations

import itertools
import os
import shlex
import signal
import subprocess
from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from fixtures.common import run_cli
from fixtures.gui_flow import bucket_source, open_window, type_secret
from fixtures.openpgp_pem import openpgp_secret_key
from fixtures.pipelines import GPG_HOMES, RsaKey, dpb587_gpg, sh
from fixtures.rotation import PREFIX, links
from fixtures.s3servers import Bucket
from sealcheck.core.decrypt.secrets import GpgOptions
from sealcheck.core.keys.spec import KeyContext
from sealcheck.core.rotation.engine import Settings
from sealcheck.core.rotation.journal import CRASH_ENV, Journal, begin, journal_for, journals
from sealcheck.core.rotation.newkey import open_new_key
from sealcheck.core.storage.s3.client import S3Settings
from sealcheck.gui.state.keysession import KeySession
from sealcheck.gui.state.settings import KeyChoice
from sealcheck.gui.views.rotation import Page, RotationWizard
from sealcheck.gui.views.rotation.wizard import Resume, pending_resumes

WAIT = 60_000
PASSPHRASE = "old-gpg-home-passphrase"
EMAIL = "old@example.com"


def protected_home(folder: Path) -> Path:
    """A gpg home holding a passphrase-protected RSA key whose agent cannot ask for the
    passphrase itself (no pinentry): only a passphrase given to gpg opens it."""
    home = folder / "gnupg"
    GPG_HOMES.append(home)
    home.mkdir(parents=True, mode=0o700)
    (home / "gpg-agent.conf").write_text("pinentry-program /bin/false\n")
    params = folder / "keyparams"
    params.write_text(
        "Key-Type: RSA\nKey-Length: 2048\nSubkey-Type: RSA\nSubkey-Length: 2048\n"
        f"Name-Email: {EMAIL}\nPassphrase: {PASSPHRASE}\nExpire-Date: 0\n%commit\n"
    )
    sh(f"gpg --batch --homedir {shlex.quote(str(home))} --gen-key {params} 2>/dev/null", folder)
    params.unlink()  # it holds the passphrase, which no file here may hold (checked below)
    return home


def gpg(home: Path, *args: str, **kw) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["gpg", "--batch", "--homedir", str(home), *args],
                          capture_output=True, check=False, **kw)  # fmt: skip


def primary_fingerprint(home: Path) -> str:
    listed = gpg(home, "--with-colons", "--list-secret-keys").stdout.decode()
    lines = listed.splitlines()
    return next(f.split(":")[9] for s, f in itertools.pairwise(lines) if s.startswith("sec:"))


def test_the_wizard_resumes_a_cli_rotation_started_with_a_gpg_homedir(
    qtbot, tmp_path: Path, moto_s3: Bucket, other_rsa_key: RsaKey, small_dump: Path
) -> None:
    home = protected_home(tmp_path / "old")
    for name in ("a.sql.gz.enc", "b.sql.gz.enc"):
        backup = dpb587_gpg(small_dump, tmp_path / name, home, email=EMAIL, name=name)
        moto_s3.put(f"{PREFIX}{name}", backup.data)
    # The user's agent holds the passphrase while the CLI runs (the CLI gives gpg none
    # with --gpg-homedir); the run is SIGKILLed after its first version.
    unlock = gpg(home, "--pinentry-mode", "loopback", "--passphrase-fd", "0", "--decrypt",
                 str(tmp_path / "a.sql.gz.enc" / "a.sql.gz.enc"), input=PASSPHRASE.encode())  # fmt: skip
    assert unlock.returncode == 0, unlock.stderr
    killed = run_cli(
        "rotate", "run", moto_s3.uri(PREFIX), "--endpoint-url", moto_s3.endpoint,
        "--to", str(other_rsa_key.private), "--gpg-homedir", str(home),
        "--versions", "all", "--workers", "1", env={**os.environ, CRASH_ENV: "done:1"},
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert len(links(moto_s3)) == 1
    (journal,) = journals()
    # A new session: the agent has forgotten the passphrase and cannot ask for it.
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=True)
    assert gpg(home, "--decrypt", str(tmp_path / "b.sql.gz.enc" / "b.sql.gz.enc")).returncode

    # The app offers the CLI's rotation; its Old keys page shows and uses the folder.
    win = open_window(qtbot, tmp_path, [bucket_source(moto_s3, PREFIX, KeyChoice())])
    asked: list[str] = []
    box = win.offer_rotation_resume()
    assert isinstance(box, QMessageBox)
    box.button(QMessageBox.StandardButton.Yes).click()
    wiz = win.rotation_wizard
    assert wiz is not None and wiz.resume is not None
    wiz.next()
    page = wiz.old_page
    qtbot.waitUntil(page.isComplete, timeout=WAIT)
    box_ = page.gpg
    assert box_.home.text() == str(home)
    recorded = box_.recorded_label.text()
    assert str(home) in recorded and "keeps no passphrase" in recorded
    assert box_.recorded_label.isVisibleTo(wiz)
    fpr = primary_fingerprint(home)
    assert fpr in box_.home_keys.text()
    assert "none given" in box_.passphrase_state.text()

    # Another folder contradicts the journal: refused in the app's words, Next disabled.
    box_.home.setText(str(tmp_path / "another-home"))
    assert "This does not match the interrupted rotation" in box_.problem.text()
    assert str(journal) in box_.problem.text() and not page.isComplete()
    assert box_.home_keys.text() == ""  # another folder's keys are not shown for it
    box_.home.setText(str(home))
    assert box_.problem.text() == "" and page.isComplete()
    box_.home.editingFinished.emit()  # typed: its secret keys listed again
    qtbot.waitUntil(lambda: fpr in box_.home_keys.text(), timeout=WAIT)

    # The passphrase, through the app's own prompt; held by the wizard only.
    type_secret(PASSPHRASE, asked)
    box_.ask_button.click()
    assert asked == ["Key passphrase"]
    assert "given" in box_.passphrase_state.text()
    opts = box_.options()
    assert opts is not None and opts.homedir == home and opts.key_file is None

    wiz.next()
    wiz.new_page.check.click()
    qtbot.waitUntil(wiz.new_page.isComplete, timeout=WAIT)
    wiz.next()
    qtbot.waitUntil(lambda: wiz.plan_page.isComplete(), timeout=WAIT)
    assert "1 to be re-wrapped, 1 already rotated, 0 cannot" in wiz.plan_page.summary.text()
    wiz.next()
    assert wiz.currentId() == Page.RUN
    qtbot.waitUntil(wiz.run_page.isComplete, timeout=WAIT)
    result = wiz.run_page.result
    assert result is not None and result.journal == journal  # the CLI's, carried on
    assert result.report["counts"] == {"done": 2}
    assert len(links(moto_s3)) == 2 and pending_resumes() == []
    meta = Journal(journal)
    try:
        assert (meta.meta()["gpg_homedir"], meta.meta()["gpg_key"]) == (str(home), "")
    finally:
        meta.close()
    # The passphrase is in none of the files the app and the CLI wrote (journal, history,
    # settings: this test's data folder and tmp folder).
    for folder in (Path(os.environ["SEALCHECK_DATA_DIR"]), tmp_path):
        for f in folder.rglob("*"):
            if f.is_file() and "gnupg" not in f.parts:
                assert PASSPHRASE.encode() not in f.read_bytes(), f
    wiz.next()
    wiz.accept()
    qtbot.waitUntil(lambda: win.rotation_wizard is None, timeout=5000)


def test_the_old_keys_page_refuses_another_key_file_than_the_journals(
    qtbot, tmp_path: Path, rsa_key: RsaKey, other_rsa_key: RsaKey, moto_s3: Bucket
) -> None:
    """A rotation recorded with an OpenPGP key file: a saved source giving another key is
    refused (ResumeContradicts), and so is the journal's file now holding another key
    (RecordedKeyChanged), each in the app's words naming the recorded fingerprint."""
    old_asc, other_asc = tmp_path / "old.asc", tmp_path / "other.asc"
    old_asc.write_bytes(openpgp_secret_key(rsa_key.private.read_bytes()))
    other_asc.write_bytes(openpgp_secret_key(other_rsa_key.private.read_bytes()))
    new = open_new_key(str(other_rsa_key.private), KeyContext(), public_only=False)
    settings = Settings(bucket=moto_s3.name, prefix=PREFIX, new=new, old_keys=[],
                        gpg=GpgOptions(key_file=old_asc))  # fmt: skip
    start = settings.start(S3Settings(endpoint_url=moto_s3.endpoint),
                           to=str(other_rsa_key.private), pkcs11_module=None)  # fmt: skip
    folder = tmp_path / "journals"
    path = journal_for(moto_s3.name, PREFIX, new.fingerprint, folder)
    journal = Journal(path)
    try:
        begin(journal, start, "2026-01-01T00:00:00+00:00")
        journal.set_meta(status="running")
        resume = Resume.of(path, journal.meta())
    finally:
        journal.close()
    assert resume is not None
    other_source = bucket_source(moto_s3, PREFIX, KeyChoice(gpg_key_file=str(other_asc)))
    wiz = RotationWizard([other_source], KeySession(lambda _p: None, lambda _p: None),
                         resume=resume, journal_dir=folder)  # fmt: skip
    qtbot.addWidget(wiz)
    wiz.show()
    assert wiz.scope_page.chosen() == resume.source  # the run's own key file first
    wiz.next()
    page = wiz.old_page
    qtbot.waitUntil(lambda: not page.searching, timeout=WAIT)
    assert page.isComplete() and page.gpg.file_label.text() == str(old_asc)
    assert start.gpg_fingerprint in page.gpg.recorded_label.text()

    wiz.back()
    wiz.scope_page.source.setCurrentIndex(1)  # the saved source, with another key
    wiz.next()
    qtbot.waitUntil(lambda: not page.searching, timeout=WAIT)
    assert "This does not match the interrupted rotation" in page.gpg.problem.text()
    assert start.gpg_fingerprint in page.gpg.problem.text() and not page.isComplete()

    wiz.back()
    wiz.scope_page.source.setCurrentIndex(0)
    old_asc.write_bytes(other_asc.read_bytes())  # the journal's file, now another key
    wiz.next()
    qtbot.waitUntil(lambda: not page.searching, timeout=WAIT)
    assert "now holds another key" in page.gpg.problem.text()
    assert start.gpg_fingerprint in page.gpg.problem.text() and not page.isComplete()
    assert page.gpg.options() is None
    wiz.reject()
