"""Software RSA padding removal: EME-OAEP and EME-PKCS1-v1_5 (RFC 8017 §7.1.2, §7.2.2).

Used only when a token refuses a padding mechanism but does raw RSA
(``CKM_RSA_X_509``): the token still does the private-key operation, and the
padding is removed here. Everywhere else RSA padding is pyca/cryptography's
job; this is the one place that handles it by hand, so it stays small and
apart from the token code.

What care is taken, and its limits: the padded block, the unmasked seed and
the unmasked data block are overwritten before returning (the masks and the
returned message are not; Python copies bytes freely anyway, so this narrows
the time a secret sits in memory rather than guaranteeing it). Every failure
gives the same answer, ``None``, without saying which check failed. The code
is NOT constant-time: timing could tell the failure cases apart. That is
acceptable for an offline restore tool that decodes only the wrapped keys it
is given; it would not be for a service answering decryption queries (a
padding oracle, Bleichenbacher/Manger).
"""

from __future__ import annotations

import hashlib


def _mgf1(seed: bytes | bytearray, length: int, hash_name: str) -> bytearray:
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.new(hash_name, bytes(seed) + counter.to_bytes(4, "big")).digest()
        counter += 1
    del out[length:]
    return out


def eme_oaep_decode(
    em: bytes | bytearray, k: int, hash_name: str, mgf_hash_name: str, label: bytes = b""
) -> bytearray | None:
    """RFC 8017 §7.1.2 step 3: the message inside the raw RSA output ``em``, or None.

    ``em`` is left-padded with zero bytes to ``k`` (tokens may strip them). Not
    constant-time: acceptable for an offline restore tool, not for an oracle.
    """
    if len(em) > k:
        return None
    h_len = hashlib.new(hash_name).digest_size
    if k < 2 * h_len + 2:
        return None
    buf = bytearray(k - len(em)) + bytearray(em)
    seed = bytearray()
    db = bytearray()
    try:
        y = buf[0]
        masked_seed = buf[1 : 1 + h_len]
        masked_db = buf[1 + h_len :]
        seed_mask = _mgf1(masked_db, h_len, mgf_hash_name)
        seed = bytearray(a ^ b for a, b in zip(masked_seed, seed_mask, strict=True))
        db_mask = _mgf1(seed, k - h_len - 1, mgf_hash_name)
        db = bytearray(a ^ b for a, b in zip(masked_db, db_mask, strict=True))
        l_hash = hashlib.new(hash_name, label).digest()
        if y != 0 or bytes(db[:h_len]) != l_hash:
            return None
        i = h_len
        while i < len(db) and db[i] == 0:
            i += 1
        if i >= len(db) or db[i] != 1:
            return None
        return bytearray(db[i + 1 :])
    finally:
        for b in (buf, seed, db):
            b[:] = bytes(len(b))


def eme_pkcs1_v15_decode(em: bytes | bytearray, k: int) -> bytearray | None:
    """RFC 8017 §7.2.2 step 3: ``00 02 PS(>= 8 non-zero) 00 M`` -> M, or None."""
    if len(em) > k or k < 11:
        return None
    buf = bytearray(k - len(em)) + bytearray(em)
    try:
        if buf[0] != 0 or buf[1] != 2:
            return None
        sep = buf.find(0, 2)
        if sep < 10:  # also -1: no separator
            return None
        return bytearray(buf[sep + 1 :])
    finally:
        buf[:] = bytes(len(buf))
