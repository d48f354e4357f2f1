"""The few OpenPGP packets a key rotation reads and writes (RFC 4880; formats.md §4).

A ``gpg -e`` message is session-key packets (PKESK, tag 1: one per recipient) followed
by the encrypted data (SEIPD, tag 18, or the legacy SED, tag 9). Rotation adds one
PKESK v3 for the new RSA key in front of the others and leaves every other byte as it
is, so this module reads those packets' headers, builds a PKESK, checks a session key
against the data's first block (the "quick check" of RFC 4880 §5.7) and reads the RSA
keys out of a transferable key (``gpg --export`` / ``--export-secret-keys``) to learn
the encryption key's key id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.decrepit.ciphers.algorithms import Camellia
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from ...keys.base import spki_fingerprint

PKESK, SIG, SECKEY, PUBKEY, SECSUB, SED, MARKER, SEIPD, PUBSUB = 1, 2, 5, 6, 7, 9, 10, 18, 14
_ESK = (PKESK, 3, MARKER)
RSA_ALGOS = (1, 2)  # RSA (encrypt or sign), RSA encrypt-only
WILDCARD = bytes(8)  # "anonymous recipient" (gpg --throw-keyids): try every secret key
# Symmetric algorithm id -> (cryptography algorithm, key bytes); block size from the class.
_CIPHERS: dict[int, tuple[type[algorithms.AES] | type[Camellia], int]] = {
    7: (algorithms.AES, 16),
    8: (algorithms.AES, 24),
    9: (algorithms.AES, 32),
    11: (Camellia, 16),
    12: (Camellia, 24),
    13: (Camellia, 32),
}


class PacketError(ValueError):
    """Not the OpenPGP packets expected."""


@dataclass(frozen=True)
class Packet:
    tag: int
    start: int  # offset of the packet's first header byte
    body: int  # offset of its body
    length: int | None  # body length; None: partial or indeterminate (encrypted data)


def packet_at(data: bytes, pos: int) -> Packet:
    """The packet whose header starts at ``pos``."""
    if pos >= len(data) or not data[pos] & 0x80:
        raise PacketError(f"no OpenPGP packet header at byte {pos}")
    b0 = data[pos]
    if not b0 & 0x40:  # old format: the length type in the low two bits
        tag, ltype = (b0 >> 2) & 0x0F, b0 & 0x03
        if ltype == 3:
            return Packet(tag, pos, pos + 1, None)
        n = (1, 2, 4)[ltype]
        _need(data, pos + 1 + n)
        return Packet(tag, pos, pos + 1 + n, int.from_bytes(data[pos + 1 : pos + 1 + n], "big"))
    tag = b0 & 0x3F
    _need(data, pos + 2)
    l0 = data[pos + 1]
    if l0 < 192:
        return Packet(tag, pos, pos + 2, l0)
    if l0 < 224:
        _need(data, pos + 3)
        return Packet(tag, pos, pos + 3, ((l0 - 192) << 8) + data[pos + 2] + 192)
    if l0 == 255:
        _need(data, pos + 6)
        return Packet(tag, pos, pos + 6, int.from_bytes(data[pos + 2 : pos + 6], "big"))
    return Packet(tag, pos, pos + 2, None)  # a partial body length


def _need(data: bytes, end: int) -> None:
    if end > len(data):
        raise PacketError("the OpenPGP packets end early")


def new_format(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 192:
        head = bytes([n])
    elif n < 8384:
        head = bytes([((n - 192) >> 8) + 192, (n - 192) & 0xFF])
    else:
        head = b"\xff" + n.to_bytes(4, "big")
    return bytes([0xC0 | tag]) + head + body


@dataclass(frozen=True)
class Recipient:
    key_id: bytes
    algo: int
    mpi: bytes  # the encrypted session key (RSA: m^e mod n, leading zeros stripped)


@dataclass(frozen=True)
class Message:
    """The session-key packets of a message and where its encrypted data starts."""

    recipients: tuple[Recipient, ...]
    passphrases: int  # SKESK packets
    data: Packet  # the encrypted data packet (SED or SEIPD)

    @property
    def ciphertext_at(self) -> int:
        """Offset of the first encrypted byte (SEIPD has a version byte first)."""
        return self.data.body + (1 if self.data.tag == SEIPD else 0)


def read_message(head: bytes) -> Message:
    """The session-key packets of a binary ``gpg -e`` message, from its first bytes."""
    recips: list[Recipient] = []
    skesk = 0
    pos = 0
    while True:
        p = packet_at(head, pos)
        if p.tag not in _ESK:
            break
        if p.length is None:
            raise PacketError("a session-key packet without a definite length")
        _need(head, p.body + p.length)
        body = head[p.body : p.body + p.length]
        if p.tag == PKESK:
            if len(body) < 12 or body[0] != 3:
                raise PacketError(f"a PKESK packet of version {body[:1].hex() or '?'} (not 3)")
            mpi_len = (int.from_bytes(body[10:12], "big") + 7) // 8
            recips.append(Recipient(body[1:9], body[9], body[12 : 12 + mpi_len]))
        elif p.tag == 3:
            skesk += 1
        pos = p.body + p.length
    if p.tag not in (SED, SEIPD):
        raise PacketError(f"packet {p.tag} where the encrypted data should start")
    if p.tag == SEIPD:
        _need(head, p.body + 1)
        if head[p.body] != 1:
            raise PacketError(f"SEIPD version {head[p.body]} (AEAD) is not handled")
    return Message(tuple(recips), skesk, p)


# --- the session key -----------------------------------------------------------------


def checksum(key: bytes | bytearray) -> bytes:
    return (sum(key) & 0xFFFF).to_bytes(2, "big")


def session_key_from_block(block: bytes | bytearray) -> tuple[int, bytearray] | None:
    """(algorithm, key) from a decrypted PKESK block (algo, key, 2-byte checksum), or None
    when it is not one (a wrong key's PKCS#1 v1.5 implicit-rejection noise)."""
    if len(block) < 3 or block[0] not in _CIPHERS:
        return None
    algo, key = block[0], bytearray(block[1:-2])
    if len(key) != _CIPHERS[algo][1] or checksum(key) != bytes(block[-2:]):
        key[:] = bytes(len(key))
        return None
    return algo, key


def quick_check(algo: int, key: bytes | bytearray, message: Message, head: bytes) -> bool:
    """The session key decrypts the data's first block to its repeated last two bytes
    (RFC 4880 §5.7, §5.13: CFB with a zero IV, the same for SED and SEIPD)."""
    cls, size = _CIPHERS[algo]
    if len(key) != size:
        return False
    bs = cls.block_size // 8
    start = message.ciphertext_at
    first = head[start : start + bs + 2]
    if len(first) < bs + 2:
        return False
    dec = Cipher(cls(bytes(key)), CFB(bytes(bs))).decryptor()
    prefix = dec.update(first) + dec.finalize()
    return prefix[bs - 2 : bs] == prefix[bs : bs + 2]


def cipher_known(algo: int) -> bool:
    return algo in _CIPHERS


def pkesk(key_id: bytes, public: rsa.RSAPublicKey, algo: int, key: bytes | bytearray) -> bytes:
    """A PKESK v3 packet: the session key, its algorithm and checksum, RSA-encrypted
    (PKCS#1 v1.5, as OpenPGP requires) for ``public`` under ``key_id``."""
    c = public.encrypt(bytes([algo]) + bytes(key) + checksum(key), padding.PKCS1v15())
    c = c.lstrip(b"\x00")
    mpi = (int.from_bytes(c, "big").bit_length()).to_bytes(2, "big") + c
    return new_format(PKESK, b"\x03" + key_id + b"\x01" + mpi)


def challenge_message(key_id: bytes, public: rsa.RSAPublicKey, text: bytes) -> bytes:
    """A whole ``gpg -e``-like message (PKESK + SEIPD with an MDC) carrying ``text``:
    what ``gpg --decrypt`` must open with the new secret key to prove possession, and
    that it accepts the PKESK this module builds."""
    key = bytearray(os.urandom(32))
    literal = new_format(11, b"b\x00" + bytes(4) + text)
    prefix = os.urandom(16)
    prefix += prefix[-2:]
    mdc_input = prefix + literal + b"\xd3\x14"
    plain = mdc_input + hashlib.sha1(mdc_input).digest()  # noqa: S324 - the MDC is SHA-1
    enc = Cipher(algorithms.AES(bytes(key)), CFB(bytes(16))).encryptor()
    body = b"\x01" + enc.update(plain) + enc.finalize()
    out = pkesk(key_id, public, 9, key) + new_format(SEIPD, body)
    key[:] = bytes(len(key))
    return out


# --- transferable keys (gpg --export, --export-secret-keys) ----------------------------


@dataclass(frozen=True)
class PgpKey:
    """An RSA (sub)key of a transferable key and what gpg would call it."""

    public: rsa.RSAPublicKey
    key_id: bytes  # the low 64 bits of the v4 fingerprint
    fingerprint: str  # v4, hex upper case as gpg prints it
    subkey: bool
    encrypts: bool | None  # from its binding/self signature's key flags; None: not said
    secret: bool  # the packet carries secret material
    # Its secret material is encrypted (S2K usage octet not 0, RFC 4880 §5.5.3): gpg needs
    # the passphrase to use it.
    protected: bool = False


def dearmor(data: bytes) -> bytes:
    """The binary packets of an ASCII-armored block (the data itself when binary)."""
    if not data.lstrip().startswith(b"-----BEGIN PGP"):
        return data
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    start = next(i for i, ln in enumerate(lines) if ln.startswith(b"-----BEGIN PGP"))
    blank = lines.index(b"", start + 1)
    body = b""
    for line in lines[blank + 1 :]:
        if line.startswith((b"=", b"-----")):
            break
        body += line.strip()
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error:
        raise PacketError("the armored block is not valid base64") from None


def _mpi(data: bytes, pos: int) -> tuple[int, int]:
    _need(data, pos + 2)
    n = (int.from_bytes(data[pos : pos + 2], "big") + 7) // 8
    _need(data, pos + 2 + n)
    return int.from_bytes(data[pos + 2 : pos + 2 + n], "big"), pos + 2 + n


def _key_flags(body: bytes) -> int | None:
    """The key flags (subpacket 27) of a v4 signature's hashed subpackets."""
    if len(body) < 6 or body[0] != 4:
        return None
    end = 6 + int.from_bytes(body[4:6], "big")
    pos = 6
    while pos < min(end, len(body)):
        l0 = body[pos]
        if l0 < 192:
            n, pos = l0, pos + 1
        elif l0 < 255:
            n, pos = ((l0 - 192) << 8) + body[pos + 1] + 192, pos + 2
        else:
            n, pos = int.from_bytes(body[pos + 1 : pos + 5], "big"), pos + 5
        if n and body[pos] & 0x7F == 27 and n > 1:
            return body[pos + 1]
        pos += n
    return None


def read_keys(data: bytes) -> list[PgpKey]:
    """The v4 RSA keys and subkeys of a transferable key, binary or armored."""
    raw = dearmor(data)
    out: list[PgpKey] = []
    pending: dict[str, object] | None = None
    pos = 0

    def flush(flags: int | None) -> None:
        if pending is not None:
            out.append(PgpKey(encrypts=None if flags is None else bool(flags & 0x0C), **pending))  # type: ignore[arg-type]

    while pos < len(raw):
        p = packet_at(raw, pos)
        if p.length is None:
            raise PacketError("a key packet without a definite length")
        body = raw[p.body : p.body + p.length]
        if p.tag in (PUBKEY, SECKEY, PUBSUB, SECSUB):
            flush(None)
            pending = None
            if len(body) > 6 and body[0] == 4 and body[5] in RSA_ALGOS:
                n, at = _mpi(body, 6)
                e, at = _mpi(body, at)
                fp = _v4_fingerprint(body, at)
                pending = {
                    "public": rsa.RSAPublicNumbers(e, n).public_key(),
                    "key_id": fp[-8:],
                    "fingerprint": fp.hex().upper(),
                    "subkey": p.tag in (PUBSUB, SECSUB),
                    "secret": p.tag in (SECKEY, SECSUB),
                    "protected": p.tag in (SECKEY, SECSUB) and len(body) > at and body[at] != 0,
                }
        elif p.tag == SIG and pending is not None:
            flags = _key_flags(body)
            if flags is not None:
                flush(flags)
                pending = None
        pos = p.body + p.length
    flush(None)
    return out


def encryption_key(keys: list[PgpKey]) -> PgpKey | None:
    """The key gpg encrypts to: the last subkey flagged for encryption, else the primary
    when it is flagged for it (or says nothing, as very old keys)."""
    flagged = [k for k in keys if k.encrypts]
    if flagged:
        subs = [k for k in flagged if k.subkey]
        return (subs or flagged)[-1]
    unsaid = [k for k in keys if k.encrypts is None]
    return unsaid[-1] if unsaid else None


def key_file_fingerprints(path: Path) -> list[str]:
    """The SPKI SHA-256 of each RSA key in an OpenPGP key file; none when unreadable
    (the key is then tried as before, only no rotated object is found by it)."""
    try:
        return [spki_fingerprint(k.public) for k in read_keys(path.read_bytes())]
    except (OSError, PacketError):
        return []


def key_file_identity(path: Path) -> str:
    """The v4 fingerprint (as gpg prints it) of the first primary key in an OpenPGP key
    file, of any algorithm: what names the key in a rotation's journal. Read from the
    public fields only, so a passphrase-protected secret key needs none. Empty when the
    file cannot be read or its first key is not a v4 key of a known algorithm."""
    try:
        raw = dearmor(path.read_bytes())
        pos = 0
        while pos < len(raw):
            p = packet_at(raw, pos)
            if p.length is None:
                return ""
            body = raw[p.body : p.body + p.length]
            if p.tag in (PUBKEY, SECKEY):
                if len(body) < 6 or body[0] != 4:
                    return ""
                return _v4_fingerprint(body, _public_length(body)).hex().upper()
            pos = p.body + p.length
    except (OSError, ValueError):  # PacketError, or an armor without its blank line
        return ""
    return ""


def _v4_fingerprint(body: bytes, public_length: int) -> bytes:
    """RFC 4880 §12.2: SHA-1 of 0x99, the public part's length and the public part."""
    return hashlib.sha1(  # noqa: S324 - the v4 fingerprint is SHA-1
        b"\x99" + public_length.to_bytes(2, "big") + body[:public_length]
    ).digest()


# A v4 key's public fields after its version, creation time and algorithm: MPIs, with an
# ECC key's curve OID (and ECDH's KDF parameters) each as one length byte then the bytes;
# RFC 9580's X25519, X448, Ed25519 and Ed448 keys are of a fixed size instead.
_MPI, _SIZED = "mpi", "sized"
_PUBLIC_FIELDS: dict[int, tuple[str, ...]] = {
    1: (_MPI, _MPI),  # RSA
    2: (_MPI, _MPI),
    3: (_MPI, _MPI),
    16: (_MPI, _MPI, _MPI),  # Elgamal
    20: (_MPI, _MPI, _MPI),
    17: (_MPI, _MPI, _MPI, _MPI),  # DSA
    18: (_SIZED, _MPI, _SIZED),  # ECDH: OID, point, KDF parameters
    19: (_SIZED, _MPI),  # ECDSA
    22: (_SIZED, _MPI),  # EdDSA (legacy)
}
_FIXED_PUBLIC = {25: 32, 26: 56, 27: 32, 28: 57}


def _public_length(body: bytes) -> int:
    """Where a v4 key packet's public part ends (a secret key's secret fields follow)."""
    algo = body[5]
    if algo in _FIXED_PUBLIC:
        _need(body, 6 + _FIXED_PUBLIC[algo])
        return 6 + _FIXED_PUBLIC[algo]
    if algo not in _PUBLIC_FIELDS:
        raise PacketError(f"public-key algorithm {algo} is not known")
    pos = 6
    for kind in _PUBLIC_FIELDS[algo]:
        if kind == _MPI:
            _, pos = _mpi(body, pos)
        else:
            _need(body, pos + 1)
            pos += 1 + body[pos]
            _need(body, pos)
    return pos
