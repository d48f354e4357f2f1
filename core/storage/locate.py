"""Turn what a job is given into Sources: the CLI's SOURCE and key options (a path or an
``s3://`` URI, a version id), or a version as a listing produced it (the GUI's road).

A version that was handed over is opened exactly: nothing is listed or re-paired for it.
Only a wrapped key that was *not* given is looked for beside the data (the naming rules,
and in S3 the key version written with that data version).

The S3 side (the object and its errors, botocore's exceptions, the listing and its
pairing) is imported by the code that reaches S3: a local path loads none of it
(issue 17, start-up is part of the job)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AccessDenied, ObjectNotFound, SealcheckError, UsageError
from ..plumbing.progress import CancelToken
from .naming import Rule, key_candidates
from .s3.client import S3Settings, make_client, object_name, parse_uri
from .sidecar import MAX_SIDECAR, SIDECAR_SUFFIXES, Sidecar
from .source import LocalFile, Source

if TYPE_CHECKING:
    from .listing import ObjectVersion
    from .s3.object import S3Object


@dataclass(frozen=True)
class ListedVersion:
    """A backup version as a listing produced it, and where it was listed: what a job
    opens. ``bucket`` None: a local folder's listing, whose keys are the files' paths."""

    bucket: str | None
    data: ObjectVersion
    key: ObjectVersion | None = None  # the wrapped-key version paired with it, if any
    # The sidecar files the listing found with its backup set (X.sha256, X.info…);
    # None: not known, so they are looked for. Empty: the listing saw none, and no
    # request is made for them (issue 14: one listing per version otherwise).
    sidecars: tuple[str, ...] | None = None
    # The re-wrapped keys / rotated envelopes (rewrap.py) a complete listing of the
    # prefix found for this version; None: not known, one LIST when it is opened.
    # Empty: none exist, and no request is made (issue 14, as for sidecars).
    links: tuple[str, ...] | None = None

    @property
    def where(self) -> str:
        """The data object for people: ``s3://bucket/key`` or the file's path."""
        return self.data.key if self.bucket is None else f"s3://{self.bucket}/{self.data.key}"


