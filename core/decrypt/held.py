"""Which keys the user holds, by the name a rotation's links carry (storage/rewrap.py)."""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
from pathlib import Path

from ..errors import MissingTool
from ..keys.base import spki_fingerprint
from .secrets import Secrets

# A GNUPGHOME's fingerprints, by (home, when its keyring last changed): an audit asks
# once per version, gpg is run once per home.
_HOMES: dict[tuple[str, int], list[str]] = {}
_LOCK = threading.Lock()


def held_fingerprints(secrets: Secrets) -> list[str]:
    """The SPKI SHA-256 of every held RSA key (``SHA256:hex``): the keys given, the RSA
    keys of a gpg key file (--gpg-key) and those of a GNUPGHOME (--gpg-homedir) that
    have their secret part there."""
    out = [k.fingerprint for k in secrets.keys]
    gpg = secrets.gpg
    if gpg is not None and gpg.key_file is not None:
        # The OpenPGP modules load only when OpenPGP keys were given: every verify asks
        # this, most hold RSA keys alone (issue 17, start-up is part of the job).
        from .gpg.packets import key_file_fingerprints

        out += key_file_fingerprints(gpg.key_file)
    elif gpg is not None and gpg.homedir is not None:
        out += home_fingerprints(gpg.homedir)
    return out


def home_fingerprints(home: Path) -> list[str]:
    """The RSA keys with a secret part in ``home``: their public packets (gpg --export of
    the keys ``--list-secret-keys`` names), never the secret ones."""
    from .gpg.packets import PacketError

    try:
        stamp = max(
            (
                p.stat().st_mtime_ns
                for p in (home / "pubring.kbx", home / "pubring.gpg")
                if p.exists()
            ),
            default=0,
        )
    except OSError:
        return []
    with _LOCK:
        if (str(home), stamp) in _HOMES:
            return _HOMES[(str(home), stamp)]
    try:
        found = _read_home(home)
    except (MissingTool, OSError, subprocess.SubprocessError, PacketError):
        found = []
    with _LOCK:
        _HOMES[(str(home), stamp)] = found
    return found


def _env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}, "LC_ALL": "C"}


def _list_secret(home: Path) -> tuple[list[str], list[str]]:
    """``gpg --list-secret-keys`` of ``home`` (public fields only, no passphrase asked):
    the gpg command it ran, and its colon lines."""
    from .gpg.reader import gpg_binary

    base = [gpg_binary(), "--batch", "--no-tty", "--homedir", str(home)]
    listed = subprocess.run(
        [*base, "--with-colons", "--list-secret-keys"],
        capture_output=True, timeout=60, check=False, env=_env(),
    )  # fmt: skip
    return base, listed.stdout.decode(errors="replace").splitlines()


def secret_primary_keys(home: Path) -> list[str]:
    """The primary-key fingerprints (as gpg prints them) of the keys with a secret part
    in ``home``: what the app shows of a GNUPGHOME; empty when gpg cannot list it."""
    try:
        _, lines = _list_secret(home)
    except (MissingTool, OSError, subprocess.SubprocessError):
        return []
    # Each key's "fpr" line follows its "sec" line (its subkeys' follow "ssb").
    return [
        line.split(":")[9]
        for before, line in itertools.pairwise(lines)
        if before.startswith("sec:") and line.startswith("fpr:")
    ]


def _read_home(home: Path) -> list[str]:
    from .gpg.packets import read_keys

    base, lines = _list_secret(home)
    fprs = [line.split(":")[9] for line in lines if line.startswith("fpr:")]
    if not fprs:
        return []
    exported = subprocess.run(
        [*base, "--export", *fprs], capture_output=True, timeout=60, check=False, env=_env()
    )
    return [spki_fingerprint(k.public) for k in read_keys(exported.stdout)]
