"""Atomic, durable writes: the one road for every file Sealcheck keeps (borg's
SaveFile, reliability.md §1.12): restored plaintext, evidence reports, keys in
custody, the GUI's settings and the restore test's records.

    with AtomicWriter(dest, overwrite=True) as f:
        f.write(data)

The bytes go to a private temp file in the destination's folder (mkstemp: 0600
unless ``mode`` says otherwise, O_EXCL, a unique name so two writers never
collide, never follows a planted symlink) and only replace the destination when
the block ends cleanly: fsync the file, rename, fsync the folder. On any
exception the temp file is removed and an existing destination is untouched.
A streaming caller that must know the file is in place before it goes on calls
``commit()`` inside the block (the pipeline does, after the whole pass
verified). Temp names carry the writer's pid so a later run can sweep the ones
a killed process left behind.

Only a regular file is ever replaced, with or without ``overwrite``: renaming
over a device node, a FIFO or a socket would swap the node itself for a file
(``restore --force -o /dev/null`` as root would leave /dev/null a regular file
holding the plaintext), and a symbolic link is never written through. The
check runs when the writer opens and again just before the rename.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from pathlib import Path
from types import TracebackType

from ..errors import DestinationError, SealcheckError

_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.sealcheck-(?P<pid>\d+)-[^.]+\.partial$")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (EPERM: it does, owned by another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(folder: Path) -> list[Path]:
    """Remove temp files left in ``folder`` by Sealcheck processes that died."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TEMP_RE.match(p.name)
        if m and not pid_alive(int(m.group("pid"))) and not p.is_symlink():
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


_NOT_REGULAR = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
)


def check_destination(
    dest: Path, *, overwrite: bool, error: type[SealcheckError] = DestinationError
) -> None:
    """Refuse a destination that must not be replaced (see the module docstring)."""
    try:
        mode = os.lstat(dest).st_mode  # lstat: the link itself, not what it points to
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there yet (a missing folder is reported by the caller)
    except OSError as exc:
        raise error(f"cannot look at it ({exc.strerror})", obj=str(dest)) from None
    if stat.S_ISLNK(mode):
        raise error("it is a symbolic link; refusing to write through it", obj=str(dest))
    if stat.S_ISDIR(mode):
        raise error("it is a directory", obj=str(dest))
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")
        raise error(
            f"it is {kind}; only a regular file is replaced, even with --force", obj=str(dest)
        )
    if not overwrite:
        raise error(
            "it already exists, and replacing it was not asked for (--force; Replace in the app)",
            obj=str(dest),
        )


class AtomicWriter:
    """A file that appears whole at ``dest`` or not at all (see the module docstring).

    ``error`` is the typed error raised on failure: ``DestinationError`` (a restored
    file, a report the user asked for) or ``SaveFailed`` for the app's own files.
    """

    def __init__(
        self,
        dest: Path,
        *,
        overwrite: bool = False,
        mode: int = 0o600,
        error: type[SealcheckError] = DestinationError,
    ) -> None:
        self.dest = dest
        self._fd: int | None = None
        self._tmp: Path | None = None
        self.bytes = 0
        self._overwrite = overwrite
        self._error = error
        check_destination(dest, overwrite=overwrite, error=error)
        parent = dest.parent
        if not parent.is_dir():
            raise error("its folder does not exist", obj=str(dest))
        sweep_stale(parent)
        try:
            fd, tmp = tempfile.mkstemp(
                dir=parent, prefix=f".{dest.name}.sealcheck-{os.getpid()}-", suffix=".partial"
            )
        except OSError as exc:
            raise error(f"cannot create a file there ({exc.strerror})", obj=str(dest)) from None
        self._fd, self._tmp = fd, Path(tmp)
        if mode != 0o600:
            try:
                os.fchmod(fd, mode)
            except OSError as exc:
                self.abort()
                raise error(f"cannot set its mode ({exc.strerror})", obj=str(dest)) from None

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and self._tmp is not None:
            self.commit()  # a no-op path once the caller committed inside the block
        else:
            self.abort()  # an exception (Ctrl-C included): the destination stays as it was

    @property
    def temp_path(self) -> Path | None:
        return self._tmp

    def write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
                self.bytes += n
        except OSError as exc:
            self.abort()
            if exc.errno == errno.ENOSPC:
                raise self._error(
                    "the disk is full; nothing was written to the destination", obj=str(self.dest)
                ) from None
            raise self._error(f"write failed ({exc.strerror})", obj=str(self.dest)) from None

    def commit(self) -> None:
        assert self._fd is not None and self._tmp is not None
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            self._recheck()
            os.replace(self._tmp, self.dest)
            self._tmp = None
            dfd = os.open(self.dest.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            self.abort()
            raise self._error(
                f"could not finish the file ({exc.strerror})", obj=str(self.dest)
            ) from None

    def _recheck(self) -> None:
        # Again at the rename: something else may have been put there meanwhile
        # (a long restore). It still races, but only for the span of one rename.
        try:
            check_destination(self.dest, overwrite=self._overwrite, error=self._error)
        except SealcheckError:
            self.abort()
            raise

    def abort(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            self._tmp = None
