"""Rotating envelopes whose recipients sit inside the object: ``gpg -e`` (issue 13).

The design, and why it is safe:

- **The original is never touched.** The producer's object and every one of its versions
  are only read (ranged GETs, and ``UploadPartCopy`` pinned to its version id). Nothing
  is deleted, replaced or written under the producer's names.
- **The rotated object is the original with one more recipient.** The session key is
  recovered with an old key and encrypted again for the new RSA key as one more PKESK
  v3 packet, put in front of the original's own packets; every other byte (the other
  recipients' PKESKs, the encrypted data, its MDC) is the original's, unchanged. So the
  new key alone opens it (``gpg --decrypt``), and so does every old recipient, as before.
- **Nothing large passes through this machine.** The new object is written by
  compose.py: a create-only PUT for small objects, else a multipart upload whose first
  part is the new packet plus the body's first 5 MiB and whose other parts are
  ``UploadPartCopy`` ranges of the original version, completed create-only.
- **Pairing never changes.** It is written under a name that states what it belongs to,
  like the re-wrapped key files (storage/rewrap.py)::

      X.rewrap/<data-version-id>/<new-key-SPKI-SHA-256-hex>

  where X is the data object's own name, with metadata naming the data version, its
  size and ETag and the new key. Listings leave it out as they do every link;
  ``verify``, ``restore``, ``restore-test``, the audit and the app open it instead of
  the original when a key they hold is the one it was made for (rewrap.prefer_rotated).
- **Proof before any write.** The session key counts only when it opens the data: its
  algorithm and 16-bit checksum are valid (OpenPGP's own check of an RSA-decrypted
  session key) and the first encrypted block decrypts to its repeated two bytes (the
  quick check of RFC 4880 §5.7); through gpg, gpg's own decryption of the first packet
  as well. The end of the data (the MDC) is not read: the body is copied unchanged, so a
  damaged end stays what it was and ``verify`` of the rotated object says so. The new
  key proved possession before (newkey.py): through gpg for an OpenPGP key, which thus
  also proved that gpg accepts the PKESK this code builds.
- **Read back after writing.** The new version is read back by its version id: its
  size must be the prefix plus the original's, its first bytes the prefix and the
  original's first bytes, its last bytes the original's last bytes, and its new PKESK
  must unwrap with the new private key (PEM, keyring, token, or gpg for an OpenPGP
  key) to the same session key (digests compared, never the key itself).

The new PKESK's key id is the new key's OpenPGP key id when the new key is given as an
OpenPGP key (``gpg --export`` / ``--export-secret-keys`` of it: the id of its encryption
subkey, as gpg computes it); for a PEM (or keyring, or token) key, which has no OpenPGP
identity, it is the wildcard id 0 (``gpg --throw-keyids``'s "anonymous recipient"),
which ``gpg --decrypt`` answers by trying each secret key it holds.

An ASCII-armored message is base64: adding a packet shifts every later character, so
its body cannot be copied range for range; a small one (up to compose.WHOLE_MAX) is read
whole and armored again as it was (cmstext.py), a larger one is reported as not rotated,
as are passphrase-only (``gpg --symmetric``) messages, which have no recipient to add,
and AEAD (SEIPD v2 / OCB) messages.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from ..decrypt.gpg import packets as pgp
from ..decrypt.gpg.recover import session_key_with_gpg
from ..decrypt.secrets import GpgOptions
from ..errors import PassphraseNeeded, WrongPassphrase
from ..keys.base import KeySource
from ..plumbing.progress import CancelToken
from .cmstext import TextForm
from .newkey import NewKey

GPG = "gpg"
HEAD = 64 * 1024  # the first bytes read: the session-key packets and the first block
TAIL = 64 * 1024  # the last bytes compared on read-back


class EnvelopeError(ValueError):
    """Why an in-object envelope cannot be rotated (the engine's CannotOpen message)."""


@dataclass(frozen=True)
class HeldKey:
    """The old key that opened a version, as the report names it."""

    label: str
    fingerprint: str


@dataclass
class GpgEnvelope:
    """What the old key proved for one in-object envelope. ``secret`` is wiped by ``wipe``."""

    kind: str
    key: HeldKey
    algo: int  # the session key's symmetric algorithm
    secret: bytearray
    message: pgp.Message
    head: bytes  # the original's first bytes (HEAD)
    padding: str = "PKCS#1 v1.5"  # OpenPGP's RSA session-key encryption

    armor: TextForm | None = None  # an armored message (small): how to write it back
    binary: bytes = b""  # and its whole binary packets

    @property
    def wire(self) -> str:
        return "ASCII armor" if self.armor is not None else "binary packets"

    @property
    def old_bytes(self) -> bytes:
        """The original's session-key packets (what the report's old digest is of)."""
        return self.head[: self.message.data.start]

    def already(self, _public: object, key_id: bytes) -> bool:
        """The new key is a recipient already (by its OpenPGP key id)."""
        return key_id != pgp.WILDCARD and any(r.key_id == key_id for r in self.message.recipients)

    def rebuild(self, public: rsa.RSAPublicKey, key_id: bytes) -> tuple[bytes, int]:
        """(the new first bytes, where the original's bytes resume): the new PKESK, then
        the whole original."""
        packet = pgp.pkesk(key_id, public, self.algo, self.secret)
        if self.armor is not None:  # the whole message, armored as it was
            return self.armor.encode(packet + self.binary), self.armor.size
        return packet, 0

    def reopens(self, stored: Any, new: NewKey, cancel: CancelToken) -> bool:
        """The stored object (a Source) gives the same session key to the new key."""
        head = stored.read_range(0, HEAD + 1024)
        if self.armor is not None:
            head = pgp.dearmor(stored.read_range(0, stored.size))[: HEAD + 1024]
        keys = [new.private] if new.private is not None else []
        return reopens(head, digest(self.secret), keys, new.gpg, cancel)

    @property
    def recipients(self) -> list[str]:
        return [r.key_id.hex().upper() for r in self.message.recipients]

    def wipe(self) -> None:
        self.secret[:] = bytes(len(self.secret))


def digest(secret: bytes | bytearray) -> bytes:
    return hashlib.sha256(secret).digest()


def _fitting(keys: Sequence[KeySource], mpi: bytes) -> list[KeySource]:
    # The MPI drops the ciphertext's leading zero bytes: a key fits when its modulus is
    # as long or a byte or two longer.
    return [k for k in keys if 0 <= k.modulus_bytes - len(mpi) <= 2]


def _unwrap_with(key: KeySource, mpi: bytes) -> list[bytearray]:
    """The PKCS#1 v1.5 decryptions of ``mpi`` under ``key`` (none, or one)."""
    block = mpi.rjust(key.modulus_bytes, b"\x00")
    unwrap_as = getattr(key, "unwrap_as", None)
    if unwrap_as is not None:
        one = unwrap_as(block, "PKCS#1 v1.5")
        return [one.secret] if one is not None else []
    out = []
    for cand in key.unwrap_candidates(block):
        if cand.padding == "PKCS#1 v1.5":
            out.append(cand.secret)
        else:
            cand.secret[:] = bytes(len(cand.secret))
    return out


def session_key_with_keys(
    message: pgp.Message, head: bytes, keys: Sequence[KeySource], cancel: CancelToken
) -> tuple[HeldKey, int, bytearray] | None:
    """The session key from a recipient's PKESK with a held RSA key (PEM, keyring,
    token), proved by its checksum and the quick check."""
    for r in message.recipients:
        if r.algo not in pgp.RSA_ALGOS:
            continue
        for key in _fitting(keys, r.mpi):
            for block in _unwrap_with(key, r.mpi):
                cancel.check()
                sk = pgp.session_key_from_block(block)
                block[:] = bytes(len(block))
                if sk is None:
                    continue
                algo, secret = sk
                if pgp.quick_check(algo, secret, message, head):
                    return HeldKey(key.label, key.fingerprint), algo, secret
                secret[:] = bytes(len(secret))
    return None


def _session_key_with_gpg(
    message: pgp.Message, head: bytes, opts: GpgOptions
) -> tuple[HeldKey, int, bytearray] | None:
    """The session key as the user's gpg recovers it (decrypt/gpg/recover.py), in the
    name of the key gpg said it used."""
    got = session_key_with_gpg(message, head, opts)
    if got is None:
        return None
    used = got.used_key
    return HeldKey(f"gpg key {used}", f"OpenPGP:{used}"), got.algo, got.secret


def open_gpg(
    head: bytes, keys: Sequence[KeySource], opts: GpgOptions | None, cancel: CancelToken
) -> GpgEnvelope:
    """Recover and prove the session key of a binary ``gpg -e`` message (its first bytes)."""
    try:
        message = pgp.read_message(head)
    except pgp.PacketError as exc:
        raise EnvelopeError(f"its OpenPGP packets cannot be rotated: {exc}") from None
    if not message.recipients:
        raise EnvelopeError(
            "a gpg --symmetric backup (a passphrase, no key pair): no recipient to add"
        )
    found = session_key_with_keys(message, head, keys, cancel)
    if found is None and opts is not None and (opts.key_file or opts.homedir):
        try:
            found = _session_key_with_gpg(message, head, opts)
        except WrongPassphrase as exc:
            # The old key is the recipient but stays locked: say so, not "no held key".
            raise EnvelopeError(f"{exc.detail}; check --gpg-passphrase-file") from None
        except PassphraseNeeded as exc:
            raise EnvelopeError(f"{exc.detail}: give it with --gpg-passphrase-file") from None
    if found is None:
        ids = ", ".join(r.key_id.hex().upper() for r in message.recipients)
        raise EnvelopeError(
            f"no held key recovers a session key that opens it (it was encrypted to {ids}); "
            "give the old key with --from (PEM, keyring, token) or --gpg-key/--gpg-homedir"
        )
    key, algo, secret = found
    return GpgEnvelope(GPG, key, algo, secret, message, head)


def readback_mismatch(
    stored_head: bytes,
    stored_tail: bytes,
    stored_size: int,
    *,
    prefix: bytes,
    copy_from: int,
    original_head: bytes,
    original_tail: bytes,
    original_size: int,
) -> str | None:
    """Why the stored object is not ``prefix + original[copy_from:]``, as far as its
    size and ends show."""
    size = len(prefix) + original_size - copy_from
    if stored_size != size:
        return f"it is {stored_size} bytes, not {size}"
    want = (prefix + original_head[copy_from:])[: len(stored_head)]
    if not hmac.compare_digest(stored_head[: len(want)], want):
        return "its first bytes are not the new packet followed by the original's"
    if not hmac.compare_digest(stored_tail, original_tail[-len(stored_tail) :]):
        return "its last bytes are not the original's"
    return None


def reopens(
    stored_head: bytes,
    want: bytes,
    keys: Sequence[KeySource],
    opts: GpgOptions | None,
    cancel: CancelToken,
) -> bool:
    """The stored object's packets give the session key whose digest is ``want``."""
    message = pgp.read_message(stored_head)
    found = session_key_with_keys(message, stored_head, keys, cancel)
    if found is None and opts is not None:
        found = _session_key_with_gpg(message, stored_head, opts)
    if found is None:
        return False
    secret = found[2]
    same = hmac.compare_digest(digest(secret), want)
    secret[:] = bytes(len(secret))
    return same
