"""The rotation journal: one SQLite file per rotation, every step committed and synced.

Each data version moves planned → fetched → unwrapped (and checked against the
data) → wrapped → written → read back → done, or ends as ``cannot`` with the
reason. A run killed at any point resumes from what the journal says: before
``wrapped`` nothing was written and the version starts again; from ``wrapped`` on the
exact bytes to write are in the journal (they are ciphertext for the new public key,
no secret), so a retried PUT sends the same bytes and a 412 is resolved by reading
back and comparing. The journal never holds a secret, a PIN or a private key.
"""

from __future__ import annotations

import datetime as _dt
import enum
import hashlib
import json
import os
import secrets
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import platformdirs

from ..errors import SealcheckError


class JournalError(SealcheckError):
    """The rotation journal cannot be used."""


class Step(enum.Enum):
    PLANNED = "planned"
    FETCHED = "fetched"
    UNWRAPPED = "unwrapped"  # and checked: the secret opens the data version
    WRAPPED = "wrapped"
    WRITTEN = "written"
    READ_BACK = "read back"
    DONE = "done"
    ALREADY = "already rotated"
    CANNOT = "cannot"

    @property
    def final(self) -> bool:
        return self in (Step.DONE, Step.ALREADY, Step.CANNOT)


ORDER = list(Step)


@dataclass
class Item:
    """One data version in a rotation (no secret: names, ids, digests, ciphertext)."""

    data_key: str
    data_version: str  # "null" for an unversioned object
    key_name: str | None
    key_version: str | None
    step: Step = Step.PLANNED
    reason: str | None = None
    link_name: str | None = None
    old_key: str | None = None  # label of the held key that opened it
    old_fingerprint: str | None = None
    padding: str | None = None
    wire: str | None = None
    old_sha256: str | None = None  # of the wrapped-key object as stored
    new_sha256: str | None = None
    new_bytes: bytes | None = None  # the re-wrapped object (ciphertext)
    new_version: str | None = None
    seconds: float | None = None
    # An envelope whose recipients sit inside the data object: "gpg" (envelope.py) or
    # "cms" (cmsenvelope.py); new_bytes is then the rotated object's first bytes, and
    # the original's bytes from copy_from on follow them.
    envelope: str | None = None
    data_size: int | None = None  # the original's size, as the rotated object repeats it
    copied: int | None = None  # body bytes copied inside the store (UploadPartCopy)
    copy_from: int | None = None  # where the original's bytes resume after new_bytes

    def report(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "new_bytes"}
        out["step"] = self.step.value
        return out


_COLUMNS = [f.name for f in fields(Item)]
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items ({", ".join(_COLUMNS)},
    PRIMARY KEY (data_key, data_version));