class Locator:
    """Opens object versions with one client (built when first needed, or the caller's:
    boto3 clients are thread-safe and worth sharing) and one job's CancelToken."""

    def __init__(
        self, settings: S3Settings, cancel: CancelToken | None = None, *, client: Any = None
    ) -> None:
        self._settings = settings
        self._client: Any = client
        self._cancel = cancel or CancelToken()

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self._settings)
        return self._client

    def open(self, spec: str, version_id: str | None = None) -> Source:
        """A path or ``s3://bucket/key`` as the CLI is given it."""
        if spec.startswith("s3://"):
            uri = parse_uri(spec)
            if not uri.key or uri.key.endswith("/"):
                raise UsageError(f"{spec} names a bucket or prefix, not an object")
            return self.version(uri.bucket, uri.key, version_id)
        if version_id:
            raise UsageError("--version-id applies to s3:// sources only")
        return LocalFile(Path(spec))

    def open_listed(self, listed: ListedVersion) -> tuple[Source, Source | None]:
        """Exactly the listed data version and the key version paired with it."""
        data = self._listed(listed.bucket, listed.data)
        wrapped = self._listed(listed.bucket, listed.key) if listed.key is not None else None
        return data, wrapped

    def _listed(self, bucket: str | None, v: ObjectVersion) -> Source:
        if bucket is None:
            return LocalFile(Path(v.key))
        from .s3.errors import DELETED  # S3 only (see the module docstring)
        from .s3.object import S3Object

        if v.delete_marker:
            # The listing already says what S3 would answer: no request needed.
            raise ObjectNotFound(DELETED, obj=object_name(bucket, v.key, v.version_id))
        if v.version_id is not None and v.etag:
            # A listed version id is pinned: the listing's size and ETag are what a HEAD
            # would say, and each GET checks its answer against them (issue 14: two
            # HEADs per version were most of an audit's overhead). The current version
            # of an unversioned object (no id) is still asked for, as it may be gone.
            return S3Object(self.client, bucket, v.key, v.version_id, cancel=self._cancel, listed=v)
        return self.version(bucket, v.key, v.version_id)

    def version(self, bucket: str, key: str, version_id: str | None) -> S3Object:
        """One object version (``None``: the current one); a delete marker is refused
        as deleted, whether or not the store's 404 says so."""
        from .s3.errors import DELETED  # S3 only (see the module docstring)
        from .s3.object import S3Object

        try:
            return S3Object(self.client, bucket, key, version_id, cancel=self._cancel)
        except ObjectNotFound as exc:
            if DELETED not in exc.detail and self._deleted(bucket, key, version_id):
                raise ObjectNotFound(DELETED, obj=exc.obj) from None
            raise

    def _deleted(self, bucket: str, key: str, version_id: str | None) -> bool:
        """Whether that version (or the current one) is a delete marker: only
        some stores say so in their 404 (x-amz-delete-marker), so ask the listing."""
        from .listing import versions_of  # S3 only (see the module docstring)

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
        from .s3.object import S3Object  # S3 only (see the module docstring)

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

    def wrapped_at(self, data: Source, version_id: str, rules: tuple[Rule, ...] = ()) -> Source:
        """The wrapped key beside ``data`` at exactly ``version_id`` (the CLI was given
        that version, not the key's name): each name the rules give is tried, nothing is
        listed or paired."""
        from .s3.errors import DELETED  # S3 only (see the module docstring)
        from .s3.object import S3Object

        if not isinstance(data, S3Object):
            raise UsageError("--wrapped-key-version-id applies to s3:// sources only")
        denied: AccessDenied | None = None
        for cand in key_candidates(data.key, rules):
            try:
                return S3Object(self.client, data.bucket, cand, version_id, cancel=self._cancel)
            except ObjectNotFound as exc:
                if DELETED in exc.detail:
                    raise  # that name has this version, and it is a delete marker
            except AccessDenied as exc:
                # Without ListBucket, S3 answers 403 for a name that does not exist.
                denied = denied or exc
        if denied is not None:
            raise denied
        raise ObjectNotFound(
            f"no wrapped key beside it has version {version_id}; give its name with --wrapped-key",
            obj=data.name,
        )

    def find_sidecars(self, data: Source) -> tuple[Sidecar, ...]:
        if isinstance(data, LocalFile):
            return sidecars_beside(None, data, self._cancel)
        from .s3.object import S3Object  # S3 only (see the module docstring)

        client = self.client if isinstance(data, S3Object) else None
        return sidecars_beside(client, data, self._cancel)

    def _key_version(self, data: S3Object, cand: str) -> ObjectVersion | None:
        """The version of key object ``cand`` written with this data version (the
        same pairing as ``sealcheck list``); None when ``cand`` has no live version."""
        from .listing import pair_versions, versions_of  # S3 only (see the module docstring)

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
        from .s3.object import S3Object  # S3 only (see the module docstring)

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


def sidecars_beside(client: Any, data: Source, cancel: CancelToken) -> tuple[Sidecar, ...]:
    """The sidecar files beside the data (``X.sha256``, ``X.info``…). In S3, the version
    of each written with this data version (the wrapped key's pairing); one written with
    no version of the data is left out, never compared with the wrong one. Best effort:
    a listing that is not allowed finds none."""
    if isinstance(data, LocalFile):
        out = []
        for suffix in SIDECAR_SUFFIXES:
            p = data.path.with_name(data.path.name + suffix)
            with contextlib.suppress(OSError):
                if p.is_file():
                    with p.open("rb") as f:
                        out.append(Sidecar(str(p), f.read(MAX_SIDECAR)))
        return tuple(out)
    from .listing import iter_version_pages, pair_versions  # S3 only (see the module docstring)
    from .s3.object import S3Object

    if not isinstance(data, S3Object):
        return ()
    by_key: dict[str, list[ObjectVersion]] = {}
    try:
        for page in iter_version_pages(client, data.bucket, data.key):
            for v in page:
                by_key.setdefault(v.key, []).append(v)
    except SealcheckError:
        return ()  # sidecars are extra evidence: never a reason not to verify
    found = []
    for name in (data.key + s for s in SIDECAR_SUFFIXES):
        if name not in by_key:
            continue
        pairs, _ = pair_versions(by_key.get(data.key, []), by_key[name])
        mine = next((p for p in pairs if _is_version(p.data, data)), None)
        if mine is None or mine.key is None or mine.key.delete_marker:
            continue
        try:
            obj = S3Object(client, data.bucket, name, mine.key.version_id, cancel=cancel)
            text = obj.read_range(0, MAX_SIDECAR)
            found.append(Sidecar(f"s3://{data.bucket}/{name}", text, mine.key.version_id))
        except SealcheckError:
            continue
    return tuple(found)
