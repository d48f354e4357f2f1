"""The ``openssl enc`` opener: salted (binary or base64) and -K/-iv output.

The key is proved on the object's first bytes and its last cipher blocks
(unlock.py) before the download starts; the content is then decrypted as it
streams, and the last block's padding (CBC) is checked at its end.
"""

from __future__ import annotations

from ...errors import KeyUnavailable
from ...formats import Fmt
from ...plumbing.progress import CancelToken
from ...plumbing.streams import Reader, Tally, read_exact
from ...records.report import LayerResult, Status
from ...storage.source import Source
from ..opener import EvidenceSink, Opened, OpenRequest
from ..secrets import Secrets
from .header import EncHeader, EncParams
from .stream import Base64Reader, DecryptReader
from .unlock import (
    KeyEvidence,
    Probe,
    ciphers_for,
    probe_openssl,
    unlock_passphrase,
    unlock_raw,
)
from .wrapped import read_wrapped_key, unlock_wrapped


def open_openssl(req: OpenRequest, ev: EvidenceSink) -> Opened:
    src, secrets = req.src, req.secrets
    salted = req.fmt in (Fmt.OPENSSL_SALTED, Fmt.OPENSSL_SALTED_B64)
    b64 = req.fmt is Fmt.OPENSSL_SALTED_B64
    ev.formats.append("openssl-enc" + ("-base64" if b64 else ""))
    header, probe = probe_openssl(src, req.head, base64=b64, salted=salted)
    wrapped = wrapped_name = None
    if req.wrapped_key is not None and secrets.raw_key is None:
        ev.wrapped = req.wrapped_key.identity()
        wrapped_name = req.wrapped_key.name
        wrapped = read_wrapped_key(req.wrapped_key)
    req.meter.set_current("unlock")
    params, key_ev = unlock_openssl(src, header, probe, secrets, wrapped, wrapped_name, req.cancel)
    _key_evidence(ev, key_ev)
    req.meter.set_current("download")
    stream: Reader = req.start_fetch()
    if b64:
        stream = Base64Reader(stream, obj=src.name)
    read_exact(stream, header.body_offset)
    ciphertext = Tally(stream)
    dec = DecryptReader(ciphertext, params, obj=src.name, cancel=req.cancel)
    params.wipe()
    req.closers.append(dec.close)  # the key schedule freed however the run ends
    desc = f"{params.cipher.name}, key and IV from {params.kdf.describe()}"
    if params.form is not None:
        desc += f", secret passed as {params.form.description}"

    def cipher_result() -> LayerResult:
        pad = "PKCS#7 padding of the last block valid" if dec.padding_ok else "CTR mode: no padding"
        return LayerResult(
            "cipher",
            Status.OK,
            f"{desc}; {pad}; {dec.ciphertext_bytes} bytes decrypted",
            {
                "cipher": params.cipher.name,
                "kdf": params.kdf.describe(),
                "password_form": params.form.name if params.form else None,
            },
        )

    cbc = params.cipher.mode == "cbc"

    def cipher_partial() -> str | LayerResult:
        # The end was reached and checked (CBC: the padding is valid; CTR has none).
        if dec.padding_ok is True or (not cbc and ciphertext.eof):
            return cipher_result()
        return (
            f"{desc}; decrypted {dec.ciphertext_bytes} bytes without error; the end of "
            "the data, where the last block's padding is checked, was not reached"
        )

    ev.partial["cipher"] = cipher_partial

    def cipher_done() -> None:
        req.source_done()
        ev.layers["cipher"] = cipher_result()

    return Opened(dec, cipher_done)


def unlock_openssl(
    src: Source,
    header: EncHeader,
    probe: Probe,
    secrets: Secrets,
    wrapped: bytes | None,
    wrapped_name: str | None,
    cancel: CancelToken,
) -> tuple[EncParams, KeyEvidence]:
    """Which secret to try, by what the user gave: a raw key, else the wrapped data
    key with the held keys, else the passphrase (each tried by unlock's trial)."""
    ciphers = ciphers_for(secrets)
    if secrets.raw_key is not None:
        return unlock_raw(src, probe, secrets, ciphers)
    if wrapped is not None:
        return unlock_wrapped(src, header, probe, secrets, wrapped, wrapped_name, ciphers, cancel)
    if secrets.passphrase is not None:
        return unlock_passphrase(src, header, probe, secrets, ciphers, cancel)
    if secrets.keys:
        raise KeyUnavailable(
            "this backup needs its wrapped-key object (X.key, STEM.key.txt.enc, ...); none was "
            "found beside it: give it with --wrapped-key",
            obj=src.name,
        )
    raise KeyUnavailable(
        "it is encrypted with openssl enc; give --key PEM (with its wrapped key) or "
        "--passphrase-file",
        obj=src.name,
    )


def _key_evidence(ev: EvidenceSink, k: KeyEvidence) -> None:
    if k.method == "rsa":
        ev.ok(
            "key",
            f"data key unwrapped with {k.key_label} ({k.padding}) and confirmed by the data",
            key=k.key_label,
            fingerprint=k.fingerprint,
            padding=k.padding,
        )
    elif k.method == "passphrase":
        ev.ok("key", "passphrase accepted and confirmed by the data", key="passphrase file")
    elif k.method == "raw":
        ev.ok("key", "raw key and IV confirmed by the data", key="raw -K/-iv")
