"""RFC 3161 timestamp of a report's chain head (issue 14, ``--tsa URL``).

The message imprint is the chain head itself: ``record_hash`` is already a SHA-256, so
the request carries those 32 bytes with the SHA-256 algorithm, and anyone can check the
token with the standard tools alone::

    openssl ts -verify -digest HEAD_HASH -in token.der -token_in -CAfile tsa-ca.pem

The raw token (the CMS SignedData the TSA returned) is kept, base64, in the report's
``chain.timestamp`` member; it is signed by the TSA, so it needs no other seal. A TSA
that cannot be reached, or refuses, is a setup problem: the report is written all the
same and says "not timestamped" and why.

ASN.1 is parsed and built with asn1crypto (already installed with python-pkcs11), the
signature checked with cryptography.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

NOT_TIMESTAMPED = "not timestamped"
TIMEOUT_S = 20.0
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class TimestampProblem(ValueError):
    """Why a timestamp token does not hold (the message is for people)."""


def request_der(head_hash: str, nonce: int) -> bytes:
    """A TimeStampReq over the chain head (asking for the TSA's certificate too)."""
    return bytes(
        tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "hashed_message": bytes.fromhex(head_hash),
                },
                "nonce": nonce,
                "cert_req": True,
            }
        ).dump()
    )


def stamp(url: str, head_hash: str, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """The report's ``chain.timestamp`` member: the token, or why there is none."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--tsa {url}: give an http:// or https:// URL")
    nonce = secrets.randbits(63)
    req = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        data=request_der(head_hash, nonce),
        headers={"Content-Type": "application/timestamp-query"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - checked above
            reply = resp.read()
        token = _token_of_reply(reply, head_hash, nonce)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        why = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return {"tsa": url, "status": NOT_TIMESTAMPED, "reason": f"{url}: {why}"}
    info = _tst_info(token)
    return {
        "tsa": url,
        "status": "timestamped",
        "hash_algorithm": "sha256",
        "imprint": head_hash,
        "gen_time": info["gen_time"].native.isoformat(),
        "serial": str(info["serial_number"].native),
        "token": base64.b64encode(token).decode(),
    }


def _token_of_reply(reply: bytes, head_hash: str, nonce: int) -> bytes:
    try:
        resp = tsp.TimeStampResp.load(reply)
        status = resp["status"]["status"].native
    except ValueError as exc:
        raise ValueError(f"the reply is not an RFC 3161 response ({exc})") from None
    if status not in ("granted", "granted_with_mods"):
        text = resp["status"]["status_string"].native
        raise ValueError(f"the TSA refused the request ({status}: {text})")
    token = bytes(resp["time_stamp_token"].dump())
    info = _tst_info(token)
    if info["nonce"].native != nonce:
        raise ValueError("the TSA's reply does not carry the request's nonce")
    if info["message_imprint"]["hashed_message"].native != bytes.fromhex(head_hash):
        raise ValueError("the TSA stamped another imprint than the chain head")
    return token


def _signed_data(token: bytes) -> cms.SignedData:
    ci = cms.ContentInfo.load(token)
    if ci["content_type"].native != "signed_data":
        raise TimestampProblem("the timestamp token is not CMS SignedData")
    return ci["content"]


def _tst_info(token: bytes) -> tsp.TSTInfo:
    raw = _signed_data(token)["encap_content_info"]["content"].contents
    return tsp.TSTInfo.load(raw)


def check(ts: Mapping[str, Any], head_hash: str, cert_pem: bytes | None) -> str:
    """The token's time when its imprint is the chain head and, with ``cert_pem``, its
    signature verifies against that TSA certificate; else TimestampProblem."""
    try:
        token = base64.b64decode(str(ts["token"]), validate=True)
        sd = _signed_data(token)
        raw = sd["encap_content_info"]["content"].contents
        info = tsp.TSTInfo.load(raw)
        imprint = info["message_imprint"]
        algo = imprint["hash_algorithm"]["algorithm"].native
        hashed = imprint["hashed_message"].native
        gen_time = info["gen_time"].native.isoformat()
    except (KeyError, TypeError, ValueError) as exc:
        raise TimestampProblem(f"the timestamp token is damaged ({exc})") from None
    if algo != "sha256" or hashed != bytes.fromhex(head_hash):
        raise TimestampProblem(
            f"the timestamp token stamps {algo} {hashed.hex()}, not the chain head "
            f"{head_hash}: the chain head or the token was changed"
        )
    if cert_pem is not None:
        _check_signature(sd, raw, cert_pem)
    return str(gen_time)


def _check_signature(sd: cms.SignedData, raw: bytes, cert_pem: bytes) -> None:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise TimestampProblem(f"--tsa-cert is not a PEM certificate ({exc})") from None
    who = cert.subject.rfc4514_string()
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is None or ExtendedKeyUsageOID.TIME_STAMPING not in eku:
        raise TimestampProblem(f"the TSA certificate {who} is not for time stamping")
    si = sd["signer_infos"][0]
    sid = si["sid"]
    if sid.name == "issuer_and_serial_number" and sid.chosen["serial_number"].native != (
        cert.serial_number
    ):
        raise TimestampProblem(
            f"the timestamp token was signed by another TSA certificate than {who}"
        )
    algo = si["digest_algorithm"]["algorithm"].native
    if si["signature_algorithm"].signature_algo not in ("rsassa_pkcs1v15", "ecdsa"):
        name = si["signature_algorithm"]["algorithm"].native
        raise TimestampProblem(f"the timestamp token is signed with {name}, not supported here")
    if algo not in _HASHES:
        raise TimestampProblem(f"the timestamp token uses an unsupported digest {algo}")
    attrs = {a["type"].native: a["values"][0].native for a in si["signed_attrs"]}
    if attrs.get("message_digest") != hashlib.new(algo, raw).digest():
        raise TimestampProblem("the timestamp token's content was changed after the TSA signed it")
    signed = bytearray(si["signed_attrs"].dump())
    signed[0] = 0x31  # signed over as a SET OF, not as the [0] it is stored under
    _verify(cert, bytes(si["signature"].native), bytes(signed), _HASHES[algo](), who)


def _verify(
    cert: x509.Certificate, sig: bytes, data: bytes, algo: hashes.HashAlgorithm, who: str
) -> None:
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, data, padding.PKCS1v15(), algo)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, data, ec.ECDSA(algo))
        else:
            raise TimestampProblem(f"the TSA certificate {who} has a key type not supported")
    except InvalidSignature:
        raise TimestampProblem(
            f"the timestamp token's signature does not verify against the TSA certificate "
            f"{who}: the token was changed or another TSA signed it"
        ) from None
