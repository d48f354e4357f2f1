"""A gpg message's session key recovered from its first bytes (decrypt/gpg/recover.py):
what the key rotation and an audit campaign's coordinator build on."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from fixtures.pipelines import GPG_HOMES, gpg_home_with_key
from sealcheck.core.decrypt.gpg.packets import read_message
from sealcheck.core.decrypt.gpg.recover import session_key_with_gpg
from sealcheck.core.decrypt.secrets import GpgOptions


def _gpg(home: Path, *args: str, data: bytes = b"") -> bytes:
    cmd = ["gpg", "--batch", "--homedir", str(home), "--trust-model", "always", *args]
    return subprocess.run(cmd, input=data, capture_output=True, check=True).stdout


def test_the_key_gpg_used_and_the_session_key_it_said(tmp_path: Path) -> None:
    home = gpg_home_with_key(tmp_path / "a")
    message = _gpg(home, "--recipient", "backup@example.com", "--encrypt", data=os.urandom(300_000))
    # The first 64 KiB only, as rotation and a campaign's coordinator read: gpg says
    # SESSION_KEY on its status pipe before it reaches the end.
    head = message[: 64 * 1024]
    assert len(message) > 4 * len(head)

    got = session_key_with_gpg(read_message(head), head, GpgOptions(homedir=home))

    assert got is not None
    # gpg's own whole decryption says the same session key, from the same key.
    status = _gpg(home, "--status-fd", "1", "--show-session-key", "--output", "/dev/null",
                  "--decrypt", data=message).decode()  # fmt: skip
    (said,) = [ln.split()[2] for ln in status.splitlines() if " SESSION_KEY " in ln]
    assert said == f"{got.algo}:{got.secret.hex().upper()}"
    primary = _gpg(home, "--with-colons", "--list-secret-keys").decode()
    assert f"fpr:::::::::{got.used_key}:" in primary
    assert got.secret.hex() not in repr(got).lower() and got.used_key in repr(got)
    got.secret[:] = bytes(len(got.secret))  # the caller's to wipe

    other = tmp_path / "b"  # a home holding no key of a recipient: nothing, no error
    other.mkdir(mode=0o700)
    GPG_HOMES.append(other)  # its agent, if gpg starts one, is stopped with the others
    assert session_key_with_gpg(read_message(head), head, GpgOptions(homedir=other)) is None
