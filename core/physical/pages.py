"""InnoDB page checksums of every tablespace, by MariaDB's ``innochecksum`` (issue 16).

``innochecksum -`` reads a tablespace from its standard input, so each one is
piped to it as it comes out of the stream: nothing is written to disk, and a
tablespace of any size costs one pipe buffer. The program runs in a private 0700
folder (its working directory, wiped afterwards), with a clean environment and
no secret: what it reads is the decrypted, decompressed file.

A backup taken from a running server holds pages from different moments, each
whole (mariabackup re-reads a page whose checksum fails while it copies), so
every page must pass here; the redo log makes them consistent at --prepare.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import IntegrityError, Layer
from ..plumbing.streams import widen_pipe

TABLESPACE = re.compile(r"(^|/)(ibdata\d+|undo\d+|[^/]+\.ibd|[^/]+\.new)$")
SYSTEM = re.compile(r"^ibdata\d+$")
# Tablespaces checked at once when the stream interleaves their chunks (--parallel).
MAX_OPEN = 8


def is_tablespace(name: str) -> bool:
    # .new: mariabackup's copy of a tablespace created during the backup.
    return bool(TABLESPACE.search(name))


def page_size(page0: bytes) -> int:
    """The page size from the FSP flags of page 0 (MariaDB full_crc32 or the older form)."""
    if len(page0) < 58:
        return 16384
    flags = int.from_bytes(page0[54:58], "big")
    if flags & 0x10:  # full_crc32: the page size in the low 4 bits
        ssize = flags & 0xF
    else:
        ssize = (flags >> 6) & 0xF
    return 512 << ssize if ssize else 16384


def doublewrite_pages(psize: int) -> tuple[int, int]:
    """The system tablespace's doublewrite buffer: two extents after the first. Its
    pages are copies of other tablespaces' pages (their own page numbers), which
    innochecksum reports as invalid in place, so they are not checked here."""
    extent = (1 << 20) // psize if psize <= 16384 else 64
    return extent, 3 * extent


class PageChecksumError(IntegrityError):
    """An InnoDB page checksum failed: the tablespace is damaged."""

    layer = Layer.PAGES


def find_innochecksum() -> str | None:
    return shutil.which("innochecksum") or shutil.which(
        "innochecksum", path="/usr/bin:/usr/sbin:/usr/local/bin"
    )


@dataclass
class PageResult:
    program: str | None
    checked: list[str] = field(default_factory=list)
    pages_bytes: int = 0
    skipped: list[str] = field(default_factory=list)  # too many interleaved at once
    over_budget: list[str] = field(default_factory=list)  # system files past --max-disk


class _Spill:
    """The system tablespace: written to the private folder, checked around its
    doublewrite buffer (innochecksum's page ranges need a file, not a pipe), removed."""

    def __init__(self, program: str, cwd: Path, name: str) -> None:
        self.name = name
        self.bytes = 0
        self._program = program
        self._cwd = cwd
        self.path = cwd / f"system-{len(list(cwd.iterdir()))}"
        self._f = self.path.open("wb")
        self._head = b""

    def write(self, data: bytes) -> None:
        if len(self._head) < 64:
            self._head += data[:64]
        self._f.write(data)
        self.bytes += len(data)

    def close(self) -> tuple[int, str]:
        self._f.close()
        first, after = doublewrite_pages(page_size(self._head))
        outs = []
        try:
            for rng in (["-e", str(first - 1)], ["-s", str(after)]):
                if rng[0] == "-s" and self.bytes <= after * page_size(self._head):
                    continue
                r = subprocess.run(
                    [self._program, *rng, str(self.path)],
                    capture_output=True,
                    cwd=self._cwd,
                    env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
                    timeout=600,
                    check=False,
                )
                outs.append((r.stdout + r.stderr).decode(errors="replace").strip())
                if r.returncode != 0:
                    return r.returncode, outs[-1]
        finally:
            self.path.unlink(missing_ok=True)
        return 0, "\n".join(outs)

    def kill(self) -> None:
        self._f.close()
        self.path.unlink(missing_ok=True)


class _Check:
    def __init__(self, program: str, cwd: Path, name: str) -> None:
        self.name = name
        self.bytes = 0
        self.err = tempfile.TemporaryFile(dir=cwd)
        self.proc = subprocess.Popen(
            [program, "-"],
            stdin=subprocess.PIPE,
            stdout=self.err,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
            start_new_session=True,
        )
        assert self.proc.stdin is not None
        widen_pipe(self.proc.stdin)  # innochecksum reads a page at a time: fewer switches

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
        except BrokenPipeError:
            pass  # it stopped early: its exit status and output say why
        self.bytes += len(data)

    def close(self) -> tuple[int, str]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        rc = self.proc.wait(timeout=600)
        self.err.seek(0)
        out = self.err.read(4000).decode(errors="replace").strip()
        self.err.close()
        return rc, out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


class PageChecker:
    """Feeds each tablespace to its own ``innochecksum -`` while it streams."""

    def __init__(self, *, obj: str | None, max_disk: int | None = None) -> None:
        self._obj = obj
        self._max_disk = max_disk
        self._program = find_innochecksum()
        self.result = PageResult(self._program)
        self._open: dict[str, _Check | _Spill] = {}
        self._dir: Path | None = None

    @property
    def available(self) -> bool:
        return self._program is not None

    def data(self, name: str, data: bytes) -> None:
        if self._program is None or not is_tablespace(name):
            return
        chk = self._open.get(name)
        if chk is None:
            if name in self.result.skipped:
                return
            if len(self._open) >= MAX_OPEN:
                self.result.skipped.append(name)
                return
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="sealcheck-pages-"))
                os.chmod(self._dir, 0o700)
            kind = _Spill if SYSTEM.match(name) else _Check
            chk = self._open[name] = kind(self._program, self._dir, name)
        if isinstance(chk, _Spill) and self._max_disk is not None:
            if chk.bytes + len(data) > self._max_disk:
                # The disk budget: this file goes unchecked (said so), the run goes on.
                chk.kill()
                del self._open[name]
                self.result.over_budget.append(name)
                self.result.skipped.append(name)
                return
        chk.write(data)

    def rebase(self, top: str) -> None:
        """The tablespaces named so far lie under the folder ``top`` (between two
        members of a tar: none is open)."""
        r = self.result
        for names in (r.checked, r.skipped, r.over_budget):
            names[:] = [f"{top}/{n}" for n in names]

    def end(self, name: str) -> None:
        chk = self._open.pop(name, None)
        if chk is None:
            return
        rc, out = chk.close()
        if chk.bytes == 0:
            return  # an empty file has no page to check
        if rc != 0:
            self.close()
            first = out.splitlines()[-1] if out else f"exit status {rc}"
            raise PageChecksumError(
                f"innochecksum found a page checksum mismatch in tablespace {name!r} "
                f"({chk.bytes} bytes): {first}",
                obj=self._obj,
            )
        self.result.checked.append(name)
        self.result.pages_bytes += chk.bytes

    def close(self) -> None:
        for chk in self._open.values():
            chk.kill()
        self._open.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
