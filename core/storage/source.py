"""Where a backup's bytes come from: a local file or an S3 object version.

The storage interface is deliberately tiny (restic's backend idea): a size,
small ranged reads for probing the first and last blocks, and one sequential
stream. Retry and resume live in the S3 implementation, not in callers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..errors import AccessDenied, ObjectNotFound, StorageError
from ..plumbing.streams import Reader
from ..records.identity import SourceIdentity

MAX_PROBE = 1 << 20


class Source(Protocol):
    name: str

    def identity(self) -> SourceIdentity: ...

    def read_range(self, start: int, length: int) -> bytes: ...

    def open(self) -> Reader: ...


@runtime_checkable
class CheckedTransfer(Protocol):
    """A stream that resumes after dropped connections and checks its transfer end to
    end (the S3 stream): the source layer says what it did. Named here, by what it has,
    so that the report of a local file need not import the S3 modules (issue 17)."""

    resumes: int
    digest_checked: bool


class LocalFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ObjectNotFound(obj=self.name) from None
        except PermissionError:
            raise AccessDenied(obj=self.name) from None
        if not path.is_file():
            raise StorageError("it is not a regular file", obj=self.name)
        self._size = st.st_size

    def identity(self) -> SourceIdentity:
        return SourceIdentity(uri=self.name, size=self._size)

    def read_range(self, start: int, length: int) -> bytes:
        if start < 0:
            start = max(0, self._size + start)
        with self.path.open("rb") as f:
            f.seek(start)
            return f.read(min(length, MAX_PROBE))

    def open(self) -> Reader:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise StorageError(exc.strerror or "cannot open", obj=self.name) from None
        f = os.fdopen(fd, "rb", buffering=0)
        return _FileReader(f, self._size, self.name)


class _FileReader:
    def __init__(self, f: object, size: int, name: str) -> None:
        self._f = f
        self._left = size
        self._name = name

    def read(self, n: int = -1, /) -> bytes:
        # Read no more than the size seen at open: a file still being written
        # must not feed the verification bytes the report does not count.
        if self._left <= 0:
            self._close()
            return b""
        want = self._left if n < 0 else min(n, self._left)
        data: bytes = self._f.read(want)  # type: ignore[attr-defined]
        if not data:
            self._close()
            raise StorageError(
                f"the file shrank while being read ({self._left} bytes missing)", obj=self._name
            )
        self._left -= len(data)
        return data

    def _close(self) -> None:
        self._f.close()  # type: ignore[attr-defined]
