"""Which container a physical backup comes in, from the plaintext's first bytes
(issue 16): an xbstream by its magic; a tar of the backup's folder (ApsaraDB's
``*.tar.gz``) by its first file.

A tar is a physical backup when its first regular file is one XtraBackup or
mariabackup writes (by its name, once the suffixes of the member layers are
taken off: ``ibdata1``, ``backup-my.cnf``, ``db/t.ibd``, ``db/t.frm``, …) or
when its first bytes are a member layer's magic (xbcrypt, qpress): no other
program writes those. Any other tar (pg_dump's toc.dat, anything else) stays on
the tar road of the payload check. Folders, links and empty files of unknown
names do not decide; the physical road refuses links by name later.
"""

from __future__ import annotations

import re

from ..formats import Fmt, sniff
from ..payload.streamparse import Damaged, Ended, Feeder
from ..payload.tar import FOLDER, REGULAR, Member, MemberSink, TarParser
from ..payload.xbstream import MAGIC as XBSTREAM_MAGIC
from ..payload.xbstream import META

# How much of a tar is read before its first file decides (folders, long names).
HEAD_MAX = 4 << 20
_LAYER_SUFFIXES = re.compile(r"(\.qp|\.xbcrypt|\.zst|\.lz4)+$")
_BACKUP_FILE = re.compile(
    r"(ibdata\d+|ib_logfile\d+|undo\d+|undo_\d+|ib_buffer_pool|aria_log_control|"
    r"aria_log\.\d+|xtrabackup_\w+|mariadb_backup_\w+|db\.opt"
    r"|.+\.(ibd|frm|MAD|MAI|MYD|MYI|isl|TRG|TRN|par|ARZ|CSM)|.+\.ibd\.(delta|meta))"
)
NEED_MORE = "more"
# The containers a physical backup's files come in (their readers hand on the same
# (path, bytes) events), and the payload kind each is reported as.
PAYLOAD_KINDS = {"xbstream": "xbstream", "tar": "xtrabackup-tar"}


def backup_file(name: str) -> bool:
    base = _LAYER_SUFFIXES.sub("", name.rstrip("/").rsplit("/", 1)[-1])
    return base in META or bool(_BACKUP_FILE.fullmatch(base))


class _Decided(Exception):
    def __init__(self, physical: bool) -> None:
        super().__init__()
        self.physical = physical


class _FirstBytes(MemberSink):
    def __init__(self) -> None:
        self._head = b""

    def feed(self, data: bytes) -> None:
        self._head += data[:8]
        if len(self._head) >= 8:
            self.finish()

    def finish(self) -> None:
        # The member layers' modules load only for a tar's first file: every run asks
        # for the container, most of them of a dump that is no tar (issue 17).
        from ..decompress.qpress import MAGIC as QPRESS_MAGIC
        from ..decrypt.xbcrypt import MAGICS as XBCRYPT_MAGICS

        magic = self._head[:8]
        raise _Decided(magic in XBCRYPT_MAGICS or magic == QPRESS_MAGIC)


def _first_file(m: Member) -> MemberSink | None:
    if m.kind != FOLDER and backup_file(m.name):
        raise _Decided(True)  # a link of such a name too: the physical road refuses it
    if m.kind not in REGULAR or m.size == 0:
        return None  # a folder, a link, an empty file: the next member decides
    return _FirstBytes()


def tar_holds_backup(head: bytes, *, ended: bool) -> bool | None:
    """True or False once the tar's first file decides; None: more bytes are needed."""
    parser = TarParser(_first_file, ignore_zeros=True)
    feeder = Feeder(parser.parse(), lambda _n: None)
    try:
        feeder.feed(head)
        if ended:
            feeder.finish()
    except _Decided as d:
        return d.physical
    except (Damaged, Ended):
        return False  # damaged before any file: the tar road names the damage
    if parser.stopped_at is not None:  # a sparse member: its name decides
        return backup_file(parser.stopped_at.name)
    return False if ended or len(head) >= HEAD_MAX else None


def container(head: bytes, *, ended: bool = False) -> str | None:
    """``"xbstream"``, ``"tar"`` (a backup's folder), None (not a physical backup), or
    NEED_MORE: the head of a tar before its first file."""
    if head.startswith(XBSTREAM_MAGIC):
        return "xbstream"
    if sniff(head) is not Fmt.TAR:
        return None
    holds = tar_holds_backup(head, ended=ended)
    if holds is None:
        return NEED_MORE
    return "tar" if holds else None
