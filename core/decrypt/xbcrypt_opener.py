"""The opener of a whole stream encrypted by ``xbcrypt`` (issue 16): ``xtrabackup
--stream=xbstream | xbcrypt --encrypt-algo=… > all.xbstream.xbcrypt``.

The chunks are read as they download; the cipher layer (every chunk's CRC-32) and,
for v3, the key (every chunk's SHA-256) are proved at the end of the stream.
"""

from __future__ import annotations

from ..records.report import Status
from .opener import EvidenceSink, Opened, OpenRequest
from .xbcrypt import XbcryptReader, XbcryptStats
from .xbkey import HOW_TO_GIVE, XbcryptKey, XbcryptKeyNeeded


def xbcrypt_proof(st: XbcryptStats, key: XbcryptKey, *, where: str) -> tuple[str, str]:
    """(key sentence, cipher sentence) for xbcrypt chunks, whole stream or members."""
    versions = "/".join(f"v{v}" for v in sorted(st.versions)) or "no"
    cipher = (
        f"xbcrypt {versions} ({key.cipher}) {where}: {st.chunks} chunks, the CRC-32 of "
        f"each encrypted chunk verified, {st.ciphertext_bytes} bytes decrypted"
    )
    if st.key_proved:
        keyp = (
            f"{key.origin}: the SHA-256 of every chunk's plaintext (XBCRYP03) matched, "
            f"{st.sha256_checked} chunks: the key is the one the backup was encrypted with"
        )
    else:
        keyp = (
            f"{key.origin}: xbcrypt {versions} stores no check of the key (only v3 does), "
            "so the key is proved only by the layers below: qpress block checksums, the "
            "backup's own files and the InnoDB page checksums"
        )
    return keyp, cipher


def open_xbcrypt(req: OpenRequest, ev: EvidenceSink) -> Opened:
    src = req.src
    key = req.secrets.xbcrypt
    if key is None:
        raise XbcryptKeyNeeded(
            f"the whole stream is xbcrypt-encrypted; {HOW_TO_GIVE}", obj=src.name
        )
    ev.formats.append("xbcrypt")
    xb = XbcryptReader(req.start_fetch(), key.key, obj=src.name, cancel=req.cancel)
    ev.partial["cipher"] = lambda: (
        f"xbcrypt: {xb.stats.chunks} chunks decrypted, each CRC-32 checked; the end of "
        "the stream was not reached"
        if xb.stats.chunks
        else None
    )

    def done() -> None:
        req.source_done()
        keyp, cipher = xbcrypt_proof(xb.stats, key, where="around the whole stream")
        ev.set("key", Status.OK if xb.stats.key_proved else Status.WARNING, keyp)
        ev.ok("cipher", cipher, versions=sorted(xb.stats.versions), chunks=xb.stats.chunks)

    return Opened(xb, done)
