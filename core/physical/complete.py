"""Is the physical backup whole? (issue 16)

What mariabackup/xtrabackup write once the copy is done, and what the backup
itself names:

* ``xtrabackup_checkpoints`` (``mariadb_backup_checkpoints`` from MariaDB 10.8 on
  where renamed), ``backup-my.cnf`` and ``xtrabackup_info``/``mariadb_backup_info``;
* the system tablespace files of ``innodb_data_file_path`` and the
  ``innodb_undo_tablespaces`` named in backup-my.cnf;
* for each table definition (``.frm``: MariaDB, MySQL ≤ 5.7), the data files of
  its engine: InnoDB ``.ibd`` (or mariabackup's ``.new`` for a table created
  during the copy), Aria ``.MAD``/``.MAI``, MyISAM ``.MYD``/``.MYI``.

MySQL 8.0 keeps table definitions in its data dictionary (``mysql.ibd``), not in
files: there the tablespaces are not compared with a catalogue, and the report
says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import IncompleteDump, Layer
from ..payload.xbstream import CHECKPOINTS, INFO, META, MY_CNF

META_MAX = 64 * 1024
FRM_HEAD = 64

# .frm byte 3: the legacy engine type (sql/handler.h legacy_db_type).
_ENGINE_FILES = {
    12: ("InnoDB", ((".ibd", ".new"),)),
    42: ("Aria", ((".MAD",), (".MAI",))),
    9: ("MyISAM", ((".MYD",), (".MYI",))),
}
_SIZE = re.compile(r"^[^:]+")


class BackupIncomplete(IncompleteDump):
    """The physical backup is incomplete: a file the backup needs is missing."""

    layer = Layer.BACKUP


@dataclass
class BackupFacts:
    checkpoints: dict[str, str] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)  # "db/t" -> engine
    system_files: list[str] = field(default_factory=list)
    dictionary_in_files: bool = True


def _kv(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        k, eq, v = line.partition("=")
        if eq and not line.lstrip().startswith(("#", ";", "[")):
            out[k.strip()] = v.strip()
    return out


class Completeness:
    """Collects the metadata files and the .frm heads while the stream passes."""

    def __init__(self, *, obj: str | None) -> None:
        self._obj = obj
        self.meta: dict[str, bytearray] = {}
        self.frm: dict[str, bytes] = {}
        self.names: set[str] = set()

    def data(self, name: str, data: bytes) -> None:
        self.names.add(name)
        if name in META:
            buf = self.meta.setdefault(name, bytearray())
            if len(buf) < META_MAX:
                buf += data[: META_MAX - len(buf)]
        elif name.endswith(".frm"):
            head = self.frm.get(name, b"")
            if len(head) < FRM_HEAD:
                self.frm[name] = head + data[: FRM_HEAD - len(head)]

    def end(self, name: str) -> None:
        self.names.add(name)
        if name.endswith(".frm"):
            self.frm.setdefault(name, b"")

    def rebase(self, top: str) -> None:
        """The names seen so far lie under the folder ``top``, not at the root: none
        of them is the backup's metadata any more."""
        self.names = {f"{top}/{n}" for n in self.names}
        self.frm = {f"{top}/{n}": head for n, head in self.frm.items()}
        self.meta.clear()

    def _missing(self, what: str) -> BackupIncomplete:
        return BackupIncomplete(what, obj=self._obj)

    def finish(self) -> BackupFacts:
        facts = BackupFacts()
        n = len(self.names)
        cp = next((c for c in CHECKPOINTS if c in self.meta or c in self.names), None)
        if cp is None:
            # The stream's own end, as before issue 16: the payload layer, not "backup".
            raise IncompleteDump(
                "the physical backup stream has no xtrabackup_checkpoints file, which "
                "mariabackup/xtrabackup write when the copy finishes: the backup stopped "
                f"early ({n} files)",
                obj=self._obj,
            )
        facts.checkpoints = _kv(self.meta.get(cp, bytearray()).decode(errors="replace"))
        if MY_CNF not in self.names:
            raise self._missing(f"the backup has no {MY_CNF} (the server options it needs)")
        info = next((i for i in INFO if i in self.names), None)
        if info is None:
            raise self._missing("the backup has no xtrabackup_info (mariadb_backup_info)")
        facts.info = _kv(self.meta.get(info, bytearray()).decode(errors="replace"))
        cnf = _kv(self.meta.get(MY_CNF, bytearray()).decode(errors="replace"))
        system = [
            m.group(0)
            for part in cnf.get("innodb_data_file_path", "ibdata1:12M").split(";")
            if (m := _SIZE.match(part.strip()))
        ]
        undo = cnf.get("innodb_undo_tablespaces", "0")
        system += [f"undo{i:03d}" for i in range(1, int(undo) + 1)] if undo.isdigit() else []
        for f in system:
            if f not in self.names:
                raise self._missing(
                    f"the system tablespace file {f!r} named in {MY_CNF} is missing"
                )
        facts.system_files = system
        facts.dictionary_in_files = bool(self.frm)
        for frm, head in sorted(self.frm.items()):
            stem = frm[: -len(".frm")]
            binary = len(head) > 3 and head[:2] == b"\xfe\x01"
            engine = _ENGINE_FILES.get(head[3]) if binary else None
            if engine is None:
                continue  # views (no binary header), partitioned tables, other engines
            label, needs = engine
            facts.tables[stem] = label
            for choices in needs:
                if not any(stem + ext in self.names for ext in choices):
                    raise self._missing(
                        f"table {stem!r} ({label}, defined by {frm}) has no "
                        f"{' or '.join(stem + e for e in choices)} in the backup: a tablespace "
                        "is missing"
                    )
        return facts
