"""A tar of a backup's folder read as its files (issue 16): the same events as the
xbstream reader (``data(path, bytes)`` in file order, ``end(path)``), so that a
physical backup stored as ``tar czf`` of its folder (ApsaraDB's ``*.tar.gz``)
goes down the same road as an xbstream one (physical/check.py).

Read as ``tar -i`` reads it (ApsaraDB's recipe is ``tar -izxvf``): zero blocks
inside the archive are skipped; every header's checksum; the end blocks reached.
Every member is a regular file or a folder whose path stays inside the folder it
is extracted to. Anything else is refused with its name before anything of it is
handed on: absolute paths and ``..``, links (a symbolic link, or a file later
written through it, could reach outside the folder), devices, FIFOs, sparse
members; and a file that comes twice (which of the two a restore would get is
not for a guess to decide). A handler with ``folder(path)`` is told of each
folder (the extractor makes it, empty or not).

A tar made as ``tar czf b.tgz backupdir/`` holds the backup under one top folder:
then that folder is the backup's root, and the names handed on are below it
(``ibdata1``, not ``backupdir/ibdata1``), for completeness, the page checks, the
report and the extracted folder alike. Which it is can only be known at the end,
so the first member's top folder is taken as the root while every member stays
under it; a member outside it (a file at the root, another folder) means there
is no such folder: the handler's ``rebase(top)`` is told to put the top folder
back in front of every name handed on so far, and names go on unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import BackupFailed, IntegrityError, Layer, TruncatedBackup
from ..plumbing.relpath import UnsafeMemberPath, safe_relpath
from .streamparse import Damaged, Ended, Feeder
from .tar import FOLDER, KIND_WORDS, REGULAR, Member, MemberSink, TarParser
from .xbstream import FileHandler


class _File(MemberSink):
    def __init__(self, handler: FileHandler, name: str) -> None:
        self._h = handler
        self._name = name

    def feed(self, data: bytes) -> None:
        self._h.data(self._name, data)

    def finish(self) -> None:
        self._h.end(self._name)


class TarFilesReader:
    def __init__(self, handler: FileHandler, *, obj: str | None = None) -> None:
        self._h = handler
        self._folder: Callable[[str], None] | None = getattr(handler, "folder", None)
        self._obj = obj
        self._parser = TarParser(self._member, ignore_zeros=True)
        self._feeder = Feeder(self._parser.parse(), lambda _n: None)
        self.files: dict[str, int] = {}  # name (below the root) -> size
        self.folders = 0
        self.bytes = 0
        self._top: str | None = None  # the first member's top folder, while all are under it
        self._flat = False  # a member at the root or outside the top folder was seen
        self._top_entry = False  # the top folder's own member was seen

    @property
    def top(self) -> str | None:
        """The one folder every member lies under (the backup's root), or None; final
        once the tar is read."""
        return None if self._flat else self._top

    def _below_root(self, name: str, *, folder: bool) -> str:
        """The name below the backup's root; "" for the top folder itself."""
        if self._flat:
            return name
        head, sep, rest = name.partition("/")
        if self._top is None and (sep or folder):
            self._top = head
        if self._top is not None and head == self._top and (sep or folder):
            return rest
        self._flat = True  # a member outside the top folder: there is no such folder
        if self._top is not None:
            top = self._top + "/"
            self.files = {top + n: size for n, size in self.files.items()}
            rebase: Callable[[str], None] | None = getattr(self._h, "rebase", None)
            if rebase is not None:
                rebase(self._top)
            if self._top_entry:  # a folder of the backup after all
                self._told_folder(self._top)
        return name

    def _told_folder(self, name: str) -> None:
        self.folders += 1
        if self._folder is not None:
            self._folder(name)

    @property
    def headers(self) -> int:
        return self._parser.headers

    @property
    def zeros_skipped(self) -> int:
        return self._parser.zeros_skipped

    def _refuse(self, m: Member, why: str) -> UnsafeMemberPath:
        holds = "" if m.kind == "S" else ": a backup's folder holds only files and folders"
        return UnsafeMemberPath(
            f"tar member {m.name[:300]!r} (at byte {m.at}) is {why}{holds}; it is refused "
            "and nothing of the backup is written",
            obj=self._obj,
        )

    def _member(self, m: Member) -> MemberSink | None:
        name = m.name
        while name.startswith("./"):
            name = name[2:]
        if m.kind == FOLDER:
            name = name.rstrip("/")
            if name in ("", "."):  # the folder itself (tar -C DIR .)
                return None
            safe_relpath(name, where="tar member", obj=self._obj)
            name = self._below_root(name, folder=True)
            if not name:  # the top folder: the backup's root
                self._top_entry = True
                return None
            self._told_folder(name)
            return None
        if m.kind not in REGULAR:
            what = KIND_WORDS.get(m.kind, f"of the unknown type {m.kind!r}")
            raise self._refuse(m, f"{what} (to {m.link[:300]!r})" if m.link else what)
        safe_relpath(name, where="tar member", obj=self._obj)
        name = self._below_root(name, folder=False)
        if name in self.files:
            raise IntegrityError(
                f"tar member {name!r} comes twice (at byte {m.at} again): which one a restore "
                "would get is not decided by a guess",
                obj=self._obj,
                layer=Layer.PAYLOAD,
            )
        self.files[name] = m.size
        return _File(self._h, name)

    def feed(self, data: bytes) -> None:
        self.bytes += len(data)
        try:
            self._feeder.feed(data)
        except (Damaged, Ended) as exc:
            raise self._error(exc) from None
        if self._parser.stopped_at is not None:
            raise self._refuse(self._parser.stopped_at, KIND_WORDS["S"])

    def finish(self) -> None:
        try:
            self._feeder.finish()
        except (Damaged, Ended) as exc:
            raise self._error(exc) from None
        if self._parser.stopped_at is not None:
            raise self._refuse(self._parser.stopped_at, KIND_WORDS["S"])

    def _error(self, exc: Damaged | Ended) -> BackupFailed:
        if isinstance(exc, Ended):
            return TruncatedBackup(
                f"the tar archive ends inside {exc.what} (which starts at byte {exc.at}): it "
                "was cut short",
                obj=self._obj,
                layer=Layer.PAYLOAD,
            )
        where = f" (at byte {exc.at})" if exc.at is not None else ""
        return IntegrityError(f"tar archive: {exc.why}{where}", obj=self._obj, layer=Layer.PAYLOAD)
