"""The per-backup secret of envelopes whose recipients sit inside the object (issue 15).

``gpg -e`` and CMS (``openssl smime|cms -encrypt``) backups carry their wrapped session
or content key at the head of the object itself. For a campaign on a cluster the
coordinator reads that head (ranged GETs of the first bytes, more while the packets
run on), unwraps it with the keys it holds, and gives the worker only that backup's
secret; the private key, its passphrase, a token's PIN, the GNUPGHOME and its agent
stay on the coordinator.

* **gpg**: the session key as the coordinator's gpg recovers it (decrypt/gpg/recover.py:
  ``--show-session-key`` on the first bytes only, with the key file, GNUPGHOME or agent
  a local run uses), proved on the data's first block (RFC 4880 §5.7's quick check),
  goes as a ``GpgSessionKey`` (decrypt/gpg/session.py); the worker's gpg takes it on
  a pipe.
* **CMS**: each recipient's encrypted content key is unwrapped with every held key that
  fits it (keys/held.py ``unwrapped_from``, as for a paired wrapped-key object) and goes
  as ``HeldSecret``s bound to that recipient's encrypted key; the worker judges them on
  the data exactly as a local run judges a private key's (decrypt/cms/key.py), so its
  record names the same key, padding, recipient and key-identifier check.

None (the item runs on the coordinator) when no held key gives a secret, the head
cannot be read or parsed (the coordinator's run records that error, as a local
campaign would), or the coordinator would open a rotated copy of the object instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import replace

from ..decrypt.held import held_fingerprints
from ..decrypt.secrets import GpgOptions, Secrets
from ..errors import SealcheckError
from ..formats import CMS, Fmt, sniff
from ..keys.held import HeldSecret, unwrapped_from
from ..storage.rewrap import prefer_rotated
from ..storage.source import Source

# The OpenPGP and CMS modules are imported when such a backup is met, not with the
# campaign (issue 17: an audit of openssl backups loads neither, nor cryptography.x509).

FIRST = 4096  # what a run sniffs (pipeline/run.py)
GPG_HEAD = 64 * 1024  # the session-key packets and the first block, usually
GPG_HEAD_MAX = 4 * 1024 * 1024
QUICK_CHECK = 18  # the first encrypted block and its two repeated bytes (16-byte blocks)


class GpgHome:
    """The gpg options the coordinator recovers session keys with, for a whole campaign:
    a ``--gpg-key`` is imported once into a private home (gpg_home: memory-backed, its
    agent killed and the folder removed on ``close``), not once per backup."""

    def __init__(self, opts: GpgOptions | None) -> None:
        self._opts = opts or GpgOptions()
        self._stack = contextlib.ExitStack()
        self._imported: GpgOptions | None = None

    def options(self) -> GpgOptions:
        if self._opts.key_file is None:
            return self._opts
        if self._imported is None:
            from ..decrypt.gpg.reader import gpg_home

            home = self._stack.enter_context(gpg_home(self._opts))
            self._imported = replace(self._opts, key_file=None, homedir=home)
        return self._imported

    def close(self) -> None:
        self._stack.close()
        self._imported = None


def in_object_secrets(
    data: Source, held: Secrets, links: Sequence[str] | None = None, gpg: GpgHome | None = None
) -> Secrets | None:
    """Secrets for a worker holding only this backup's unwrapped secret, or None.
    ``links``: the rotation links the listing found for it (WorkItem.links); ``gpg``:
    the campaign's gpg home (else the key file is imported for this backup alone)."""
    try:
        size = data.identity().size
        head = data.read_range(0, min(FIRST, size))
        fmt = sniff(head)
        if fmt in (Fmt.PGP_BINARY, Fmt.PGP_ARMORED):
            if _rotated(data, held, links):
                return None
            if gpg is not None:
                return _gpg(data, size, gpg.options())
            one = GpgHome(held.gpg)
            try:
                return _gpg(data, size, one.options())
            finally:
                one.close()
        if fmt in CMS and held.keys and not _rotated(data, held, links):
            return _cms(data, fmt, head, held)
    except SealcheckError:
        return None
    return None


def _rotated(data: Source, held: Secrets, links: Sequence[str] | None) -> bool:
    """The run opens a rotated copy made for a held key instead (storage/rewrap.py),
    which a worker, holding no key, would not choose: it runs on the coordinator."""
    chosen, _ = prefer_rotated(data, None, lambda: held_fingerprints(held), links)
    return getattr(chosen, "name", None) != data.name


def _gpg(data: Source, size: int, opts: GpgOptions) -> Secrets | None:
    # Here, not at the top (start-up, issue 17): an audit that meets no gpg backup loads
    # no OpenPGP module, nor the ciphers packets.py imports from cryptography.
    from ..decrypt.gpg import packets as pgp
    from ..decrypt.gpg.recover import session_key_with_gpg
    from ..decrypt.gpg.session import GpgSessionKey, binary_head, packets_digest

    want = GPG_HEAD
    while True:
        binary = binary_head(data.read_range(0, min(want, size)))
        try:
            message = pgp.read_message(binary)
            if len(binary) >= message.ciphertext_at + QUICK_CHECK:
                break
        except pgp.PacketError:
            pass  # cut short within the packets, or not packets this code reads
        if want >= size or want >= GPG_HEAD_MAX:
            return None
        want *= 8
    if not message.recipients:
        return None  # gpg --symmetric: its passphrase opens every backup made with it
    found = session_key_with_gpg(message, binary, opts)
    if found is None:
        return None
    try:
        digest = packets_digest(binary, message.data.start)
        assert digest is not None  # binary holds the packets (read_message read them)
        key = GpgSessionKey(found.algo, found.secret, found.used_key, message.data.start, digest)
        return Secrets(gpg_session=key)
    finally:
        found.secret[:] = bytes(len(found.secret))


def _cms(data: Source, fmt: Fmt, head: bytes, held: Secrets) -> Secrets | None:
    from ..decrypt.cms.key import key_ski, probe_cms

    probe = probe_cms(data, fmt, head)
    ski = {k.fingerprint: key_ski(k) for k in held.keys}
    out: list[HeldSecret] = []
    for rec in probe.header.recipients:
        if rec.padding is None:
            continue
        # The recipient names its padding: a key that can tries that one alone (one
        # RSA operation instead of four); the worker judges no other anyway.
        for h in unwrapped_from(held.keys, rec.encrypted_key, rec.padding):
            h.key_identifier = ski.get(h.fingerprint)
            out.append(h)
    if not out:
        return None
    return Secrets(keys=tuple(out), cipher=held.cipher, pbkdf2_iter=held.pbkdf2_iter)
