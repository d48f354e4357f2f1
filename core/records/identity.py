"""What exactly was read: the identity of a source, for reports and the history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SourceIdentity:
    """What exactly was read, for the evidence report."""

    uri: str
    size: int
    version_id: str | None = None
    etag: str | None = None
    last_modified: str | None = None

    @classmethod
    def from_dict(cls, d: Any, where: str = "source") -> SourceIdentity:
        """The inverse of ``asdict``: unknown keys ignored, bad fields a ValueError.

        (report.Fields cannot be used here: report imports this module.)"""
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: expected an object, got {type(d).__name__}")
        size = d.get("size")
        if isinstance(size, bool) or not isinstance(size, int):
            raise ValueError(f"{where}.size: expected an integer, got {type(size).__name__}")
        texts: dict[str, str | None] = {}
        for name in ("uri", "version_id", "etag", "last_modified"):
            v = d.get(name)
            if not isinstance(v, str) and not (v is None and name != "uri"):
                raise ValueError(f"{where}.{name}: expected a string, got {type(v).__name__}")
            texts[name] = v
        return cls(
            uri=str(texts["uri"]),
            size=size,
            version_id=texts["version_id"],
            etag=texts["etag"],
            last_modified=texts["last_modified"],
        )
