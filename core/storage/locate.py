"""Turn the CLI's SOURCE and key options into Sources (local files or S3 versions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import AccessDenied, ObjectNotFound, SealcheckError, UsageError
from ..plumbing.progress import CancelToken
from .listing import ObjectVersion, pair_versions, versions_of
from .naming import Rule, key_candidates
from .s3 import DELETED, S3Object, S3Settings, make_client, parse_uri
from .source import LocalFile, Source


class Locator:
    def __init__(self, settings: S3Settings, cancel: CancelToken | None = None) -> None:
        self._settings = settings
        self._client: Any = None
        self._cancel = cancel or CancelToken()

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self._settings)
        return self._client

    def open(self, spec: str, version_id: str | None = None) -> Source:
        if spec.startswith("s3://"):
            uri = parse_uri(spec)
            if not uri.key or uri.key.endswith("/"):
                raise UsageError(f"{spec} names a bucket or prefix, not an object")
            try:
                return S3Object(self.client, uri.bucket, uri.key, version_id, cancel=self._cancel)
            except ObjectNotFound as exc:
                if DELETED not in exc.detail and self._deleted(uri.bucket, uri.key, version_id):
                    raise ObjectNotFound(DELETED, obj=exc.obj) from None
                raise
        if version_id:
            raise UsageError("--version-id applies to s3:// sources only")
        return LocalFile(Path(spec))

    def _deleted(self, bucket: str, key: str, version_id: str | None) -> bool:
        """Whether that version (or the current one) is a delete marker: only
        some stores say so in their 404 (x-amz-delete-marker), so ask the listing."""
        try:
            versions = versions_of(self.client, bucket, key)
        except SealcheckError:
            return False  # listing not allowed: keep the store's own answer
        return any(
            v.delete_marker and (v.version_id == version_id if version_id else v.is_latest)
            for v in versions
        )

    def find_wrapped_key(self, data: Source, rules: tuple[Rule, ...] = ()) -> Source | None:
        """The wrapped key beside the data, by the naming rules; None when absent."""
        if isinstance(data, LocalFile):
            for cand in key_candidates(data.path.name, rules):
                p = data.path.with_name(cand)
                if p.is_file():
                    return LocalFile(p)
            return None
        assert isinstance(data, S3Object)
        for cand in key_candidates(data.key, rules):
            try:
                version = self._key_version(data, cand)
            except AccessDenied:
                # Least-privilege policies often allow GetObject but not
                # ListBucketVersions: fall back to the current key object.
                found = self._current(data.bucket, cand)
                if found is not None:
                    return found
                continue
            if version is not None:
                return S3Object(
                    self.client, data.bucket, cand, version.version_id, cancel=self._cancel
                )
        return None

    def _key_version(self, data: S3Object, cand: str) -> ObjectVersion | None:
        """The version of key object ``cand`` written with this data version (the
        same pairing as ``sealcheck list``); None when ``cand`` has no live version."""
        keys = versions_of(self.client, data.bucket, cand)
        live = [v for v in keys if not v.delete_marker]
        if not live:
            return None
        pairs, _ = pair_versions(versions_of(self.client, data.bucket, data.key), keys)
        mine = next((p for p in pairs if _is_version(p.data, data)), None)
        if mine is not None and mine.key is not None:
            return mine.key
        # No key version was written with this data version (re-wrapped later,
        # or written outside the pairing window): the current key is the best
        # guess, and the unlock step proves or rejects it against the data.
        return next((v for v in live if v.is_latest), live[0])

    def _current(self, bucket: str, key: str) -> S3Object | None:
        try:
            return S3Object(self.client, bucket, key, None, cancel=self._cancel)
        except (ObjectNotFound, AccessDenied):
            # Without ListBucket, S3 answers 403 rather than 404 for a missing key.
            return None


def _is_version(v: ObjectVersion, data: S3Object) -> bool:
    if v.delete_marker:
        return False
    if data.version_id is None:
        return v.version_id is None  # unversioned: the current object
    return v.version_id == data.version_id