"""
# Column names come from the dataclass, never from input.
_SET_COLUMNS = [c for c in _COLUMNS if c not in ("data_key", "data_version")]
_INSERT = (
    f"INSERT OR IGNORE INTO items ({', '.join(_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(_COLUMNS))})"
)
_UPDATE = (
    f"UPDATE items SET {', '.join(f'{c} = ?' for c in _SET_COLUMNS)} "  # noqa: S608
    "WHERE data_key = ? AND data_version = ?"
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM items ORDER BY data_key, data_version"  # noqa: S608

# A test hook (reliability.md §2.0 "CRASH_AT"): SIGKILL this process at a named point,
# the Nth time it is reached. Harmless unless the variable is set.
CRASH_ENV = "SEALCHECK_ROTATE_KILL_AT"


def crash_hook() -> Callable[[str], None]:
    """SIGKILL at ``point`` the Nth time it is reached (``SEALCHECK_ROTATE_KILL_AT=point:N``);
    for the kill-point tests only, a no-op otherwise."""
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return lambda _point: None
    point, _, n = spec.partition(":")
    left = [int(n or 1)]

    def hook(at: str) -> None:
        if at == point:
            left[0] -= 1
            if left[0] <= 0:
                os.kill(os.getpid(), signal.SIGKILL)

    return hook


def default_dir() -> Path:
    if env := os.environ.get("SEALCHECK_DATA_DIR"):
        return Path(env) / "rotations"
    return platformdirs.user_data_path("sealcheck") / "rotations"


class Journal:
    def __init__(self, path: Path, *, crash: Callable[[str], None] | None = None) -> None:
        self.path = path
        self._crash = crash or crash_hook()
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # One connection shared by the rotation's workers, one transaction at a time.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is fsynced before it returns (update() relaxes it for the
            # informational steps).
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._add_new_columns()
        except sqlite3.Error as exc:
            raise JournalError(str(exc), obj=str(path)) from None
        os.chmod(path, 0o600)

    def close(self) -> None:
        self._db.close()

    def _add_new_columns(self) -> None:
        """A journal written before a column was added gets it (empty), so it resumes."""
        have = {str(r[1]) for r in self._db.execute("PRAGMA table_info(items)").fetchall()}
        for c in _COLUMNS:
            if c not in have:
                self._db.execute(f"ALTER TABLE items ADD COLUMN {c}")  # from the dataclass

    # --- meta ---------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        with self._lock:
            return dict(self._db.execute("SELECT k, v FROM meta").fetchall())

    def set_meta(self, **values: str) -> None:
        with self._tx():
            self._db.executemany(
                "INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", list(values.items())
            )

    # --- items --------------------------------------------------------------------

    def add(self, items: list[Item]) -> int:
        """Add versions not yet in the journal; returns how many were new."""
        before = self._count()
        with self._tx():
            self._db.executemany(_INSERT, [self._row(i) for i in items])
        return self._count() - before

    def update(self, item: Item, point: str | None = None) -> None:
        """Record the item's step; ``point`` names the kill point after it.

        Every commit survives the process being killed (WAL). ``wrapped`` (the exact
        bytes about to be written, before the one irreversible step) and ``cannot`` are
        also fsynced before this returns, so a power loss keeps them too. The others reach
        the disk with the next synced commit: losing them costs a resume nothing, since
        the store says what was written (a link found by name is "already rotated", and
        a retried PUT meets 412 and compares). One fsync per version, not seven: the
        journal is what the workers queue on."""
        row = dict(zip(_COLUMNS, self._row(item), strict=True))
        durable = item.step in (Step.WRAPPED, Step.CANNOT)
        with self._lock:
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            with self._tx():
                self._db.execute(
                    _UPDATE, [row[c] for c in _SET_COLUMNS] + [item.data_key, item.data_version]
                )
                self._crash("before-commit")
        self._crash(point or item.step.value)

    def items(self) -> list[Item]:
        with self._lock:
            rows = self._db.execute(_SELECT).fetchall()
        return [self._item(r) for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT step, COUNT(*) FROM items GROUP BY step").fetchall()
        return {str(s): int(n) for s, n in rows}

    def _count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    @staticmethod
    def _row(i: Item) -> list[Any]:
        return [getattr(i, c).value if c == "step" else getattr(i, c) for c in _COLUMNS]

    @staticmethod
    def _item(row: tuple[Any, ...]) -> Item:
        d = dict(zip(_COLUMNS, row, strict=True))
        d["step"] = Step(d["step"])
        return Item(**d)

    def _tx(self) -> Any:
        return _Transaction(self._db, self.path, self._lock)


class _Transaction:
    def __init__(self, db: sqlite3.Connection, path: Path, lock: threading.RLock) -> None:
        self._db = db
        self._path = path
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire()
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type else "COMMIT")
        except sqlite3.Error as exc:
            raise JournalError(str(exc), obj=str(self._path)) from None
        finally:
            self._lock.release()


def journals(folder: Path | None = None) -> Iterator[Path]:
    folder = folder or default_dir()
    if folder.is_dir():
        yield from sorted(folder.glob("*.sqlite3"))


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def journal_for(bucket: str, prefix: str, fingerprint: str, folder: Path | None = None) -> Path:
    """The journal of one rotation: one per prefix and new key, so the CLI and the app
    resume each other's runs."""
    ident = f"{bucket}/{prefix}|{fingerprint}"
    return (folder or default_dir()) / f"{hashlib.sha256(ident.encode()).hexdigest()[:16]}.sqlite3"


