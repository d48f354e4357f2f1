"""The history's hash chain and the signed statement of its head (issue 14).

Every history record carries the hash of the record before it:

* ``digest``: SHA-256 of the record's content (every stored column but the chain's own,
  the result as parsed JSON), serialised canonically (``canonical``);
* ``record_hash``: SHA-256 of ``prev_hash + "\\n" + digest``, where ``prev_hash`` is the
  previous record's ``record_hash`` (``GENESIS`` for the first record).

So changing, removing or reordering any record changes every hash after it, up to the
head. A report carries a *spine*: the id and digest of every record from its first
record to the history's head when it was exported (records it does not include are
there by digest only), and a statement of that head signed with Ed25519. Anyone with
the public key can then recompute, offline, the chain from the report alone.

Nothing here holds a private key: signing is a ``Signer`` the caller brings (the key
lives in custody, keys/signing.py); checking needs only the public key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GENESIS = "0" * 64
STATEMENT_FORMAT = "sealcheck-chain-head"
ALGORITHM = "Ed25519"
HOW = (
    "digest = SHA-256 of the record's content as JSON with sorted keys, separators ',' "
    "and ':', ASCII only; record_hash = SHA-256 of prev_hash, a newline and digest (hex); "
    "the first record's prev_hash is 64 zeros. The signature is Ed25519 over the "
    "'statement' member serialised the same way. Check it offline with: sealcheck report "
    "verify FILE --public-key PEM"
)


class Signer(Protocol):
    """An Ed25519 key that signs statements; only its public half is ever read out."""

    @property
    def public_pem(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


def canonical(value: Any) -> bytes:
    return _CANONICAL.encode(value).encode()


# What json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True) uses,
# made once: json.dumps makes a new encoder on every call with options (two a record
# in a 100,000-record merge).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest_of(content: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(content)).hexdigest()


def link(prev_hash: str, digest: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{digest}".encode()).hexdigest()


def spki_fingerprint_of_pem(pem: str | bytes) -> str:
    """The SHA-256 SubjectPublicKeyInfo fingerprint, as for every other key."""
    key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class SpineLink:
    id: int
    digest: str


def head_of(anchor: str, spine: Sequence[SpineLink]) -> str:
    """The record hash the spine leads to from ``anchor`` (the hash before its first link)."""
    h = anchor
    for s in spine:
        h = link(h, s.digest)
    return h


def statement(
    *,
    anchor: str,
    spine: Sequence[SpineLink],
    included: Sequence[int],
    body_sha256: str,
    signed_at: str,
) -> dict[str, Any]:
    """What is signed: the chain from ``anchor`` to its head, which records the report
    includes, and the digest of everything else in the report."""
    return {
        "format": STATEMENT_FORMAT,
        "anchor": anchor,
        "spine": [[s.id, s.digest] for s in spine],
        "head": {"id": spine[-1].id if spine else None, "hash": head_of(anchor, spine)},
        "included": list(included),
        "body_sha256": body_sha256,
        "signed_at": signed_at,
    }


def sign(stmt: dict[str, Any], signer: Signer | None) -> dict[str, Any]:
    """The report's ``chain`` member: the statement and its signature (None: unsigned)."""
    signature = None
    if signer is not None:
        signature = {
            "algorithm": ALGORITHM,
            "public_key": signer.public_pem,
            "fingerprint": signer.fingerprint,
            "value": base64.b64encode(signer.sign(canonical(stmt))).decode(),
        }
    return {"statement": stmt, "signature": signature, "how": HOW}


class SignatureProblem(ValueError):
    """Why a signature does not hold (the message is for people)."""


def check_signature(chain: Mapping[str, Any], expected_pem: bytes | None) -> str:
    """The signer's fingerprint when the signature over the statement holds and, if
    ``expected_pem`` is given, was made by that key; else SignatureProblem."""
    sig = chain.get("signature")
    if not isinstance(sig, Mapping):
        raise SignatureProblem("the report is not signed")
    try:
        pem = str(sig["public_key"]).encode()
        key = serialization.load_pem_public_key(pem)
        value = base64.b64decode(str(sig["value"]), validate=True)
    except (KeyError, ValueError, TypeError) as exc:
        raise SignatureProblem(f"the signature member is damaged ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureProblem("the signing key in the report is not an Ed25519 key")
    fp = spki_fingerprint_of_pem(pem)
    if expected_pem is not None:
        want = spki_fingerprint_of_pem(expected_pem)
        if want != fp:
            raise SignatureProblem(
                f"signed by another key: the report's signing key is {fp}, the public key "
                f"given is {want}"
            )
    try:
        key.verify(value, canonical(chain.get("statement")))
    except InvalidSignature:
        raise SignatureProblem(
            f"the signature by {fp} does not match the signed statement: the chain head, "
            "the list of records or the report's content was changed after signing"
        ) from None
    return fp
