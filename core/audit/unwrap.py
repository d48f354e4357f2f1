"""The coordinator's unwrap step of a campaign on a cluster (issue 15): keys never leave it.

For each item whose data key is RSA-wrapped in a paired object (``openssl enc`` with
``X.key``, ``STEM.key.txt.enc``…), the coordinator reads the wrapped key, unwraps it
with the keys it holds (PEM file, keyring, token: the PIN is asked here, once) and gives
the worker a ``Secrets`` holding only that backup's unwrapped data key (keys/held.py),
in the name of the key that unwrapped it. gpg and CMS backups, whose recipients sit
inside the object, get the session or content key unwrapped from the object's head
(inobject.py). No private key, passphrase, PIN or other backup's secret goes to a worker.

Items run on the coordinator itself (``None`` here) when shipping a per-backup secret is
not possible without shipping a key:

* a symmetric backup's passphrase or an xbcrypt key opens every backup made with it,
  and an unencrypted backup has no secret: neither is a gpg or CMS envelope nor has a
  paired wrapped-key object;
* a raw ``-K/-iv`` key was given (it is the key);
* no held key unwraps it, or the wrapped key cannot be read: the coordinator's run
  records the same error a local campaign would.

``Pipeline`` runs the step on one thread ahead of the workers with a bounded queue:
a token unwraps serially anyway, and the queue holds at most ``ahead`` unwrapped
secrets at a time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..decrypt.held import held_fingerprints
from ..decrypt.openssl.wrapped import read_wrapped_key
from ..decrypt.secrets import Secrets
from ..errors import Layer, SealcheckError
from ..keys.held import HeldSecret, padding_of, unwrapped_from
from ..plumbing.progress import CancelToken
from ..records.report import Report, Status
from ..storage.locate import Locator
from ..storage.rewrap import prefer_rotated
from ..storage.s3.client import S3Settings
from .inobject import GpgHome, in_object_secrets
from .plan import WorkItem


class Hints:
    """Per wrapped-key object (one producer's series of versions), the padding its
    versions have, tried alone first (keys/held.py ``unwrapped_from``): an OAEP one once
    this coordinator's unwrap decoded it (authenticated), PKCS#1 v1.5 once the data
    confirmed it on a worker (only the data can). A hinted PKCS#1 v1.5 candidate the
    data does not confirm sends its item back to the coordinator, which tries every
    padding, and the series is hinted no more until the data confirms one again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._padding: dict[str, str] = {}  # by series
        self._series: dict[str, str] = {}  # by item id, while its task runs
        self._in_object: set[str] = set()  # items shipped with a gpg or CMS secret

    def in_object(self, item: WorkItem) -> None:
        """The item goes with its gpg session key or CMS content keys (inobject.py): if
        the data does not confirm them (its key layer fails), it runs on the coordinator."""
        with self._lock:
            self._in_object.add(item.id)

    def hint(self, series: str) -> str | None:
        with self._lock:
            return self._padding.get(series)

    def unwrapped(self, item: WorkItem, series: str, held: list[HeldSecret]) -> None:
        """The item goes to a worker with these unwraps of its series' wrapped key."""
        padding = padding_of(held)
        with self._lock:
            self._series[item.id] = series
            if padding is not None and padding.startswith("OAEP"):
                self._padding[series] = padding

    def settle(self, item: WorkItem, result: object, secrets: Secrets | None) -> bool:
        """Learn from a worker's result the padding that opened its backup; True when
        the item must run again on the coordinator (its hinted PKCS#1 v1.5 candidates
        were not confirmed by the data: OAEP was never tried)."""
        with self._lock:
            if item.id in self._in_object:
                self._in_object.discard(item.id)
                return _key_failed(result)
            series = self._series.pop(item.id, None)
            if series is None or not isinstance(result, Report):
                return False
            key = result.layer("key")
            padding = key.details.get("padding") if key is not None else None
            if key is not None and key.status is Status.OK and isinstance(padding, str):
                self._padding[series] = padding
                return False
            again = partial(secrets) and _key_failed(result)
            if again:
                self._padding.pop(series, None)
            return again


def _key_failed(result: object) -> bool:
    """A worker's record whose key layer failed: the shipped secret was not confirmed."""
    if not isinstance(result, Report):
        return False
    return result.error is not None and result.error.layer == Layer.KEY.value


def series_of(item: WorkItem, wrapped: Any) -> str:
    """The wrapped-key object whose versions one producer writes with one padding."""
    return f"s3://{item.bucket}/{getattr(wrapped, 'key', None) or wrapped.name}"


def partial(s: Secrets | None) -> bool:
    """Whether a worker got only hinted PKCS#1 v1.5 candidates (keys/held.py)."""
    return s is not None and any(getattr(k, "partial", False) for k in s.keys)


def worker_secrets(
    item: WorkItem,
    held: Secrets,
    settings: S3Settings,
    client: Any,
    cancel: CancelToken,
    hints: Hints | None = None,
    gpg: GpgHome | None = None,
) -> Secrets | None:
    """Secrets for a worker holding only this item's unwrapped data key, or None when
    the item must run on the coordinator (see the module's docstring)."""
    if held.raw_key is not None or (item.paired is not None and not held.keys):
        return None
    try:
        data, wrapped = Locator(settings, cancel, client=client).open_listed(item.listed())
        if wrapped is None:
            # gpg and CMS: the recipients are in the object's own head (inobject.py).
            s = in_object_secrets(data, held, item.links, gpg)
            if s is not None and hints is not None:
                hints.in_object(item)
            return s
        # The same wrapped key the run will pick (item.run_item): one re-wrapped for a
        # held key wins.
        data, wrapped = prefer_rotated(data, wrapped, lambda: held_fingerprints(held), item.links)
        blob = read_wrapped_key(wrapped)
        series = series_of(item, wrapped)
        keys = unwrapped_from(held.keys, blob, hints.hint(series) if hints else None)
    except SealcheckError:
        return None
    if not keys:
        return None
    if hints is not None:
        hints.unwrapped(item, series, keys)
    return Secrets(keys=tuple(keys), cipher=held.cipher, pbkdf2_iter=held.pbkdf2_iter)


def wipe(s: Secrets | None) -> None:
    """Zero the unwrapped data keys a worker's Secrets holds (the coordinator's copy once
    the item was handed over, the worker's once its run ended)."""
    if s is None:
        return
    for k in s.keys:
        if isinstance(k, HeldSecret):
            k.wipe()
    if s.gpg_session is not None:
        s.gpg_session.wipe()


@dataclass
class Prepared:
    """One item made ready: for a worker (``secrets`` set) or for the coordinator."""

    item: WorkItem
    secrets: Secrets | None


_END = object()


class Pipeline:
    """Unwraps items on one thread ahead of their submission, ``ahead`` at most."""

    def __init__(
        self,
        items: Iterable[WorkItem],
        held: Secrets,
        settings: S3Settings,
        client: Any,
        cancel: CancelToken,
        *,
        ahead: int,
        ship: Callable[[WorkItem], bool] = lambda _item: True,  # may it go to a worker?
    ) -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=max(1, ahead))
        self._items = list(items)
        self._held = held
        self._settings = settings
        self._client = client
        self._cancel = cancel
        self._ship = ship
        self._error: BaseException | None = None
        self.hints = Hints()
        self._gpg = GpgHome(held.gpg)  # used by the unwrap thread alone, closed when it ends
        self.done = False  # the end was reached: every item was given
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="audit-unwrap", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            for item in self._items:
                if self._stop.is_set() or self._cancel.cancelled:
                    break
                s = None
                if self._ship(item):
                    s = worker_secrets(
                        item,
                        self._held,
                        self._settings,
                        self._client,
                        self._cancel,
                        self.hints,
                        self._gpg,
                    )
                self._put(Prepared(item, s))
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._error = exc
        finally:
            self._gpg.close()
            self._put(_END)

    def _put(self, x: Any) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(x, timeout=0.2)
                return
            except queue.Full:
                continue
        if isinstance(x, Prepared):
            wipe(x.secrets)

    def get(self, timeout: float) -> Prepared | None:
        """The next item, or None when none is ready yet or all were given (``done``)."""
        if self.done:
            return None
        try:
            x = self._q.get(timeout=timeout)
        except queue.Empty:
            return None
        if x is _END:
            self.done = True
            if self._error is not None:
                raise self._error
            return None
        assert isinstance(x, Prepared)
        return x

    def close(self) -> None:
        """Stop unwrapping; wipe what was unwrapped and never handed over."""
        self._stop.set()
        self._thread.join()
        while True:
            try:
                x = self._q.get_nowait()
            except queue.Empty:
                break
            if isinstance(x, Prepared):
                wipe(x.secrets)

    def __iter__(self) -> Iterator[Prepared]:  # every item, in order (tests, benchmarks)
        while not self.done:
            p = self.get(timeout=0.2)
            if p is not None:
                yield p
