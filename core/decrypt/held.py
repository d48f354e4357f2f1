"""Which keys the user holds, by the name a rotation's links carry (storage/rewrap.py)."""

from __future__ import annotations

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


def _read_home(home: Path) -> list[str]:
    from .gpg.packets import read_keys
    from .gpg.reader import gpg_binary

    exe = gpg_binary()
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}
    env["LC_ALL"] = "C"
    base = [exe, "--batch", "--no-tty", "--homedir", str(home)]
    listed = subprocess.run(
        [*base, "--with-colons", "--list-secret-keys"],
        capture_output=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    fprs = [
        line.split(":")[9]
        for line in listed.stdout.decode(errors="replace").splitlines()
        if line.startswith("fpr:")
    ]
    if not fprs:
        return []
    exported = subprocess.run(
        [*base, "--export", *fprs], capture_output=True, timeout=60, check=False, env=env
    )
    return [spki_fingerprint(k.public) for k in read_keys(exported.stdout)]
