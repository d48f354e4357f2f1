"""Which keys the user holds, by the name a rotation's links carry (storage/rewrap.py)."""

from __future__ import annotations

from .gpg.packets import key_file_fingerprints
from .secrets import Secrets


def held_fingerprints(secrets: Secrets) -> list[str]:
    """The SPKI SHA-256 of every held RSA key (``SHA256:hex``), the RSA keys of a gpg
    key file (--gpg-key) included. A GNUPGHOME's keys are not read (gpg holds them)."""
    out = [k.fingerprint for k in secrets.keys]
    if secrets.gpg is not None and secrets.gpg.key_file is not None:
        out += key_file_fingerprints(secrets.gpg.key_file)
    return out
