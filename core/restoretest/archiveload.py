"""pg_dump archives in the restore test: pg_restore turns them into the SQL script psql loads.

pg_restore never connects to a server here (``-f -``): it writes the archive as a SQL
script with ``--no-owner --no-privileges``, and that script takes the path of a plain
dump (the scanner that counts rows and refuses what a dump must not do, psql under
``\\restrict`` as the confined role, one transaction). So an archive is held to exactly
the rules of a SQL dump, pg_restore needs no credentials at all, and the load's COMMIT
is sent only once every layer of the envelope and the archive verified: a damaged
archive never commits a row.

The custom and tar formats reach pg_restore's stdin as the plaintext streams in. A
tarred directory archive (``tar czf db.tar.gz db/``) must be a folder for pg_restore:
its members are written, flat, into a private 0700 folder as they stream by (a member
name that leaves its folder is refused), and pg_restore reads that folder once the
stream has verified to its end; the folder is removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..formats import Fmt, sniff
from ..payload.pgdump.archive import Missing, to_error
from ..payload.streamparse import Damaged, Ended, Feeder
from ..payload.tar import Member, MemberSink, TarParser
from .errors import ArchiveRestoreFailed, DumpRefused, NotRestorable, ServerSoftwareMissing
from .procs import current_user, kill_group, spawn

PIECE = 1 << 16
# What pg_restore reads of a directory archive; anything else in the folder is left out.
_MEMBER = re.compile(r"toc\.dat|(\d+|blob_\d+)\.dat(\.gz|\.lz4|\.zst)?|blobs(_\d+)?\.toc")


@dataclass(frozen=True)
class ArchiveSource:
    """What feeds psql instead of the plaintext: pg_restore's script of the archive."""

    kind: str  # "custom", "tar" (both on pg_restore's stdin), "directory" (extracted)
    pg_restore: Path
    env: dict[str, str]
    scratch: Path  # a private folder of ours (the extracted directory goes in it)


def archive_kind(head: bytes) -> str | None:
    """How a plaintext that starts with ``head`` reaches pg_restore, or None (not an
    archive). pg_dump -Ft writes ``toc.dat`` as the tar's first member: that stream is
    pg_restore's own tar format; any other tar is taken for a tarred directory archive."""
    fmt = sniff(head)
    if fmt is Fmt.PGDUMP_CUSTOM:
        return "custom"
    if fmt is Fmt.TAR:
        return "tar" if head[:8] == b"toc.dat\0" else "directory"
    return None


def pg_restore_path(bindir: Path) -> Path:
    path = bindir / "pg_restore"
    if not os.access(path, os.X_OK):
        raise ServerSoftwareMissing(
            f"{path} not found: pg_dump archives are restored with pg_restore "
            "(Debian/Ubuntu: apt-get install postgresql-client)"
        )
    return path


