"""Turn the CLI's SOURCE and key options into Sources (local files or S3 versions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import UsageError
from .listing import PAIR_WINDOW, iter_version_pages
from .naming import Rule, key_candidates
from .progress import CancelToken
from .s3 import S3Object, S3Settings, make_client, parse_uri
from .sources import LocalFile, Source


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
            if not uri.key:
                raise UsageError(f"{spec} names a bucket or prefix, not an object")
            return S3Object(self.client, uri.bucket, uri.key, version_id, cancel=self._cancel)
        if version_id:
            raise UsageError("--version-id applies to s3:// sources only")
        return LocalFile(Path(spec))

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
            versions = [
                v
                for page in iter_version_pages(self.client, data.bucket, cand)
                for v in page
                if v.key == cand and not v.delete_marker
            ]
            if not versions:
                continue
            # The key version written with this data version: nearest in time.
            lm = data.last_modified
            best = min(versions, key=lambda v: abs(v.last_modified - lm)) if lm else versions[0]
            if lm and abs(best.last_modified - lm) > PAIR_WINDOW:
                latest = [v for v in versions if v.is_latest]
                best = latest[0] if latest else best
            return S3Object(self.client, data.bucket, cand, best.version_id, cancel=self._cancel)
        return None
