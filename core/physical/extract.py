"""Writing a physical backup's files into a new folder, all or nothing (issue 16).

The files go into a private temporary folder beside the destination; only when
every layer verified is it renamed to the destination, which must not exist.
On any failure the temporary folder is removed and nothing is left.

Every folder component is opened relative to its parent with O_NOFOLLOW and
every file created with O_EXCL|O_NOFOLLOW, so no path, even one that got past
the name checks, can follow a link out of the folder or replace a file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..errors import DestinationError, IntegrityError, Layer, SizeLimitExceeded

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class FolderWriter:
    def __init__(
        self, destination: Path, *, max_bytes: int | None = None, obj: str | None = None
    ) -> None:
        self.destination = destination
        self._obj = obj
        self._max = max_bytes
        if destination.exists() or destination.is_symlink():
            raise DestinationError(
                f"{destination} already exists: --extract writes a new folder and never "
                "writes into an existing one"
            )
        parent = destination.parent
        try:
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.sealcheck-", dir=parent))
        except OSError as exc:
            raise DestinationError(f"cannot create a folder in {parent}: {exc.strerror}") from None
        self._root = os.open(self.tmp, _DIR_FLAGS)
        self._fds: dict[str, int] = {}
        self.bytes = 0
        self.holes = 0  # bytes of the files left as holes (sparse chunks)
        self.files = 0
        # The tar's one top folder, left out: the destination is the backup's root.
        self.stripped: str | None = None

    def _dir_fd(self, parts: list[str]) -> int:
        fd = os.dup(self._root)
        try:
            for part in parts:
                try:
                    os.mkdir(part, 0o750, dir_fd=fd)
                except FileExistsError:
                    pass
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except OSError:
            os.close(fd)
            raise
        return fd

    def _open(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is None:
            *dirs, base = name.split("/")
            try:
                dfd = self._dir_fd(dirs)
                try:
                    fd = os.open(base, _FILE_FLAGS, 0o640, dir_fd=dfd)
                finally:
                    os.close(dfd)
            except FileExistsError:
                raise IntegrityError(
                    f"two members of the backup give the file {name!r}", obj=self._obj,
                    layer=Layer.PAYLOAD,
                ) from None  # fmt: skip
            except OSError as exc:
                raise DestinationError(
                    f"cannot create {name!r} under {self.tmp}: {exc.strerror}", obj=self._obj
                ) from None
            self._fds[name] = fd
            self.files += 1
        return fd

    def folder(self, name: str) -> None:
        """A folder of the backup, made even when no file comes into it."""
        try:
            os.close(self._dir_fd(name.split("/")))
        except OSError as exc:
            raise DestinationError(
                f"cannot create the folder {name!r} under {self.tmp}: {exc.strerror}",
                obj=self._obj,
            ) from None

    def rebase(self, top: str) -> None:
        """What was written so far lies under the folder ``top``, not at the root (a
        tar whose members turned out not to be all under one folder): it is moved
        there, between two members, when no file is open."""
        assert not self._fds, "a tar member's name changes only between members"
        fd = self._root
        new = f".sealcheck-top-{os.urandom(8).hex()}"  # no member's name, by chance alone
        try:
            os.mkdir(new, 0o750, dir_fd=fd)
            for entry in os.listdir(fd):
                if entry != new:
                    os.rename(entry, f"{new}/{entry}", src_dir_fd=fd, dst_dir_fd=fd)
            os.rename(new, top, src_dir_fd=fd, dst_dir_fd=fd)
        except OSError as exc:
            raise DestinationError(
                f"cannot move the extracted files into {top!r} under {self.tmp}: {exc.strerror}",
                obj=self._obj,
            ) from None

    def hole(self, name: str, n: int) -> None:
        """A sparse chunk's hole: seek past it, so the file system allocates nothing
        there (read back, it is zeros); a hole at the end is set by ``end``. Holes
        take no disk, so they do not count towards --max-disk."""
        fd = self._open(name)
        try:
            os.lseek(fd, n, os.SEEK_CUR)
        except OSError as exc:
            raise DestinationError(
                f"cannot write {name!r}: {exc.strerror}", obj=self._obj
            ) from None
        self.holes += n

    def data(self, name: str, data: bytes) -> None:
        fd = self._open(name)
        self.bytes += len(data)
        if self._max is not None and self.bytes > self._max:
            raise SizeLimitExceeded(
                f"the extracted files exceed --max-disk ({self._max} bytes); stopped and "
                "removed what was written",
                obj=self._obj,
            )
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except OSError as exc:
                raise DestinationError(
                    f"cannot write {name!r}: {exc.strerror}", obj=self._obj
                ) from None
            view = view[n:]

    def end(self, name: str) -> None:
        if name not in self._fds:
            self.data(name, b"")  # an empty file
        fd = self._fds.pop(name)
        end = os.lseek(fd, 0, os.SEEK_CUR)
        if os.fstat(fd).st_size < end:  # it ends in a hole: the size, still sparse
            os.ftruncate(fd, end)
        os.fsync(fd)
        os.close(fd)

    def commit(self) -> None:
        """Every layer verified: the folder becomes the destination."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        for dirpath, _dirs, _files in os.walk(self.tmp):
            dfd = os.open(dirpath, _DIR_FLAGS)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        os.close(self._root)
        self._root = -1
        if self.destination.exists() or self.destination.is_symlink():
            self.abort()
            raise DestinationError(f"{self.destination} appeared while the backup was read")
        os.rename(self.tmp, self.destination)
        pfd = os.open(self.destination.parent, _DIR_FLAGS)
        try:
            os.fsync(pfd)
        finally:
            os.close(pfd)

    def abort(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._root >= 0:  # once: a closed descriptor's number may be reused
            os.close(self._root)
            self._root = -1
        shutil.rmtree(self.tmp, ignore_errors=True)
