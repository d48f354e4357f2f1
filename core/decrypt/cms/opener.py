"""The CMS (S/MIME) opener: DER, PEM and S/MIME text envelopes.

The content key is found from the object's first bytes before the download
(key.py), then the content is streamed through its cipher; the GCM tag or the
CBC padding, and the structure's end, are checked at its end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...records.report import LayerResult, Status
from ..opener import EvidenceSink, Opened, OpenRequest

if TYPE_CHECKING:
    from .key import CmsKey


def open_cms(req: OpenRequest, ev: EvidenceSink) -> Opened:
    # Imported here, not at the top: the registry imports every opener, and key.py brings
    # cryptography.x509 (~45 ms) that a verify of anything but CMS never needs (issue 17:
    # start-up is part of the job).
    from .key import open_cms_stream, probe_cms, unlock_cms

    src, fmt = req.src, req.fmt
    assert fmt is not None
    ev.formats.append(fmt.value)
    req.meter.set_current("unlock")
    probe = probe_cms(src, fmt, req.head)
    key = unlock_cms(probe, req.secrets.keys, req.cancel, src.name)
    hdr = probe.header
    ev.set(
        "key",
        Status.WARNING if key.ski_matches is False else Status.OK,
        _cms_key_proof(key),
        key=key.key.label,
        fingerprint=key.key.fingerprint,
        padding=key.padding,
        recipient=key.recipient.rid,
        recipient_index=key.recipient.index,
        recipients=len(hdr.recipients) + len(hdr.other_recipients),
        recipient_id_checked=key.ski_matches,
    )
    if key.ski_matches is False:
        ev.warnings.append("the recipient's key identifier does not match the key that opened it")
    req.meter.set_current("download")
    try:
        dec, content = open_cms_stream(req.start_fetch(), fmt, probe, key, src.name, req.cancel)
    finally:
        key.wipe()
    spec = hdr.cipher.spec
    desc = f"CMS {hdr.kind}, {spec.name}"
    gcm = spec.mode == "gcm"

    def cipher_result() -> LayerResult:
        end = (
            "GCM tag verified: every content byte and the nonce are as encrypted"
            if gcm
            else "PKCS#7 padding of the last block valid; CBC has no MAC, so the content is "
            "judged by the layers below"
        )
        return LayerResult(
            "cipher",
            Status.OK,
            f"{desc}; {end}; {dec.ciphertext_bytes} bytes decrypted; the structure ends where "
            "its lengths say, with nothing after it",
            {
                "envelope": hdr.kind,
                "cipher": spec.name,
                "authenticated": gcm,
                "unprotected_attributes": content.unprotected_attrs,
            },
        )

    def cipher_partial() -> str | LayerResult | None:
        if dec.tag_ok or dec.padding_ok:
            return cipher_result()
        if not dec.ciphertext_bytes:
            return None
        check = "the GCM tag" if gcm else "the last block's padding"
        return (
            f"{desc}; decrypted {dec.ciphertext_bytes} bytes without error; the end of the "
            f"content, where {check} is checked, was not reached"
        )

    ev.partial["cipher"] = cipher_partial

    def cipher_done() -> None:
        req.source_done()
        ev.layers["cipher"] = cipher_result()

    return Opened(dec, cipher_done)


def _cms_key_proof(key: CmsKey) -> str:
    rec = key.recipient
    text = (
        f"content key unwrapped from recipient #{rec.index} ({rec.rid}) with {key.key.label} "
        f"({key.padding}), confirmed by {key.confirmed_by}"
    )
    if key.ski_matches is True:
        return text + "; the recipient's key identifier is this key's"
    if key.ski_matches is False:
        return text + (
            "; the recipient's key identifier is NOT this key's (damaged, or the certificate "
            "used another key-identifier method)"
        )
    return text + "; the recipient identifier itself is not checked (no certificate is given)"
