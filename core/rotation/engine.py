"""Plan and run a rotation: re-wrap each data version's secret for the new key.

Order per version (reliability.md §1.14 R-2, issue 13): fetch the paired key
version and the data's first and last blocks, unwrap with a held key and prove the
secret opens the data, wrap it for the new key (same padding and wire format),
PUT it create-only under its link name, read it back by version id and unwrap it
with the new key to the same secret (digests compared), then ``done``. Each step
is journaled and synced first. The producer's objects are only ever read.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ..decrypt.secrets import GpgOptions
from ..errors import BackupFailed, StorageError
from ..keys.base import KeySource
from ..plumbing.progress import CancelToken
from ..storage.listing import Versioning
from ..storage.naming import Rule
from ..storage.rewrap import fingerprint_hex, link_name
from ..storage.s3.client import S3Settings
from .envsteps import Envelope, EnvelopeSteps
from .gpgresume import gpg_start
from .journal import Item, Journal, Start, Step, crash_hook, key_location
from .newkey import NewKey, prove_possession
from .opener import CannotOpen, Opened, candidates, open_version
from .scope import Listed, Scope, list_scope
from .store import (
    AlreadyExists,
    Lock,
    check_versioning,
    get_version,
    probe_conditions,
    put_create_only,
)
from .wire import PKCS1V15, decode, encode, wrap

NOT_REVOCATION = (
    "Re-wrapping is not revocation: anyone who kept the old private key and an old wrapped "
    "key can still decrypt these backups. After a compromise, the data must be re-encrypted."
)
DEFAULT_LOCK_TTL = _dt.timedelta(hours=1)
Progress = Callable[[int, int, Item], None]


@dataclass
class Settings:
    bucket: str
    prefix: str
    new: NewKey
    old_keys: Sequence[KeySource]
    rules: Sequence[Rule] = ()
    scope: Scope = Scope.CURRENT
    padding: str | None = None  # None: keep each version's own padding
    allow_unversioned: bool = False
    lock_ttl: _dt.timedelta = DEFAULT_LOCK_TTL
    take_over_lock: bool = False
    workers: int = 8  # versions in flight at once
    page_size: int = 1000  # ListObjectVersions page (smaller in tests of pagination)
    gpg: GpgOptions | None = None  # old OpenPGP keys (--gpg-key, --gpg-homedir)

    def start(
        self, s3: S3Settings, *, to: str, old: Sequence[str] = (), pkcs11_module: str | None
    ) -> Start:
        """What the journal records of a run of these settings (journal.Start): the same
        for the CLI and the app, so each offers to resume the other's runs."""
        return Start(
            source=f"s3://{self.bucket}/{self.prefix}",
            new_key=self.new.fingerprint,
            new_label=self.new.label,
            scope=self.scope.value,
            to=key_location(to),
            public_only=not self.new.holds_private,
            old=tuple(key_location(k) for k in old),
            pkcs11_module=pkcs11_module or "",
            endpoint=s3.endpoint_url or "",
            region=s3.region or "",
            profile=s3.profile or "",
            rules=tuple(f"{r.data_suffix}:{r.key_suffix}" for r in self.rules),
            **gpg_start(self.gpg),
        )


@dataclass
class Outcome:
    items: list[Item]
    versioning: Versioning | None = None
    proof: str = "not needed"
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in self.items:
            out[i.step.value] = out.get(i.step.value, 0) + 1
        return out

    @property
    def complete(self) -> bool:
        return all(i.step in (Step.DONE, Step.ALREADY) for i in self.items)


def _digest(secret: bytes | bytearray) -> bytes:
    return hashlib.sha256(secret).digest()


