"""The rotation wizard with keys that ask for something (issue 13): the old key found on
a real SoftHSM2 token and the new key on it too (the PIN asked once for the whole run),
and a new key in a passphrase-protected PEM (the passphrase asked once). Backups made by
the seed pipeline's openssl commands, on a versioned moto bucket."""

from __future__ import annotations

import subprocess
from pathlib import Path

from PySide6.QtCore import Qt

from fixtures.gui_flow import bucket_source
from fixtures.pipelines import RsaKey, make_rsa_key, securecircle
from fixtures.rotation import PREFIX, fetch, links, secret_of
from fixtures.s3servers import Bucket
from sealcheck.core.keys.pem import PemKey
from sealcheck.gui.state.keysession import KeySession
from sealcheck.gui.state.settings import KeyChoice
from sealcheck.gui.views.rotation import Page, RotationWizard

WAIT = 60_000
PASSPHRASE = "rotation-new-key-pass"


def upload(bucket: Bucket, tmp: Path, old: RsaKey, dump: Path) -> list[bytes]:
    """Two nights of a SecureCircle backup for ``old``; their secrets."""
    out = []
    for n in (1, 2):
        b = securecircle(dump, tmp / f"n{n}", old, name="88")
        assert b.wrapped_key is not None
        bucket.put_backup(PREFIX, b)
        out.append(b.wrapped_key.read_bytes())
    return out


def run_through(qtbot, wiz: RotationWizard, spec: str, keep: str | None = None) -> str:
    """Scope (all versions) → old keys (only the one of fingerprint ``keep``, if given) → the
    new key ``spec`` proved → plan → run to its end; the proof's words."""
    wiz.scope_page.all.setChecked(True)
    wiz.next()
    qtbot.waitUntil(wiz.old_page.isComplete, timeout=WAIT)
    if keep is not None:
        for i, h in enumerate(wiz.old_page.found):
            if h.key.fingerprint != keep:
                wiz.old_page.list.item(i).setCheckState(Qt.CheckState.Unchecked)
        (chosen,) = wiz.old_page.chosen()
        assert chosen.label.startswith("pkcs11:")  # found on the token, not in a file
    wiz.next()
    wiz.new_page.spec.setText(spec)
    wiz.new_page.check.click()
    qtbot.waitUntil(wiz.new_page.isComplete, timeout=WAIT)
    proof = wiz.new_page.result.text()
    wiz.next()
    try:
        qtbot.waitUntil(lambda: wiz.plan_page.isComplete(), timeout=WAIT)
    except Exception:
        raise AssertionError(wiz.plan_page.summary.text()) from None
    wiz.next()
    assert wiz.currentId() == Page.RUN
    try:
        qtbot.waitUntil(wiz.run_page.isComplete, timeout=WAIT)
    except Exception:
        raise AssertionError(wiz.run_page.status.text()) from None
    return proof


def test_old_and_new_key_on_a_token(
    qtbot, tmp_path: Path, moto_s3: Bucket, softhsm, small_dump: Path
) -> None:
    old, new = softhsm.keys["rsakey"], softhsm.keys["rsa3072"]
    assert new.private is not None
    wrapped = upload(moto_s3, tmp_path, old.rsa, small_dump)
    asked: list[str] = []

    def ask_pin(prompt: str) -> bytes:
        asked.append(prompt)
        return softhsm.pin.encode()

    # No key files: the old key is found among the token's keys.
    source = bucket_source(moto_s3, PREFIX, KeyChoice(pkcs11_module=softhsm.module))
    keys = KeySession(lambda _p: None, ask_pin)
    wiz = RotationWizard([source], keys, ask_pin=ask_pin)
    qtbot.addWidget(wiz)
    wiz.show()
    assert old.private is not None
    fingerprint = PemKey.from_file(old.private).fingerprint
    proof = run_through(qtbot, wiz, new.uri(), keep=fingerprint)
    assert "decrypted a random challenge" in proof
    result = wiz.run_page.result
    assert result is not None and result.report["counts"] == {"done": 2}
    assert {v["old_key_fingerprint"] for v in result.report["versions"]} == {fingerprint}
    assert all(v["opened_with"].startswith("PKCS#11 token") for v in result.report["versions"])
    assert len(asked) == 1  # one PIN for the token's old and new key, the whole run
    # Each re-wrapped key opens with the new key's private half (the runbook's rsautl).
    got = set()
    for k, v in links(moto_s3):
        f = tmp_path / "link.bin"
        f.write_bytes(fetch(moto_s3, k, v))
        got.add(secret_of(new.rsa, f))
    want = set()
    for w in wrapped:
        f = tmp_path / "orig.bin"
        f.write_bytes(w)
        want.add(secret_of(old.rsa, f))
    assert got == want and len(got) == 2
    wiz.accept()


def test_a_passphrase_protected_new_key(
    qtbot, tmp_path: Path, moto_s3: Bucket, rsa_key: RsaKey, small_dump: Path
) -> None:
    new = make_rsa_key(tmp_path / "new", "newpw", 2048, passphrase=PASSPHRASE)
    upload(moto_s3, tmp_path, rsa_key, small_dump)
    asked: list[str] = []

    def ask_passphrase(prompt: str) -> bytes:
        asked.append(prompt)
        return PASSPHRASE.encode()

    source = bucket_source(moto_s3, PREFIX, KeyChoice(key_specs=(str(rsa_key.private),)))
    keys = KeySession(lambda _p: None, lambda _p: None)
    wiz = RotationWizard([source], keys, ask_passphrase=ask_passphrase)
    qtbot.addWidget(wiz)
    wiz.show()
    proof = run_through(qtbot, wiz, str(new.private))
    assert "decrypted a random challenge" in proof
    assert len(asked) == 1 and str(new.private) in asked[0]
    result = wiz.run_page.result
    assert result is not None and result.report["counts"] == {"done": 2}
    pw = tmp_path / "pw"
    pw.write_text(PASSPHRASE)
    for k, v in links(moto_s3):
        f = tmp_path / "link.bin"
        f.write_bytes(fetch(moto_s3, k, v))
        subprocess.run(
            ["openssl", "rsautl", "-decrypt", "-inkey", str(new.private), "-passin",
             f"file:{pw}", "-in", str(f)],
            check=True,
            capture_output=True,
        )  # fmt: skip
    wiz.accept()