def key_location(spec: str) -> str:
    """A key as given (``--to``, ``--from``), as a later process finds it: a PEM path made
    absolute; ``keyring:NAME`` and ``pkcs11:`` URIs as they are."""
    if spec.startswith(("keyring:", "pkcs11:")) or not spec:
        return spec
    return os.path.abspath(os.path.expanduser(spec))


@dataclass(frozen=True)
class Start:
    """What a rotation records in its journal when it starts: enough for the app or the
    CLI to offer it for resuming and to resume it. Locations and names only (a PEM's path,
    ``keyring:NAME``, a ``pkcs11:`` URI, the endpoint), never a secret."""

    source: str  # s3://BUCKET/PREFIX
    new_key: str  # the new key's SPKI SHA-256 (``SHA256:…``)
    new_label: str
    scope: str
    to: str  # the new key as given (key_location)
    public_only: bool
    old: tuple[str, ...] = ()  # the old keys as given (--from); () = every held key
    pkcs11_module: str = ""
    endpoint: str = ""
    region: str = ""
    profile: str = ""
    rules: tuple[str, ...] = ()  # DATA_SUFFIX:KEY_SUFFIX
    # The old OpenPGP key (--gpg-key, --gpg-homedir), so a resume needs neither again:
    # the key file's path and its fingerprint (to tell another key given on resume), the
    # GNUPGHOME's path. Its passphrase is never recorded.
    gpg_key: str = ""
    gpg_fingerprint: str = ""
    gpg_homedir: str = ""

    def meta(self) -> dict[str, str]:
        return {
            "source": self.source,
            "new_key": self.new_key,
            "new_label": self.new_label,
            "scope": self.scope,
            "to": self.to,
            "public_only": "yes" if self.public_only else "no",
            "old": json.dumps(list(self.old)),
            "pkcs11_module": self.pkcs11_module,
            "endpoint": self.endpoint,
            "region": self.region,
            "profile": self.profile,
            "rules": json.dumps(list(self.rules)),
            "gpg_key": self.gpg_key,
            "gpg_fingerprint": self.gpg_fingerprint,
            "gpg_homedir": self.gpg_homedir,
        }

    @classmethod
    def read(cls, meta: dict[str, str]) -> Start | None:
        """The start recorded in ``meta``; None when it does not say where or to which
        key (a journal written before both recorded it)."""
        if not meta.get("to") or not meta.get("source", "").startswith("s3://"):
            return None
        try:
            old = tuple(str(x) for x in json.loads(meta.get("old") or "[]"))
            rules = tuple(str(x) for x in json.loads(meta.get("rules") or "[]"))
        except ValueError:
            return None
        return cls(
            source=meta["source"],
            new_key=meta.get("new_key", ""),
            new_label=meta.get("new_label", ""),
            scope=meta.get("scope", "current"),
            to=meta["to"],
            public_only=meta.get("public_only") == "yes",
            old=old,
            pkcs11_module=meta.get("pkcs11_module", ""),
            endpoint=meta.get("endpoint", ""),
            region=meta.get("region", ""),
            profile=meta.get("profile", ""),
            rules=rules,
            gpg_key=meta.get("gpg_key", ""),
            gpg_fingerprint=meta.get("gpg_fingerprint", ""),
            gpg_homedir=meta.get("gpg_homedir", ""),
        )


def begin(journal: Journal, start: Start, started: str) -> str:
    """Record ``start`` in the journal (the CLI's and the app's runs alike); the run's
    owner (the lock's name), kept from the run it resumes."""
    meta = journal.meta()
    owner = meta.get("owner") or secrets.token_hex(8)
    journal.set_meta(
        owner=owner,
        status=meta.get("status", "not started"),
        started=meta.get("started", started),
        **start.meta(),
    )
    return owner


def pending(folder: Path | None = None) -> list[tuple[Path, dict[str, str]]]:
    """The interrupted rotations (status ``running``), each with its journal's meta."""
    out = []
    for path in journals(folder):
        try:
            j = Journal(path)
        except JournalError:
            continue
        try:
            meta = j.meta()
        finally:
            j.close()
        if meta.get("status") == "running":
            out.append((path, meta))
    return out
