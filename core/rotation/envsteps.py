"""The rotation steps of an envelope whose recipients sit inside the data object.

gpg (envelope.py) and CMS (cmsenvelope.py) go through the same journal steps as a
wrapped-key file (engine.py): opened and proved → wrapped (the new first bytes, their
digest and where the original's bytes resume, journaled and synced before the one
irreversible step) → written (compose.py: create-only, the body copied in the store) →
read back (size, first and last bytes, the new recipient opening to the same key with
the new private key) → done. A run killed after ``wrapped`` writes the very same bytes
again; a create-only write that meets an object under the name compares it the same
way and keeps it only when it is ours.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from ..plumbing.progress import CancelToken
from ..storage.rewrap import UNVERSIONED_ID, link_name
from .cmsenvelope import CmsEnvelope
from .compose import (
    WHOLE_MAX,
    Source,
    compose,
    probe_multipart_conditions,
    read_head,
    read_range,
)
from .envelope import HEAD, TAIL, GpgEnvelope, readback_mismatch
from .journal import Item, Journal, Step
from .opener import DataProbe
from .store import AlreadyExists

Envelope = GpgEnvelope | CmsEnvelope


class EnvelopeSteps:
    """Mixed into engine.Rotation: what it holds, and the steps for envelopes."""

    _c: Any
    s: Any  # engine.Settings
    _cancel: CancelToken
    _fp_hex: str
    _mp_ok: bool | None
    _mp_lock: threading.Lock
    _crash: Callable[[str], None]

    # engine.Rotation's own steps, used here
    def _prove(self, padding_name: str) -> None: ...
    def _read_back(self, journal: Journal, item: Item, why: str | None) -> None: ...
    def _taken(self, item: Item, why: str | None) -> None: ...

    def _note_envelope(self, item: Item, opened: Envelope) -> None:
        new = self.s.new
        # The new recipient uses the one the old key opened: gpg's RSA is always
        # PKCS#1 v1.5, a CMS recipient keeps its key transport (v1.5 or OAEP).
        item.padding, item.wire = opened.padding, f"{opened.kind} ({opened.wire})"
        item.old_sha256 = hashlib.sha256(opened.old_bytes).hexdigest()
        item.link_name = item.link_name or link_name(item.data_key, item.data_version, self._fp_hex)
        if opened.already(new.public, new.key_id):
            item.step, item.reason = Step.ALREADY, "the new key is already a recipient"

    def _write_envelope(self, journal: Journal, item: Item, opened: Envelope) -> None:
        assert item.link_name is not None and item.data_size is not None
        self._prove(opened.padding)
        if item.new_bytes is None:
            prefix, item.copy_from = opened.rebuild(self.s.new.public, self.s.new.key_id)
            if item.data_size - item.copy_from > WHOLE_MAX and not self._multipart_create_only():
                # The store would not refuse an existing name: one that cannot exist.
                item.link_name += "." + secrets.token_hex(8)
            item.new_bytes, item.new_sha256 = prefix, hashlib.sha256(prefix).hexdigest()
            item.step = Step.WRAPPED
            journal.update(item)
        if item.step is Step.WRAPPED:
            item.new_version, item.copied = self._compose(item, opened)
            item.step = Step.WRITTEN
            journal.update(item)
        self._read_back(journal, item, self._envelope_mismatch(item, opened, item.new_version))

    def _multipart_create_only(self) -> bool:
        with self._mp_lock:
            if self._mp_ok is None:
                self._mp_ok = probe_multipart_conditions(self._c, self.s.bucket, self.s.prefix)
            return self._mp_ok

    def _source(self, item: Item) -> Source:
        assert item.data_size is not None
        version = None if item.data_version == UNVERSIONED_ID else item.data_version
        return Source(self.s.bucket, item.data_key, version, item.data_size)

    def _compose(self, item: Item, opened: Envelope) -> tuple[str | None, int]:
        assert item.link_name is not None and item.new_bytes is not None
        meta = {
            "data-key": quote(item.data_key),
            "data-version": item.data_version,
            "data-size": str(item.data_size),
            "envelope": item.envelope or "",
            "new-key-spki-sha256": self._fp_hex,
            "new-key-id": self.s.new.key_id.hex(),
        }
        src = self._source(item)
        try:
            written = compose(
                self._c, src, item.new_bytes, item.copy_from or 0, item.link_name, meta, self._crash
            )
        except AlreadyExists:
            # A completion whose answer was lost, or another writer: ours only if it
            # reads back as the original with our recipient added, to the same key.
            self._taken(item, self._envelope_mismatch(item, opened, None))
            # Its version id from a HEAD: the body may be large and was just compared.
            head = self._c.head_object(Bucket=self.s.bucket, Key=item.link_name)
            vid = head.get("VersionId")
            return (str(vid) if vid and vid != UNVERSIONED_ID else None), 0
        self._crash("put")
        return written.version_id, written.copied

    def _envelope_mismatch(self, item: Item, opened: Envelope, version: str | None) -> str | None:
        """Why the stored rotated object is not the original with the new recipient,
        opening to the same key with the new key, or None when it is."""
        assert item.link_name is not None and item.new_bytes is not None
        src = self._source(item)
        prefix, copy_from = item.new_bytes, item.copy_from or 0
        stored = Source(self.s.bucket, item.link_name, version, 0)
        head, size = read_head(self._c, stored, len(prefix) + HEAD)
        tail_len = min(TAIL, src.size - copy_from)
        tail = read_range(
            self._c, Source(stored.bucket, stored.key, version, size), size - tail_len, size
        )
        original_tail = read_range(self._c, src, src.size - tail_len, src.size)
        why = readback_mismatch(
            head,
            tail,
            size,
            prefix=prefix,
            copy_from=copy_from,
            original_head=opened.head,
            original_tail=original_tail,
            original_size=src.size,
        )
        if why or not self.s.new.holds_private:
            return why
        probe = DataProbe(self._c, self.s.bucket, item.link_name, version)
        if not opened.reopens(probe, self.s.new, self._cancel):
            return "the new key does not recover the same key from it"
        return None