class Rotation(EnvelopeSteps):
    def __init__(
        self,
        client: Any,
        settings: Settings,
        *,
        cancel: CancelToken | None = None,
        progress: Progress | None = None,
        crash: Callable[[str], None] | None = None,
    ) -> None:
        self._c = client
        self.s = settings
        self._cancel = cancel or CancelToken()
        self._progress = progress or (lambda _d, _t, _i: None)
        self._crash = crash or crash_hook()
        self._fp_hex = fingerprint_hex(settings.new.fingerprint)
        self._proved: set[str] = set()
        self._local = threading.local()  # per worker: when its version started
        self._hint: str | None = None  # the padding the last version used
        self._mp_ok: bool | None = None  # the store honours create-only multipart completion
        self._mp_lock = threading.Lock()
        self.proof = "public key only (--public-only): possession not proved"

    # --- plan (dry run) ---------------------------------------------------------------

    def plan(self) -> Outcome:
        listed = self._list()
        out = Outcome(listed.items)
        for n, item in enumerate(listed.items, 1):
            self._cancel.check()
            if not self._already(item, listed):
                self._classify(item)
            self._progress(n, len(listed.items), item)
        return out

    def _list(self) -> Listed:
        s = self.s
        return list_scope(self._c, s.bucket, s.prefix, s.rules, s.scope, page_size=s.page_size)

    def _classify(self, item: Item) -> None:
        try:
            opened = self._open(item)
        except (CannotOpen, BackupFailed, StorageError) as exc:
            item.step, item.reason = Step.CANNOT, exc.message()
            return
        try:
            self._note_opened(item, opened)
        finally:
            opened.wipe()

    def _open(self, item: Item) -> Opened | Envelope:
        opened = open_version(
            self._c, self.s.bucket, item, self.s.old_keys, self._cancel, self._hint, self.s.gpg
        )
        if isinstance(opened, Opened):
            self._hint = opened.padding
        return opened

    def _note_opened(self, item: Item, opened: Opened | Envelope) -> None:
        item.old_key, item.old_fingerprint = opened.key.label, opened.key.fingerprint
        if not isinstance(opened, Opened):
            self._note_envelope(item, opened)
            return
        item.padding = self.s.padding or opened.padding
        item.wire = opened.wire.describe()
        item.old_sha256 = hashlib.sha256(opened.raw).hexdigest()
        item.link_name = link_name(item.key_name or "", item.data_version, self._fp_hex)
        if opened.key.fingerprint == self.s.new.fingerprint:
            item.step, item.reason = Step.ALREADY, "its key is already the new key"

    def _already(self, item: Item, listed: Listed) -> bool:
        # A wrapped key's links sit under its name; a rotated envelope's under the data's.
        for link, version in listed.links.get(
            (item.key_name or item.data_key, item.data_version), []
        ):
            if link.fingerprint == self._fp_hex:
                item.step, item.link_name, item.new_version = Step.ALREADY, link.name, version
                item.reason = "a re-wrapped key for the new key is already there"
                return True
        return False

    # --- run ----------------------------------------------------------------------------

    def run(self, journal: Journal, owner: str) -> Outcome:
        """Follow the journal (adding what the listing finds) until every version is final."""
        versioning = check_versioning(
            self._c, self.s.bucket, allow_unversioned=self.s.allow_unversioned
        )
        # Proof of possession comes before any write, the store probe's included.
        self._prove(self.s.padding or PKCS1V15)
        probe_conditions(self._c, self.s.bucket, self.s.prefix)
        lock = Lock(self._c, self.s.bucket, self.s.prefix, owner, self.s.lock_ttl)
        lock.acquire(take_over=self.s.take_over_lock)
        # From here on an interruption needs --resume (a refusal above changed nothing).
        journal.set_meta(status="running")
        try:
            listed = self._list()
            journal.add(listed.items)
            self._crash("listed")
            self._work(journal, listed, lock)
        finally:
            lock.release()
        return Outcome(journal.items(), versioning, self.proof)

    def _work(self, journal: Journal, listed: Listed, lock: Lock) -> None:
        """Every unfinished version, ``workers`` at a time: a version waits mostly on S3,
        and each goes through its own steps in order whatever the others do."""
        items = journal.items()
        todo = [i for i in items if not i.step.final]
        n = len(items) - len(todo)
        stop = threading.Event()  # a worker failed or the run was cancelled: start no more

        def one(item: Item) -> Item:
            if stop.is_set():
                return item
            self._cancel.check()
            self._local.t0 = time.monotonic()
            self._rotate(journal, item, listed)
            return item

        pool = ThreadPoolExecutor(self.s.workers, thread_name_prefix="sealcheck-rotate")
        try:
            for future in as_completed([pool.submit(one, item) for item in todo]):
                item = future.result()
                n += 1
                lock.renew_if_due()
                self._progress(n, len(items), item)
        except BaseException:
            stop.set()
            raise
        finally:
            # Versions in flight finish their current step; none starts after a failure.
            pool.shutdown(wait=True, cancel_futures=True)

    def _end(self, journal: Journal, item: Item, step: Step, reason: str | None) -> None:
        """Record a final step, with the time the version took in this run."""
        item.step, item.reason = step, reason
        item.seconds = round(time.monotonic() - self._local.t0, 4)
        journal.update(item)

    def _rotate(self, journal: Journal, item: Item, listed: Listed) -> None:
        if item.step.value in ("planned", "fetched", "unwrapped") and self._already(item, listed):
            self._end(journal, item, item.step, item.reason)
            return
        try:
            opened = self._open(item)
        except (CannotOpen, BackupFailed, StorageError) as exc:
            if isinstance(exc, StorageError) and exc.transient:
                raise
            self._end(journal, item, Step.CANNOT, exc.message())
            return
        try:
            if item.step is Step.PLANNED:
                item.step = Step.FETCHED
                journal.update(item)
            self._note_opened(item, opened)
            if item.step is Step.ALREADY:
                self._end(journal, item, item.step, item.reason)
                return
            if item.step is Step.FETCHED:
                item.step = Step.UNWRAPPED
                journal.update(item)
            if not isinstance(opened, Opened):
                self._write_envelope(journal, item, opened)
            else:
                self._write(journal, item, opened)
        except CannotOpen as exc:
            self._end(journal, item, Step.CANNOT, exc.message())
        finally:
            opened.wipe()

    def _write(self, journal: Journal, item: Item, opened: Opened) -> None:
        assert item.link_name is not None and item.padding is not None
        self._prove(item.padding)
        if item.new_bytes is None:
            body = encode(opened.wire, wrap(self.s.new.public, item.padding, bytes(opened.secret)))
            item.new_bytes, item.new_sha256 = body, hashlib.sha256(body).hexdigest()
            item.step = Step.WRAPPED
            journal.update(item)
        if item.step is Step.WRAPPED:
            item.new_version = self._put(item, opened)
            item.step = Step.WRITTEN
            journal.update(item)
        stored = get_version(self._c, self.s.bucket, item.link_name, item.new_version)
        self._read_back(journal, item, self._mismatch(stored.body, item, opened))

    def _read_back(self, journal: Journal, item: Item, why: str | None) -> None:
        """The written object read back: done, or why not."""
        if why:
            self._end(journal, item, Step.CANNOT, f"read-back failed: {why}")
            return
        item.step = Step.READ_BACK
        journal.update(item)
        self._end(journal, item, Step.DONE, None)

    def _put(self, item: Item, opened: Opened) -> str | None:
        assert item.link_name is not None and item.new_bytes is not None
        meta = {
            "data-key": quote(item.data_key),
            "data-version": item.data_version,
            "old-key-version": item.key_version or "null",
            "new-key-spki-sha256": self._fp_hex,
            "padding": item.padding or "",
        }
        try:
            vid = put_create_only(self._c, self.s.bucket, item.link_name, item.new_bytes, meta)
        except AlreadyExists:
            # A retried PUT whose first answer was lost, or another writer: the object
            # there is ours only if it reads back to the same secret.
            stored = get_version(self._c, self.s.bucket, item.link_name, None)
            self._taken(item, self._mismatch(stored.body, item, opened))
            return stored.version_id
        self._crash("put")
        return vid

    def _taken(self, item: Item, why: str | None) -> None:
        """A create-only write met an object already there: it is ours when ``why`` is
        None; else it is left as it is and this version cannot be rotated."""
        if why:
            raise CannotOpen(
                f"another object already exists under the link name ({why}); it is left as it is",
                obj=f"s3://{self.s.bucket}/{item.link_name}",
            )

    def _mismatch(self, body: bytes, item: Item, opened: Opened) -> str | None:
        """Why ``body`` is not this item's re-wrapped key, or None when it is."""
        if self.s.new.private is None:
            ok = hashlib.sha256(body).hexdigest() == item.new_sha256
            return None if ok else "the bytes stored differ from the bytes written"
        want = _digest(opened.secret)
        try:
            ciphertext = decode(opened.wire, body)
        except ValueError:
            return "the stored object is not in the original's encoding"
        for cand in candidates(self.s.new.private, ciphertext, item.padding):
            same = hmac.compare_digest(_digest(cand.secret), want)
            cand.secret[:] = bytes(len(cand.secret))
            if same:
                return None
        return "the new key does not unwrap it to the same secret"

    def _prove(self, padding_name: str) -> None:
        if padding_name in self._proved:
            return
        if prove_possession(self.s.new, padding_name):
            self.proof = f"challenge decrypted by the new private key ({padding_name})"
        self._proved.add(padding_name)
