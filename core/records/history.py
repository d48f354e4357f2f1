"""The verification history: every verify, restore and restore test, kept in SQLite.

One file, ``history.sqlite3``, in ``$SEALCHECK_DATA_DIR`` or else the platform's user
data folder (the override follows ``SEALCHECK_STATE_DIR`` of the restore test).

Invariants:

* Append-only. Rows are inserted, never changed: triggers refuse UPDATE and DELETE,
  so an evidence report exported later shows what was recorded at the time.
* No secrets. A row holds identity fields and the result's JSON, and results never
  contain keys, passphrases or PINs (see report.py); tests check it with a canary.
* Several writers. WAL mode and a busy timeout let two processes (the CLI in a cron
  job and the desktop app) record at once; every call opens its own short-lived
  connection, so threads never share one either.
* Failures are typed. Every sqlite or file-system error leaves as ``HistoryError``;
  whoever records right after a verify turns that into a warning, never a verdict.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import enum
import functools
import getpass
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import quote

import platformdirs

from ..errors import SealcheckError
from ..version import __version__
from . import chain
from .identity import SourceIdentity
from .report import Report, Status
from .targets import Targets
from .verdict import VERDICT_EXIT_CODES, Verdict

# A restore test's result class loads when one is recorded or read back: recording a
# verify does not need it (issue 17, start-up is part of the job). A result that is no
# Report is a RestoreTestResult (Result below).
if TYPE_CHECKING:
    from .restore_result import RestoreTestResult

FILENAME = "history.sqlite3"
SCHEMA_VERSION = 2  # 2: the hash chain, OS user, trigger and campaign (issue 14)
DEFAULT_BUSY_TIMEOUT_S = 10.0

Result: TypeAlias = "Report | RestoreTestResult"
VersionKey = tuple[str, str | None]  # (object key or local path, version id)


class HistoryError(SealcheckError):
    """The verification history could not be read or written."""

    def __init__(self, path: Path, detail: str) -> None:
        self.path = path
        super().__init__(detail, obj=str(path))


class Kind(enum.Enum):
    VERIFY = "verify"
    RESTORE = "restore"
    RESTORE_TEST = "restore-test"
    AUDIT = "audit"  # a campaign's own record (its result is the campaign summary)
    ROTATION = "rotation"  # a key rotation's run (its result is the rotation report)

    @property
    def of_a_version(self) -> bool:
        """A result about one backup version, not a record about a prefix (a campaign's,
        a rotation's): per-version readers (coverage, latest verdicts) skip the others."""
        return self not in (Kind.AUDIT, Kind.ROTATION)


class Trigger(enum.Enum):
    """What started a run: a person, an audit campaign, a schedule (``--trigger``)."""

    MANUAL = "manual"
    AUDIT = "audit"
    SCHEDULE = "schedule"


def default_dir() -> Path:
    if env := os.environ.get("SEALCHECK_DATA_DIR"):
        return Path(env)
    return platformdirs.user_data_path("sealcheck")


@dataclass(frozen=True)
class Subject:
    """Which backup an entry is about: an S3 object version, or a local file
    (``bucket`` None, ``key`` its absolute path)."""

    uri: str  # s3://bucket/key or the absolute path, without the version
    bucket: str | None
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    sha256: str | None = None  # of the object's bytes, when a run read them all

    @property
    def label(self) -> str:
        return f"{self.uri}@{self.version_id}" if self.version_id else self.uri

    @classmethod
    def from_uri(cls, uri: str, version_id: str | None = None) -> Subject:
        if uri.startswith("s3://"):
            bucket, _, key = uri[5:].partition("/")
            return cls(uri, bucket, key, version_id)
        path = os.path.abspath(uri)  # recorded where it ran: a relative path means nothing later
        return cls(path, None, path, version_id)

    @classmethod
    def of(cls, ident: SourceIdentity, report: Report | None = None) -> Subject:
        uri = ident.uri
        if ident.version_id and uri.startswith("s3://"):
            # S3Object names carry "?versionId=V"; the version is a column of its own.
            uri = uri.removesuffix(f"?versionId={quote(ident.version_id)}")
        base = cls.from_uri(uri, ident.version_id)
        sha = None
        if report is not None and (src := report.layer("source")) is not None:
            got = src.details.get("sha256")
            sha = got if isinstance(got, str) else None
        return cls(base.uri, base.bucket, base.key, ident.version_id, ident.etag, ident.size, sha)


@dataclass(frozen=True)
class Entry:
    id: int
    when: str  # UTC, ISO 8601, when the result was recorded
    kind: Kind
    subject: Subject
    ok: bool
    exit_code: int
    failed_layer: str | None
    result_json: str
    sealcheck_version: str
    host: str
    # Issue 14. None on records kept before the chain existed (schema 1): the
    # migration chained them, but who ran them and why was never recorded.
    os_user: str | None = None
    trigger: str | None = None
    campaign: str | None = None  # the audit campaign a result belongs to
    prev_hash: str | None = None
    digest: str | None = None
    record_hash: str | None = None

    @property
    def version_key(self) -> VersionKey:
        return (self.subject.key, self.subject.version_id)

    @property
    def verdict(self) -> Verdict:
        """OK, FAILED, or NOT_CHECKED for a run that could not check the backup."""
        return Verdict.of(self.exit_code)

    @property
    def when_dt(self) -> _dt.datetime:
        return _dt.datetime.fromisoformat(self.when)

    def result(self) -> Result:
        """The stored result, read back into its dataclasses (ValueError if damaged)."""
        try:
            data = json.loads(self.result_json)
        except ValueError as exc:
            raise ValueError(f"history entry {self.id}: the result is not JSON ({exc})") from None
        where = f"history entry {self.id}"
        if self.kind is Kind.RESTORE_TEST:
            from .restore_result import RestoreTestResult  # (see the imports above)

            return RestoreTestResult.from_dict(data, where)
        return Report.from_dict(data, where)

    def tally(self) -> Entry:
        """This entry without its result's text, except a restore test's (its recovery
        time is measured against the RTO): what a campaign's totals, exit code and
        listing need. A merge of 100,000 results keeps these, not 240 MB of records;
        its report reads them back in full. Not for the chain: its digest covers the text."""
        if self.kind is Kind.RESTORE_TEST:
            return self
        # Not dataclasses.replace: a merge makes 100,000 of these, and it reads the
        # fields' definitions again each time.
        return Entry(**{**self.__dict__, "result_json": ""})

    def content(self) -> dict[str, Any]:
        """What the chain's digest covers: every stored field but the chain's own."""
        return content_of(self.id, self._row(), self.result_json)

    def content_but_result(self) -> dict[str, Any]:
        """``content()`` without its "result" member (not parsed: a report carries the
        result once, as the record's own "result")."""
        out = _content(self.id, self._row(), None)
        del out["result"]
        return out

    def _row(self) -> dict[str, Any]:
        s = self.subject
        return {
            "recorded_at": self.when,
            "kind": self.kind.value,
            "uri": s.uri,
            "bucket": s.bucket,
            "object_key": s.key,
            "version_id": s.version_id,
            "etag": s.etag,
            "size": s.size,
            "sha256": s.sha256,
            "ok": int(self.ok),
            "exit_code": self.exit_code,
            "failed_layer": self.failed_layer,
            "sealcheck_version": self.sealcheck_version,
            "host": self.host,
            "os_user": self.os_user,
            "run_trigger": self.trigger,
            "campaign": self.campaign,
        }

    def summary(self) -> dict[str, Any]:
        """Everything but the result, for ``sealcheck history --json``."""
        s = self.subject
        return {
            "id": self.id,
            "when": self.when,
            "kind": self.kind.value,
            "uri": s.uri,
            "bucket": s.bucket,
            "key": s.key,
            "version_id": s.version_id,
            "etag": s.etag,
            "size": s.size,
            "sha256": s.sha256,
            "ok": self.ok,
            "verdict": self.verdict.value,
            "exit_code": self.exit_code,
            "failed_layer": self.failed_layer,
            "sealcheck_version": self.sealcheck_version,
            "host": self.host,
            "os_user": self.os_user,
            "trigger": self.trigger,
            "campaign": self.campaign,
            "record_hash": self.record_hash,
        }


@dataclass(frozen=True)
class Tag:
    """An entry's id, kind and exit code, read without its record: what orders a
    report of 100,000 entries before their records are read, a batch at a time."""

    id: int
    kind: Kind
    exit_code: int

    @property
    def verdict(self) -> Verdict:
        return Verdict.of(self.exit_code)


def content_of(entry_id: int, row: dict[str, Any], result_json: str) -> dict[str, Any]:
    """A record's content for its digest: the columns by name, ``ok`` a boolean and the
    result parsed, so a report that carries the result as JSON can rebuild it exactly."""
    return _content(entry_id, row, json.loads(result_json))


def _sealed(entry_id: int, row: dict[str, Any], result: dict[str, Any]) -> tuple[str, str]:
    """The result's stored text and the record's digest, encoding the result once: the
    text is its canonical JSON, and the canonical JSON of the record's content holds the
    same bytes as its "result" member (what digest_of(_content(...)) would encode again;
    a 100,000-record merge spends most of its time encoding)."""
    text = chain.canonical(result)
    head = chain.canonical(_content(entry_id, row, None))
    # Only a key can read "result":null here: inside a JSON string every " is escaped.
    assert head.count(b'"result":null') == 1
    whole = head.replace(b'"result":null', b'"result":' + text, 1)
    return text.decode("ascii"), hashlib.sha256(whole).hexdigest()


def _content(entry_id: int, row: dict[str, Any], result: dict[str, Any] | None) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in _NOT_CONTENT}
    out["ok"] = bool(out["ok"])
    out["id"] = entry_id
    out["result"] = result
    return out