def summarise_stderr(text: str, keep: int = 400) -> str:
    """pg_restore's complaints, its error lines first (it prints no secrets: it has none)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln or "fatal" in ln.lower()]
    picked = " | ".join(dict.fromkeys(errors or lines))
    return picked[:keep] + ("…" if len(picked) > keep else "") if picked else "no message"


class ArchiveFeed:
    """The plaintext in, pg_restore's script out to ``forward`` (on a thread of its own).

    ``forward`` is the loader's way to the scanner and psql; when it raises, the feed
    stops pg_restore, so that nothing waits on a pipe nobody reads.
    """

    def __init__(self, src: ArchiveSource, forward: Callable[[bytes], None]) -> None:
        self.src = src
        self._forward = forward
        self.proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None
        self._stderr = b""
        self._err_thread: threading.Thread | None = None
        self.error: BaseException | None = None  # raised by forward, on the pump thread
        self._stdin_closed = False
        self._extract: _Extractor | None = None
        if src.kind == "directory":
            self._extract = _Extractor(src.scratch / "archive")
        else:
            self._spawn(["-F", "c" if src.kind == "custom" else "t"], stdin=subprocess.PIPE)

    def _spawn(self, args: list[str], stdin: int) -> None:
        argv = [str(self.src.pg_restore), "--no-owner", "--no-privileges", "-f", "-", *args]
        self.proc = spawn(
            argv,
            user=current_user(),
            cwd=self.src.scratch,
            env=self.src.env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._err_thread = threading.Thread(
            target=self._read_err, args=(self.proc.stderr,), name="sealcheck-pgr-err", daemon=True
        )
        self._err_thread.start()
        self._pump = threading.Thread(
            target=self._run_pump, args=(self.proc.stdout,), name="sealcheck-pgr", daemon=True
        )
        self._pump.start()

    def _read_err(self, pipe: IO[bytes]) -> None:
        while chunk := pipe.read(PIECE):
            if len(self._stderr) < 1 << 16:
                self._stderr += chunk

    def _run_pump(self, pipe: IO[bytes]) -> None:
        try:
            while chunk := pipe.read1(PIECE):  # type: ignore[attr-defined]
                self._forward(chunk)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the pipeline thread
            self.error = exc
            kill_group(self.proc)

    def raise_if_stopped(self) -> None:
        if self.error is not None:
            raise self.error

    # -- the plaintext -------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self.raise_if_stopped()
        if self._extract is not None:
            self._extract.feed(data)
            return
        proc = self.proc
        if self._stdin_closed or proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(data)
        except (BrokenPipeError, ValueError, OSError):
            # pg_restore reads a custom archive only as far as its last data block (the
            # format has no trailer): the rest is verified by the pipeline, not needed
            # here. Had it failed, its exit status says so at the end.
            self._stdin_closed = True

    def finish(self, timeout: float) -> None:
        """The plaintext verified to its end: let pg_restore finish its script (for a
        directory archive, start it now). Raises ArchiveRestoreFailed when it fails."""
        if self._extract is not None:
            folder = self._extract.finish()
            self._spawn([str(folder)], stdin=subprocess.DEVNULL)
        proc = self.proc
        assert proc is not None
        if proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.close()
        if self._pump is not None:
            self._pump.join(max(timeout, 0.1))
        self.raise_if_stopped()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            kill_group(proc)
        if self._err_thread is not None:
            self._err_thread.join(5)
        if proc.returncode != 0:
            why = summarise_stderr(self._stderr.decode("utf-8", "replace"))
            if "unsupported version" in why:
                raise ServerSoftwareMissing(
                    f"restore test: {self.src.pg_restore} is older than the archive ({why}); "
                    "install a newer PostgreSQL client"
                )
            raise ArchiveRestoreFailed(why)

    def close(self) -> None:
        """Stop pg_restore whatever happened, and remove the extracted archive."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                if proc.stdin is not None:
                    proc.stdin.close()
            kill_group(proc)
        if self._pump is not None:
            self._pump.join(5)
        if self._extract is not None:
            self._extract.remove()


class _File(MemberSink):
    def __init__(self, path: Path) -> None:
        # O_EXCL|O_NOFOLLOW: a member never replaces or follows anything already there.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        self._f = os.fdopen(os.open(path, flags, 0o600), "wb")

    def feed(self, data: bytes) -> None:
        self._f.write(data)

    def finish(self) -> None:
        self._f.close()


class _Extractor:
    """A tarred directory archive's members, written flat into a private folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(mode=0o700)
        self._parser = TarParser(self._member)
        self._feeder = Feeder(self._parser.parse(), lambda _n: None)
        self._archive_folder: str | None = None
        self._names: set[str] = set()
        self._open: _File | None = None

    def _member(self, m: Member) -> MemberSink | None:
        name = m.name
        parts = name.split("/")
        if name.startswith("/") or ".." in parts:
            raise DumpRefused(
                f"the tar member {name[:200]!r} points outside its folder: it is not "
                "extracted (no pg_dump directory archive names its files so)",
                tried="a tar member outside its folder", statement=name[:160],
            )  # fmt: skip
        folder, base = posixpath.split(posixpath.normpath(name.removeprefix("./")))
        if not _MEMBER.fullmatch(base):
            return None  # not one of pg_restore's files (folders, restore.sql, others)
        if self._archive_folder is None:
            self._archive_folder = folder
        elif folder != self._archive_folder:
            raise NotRestorable(
                f"the tar holds pg_dump files in more than one folder ({self._archive_folder!r} "
                f"and {folder!r}); the restore test loads one archive: tar each one apart"
            )
        if base in self._names:
            raise DumpRefused(
                f"the tar holds {name[:200]!r} twice; which one pg_restore should read "
                "is not decided by a guess",
                tried="a tar member twice", statement=name[:160],
            )  # fmt: skip
        self._names.add(base)
        self._open = _File(self.folder / base)
        return self._open

    def feed(self, data: bytes) -> None:
        try:
            self._feeder.feed(data)
        except (Damaged, Ended, Missing) as exc:  # the payload check reports it first
            raise to_error(exc, None, "tar archive") from None

    def finish(self) -> Path:
        try:
            self._feeder.finish()
        except (Damaged, Ended, Missing) as exc:
            raise to_error(exc, None, "tar archive") from None
        if "toc.dat" not in self._names:
            raise NotRestorable(
                "the tar holds no pg_dump directory archive (no toc.dat); the restore test "
                "loads SQL dumps and pg_dump archives"
            )
        return self.folder

    def remove(self) -> None:
        if self._open is not None:
            with contextlib.suppress(OSError):
                self._open.finish()
        shutil.rmtree(self.folder, ignore_errors=True)
