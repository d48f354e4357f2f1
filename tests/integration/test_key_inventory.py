"""Issue 3's closing checks: one key held in the keyring and on a token shows the same
fingerprint in ``key list``; a backup verifies with either; with no --key, the held
keys are tried, software first, and the PIN is asked only when a token key can match."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fixtures.common import run_cli
from fixtures.pipelines import make_rsa_key, rds_postgres, securecircle
from sealcheck.core.keys.pem import PemKey

PIN_CANARY_NOTE = "the PIN file's content must never appear in any output"


def test_key_list_shows_keyring_and_token_with_matching_fingerprints(
    keyring_session, softhsm, tmp_path: Path, small_dump: Path
) -> None:
    spec = softhsm.keys["rsakey"]
    assert spec.private is not None
    fp = PemKey.from_file(spec.private).fingerprint
    assert run_cli("key", "import", str(spec.private), "--name", "both").returncode == 0
    try:
        pf = softhsm.pin_file(tmp_path)
        r = run_cli(
            "key", "list", "--pkcs11-module", softhsm.module, "--pin-file", str(pf), "--json"
        )
        assert r.returncode == 0, r.stderr
        rows = json.loads(r.stdout)["keys"]
        where = {row["where"] for row in rows if row["fingerprint"] == fp}
        assert where == {"OS keyring + encrypted file", "PKCS#11 token"}, rows

        # v1.5 (SecureCircle) and OAEP-SHA256 (rds) wraps, from the keyring and the token.
        for b in (
            securecircle(small_dump, tmp_path / "v15", spec.rsa),
            rds_postgres(small_dump, tmp_path / "oaep", spec.rsa, wrap="oaep-sha256"),
        ):
            for key in ("keyring:both", spec.uri()):
                args = ["verify", str(b.data), "--key", key, "--json"]
                if key.startswith("pkcs11:"):
                    args += ["--pkcs11-module", softhsm.module, "--pin-file", str(pf)]
                r = run_cli(*args)
                assert r.returncode == 0, r.stdout + r.stderr
                layer = next(x for x in json.loads(r.stdout)["layers"] if x["layer"] == "key")
                assert layer["details"]["fingerprint"] == fp
    finally:
        run_cli("key", "remove", "both", "--yes")


def test_no_key_given_tries_held_keys_software_first(
    keyring_session, softhsm, tmp_path: Path, small_dump: Path
) -> None:
    soft = make_rsa_key(tmp_path, "soft", 2048)
    assert run_cli("key", "import", str(soft.private), "--name", "soft").returncode == 0
    try:
        # A backup for the software key: opened without any PIN being needed
        # (no --pin-file and no terminal: a PIN request would fail the run).
        b = securecircle(small_dump, tmp_path / "a", soft)
        r = run_cli("verify", str(b.data), "--pkcs11-module", softhsm.module, "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        key = next(x for x in json.loads(r.stdout)["layers"] if x["layer"] == "key")
        assert key["details"]["key"] == "keyring:soft"

        # A backup for the token key: found on the token, PIN from the file.
        spec = softhsm.keys["rsakey"]
        b2 = securecircle(small_dump, tmp_path / "b", spec.rsa)
        pf = softhsm.pin_file(tmp_path)
        r = run_cli(
            "verify",
            str(b2.data),
            "--pkcs11-module",
            softhsm.module,
            "--pin-file",
            str(pf),
            "--json",
        )
        assert r.returncode == 0, r.stdout + r.stderr
        pin = pf.read_text().strip()
        assert pin not in r.stdout + r.stderr, PIN_CANARY_NOTE

        # A backup for a key nobody holds: said plainly, exit 1, naming what was tried.
        other = make_rsa_key(tmp_path, "nobody", 2048)
        b3 = securecircle(small_dump, tmp_path / "c", other)
        r = run_cli(
            "verify", str(b3.data), "--pkcs11-module", softhsm.module, "--pin-file", str(pf)
        )
        assert r.returncode == 1, r.stdout + r.stderr
        assert "Wrong key" in r.stdout and "keyring:soft" in r.stdout
    finally:
        run_cli("key", "remove", "soft", "--yes")


def test_no_key_and_none_held_says_how(keyring_session, tmp_path: Path, small_dump: Path) -> None:
    k = make_rsa_key(tmp_path, "x", 2048)
    b = securecircle(small_dump, tmp_path, k)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "empty-data")}
    r = run_cli("verify", str(b.data), env=env)
    assert r.returncode == 2
    assert "sealcheck key import" in r.stdout + r.stderr