def failed_layer(result: Result) -> str | None:
    """The layer that caught the failure ("database": the restore test's own checks)."""
    if not isinstance(result, Report):  # a restore test
        v = result.verification
        if v is not None and not v.ok:
            return failed_layer(v)
        if result.ok:
            return None
        return result.error.layer if result.error and result.error.layer else "database"
    first = next((x.layer for x in result.layers if x.status is Status.FAILED), None)
    return first or (result.error.layer if result.error else None)


def kind_of(result: Result) -> Kind:
    if not isinstance(result, Report):
        return Kind.RESTORE_TEST
    return Kind.RESTORE if result.operation == "restore" else Kind.VERIFY


_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    uri TEXT NOT NULL,
    bucket TEXT,
    object_key TEXT NOT NULL,
    version_id TEXT,
    etag TEXT,
    size INTEGER,
    sha256 TEXT,
    ok INTEGER NOT NULL,
    exit_code INTEGER NOT NULL,
    failed_layer TEXT,
    result TEXT NOT NULL,
    sealcheck_version TEXT NOT NULL,
    host TEXT NOT NULL,
    os_user TEXT,
    run_trigger TEXT,
    campaign TEXT,
    prev_hash TEXT,
    digest TEXT,
    record_hash TEXT
);
CREATE INDEX IF NOT EXISTS entries_by_version ON entries (object_key, version_id);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'the history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'the history is append-only'); END;
"""

_CHAIN_COLUMNS = ("prev_hash", "digest", "record_hash")
_COLUMNS = (
    "id, recorded_at, kind, uri, bucket, object_key, version_id, etag, size, sha256, ok, "
    "exit_code, failed_layer, result, sealcheck_version, host, os_user, run_trigger, "
    "campaign, prev_hash, digest, record_hash"
)
_NOT_CONTENT = frozenset(("result", *_CHAIN_COLUMNS))  # a record's columns its content leaves out
_ROW_KEYS = _COLUMNS.split(", ")[1:]  # what _row gives, with the chain's columns after
_INSERT = f"INSERT INTO entries ({_COLUMNS}) VALUES ({', '.join('?' * (1 + len(_ROW_KEYS)))})"  # noqa: S608
# Schema 1 -> 2: the new columns, then every existing record chained in id order.
_ADDED = ("os_user", "run_trigger", "campaign", *_CHAIN_COLUMNS)
# Campaign and rotation records are not results of one version: per-version readers
# leave them out.
_NOT_CAMPAIGN = "kind NOT IN ('audit', 'rotation')"
_NOT_AUDIT = "kind != 'audit'"


class History:
    """The store. Cheap to construct: nothing is opened until a call needs it.

    ``keep_open``: hold one connection for the thread that first uses the store (the
    GUI thread). Closing the last connection to a WAL database checkpoints and syncs
    it, ~20 ms per call; a held connection makes an append well under a millisecond.
    Calls from any other thread still get a connection of their own."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT_S,
        keep_open: bool = False,
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._keep_open = keep_open
        self._held: sqlite3.Connection | None = None
        self._held_by: int | None = None

    @classmethod
    def default(
        cls, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT_S, keep_open: bool = False
    ) -> History:
        return cls(default_dir() / FILENAME, busy_timeout=busy_timeout, keep_open=keep_open)

    def close(self) -> None:
        """Close a held connection (from the thread that holds it)."""
        if self._held is not None and self._held_by == threading.get_ident():
            with contextlib.suppress(sqlite3.Error):
                self._held.close()
            self._held = self._held_by = None

    # --- writing -----------------------------------------------------------------

    def record(
        self,
        result: Result,
        *,
        when: _dt.datetime | None = None,
        subject: Subject | None = None,
        trigger: Trigger = Trigger.MANUAL,
        campaign: str | None = None,
        targets: Targets | None = None,
    ) -> Entry:
        """Append one finished result. ``subject`` is only a fallback for a result
        that never identified its source (a restore test stopped before reading).
        ``targets``: the RTO/RPO its source sets, kept in the record (its content, so
        the chain and the signature cover them)."""
        data = _with_targets(result.to_dict(), targets)
        row = _result_row(result, data, subject, when, trigger, campaign)
        return self._insert([(row, data)])[0]

    def record_many(
        self,
        results: Iterable[tuple[Result, dict[str, Any], Targets | None]],
        *,
        trigger: Trigger,
        campaign: str | None,
        keep: Callable[[Entry], Entry] | None = None,
    ) -> list[Entry]:
        """Append finished results in one transaction, in order: all of them or none
        (a coordinator merging a sharded campaign, issue 15; an exception from
        ``results`` records nothing). Each comes with its ``to_dict()`` as the machine
        that ran it made it, stored as is (the results were read back from it; not
        making it again is most of a 100,000-result merge), and its targets, as
        ``record`` keeps them. ``results`` may be a generator: a merge reads them a
        batch at a time. ``keep``: what to keep of each new entry (``Entry.tally``)."""

        def rows() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
            for r, made, t in results:
                d = _with_targets(made, t)
                yield _result_row(r, d, None, None, trigger, campaign), d

        return self._insert(rows(), keep)

    def record_campaign(
        self,
        summary: dict[str, Any],
        *,
        where: str,
        ok: bool,
        exit_code: int,
        campaign: str,
        trigger: Trigger = Trigger.AUDIT,
    ) -> Entry:
        """Append an audit campaign's own record (``summary``: population, sample, seed,
        skipped and why, totals), in the same chain as its results."""
        return self._about_prefix(Kind.AUDIT, where, ok, exit_code, summary, trigger, campaign)

    def record_rotation(
        self, report: dict[str, Any], *, exit_code: int, trigger: Trigger = Trigger.MANUAL
    ) -> Entry:
        """Append a key rotation's report (rotation/report.py: every version's ids, digests
        and fingerprints, never a secret) about its prefix, in the same chain."""
        ok = bool(report.get("complete"))
        return self._about_prefix(
            Kind.ROTATION, str(report["source"]), ok, exit_code, report, trigger, None
        )

    def _about_prefix(
        self,
        kind: Kind,
        where: str,
        ok: bool,
        exit_code: int,
        result: dict[str, Any],
        trigger: Trigger,
        campaign: str | None,
    ) -> Entry:
        """A record about a prefix, not one version (Kind.of_a_version is False)."""
        row = _row(
            kind=kind,
            subject=Subject.from_uri(where),
            ok=ok,
            exit_code=exit_code,
            failed=None,
            result=result,
            when=None,
            trigger=trigger,
            campaign=campaign,
        )
        return self._insert([(row, result)])[0]

    def _insert(
        self,
        rows: Iterable[tuple[dict[str, Any], dict[str, Any]]],
        keep: Callable[[Entry], Entry] | None = None,
    ) -> list[Entry]:
        """Append rows (each with its result as data) in one transaction: one statement
        for them all (``executemany``), each row sealed and chained as it is bound."""
        out: list[Entry] = []
        with self._connect(create=True) as db:
            db.execute("BEGIN IMMEDIATE")  # the chain's tail cannot move under us
            new_id, prev = _tail(db)

            def bound() -> Iterator[tuple[Any, ...]]:
                nonlocal new_id, prev
                for row, data in rows:
                    new_id += 1
                    row["result"], digest = _sealed(new_id, row, data)
                    row.update(prev_hash=prev, digest=digest, record_hash=chain.link(prev, digest))
                    prev = row["record_hash"]
                    if list(row) != _ROW_KEYS:  # bound by place: the columns' order
                        raise ValueError(f"a history row with other columns: {list(row)}")
                    values = (new_id, *row.values())
                    entry = _entry(values)
                    out.append(keep(entry) if keep is not None else entry)
                    yield values

            db.executemany(_INSERT, bound())
            db.execute("COMMIT")
        return out

    def spine(self, first_id: int) -> tuple[str, list[chain.SpineLink]]:
        """The hash before record ``first_id`` and (id, digest) of every record from it to
        the head: what a report needs to recompute the chain offline."""
        with self._connect(create=False) as db:
            before = db.execute(
                "SELECT record_hash FROM entries WHERE id < ? ORDER BY id DESC LIMIT 1",
                (first_id,),
            ).fetchone()
            rows = db.execute(
                "SELECT id, digest FROM entries WHERE id >= ? ORDER BY id", (first_id,)
            ).fetchall()
        anchor = str(before[0]) if before else chain.GENESIS
        return anchor, [chain.SpineLink(int(i), str(d)) for i, d in rows]

    def check_chain(self) -> list[str]:
        """Every break in the stored chain (empty: intact), for ``sealcheck history --check``."""
        problems: list[str] = []
        prev = chain.GENESIS
        for e in self._select("ORDER BY id", ()):
            digest = chain.digest_of(e.content())
            if e.prev_hash != prev:
                problems.append(
                    f"record #{e.id}: its previous hash does not match the record before"
                )
            if digest != e.digest:
                problems.append(
                    f"record #{e.id} was edited: its content no longer matches its digest"
                )
            if e.record_hash != chain.link(e.prev_hash or "", e.digest or ""):
                problems.append(f"record #{e.id}: its hash does not follow from its digest")
            prev = e.record_hash or ""
        return problems

    # --- reading -----------------------------------------------------------------

    def get(self, entry_id: int) -> Entry | None:
        rows = self._select("WHERE id = ?", (entry_id,))
        return rows[0] if rows else None

    def entries_by_id(self, ids: Sequence[int]) -> list[Entry]:
        """The entries of these ids (those that exist), in no particular order: a batch
        of a report's records, read back without reading the rest."""
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        return self._select(f"WHERE id IN ({marks})", tuple(int(i) for i in ids))

    def entries(
        self,
        *,
        source: str | None = None,
        failed: bool = False,
        kind: Kind | None = None,
        limit: int | None = None,
        verdict: Verdict | None = None,
        since: _dt.datetime | None = None,
        campaigns: bool = False,
        campaign: str | None = None,
        rotations: bool = False,
    ) -> list[Entry]:
        """Newest first. ``source`` is a shell-style pattern matched against the URI
        or the object key; without a wildcard it matches anywhere in them. ``failed``:
        only FAILED verdicts (a run that could not check the backup is none);
        ``verdict``: only that one (NOT_CHECKED too); ``since``: recorded then or later.
        Campaign records (Kind.AUDIT) only when asked for by ``kind`` or ``campaigns``,
        rotation records (Kind.ROTATION) by ``kind``, ``campaigns`` or ``rotations``;
        ``campaign``: only what that campaign recorded."""
        where, params = _filters(source, Verdict.FAILED if failed else verdict, kind)
        if kind is None and not campaigns:
            hide = _NOT_AUDIT if rotations else _NOT_CAMPAIGN
            where = f"{where} AND {hide}" if where else f"WHERE {hide}"
        if since is not None:
            # recorded_at is UTC ISO 8601 of one fixed shape: text order is time order.
            stamp = since.astimezone(_dt.UTC).isoformat(timespec="seconds")
            where = f"{where} AND recorded_at >= ?" if where else "WHERE recorded_at >= ?"
            params = (*params, stamp)
        if campaign is not None:
            where = f"{where} AND campaign = ?" if where else "WHERE campaign = ?"
            params = (*params, campaign)
        tail = f"{where} ORDER BY id DESC"
        if limit is not None:
            tail += f" LIMIT {int(limit)}"
        return self._select(tail, params)

    def latest_by_version(
        self, *, source: str | None = None, verdicts_only: bool = False
    ) -> dict[VersionKey, Entry]:
        """The newest entry of each object version (ids, not clocks, order entries:
        two hosts' clocks may disagree, the append order cannot). ``verdicts_only``:
        the newest entry that reached a verdict, passing over runs that could not check."""
        rows = self._select(*_latest(source, verdicts_only))
        return {e.version_key: e for e in rows}

    def latest_ids(self, *, source: str | None = None, verdicts_only: bool = False) -> list[int]:
        """The ids of ``latest_by_version``'s entries, in its order, without reading the
        entries: a report of 100,000 versions reads its records a batch at a time."""
        return [int(i) for (i,) in self._rows("id", *_latest(source, verdicts_only))]

    def tags(self, *, campaign: str) -> list[Tag]:
        """What campaign ``campaign`` recorded (its own record too), newest first, as
        ``entries(campaign=…, campaigns=True)`` gives it, but only what orders its
        report (``Tag``): the records are read when the report is written."""
        rows = self._rows("id, kind, exit_code", "WHERE campaign = ? ORDER BY id DESC", (campaign,))
        try:
            return [Tag(int(i), Kind(k), int(code)) for i, k, code in rows]
        except (ValueError, TypeError) as exc:
            raise HistoryError(self.path, f"a row is damaged ({exc})") from None

    def missing_ids(self, ids: Iterable[int]) -> list[int]:
        """Those of ``ids`` that are no history entry, in the order given."""
        wanted = list(dict.fromkeys(int(i) for i in ids))
        found: set[int] = set()
        for at in range(0, len(wanted), 500):  # SQLite's limit on a statement's parameters
            part = wanted[at : at + 500]
            marks = ", ".join("?" * len(part))
            found.update(int(i) for (i,) in self._rows("id", f"WHERE id IN ({marks})", tuple(part)))
        return [i for i in wanted if i not in found]

    def opened_by_key(self) -> dict[str, list[Subject]]:
        """For each key fingerprint, the versions it opened in their latest verdict (the
        key layer proved with it): where a key is in use, for whoever would remove it.
        Read in SQL (JSON1), so hundreds of versions are not parsed in Python."""
        codes = ", ".join("?" * len(VERDICT_EXIT_CODES))
        newest = (
            f"SELECT MAX(id) FROM entries WHERE exit_code IN ({codes}) "  # noqa: S608 - fixed
            f"AND {_NOT_CAMPAIGN} GROUP BY object_key, version_id"
        )
        layers = "CASE e.kind WHEN 'restore-test' THEN '$.verification.layers' ELSE '$.layers' END"
        fp = "json_extract(l.value, '$.details.fingerprint')"
        sql = (
            f"SELECT {fp}, e.uri, e.bucket, e.object_key, e.version_id "  # noqa: S608 - fixed
            f"FROM entries e, json_each(e.result, {layers}) l WHERE e.id IN ({newest}) "
            "AND json_extract(l.value, '$.layer') = 'key' "
            "AND json_extract(l.value, '$.status') IN ('ok', 'warning') "
            f"AND {fp} IS NOT NULL ORDER BY e.id DESC"
        )
        if not self.path.exists():
            return {}
        out: dict[str, list[Subject]] = {}
        with self._connect(create=False) as db:
            rows = db.execute(sql, tuple(VERDICT_EXIT_CODES)).fetchall()
        for fingerprint, uri, bucket, key, version in rows:
            out.setdefault(str(fingerprint), []).append(Subject(uri, bucket, key, version))
        return out

    def _rows(self, columns: str, tail: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if not self.path.exists():
            return []  # nothing recorded yet; reading never creates the file
        with self._connect(create=False) as db:
            cur = db.execute(f"SELECT {columns} FROM entries {tail}", params)  # noqa: S608 - ours
            return cur.fetchall()

    def _select(self, tail: str, params: tuple[Any, ...]) -> list[Entry]:
        rows = self._rows(_COLUMNS, tail, params)
        try:
            return [_entry(r) for r in rows]
        except (ValueError, TypeError) as exc:
            raise HistoryError(self.path, f"a row is damaged ({exc})") from None

    # --- the file ----------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self, *, create: bool) -> Iterator[sqlite3.Connection]:
        me = threading.get_ident()
        hold = self._keep_open and self._held_by in (None, me)
        db = self._held if hold else None
        try:
            if db is None:
                if create:
                    _make_private_file(self.path)
                # isolation_level None: we issue BEGIN IMMEDIATE ourselves, so a writer
                # takes the lock up front and waits (busy timeout) instead of failing late.
                db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
                self._prepare(db, create)
                if hold:
                    self._held, self._held_by = db, me
            yield db
        except sqlite3.Error as exc:
            self._drop(db)  # a held connection is reopened on the next call
            raise HistoryError(self.path, _sqlite_text(exc)) from None
        except OSError as exc:
            self._drop(db)
            raise HistoryError(self.path, exc.strerror or str(exc)) from None
        finally:
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                if db is not self._held:
                    db.close()

    def _switch_to_wal(self, db: sqlite3.Connection) -> None:
        """WAL on a new file. The switch needs an exclusive lock, and sqlite answers it
        "database is locked" at once, without its busy handler, while another process
        creating the same file holds a lock (two first records racing, seen under load in
        CI): wait for it here as the busy timeout would."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _drop(self, db: sqlite3.Connection | None) -> None:
        if db is not None and db is self._held:
            self._held = self._held_by = None

    def _prepare(self, db: sqlite3.Connection, create: bool) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            if not create:
                # An empty file another process is just creating, or not ours.
                tables = db.execute(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'entries'"
                ).fetchone()[0]
                if not tables:
                    raise sqlite3.DatabaseError("it has no history table")
            else:
                self._switch_to_wal(db)
                db.execute("BEGIN IMMEDIATE")
                for stmt in _statements(_SCHEMA):
                    db.execute(stmt)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute("COMMIT")
        elif version < SCHEMA_VERSION:
            _migrate(db)
        # A newer Sealcheck may add columns; it must keep these, so reading and
        # appending by name stay valid. NORMAL: in WAL a crash loses no committed
        # row; only a power cut may drop the last one (the verify can be re-run).
        db.execute("PRAGMA synchronous=NORMAL")


def _with_targets(data: dict[str, Any], targets: Targets | None) -> dict[str, Any]:
    return data if targets is None or targets.empty else {**data, "targets": targets.to_dict()}


def _result_row(
    result: Result,
    data: dict[str, Any],
    subject: Subject | None,
    when: _dt.datetime | None,
    trigger: Trigger,
    campaign: str | None,
) -> dict[str, Any]:
    report = result if isinstance(result, Report) else result.verification
    if report is not None and report.source is not None:
        subject = Subject.of(report.source, report)
    if subject is None:
        raise ValueError("the result names no source and no subject was given")
    return _row(
        kind=kind_of(result),
        subject=subject,
        ok=result.ok,
        exit_code=result.exit_code,
        failed=failed_layer(result),
        result=data,
        when=when,
        trigger=trigger,
        campaign=campaign,
    )


def _row(
    *,
    kind: Kind,
    subject: Subject,
    ok: bool,
    exit_code: int,
    failed: str | None,
    result: dict[str, Any],
    when: _dt.datetime | None,
    trigger: Trigger,
    campaign: str | None,
) -> dict[str, Any]:
    stamp = (when or _dt.datetime.now(_dt.UTC)).astimezone(_dt.UTC)
    return {
        "recorded_at": stamp.isoformat(timespec="seconds"),
        "kind": kind.value,
        "uri": subject.uri,
        "bucket": subject.bucket,
        "object_key": subject.key,
        "version_id": subject.version_id,
        "etag": subject.etag,
        "size": subject.size,
        "sha256": subject.sha256,
        "ok": int(ok),
        "exit_code": exit_code,
        "failed_layer": failed,
        "result": None,  # the text is made with the digest (_sealed), from the data
        "sealcheck_version": __version__,
        "host": _host(),
        "os_user": _os_user(),
        "run_trigger": trigger.value,
        "campaign": campaign,
    }


def _tail(db: sqlite3.Connection) -> tuple[int, str]:
    """The last id and record hash (0 and GENESIS in an empty history)."""
    last = db.execute("SELECT id, record_hash FROM entries ORDER BY id DESC LIMIT 1").fetchone()
    if last is None:
        return 0, chain.GENESIS
    return int(last[0]), str(last[1])


def _migrate(db: sqlite3.Connection) -> None:
    """Schema 1 to 2: add the columns and chain every record kept so far, in id order.
    The append-only trigger is lifted for this one transaction only (the rows' content
    stays as it was; only their chain fields are filled in)."""
    db.execute("BEGIN IMMEDIATE")
    if db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        db.execute("ROLLBACK")  # another process migrated it meanwhile
        return
    for col in _ADDED:
        db.execute(f"ALTER TABLE entries ADD COLUMN {col} TEXT")
    db.execute("DROP TRIGGER IF EXISTS entries_no_update")
    prev = chain.GENESIS
    cols = _COLUMNS
    for r in db.execute(f"SELECT {cols} FROM entries ORDER BY id").fetchall():  # noqa: S608
        e = _entry(r)
        digest = chain.digest_of(e.content())
        h = chain.link(prev, digest)
        db.execute(
            "UPDATE entries SET prev_hash = ?, digest = ?, record_hash = ? WHERE id = ?",
            (prev, digest, h, e.id),
        )
        prev = h
    for stmt in _statements(_SCHEMA):
        if "entries_no_update" in stmt:
            db.execute(stmt)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    db.execute("COMMIT")


def _host() -> str:
    """This machine's name as ``socket.gethostname()`` gives it: on POSIX that is
    uname's node name, read without socket's import (~2 ms of every recorded verify,
    issue 17); asked per row, as a machine may be renamed while the app runs."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket  # no uname (Windows): see above

    return socket.gethostname()


@functools.cache  # who runs this process does not change while it runs
def _os_user() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (a bare container)
        return None


def _statements(script: str) -> list[str]:
    """Split the schema into statements (executescript would commit our transaction)."""
    out, buf = [], ""
    for line in script.strip().splitlines():
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return out


def _filters(
    source: str | None, verdict: Verdict | None, kind: Kind | None, *, verdicts_only: bool = False
) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    params: list[Any] = []
    if source:
        pattern = source if any(c in source for c in "*?[") else f"*{source}*"
        clauses.append("(uri GLOB ? OR object_key GLOB ?)")
        params += [pattern, pattern]
    # The verdict is the exit code's (verdict.py); these clauses say the same in SQL.
    if verdict is Verdict.NOT_CHECKED:
        clauses.append(f"exit_code NOT IN ({', '.join('?' * len(VERDICT_EXIT_CODES))})")
        params += VERDICT_EXIT_CODES
    elif verdict is not None:
        clauses.append("exit_code = ?")
        params.append(_exit_code_of(verdict))
    if verdicts_only:
        clauses.append(f"exit_code IN ({', '.join('?' * len(VERDICT_EXIT_CODES))})")
        params += VERDICT_EXIT_CODES
    if kind is not None:
        clauses.append("kind = ?")
        params.append(kind.value)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _latest(source: str | None, verdicts_only: bool) -> tuple[str, tuple[Any, ...]]:
    """The newest entry of each object version (``latest_by_version``), newest first."""
    where, params = _filters(source, None, None, verdicts_only=verdicts_only)
    where = f"{where} AND {_NOT_CAMPAIGN}" if where else f"WHERE {_NOT_CAMPAIGN}"
    newest = f"SELECT MAX(id) FROM entries {where} GROUP BY object_key, version_id"  # noqa: S608
    return f"WHERE id IN ({newest}) ORDER BY id DESC", params


def _exit_code_of(verdict: Verdict) -> int:
    return next(c for c in VERDICT_EXIT_CODES if Verdict.of(c) is verdict)


def _entry(r: tuple[Any, ...]) -> Entry:
    (eid, when, kind, uri, bucket, key, version, etag, size, sha, ok, code, layer) = r[:13]
    result, tool, host = r[13:16]
    user, trigger, campaign, prev, digest, rhash = r[16:22]
    return Entry(
        id=int(eid),
        when=str(when),
        kind=Kind(kind),
        subject=Subject(uri, bucket, key, version, etag, size, sha),
        ok=bool(ok),
        exit_code=int(code),
        failed_layer=layer,
        result_json=str(result),
        sealcheck_version=str(tool),
        host=str(host),
        os_user=user,
        trigger=trigger,
        campaign=campaign,
        prev_hash=prev,
        digest=digest,
        record_hash=rhash,
    )


def _make_private_file(path: Path) -> None:
    """The folder 0700 and the file 0600 before sqlite opens it (sqlite creates its
    -wal and -shm files with the database file's mode)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    name = getattr(exc, "sqlite_errorname", "")  # SQLITE_BUSY, SQLITE_BUSY_RECOVERY, ...
    return name.startswith("SQLITE_BUSY") or "locked" in str(exc)


def _sqlite_text(exc: sqlite3.Error) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
        return f"{text} (the file is damaged or not a history; move it aside to start a new one)"
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return f"{text} (another Sealcheck kept it busy)"
    return text
