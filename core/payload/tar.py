"""A tar stream as GNU tar writes it: the one header reader for every tar Sealcheck
reads (pg_dump archives in pgdump/tar.py, the restore test's pg_restore feed, and
the folder of a physical backup in tarfiles.py).

A tar is a run of 512-byte headers, each checksummed, each followed by its
member's data padded with zeros to a multiple of 512, and ended by two zero
blocks (writers pad the last record with more zeros). Names longer than the
header's 100 bytes come in a GNU long-name member (``L``, ``K`` for a link's
target) or a pax extended header (``x``: ``path``, ``linkpath``, ``size``) just
before the member they name.

With ``ignore_zeros`` (``tar -i``, as ApsaraDB's ``tar -izxvf`` reads its
backups) a zero block is skipped wherever it stands, so concatenated archives
read as one; the stream must still end in two zero blocks, or it was cut short.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .streamparse import PIECE, Cursor, Damaged, Ended, Parse, take, take_or_end

BLOCK = 512
ZERO = bytes(BLOCK)
MAX_NAME = 64 * 1024  # a GNU long name or pax header, kept whole
# Member types with data after the header (regular files, and unknown types,
# which tar readers skip by their size); links, folders and devices have none.
_NO_DATA = set(b"123456")
REGULAR = ("0", "\0", "7")  # "7": contiguous file, read as a regular one
FOLDER = "5"
KIND_WORDS = {
    "1": "a hard link",
    "2": "a symbolic link",
    "3": "a character device",
    "4": "a block device",
    "6": "a FIFO",
    "S": "a GNU sparse file (tar -S), whose holes are not read here",
    "V": "a volume label",
    "M": "a multi-volume continuation",
    "D": "a GNU dump folder",
    "N": "an old GNU long-name member",
}


@dataclass
class Member:
    name: str
    size: int
    at: int  # offset of its header in the tar stream
    kind: str = "0"  # the header's type flag
    link: str = ""  # a link's target


class MemberSink:
    def feed(self, data: bytes) -> None: ...

    def finish(self) -> None: ...


class TarParser:
    """Tar headers and member data, as a stream parser; members go to ``open``."""

    def __init__(
        self, open_member: Callable[[Member], MemberSink | None], *, ignore_zeros: bool = False
    ) -> None:
        self.cur = Cursor()
        self._open = open_member
        self._ignore_zeros = ignore_zeros
        self.members = 0
        self.headers = 0
        self.zeros_skipped = 0  # zero blocks inside the archive (ignore_zeros)
        self.not_judged: str | None = None
        self.stopped_at: Member | None = None  # the member the parser could not read

    def parse(self) -> Parse[None]:
        ext: dict[str, str] = {}  # what the long-name and pax headers say of the next member
        zeros = 0
        while True:
            at = self.cur.pos
            hdr = yield from take_or_end(self.cur, BLOCK, "a tar header")
            if hdr is None:
                if zeros >= 2:
                    return
                raise Ended(
                    f"the tar archive's {'second end block' if zeros else 'two end blocks'}", at
                )
            if hdr == ZERO:
                if ext:
                    raise Damaged("a long-name or pax header is followed by no member", at)
                if not self._ignore_zeros:
                    yield from self._end(at)
                    return
                zeros += 1
                continue
            self.zeros_skipped += zeros
            zeros = 0
            _checksum(hdr, at)
            _well_formed(hdr, at)
            self.headers += 1
            kind = chr(hdr[156])
            if kind in "LxKg":  # GNU long name or link name, pax header (global: g)
                raw = yield from self._small(_size(hdr, at), at)
                if kind == "L":
                    ext["path"] = _cstr(raw)
                elif kind == "K":
                    ext["linkpath"] = _cstr(raw)
                elif kind == "x":
                    ext.update(_pax(raw, at))
                continue
            size = int(ext["size"]) if "size" in ext else _size(hdr, at)
            name = ext.get("sparse_name") or ext.get("path") or _name(hdr)
            if "sparse" in ext:
                kind = "S"
            link = ext.get("linkpath") or _field(hdr, 157, 100)
            ext = {}
            m = Member(name, 0 if hdr[156] in _NO_DATA else size, at, kind, link)
            if kind == "S":
                self.not_judged = "the tar holds a GNU sparse member, which is not read here"
                self.stopped_at = m
                return
            self.members += 1
            yield from self._data(m)

    def _small(self, size: int, at: int) -> Parse[bytes]:
        if size > MAX_NAME:
            raise Damaged(f"a tar name header of {size} bytes", at)
        raw = yield from take(self.cur, size, "a tar name header")
        yield from self._padding(size)
        return raw

    def _data(self, m: Member) -> Parse[None]:
        sink = self._open(m)
        n = m.size
        while n > 0:
            piece = yield from take(self.cur, min(n, PIECE), f"the tar member {m.name}")
            n -= len(piece)
            if sink is not None:
                sink.feed(piece)
        if sink is not None:
            sink.finish()
        yield from self._padding(m.size)

    def _padding(self, size: int) -> Parse[None]:
        pad = -size % BLOCK
        at = self.cur.pos
        raw = yield from take(self.cur, pad, "a tar member's padding")
        if raw.count(0) != len(raw):
            raise Damaged("a tar member's padding is not zeros", at)

    def _end(self, at: int) -> Parse[None]:
        second = yield from take_or_end(self.cur, BLOCK, "the tar archive's second end block")
        if second is None:
            raise Ended("the tar archive's second end block", at + BLOCK)
        if second != ZERO:
            raise Damaged("a zero block in the middle of the tar archive", at)
        # Writers pad the archive to a record size with more zeros.
        while True:
            at = self.cur.pos
            rest = yield from take_or_end(self.cur, BLOCK, "the tar archive's padding")
            if rest is None:
                return
            if rest.count(0) != len(rest):
                raise Damaged("data follows the end of the tar archive", at)


def _checksum(hdr: bytes, at: int) -> None:
    field_ = hdr[148:156]
    try:
        stored = int(field_.replace(b"\0", b" ").strip() or b"-1", 8)
    except ValueError:
        stored = -1
    unsigned = sum(hdr[:148]) + 8 * 32 + sum(hdr[156:])
    signed = unsigned - sum(256 for b in hdr[:148] + hdr[156:] if b > 127)
    if stored not in (unsigned, signed):
        raise Damaged(
            "a tar header's checksum does not match (a damaged header; its name field "
            f"reads {_name(hdr)[:200]!r})",
            at,
        )


# Header fields as (start, end). Every tar writer Sealcheck meets (GNU tar, bsdtar,
# pg_dump, Python, Go) fills a header's unused bytes with zeros and writes numbers in
# octal (or GNU's base-256). Checking that matters because the checksum is a plain
# byte sum: openssl enc (CBC, no MAC) garbles a whole 16-byte block, and random bytes
# over a header's zeros pass the "signed" sum (the one pre-POSIX tars wrote) about
# once in 600 tries; a garbled block must not read as an intact header.
_Spans = tuple[tuple[int, int], ...]
_NUMBERS: _Spans = ((100, 108), (108, 116), (116, 124), (124, 136), (136, 148))  # mode .. mtime
_STRINGS = ((0, 100), (157, 257))  # name, linkname
_USTAR_STRINGS = ((265, 297), (297, 329))  # uname, gname
_DEVICE = ((329, 337), (337, 345))  # devmajor, devminor
# GNU ("ustar  \0"): atime, ctime, offset, four sparse (offset, size) pairs, realsize.
_GNU_NUMBERS = (
    (345, 357), (357, 369), (369, 381),
    *((386 + 12 * i, 398 + 12 * i) for i in range(8)),
    (483, 495),
)  # fmt: skip
_OCTAL = re.compile(rb"[ ]*[0-7]*[ \0]*")
_CONTROL = re.compile(rb"[\x01-\x1f\x7f]")


def _well_formed(hdr: bytes, at: int) -> None:
    """Raise unless every field of the header is what a tar writer puts there."""
    strings: _Spans
    numbers: _Spans
    zeros: _Spans
    magic = hdr[257:265]
    if magic[:6] == b"ustar\0":  # POSIX ustar and pax
        star = hdr[508:512] == b"tar\0"  # star's xstar: atime and ctime after a shorter prefix
        prefix_end = 476 if star else 500
        strings = (*_STRINGS, *_USTAR_STRINGS, (345, prefix_end))
        numbers = (*_NUMBERS, *_DEVICE, *(((476, 488), (488, 500)) if star else ()))
        zeros = ((500, 508),) if star else ((500, 512),)
        what = "ustar"
    elif magic == b"ustar  \0":  # GNU tar's own format
        strings = (*_STRINGS, *_USTAR_STRINGS)
        numbers = (*_NUMBERS, *_DEVICE, *_GNU_NUMBERS)
        zeros = ((381, 386), (495, 512))
        what = "GNU"
        if hdr[482] > 1:
            raise Damaged("a GNU tar header's sparse-extension flag is neither 0 nor 1", at)
    elif magic.count(0) == len(magic):  # Unix V7 (GNU tar fills in the device numbers)
        strings, numbers, what = _STRINGS, (*_NUMBERS, *_DEVICE), "V7"
        zeros = ((257, 329), (345, 512))
    else:
        raise Damaged(
            f"a tar header of no known format (its magic reads {bytes(magic)!r}; "
            f"its name field reads {_name(hdr)[:200]!r})",
            at,
        )
    problem = _field_problem(hdr, numbers, strings, zeros)
    if problem:
        raise Damaged(
            f"a {what} tar header's {problem} (a damaged header; its name field reads "
            f"{_name(hdr)[:200]!r})",
            at,
        )


def _field_problem(hdr: bytes, numbers: _Spans, strings: _Spans, zeros: _Spans) -> str | None:
    for start, end in numbers:
        raw = hdr[start:end]
        if raw[0] & 0x80 == 0 and not _OCTAL.fullmatch(raw):
            return f"number field at bytes {start}-{end - 1} is not octal"
    for start, end in strings:
        raw = hdr[start:end]
        cut = raw.find(0)
        if cut >= 0 and raw.count(0, cut) != end - start - cut:
            return f"text field at bytes {start}-{end - 1} holds bytes after its end"
        # A user or group name never holds control characters. (The member's name is
        # judged downstream: a garbled name is a file nobody expects.)
        if (start, end) in _USTAR_STRINGS and _CONTROL.search(raw):
            return f"owner field at bytes {start}-{end - 1} holds control characters"
    for start, end in zeros:
        if hdr.count(0, start, end) != end - start:
            return f"unused bytes {start}-{end - 1} are not zeros"
    return None


def _size(hdr: bytes, at: int) -> int:
    raw = hdr[124:136]
    if raw[0] & 0x80:  # base-256, for members of 8 GiB and more
        return int.from_bytes(raw[1:], "big")
    try:
        return int(raw.replace(b"\0", b" ").strip() or b"0", 8)
    except ValueError:
        raise Damaged("a tar header's size field is not a number", at) from None


def _field(hdr: bytes, start: int, n: int) -> str:
    return _cstr(hdr[start : start + n])


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _name(hdr: bytes) -> str:
    name = _field(hdr, 0, 100)
    if hdr[257:263] == b"ustar\0":  # POSIX: a prefix field (GNU has none)
        prefix = _field(hdr, 345, 155)
        if prefix:
            name = prefix + "/" + name
    return name


def _pax(raw: bytes, at: int) -> dict[str, str]:
    """pax records, ``"LEN key=value\\n"`` each, LEN counting the whole record (a
    value may hold newlines); the keys that name or size the next member."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(raw):
        digits, sp, _ = raw[pos : pos + 24].partition(b" ")
        if not sp or not digits.isdigit() or int(digits) <= len(digits) + 1:
            raise Damaged("a pax extended header's record is malformed", at)
        rec = raw[pos : pos + int(digits)]
        pos += int(digits)
        if not rec.endswith(b"\n"):
            raise Damaged("a pax extended header's record is malformed", at)
        key, eq, value = rec[len(digits) + 1 : -1].partition(b"=")
        if eq and key in (b"path", b"linkpath", b"size"):
            out[key.decode()] = value.decode("utf-8", "replace")
        elif eq and key.startswith(b"GNU.sparse."):
            # GNU tar -S in pax: the data holds a map of the holes before the file's
            # bytes, under a made-up name; read as a sparse member, by its real name.
            out["sparse"] = "1"
            if key == b"GNU.sparse.name":
                out["sparse_name"] = value.decode("utf-8", "replace")
    if "size" in out and not out["size"].isdigit():
        raise Damaged("a pax extended header's size is not a number", at)
    return out
