"""One ``gpg -e`` backup's session key, recovered elsewhere: what a campaign's worker holds.

Issue 15: a gpg backup's recipients are inside the object, so the coordinator reads
its first bytes, recovers the session key with the OpenPGP key it holds (the key file,
its passphrase, the GNUPGHOME and its agent stay there) and proves it on the data's
first block (the quick check of RFC 4880 §5.7). A worker is given only that: the
symmetric algorithm and key, and the name of the key gpg said it used, which its
record carries as a run with the key would. The worker's gpg takes it on a pipe
(``--override-session-key-fd``) in an empty home of its own: no secret key there.

A ``GpgSessionKey`` answers only the message it was made from: the digest of the
first bytes of its session-key packets (binary, the armor taken off). Its ``repr``
shows no secret: Dask prints a failed task's arguments.
"""

from __future__ import annotations

import hashlib
import hmac

from .reader import dearmor_head

# The session-key packets' first bytes bound into the digest: all of them as far as
# a run's first read (4 KiB, armored: ~3 KiB of packets) holds them.
BOUND = 2048


def packets_digest(binary: bytes, esk_end: int) -> bytes | None:
    """SHA-256 of the session-key packets' first bytes (up to BOUND), or None when
    ``binary`` does not hold them."""
    n = min(esk_end, BOUND)
    if len(binary) < n:
        return None
    return hashlib.sha256(binary[:n]).digest()


def binary_head(head: bytes) -> bytes:
    """The binary packets an object's first bytes hold (armor taken off)."""
    return dearmor_head(head) if head.startswith(b"-----BEGIN PGP") else head


class GpgSessionKey:
    """A message's session key (OpenPGP symmetric algorithm id and key), in the name of
    the key that recovered it (``used_key``: what gpg's DECRYPTION_KEY said)."""

    def __init__(
        self, algo: int, key: bytes | bytearray, used_key: str, esk_end: int, digest: bytes
    ) -> None:
        self.algo = algo
        self._key = bytearray(key)
        self.used_key = used_key
        self._esk_end = esk_end  # where the session-key packets end (binary)
        self._digest = digest

    def __repr__(self) -> str:
        return f"GpgSessionKey(gpg key {self.used_key})"

    def fits(self, head: bytes) -> bool:
        """The message whose first bytes are ``head`` is the one this key was made for."""
        got = packets_digest(binary_head(head), self._esk_end)
        return got is not None and hmac.compare_digest(got, self._digest)

    def line(self) -> bytearray:
        """What ``--override-session-key-fd`` reads: ``ALGO:HEX`` and a newline (the
        caller wipes it)."""
        out = bytearray(f"{self.algo}:".encode())
        out += self._key.hex().upper().encode()
        out += b"\n"
        return out

    @property
    def wiped(self) -> bool:
        return not any(self._key)

    def wipe(self) -> None:
        self._key[:] = bytes(len(self._key))
