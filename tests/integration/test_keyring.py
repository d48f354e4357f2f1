"""Key custody in a real Secret Service (gnome-keyring on a private D-Bus)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.pipelines import make_rsa_key, rds_postgres, securecircle
from sealcheck.core.keys.pem import PemKey


@pytest.fixture
def held(keyring_session, tmp_path: Path, rsa_key):
    name = f"k{os.getpid()}{tmp_path.name[-6:]}".replace("_", "")
    r = run_cli("key", "import", str(rsa_key.private), "--name", name)
    assert r.returncode == 0, r.stderr
    yield name
    run_cli("key", "remove", name, "--yes")


def test_import_list_verify_remove(
    held: str, keyring_session, tmp_path: Path, rsa_key, small_dump
) -> None:
    fp = PemKey.from_file(rsa_key.private).fingerprint
    r = run_cli("key", "list", "--json")
    assert r.returncode == 0, r.stderr
    rows = {k["name"]: k for k in json.loads(r.stdout)["keys"]}
    assert rows[held]["fingerprint"] == fp
    assert rows[held]["bits"] == 2048

    for b in (
        securecircle(small_dump, tmp_path / "a", rsa_key),
        rds_postgres(small_dump, tmp_path / "b", rsa_key, wrap="oaep-sha256"),
    ):
        r = run_cli("verify", str(b.data), "--key", f"keyring:{held}", "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        key_layer = next(x for x in json.loads(r.stdout)["layers"] if x["layer"] == "key")
        assert key_layer["details"]["fingerprint"] == fp

    r = run_cli("key", "export-public", held)
    assert r.returncode == 0
    assert r.stdout == rsa_key.public.read_text()


def test_no_plaintext_private_key_in_the_data_folder(held: str, keyring_session) -> None:
    folder = keyring_session.data_home / "sealcheck" / "keys"
    files = list(folder.iterdir())
    assert files, "the encrypted key file should be there"
    for f in files:
        text = f.read_bytes()
        assert b"BEGIN PRIVATE KEY" not in text and b"BEGIN RSA PRIVATE KEY" not in text
        assert oct(f.stat().st_mode & 0o777) == "0o600"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"


def test_remove_then_key_is_missing_exit_2(
    keyring_session, tmp_path: Path, rsa_key, small_dump
) -> None:
    r = run_cli("key", "import", str(rsa_key.private), "--name", "gone")
    assert r.returncode == 0, r.stderr
    assert run_cli("key", "remove", "gone", "--yes").returncode == 0
    b = securecircle(small_dump, tmp_path, rsa_key)
    r = run_cli("verify", str(b.data), "--key", "keyring:gone")
    assert r.returncode == 2
    assert "no key named 'gone'" in r.stderr


def test_remove_needs_confirmation_without_a_terminal(held: str) -> None:
    r = run_cli("key", "remove", held)
    assert r.returncode == 2
    assert "--yes" in r.stderr


def test_encrypted_pem_import(keyring_session, tmp_path: Path, small_dump) -> None:
    k = make_rsa_key(tmp_path, "enc", 2048, passphrase="s3cret-pass")
    pf = tmp_path / "pw"
    pf.write_text("s3cret-pass\n")
    r = run_cli("key", "import", str(k.private), "--name", "encpem")
    assert r.returncode == 2 and "encrypted" in r.stderr
    r = run_cli(
        "key", "import", str(k.private), "--name", "encpem", "--key-passphrase-file", str(pf)
    )
    assert r.returncode == 0, r.stderr
    try:
        b = securecircle(small_dump, tmp_path / "s3", k)
        assert run_cli("verify", str(b.data), "--key", "keyring:encpem").returncode == 0
    finally:
        run_cli("key", "remove", "encpem", "--yes")


@pytest.mark.parametrize(
    "backend", ["keyring.backends.null.Keyring", "keyring.backends.fail.Keyring"]
)
def test_insecure_backends_are_refused(keyring_session, rsa_key, backend: str) -> None:
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": backend}
    r = run_cli("key", "import", str(rsa_key.private), "--name", "nope", env=env)
    assert r.returncode == 2
    assert "plain text or not at all" in r.stderr
