"""Which opener opens which envelope format: one explicit table.

An explicit table rather than modules that register themselves when imported:
it is read in one place, it does not depend on which modules were imported
first, and import-linter sees every opener as a plain import of this module.
A new format is one opener module (opener.py is the contract) and one line here.
An opener whose module is large and only its format needs (gpg's packet parser and
process plumbing) is named here by a small function that imports it on first use: a
verify of an openssl enc backup loads none of it (issue 17, start-up is part of the
job; cms/opener.py defers its key module the same way). So is xbcrypt's (its chunk
reader and key forms: XtraBackup backups only).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ..errors import Layer, UnsupportedFormat
from ..formats import NOT_A_BACKUP, Fmt
from ..records.report import Status
from .cms.opener import open_cms
from .opener import EvidenceSink, Opened, Opener, OpenRequest
from .openssl.opener import open_openssl
from .secrets import Secrets


def _open_gpg(req: OpenRequest, ev: EvidenceSink) -> Opened:
    from .gpg.opener import open_gpg

    return open_gpg(req, ev)


def _open_xbcrypt(req: OpenRequest, ev: EvidenceSink) -> Opened:
    from .xbcrypt_opener import open_xbcrypt

    return open_xbcrypt(req, ev)


OPENERS: Mapping[Fmt, Opener] = MappingProxyType(
    {
        Fmt.OPENSSL_SALTED: open_openssl,
        Fmt.OPENSSL_SALTED_B64: open_openssl,
        Fmt.PGP_BINARY: _open_gpg,
        Fmt.PGP_ARMORED: _open_gpg,
        Fmt.CMS_DER: open_cms,
        Fmt.CMS_PEM: open_cms,
        Fmt.SMIME: open_cms,
        Fmt.XBCRYPT: _open_xbcrypt,
    }
)
# Envelopes that are recognised but not opened yet: each fails with one typed error.
UNSUPPORTED: frozenset[Fmt] = frozenset({Fmt.AGE})


def open_plain(req: OpenRequest, ev: EvidenceSink) -> Opened:
    """Not encrypted (a compressed or plain dump): the data is read as it is."""
    ev.warnings.append("the backup is not encrypted")
    ev.set("key", Status.SKIPPED, "not encrypted: no key involved")
    ev.set("cipher", Status.SKIPPED, "not encrypted")
    return Opened(req.start_fetch(), req.source_done)


def opener_for(fmt: Fmt | None, secrets: Secrets, obj: str) -> Opener:
    """The opener for an object whose first bytes were sniffed as ``fmt``; a
    format that is no envelope (compressed, plain SQL) is read as it is."""
    # -K/-iv output has no header: its first bytes are ciphertext, which the sniffer
    # can take for something else (a binary OpenPGP packet tag is one byte). The
    # user's raw key says what it is.
    if secrets.raw_key is not None:
        return open_openssl
    if fmt is None:
        raise UnsupportedFormat(
            f"{NOT_A_BACKUP}: it starts with no known magic, so it is not openssl enc with "
            "a salt, OpenPGP, CMS (S/MIME), or a compressed dump (for openssl enc -nosalt or "
            "-K/-iv give "
            "--raw-key-file/--iv)",
            obj=obj,
            layer=Layer.SOURCE,
        )
    if fmt in UNSUPPORTED:
        raise UnsupportedFormat(
            f"{fmt.value} encryption is not supported yet", obj=obj, layer=Layer.CIPHER
        )
    return OPENERS.get(fmt, open_plain)
