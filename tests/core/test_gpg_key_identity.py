"""The fingerprint a rotation's journal records for an OpenPGP key file (issue 13): the
primary key's v4 fingerprint as gpg prints it, for keys made by the real gpg of any
algorithm, armored or binary, a passphrase-protected secret key read without its
passphrase; empty for a file that is not an OpenPGP key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fixtures.pipelines import GPG_HOMES
from sealcheck.core.decrypt.gpg.packets import key_file_identity

PASSPHRASE = "key file passphrase"


def gpg(home: Path, *args: str) -> bytes:
    return subprocess.run(
        ["gpg", "--batch", "--homedir", str(home), "--pinentry-mode", "loopback",
         "--passphrase", PASSPHRASE, *args],
        capture_output=True, check=True,
    ).stdout  # fmt: skip


@pytest.mark.parametrize(
    ("algo", "export"),
    [
        ("future-default", ("--armor", "--export-secret-keys")),  # ed25519 + cv25519
        ("rsa2048", ("--export-secret-keys",)),
        ("nistp256", ("--armor", "--export")),
    ],
)
def test_the_primary_keys_fingerprint_as_gpg_prints_it(
    tmp_path: Path, algo: str, export: tuple[str, ...]
) -> None:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    GPG_HOMES.append(home)
    gpg(home, "--quick-gen-key", "Key <key@example.com>", algo, "default", "never")
    colons = gpg(home, "--with-colons", "--list-keys", "key@example.com").decode()
    want = next(ln.split(":")[9] for ln in colons.splitlines() if ln.startswith("fpr:"))
    key_file = tmp_path / "key"
    key_file.write_bytes(gpg(home, *export, "key@example.com"))
    assert key_file_identity(key_file) == want


def test_not_a_key_file(tmp_path: Path) -> None:
    pem = tmp_path / "key.pem"
    pem.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    armor = tmp_path / "cut.asc"
    armor.write_text("-----BEGIN PGP PRIVATE KEY BLOCK-----\n")
    for f in (pem, armor, tmp_path / "absent.asc", tmp_path):
        assert key_file_identity(f) == ""
