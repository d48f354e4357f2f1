"""Key custody in a real Secret Service (gnome-keyring on a private D-Bus)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.pipelines import make_rsa_key, rds_postgres, securecircle, sh
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
    # Every file under it, the evidence-signing key's folder included (issue 14).
    files = [f for f in folder.rglob("*") if f.is_file()]
    assert files, "the encrypted key file should be there"
    for f in files:
        text = f.read_bytes()
        assert b"BEGIN PRIVATE KEY" not in text and b"BEGIN RSA PRIVATE KEY" not in text
        assert oct(f.stat().st_mode & 0o777) == "0o600"
    for d in [folder, *(d for d in folder.rglob("*") if d.is_dir())]:
        assert oct(d.stat().st_mode & 0o777) == "0o700", d


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


def test_the_same_key_under_a_second_name_is_refused_naming_the_first(
    held: str, rsa_key, tmp_path: Path
) -> None:
    # The same key, re-encoded (PKCS#8, encrypted): the SPKI fingerprint is what counts.
    copy = tmp_path / "copy.pem"
    sh(f"openssl pkcs8 -topk8 -in {rsa_key.private} -out {copy} -passout pass:again", tmp_path)
    pf = tmp_path / "pw"
    pf.write_text("again\n")
    r = run_cli("key", "import", str(copy), "--name", "second", "--key-passphrase-file", str(pf))
    assert r.returncode == 2, r.stdout
    assert "already held under another name" in r.stderr and repr(held) in r.stderr
    names = [k["name"] for k in json.loads(run_cli("key", "list", "--json").stdout)["keys"]]
    assert "second" not in names


def test_rename_keeps_the_key_and_frees_the_old_name(
    keyring_session, tmp_path: Path, rsa_key, small_dump
) -> None:
    assert run_cli("key", "import", str(rsa_key.private), "--name", "before").returncode == 0
    try:
        r = run_cli("key", "rename", "before", "after")
        assert r.returncode == 0, r.stderr
        assert "keyring:after" in r.stdout
        b = securecircle(small_dump, tmp_path, rsa_key)
        assert run_cli("verify", str(b.data), "--key", "keyring:after").returncode == 0
        r = run_cli("verify", str(b.data), "--key", "keyring:before")
        assert r.returncode == 2 and "no key named 'before'" in r.stderr
    finally:
        run_cli("key", "remove", "after", "--yes")
        run_cli("key", "remove", "before", "--yes")


def test_a_wrong_passphrase_and_a_file_that_is_no_key_have_their_own_words(
    keyring_session, tmp_path: Path
) -> None:
    k = make_rsa_key(tmp_path, "enc", 2048, passphrase="right")
    pf = tmp_path / "pw"
    pf.write_text("wrong\n")
    r = run_cli("key", "import", str(k.private), "--name", "enc2", "--key-passphrase-file", str(pf))
    assert r.returncode == 2
    assert "The passphrase does not open this private key" in r.stderr
    notkey = tmp_path / "notes.txt"
    notkey.write_text("not a key at all\n")
    r = run_cli("key", "import", str(notkey), "--name", "notes")
    assert r.returncode == 2
    assert "This file is not a private key Sealcheck can read" in r.stderr


def test_export_public_to_a_file_is_whole_or_nothing(held: str, rsa_key, tmp_path: Path) -> None:
    from sealcheck.core.errors import DestinationError
    from sealcheck.core.keys.custody import KeyStore

    store = KeyStore()
    dest = tmp_path / "pub.pem"
    store.export_public(held, dest)
    assert dest.read_text() == rsa_key.public.read_text()
    with pytest.raises(DestinationError, match="already exists"):
        store.export_public(held, dest)
    assert dest.read_text() == rsa_key.public.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["pub.pem"]  # no temp file left
