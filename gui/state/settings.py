"""Typed settings: saved sources (S3 locations and local folders), as JSON under the
platform's config folder, or ``$SEALCHECK_CONFIG_DIR`` when set (the demo sets it to its
temp folder, so sources added while it runs never reach the user's saved sources).

Invariant: nothing secret is ever stored here. A source names *where* its keys
are (a PEM path, ``keyring:NAME``, a ``pkcs11:`` URI, a passphrase *file*),
never a key, passphrase or PIN. ``version`` plus ``_UPGRADES`` let a newer
app read an older file (Picard's upgrade hooks).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sealcheck.core.errors import SaveFailed
from sealcheck.core.plumbing.atomic import AtomicWriter
from sealcheck.core.records.targets import SourceTargets, config_path
from sealcheck.core.storage.listing import ObjectVersion
from sealcheck.core.storage.locate import ListedVersion
from sealcheck.core.storage.naming import Rule
from sealcheck.core.storage.s3.client import S3Settings

SETTINGS_VERSION = 1


@dataclass(frozen=True)
class KeyChoice:
    """Where the keys for a source's backups are; paths and names only."""

    key_specs: tuple[str, ...] = ()  # PEM path, keyring:NAME or pkcs11: URI
    pkcs11_module: str | None = None
    passphrase_file: str | None = None  # symmetric backups (-pass file:K)
    gpg_key_file: str | None = None  # OpenPGP secret key (.asc)

    @property
    def empty(self) -> bool:
        return not (self.key_specs or self.passphrase_file or self.gpg_key_file)

    def renamed(self, old: str, new: str) -> KeyChoice:
        """The same choice with key spec ``old`` (e.g. ``keyring:A``) now ``new``."""
        return replace(self, key_specs=tuple(new if s == old else s for s in self.key_specs))


@dataclass(frozen=True)
class SourceConfig:
    name: str
    bucket: str  # "" for a local source
    prefix: str = ""
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    rules: tuple[str, ...] = ()  # DATA_SUFFIX:KEY_SUFFIX
    keys: KeyChoice = field(default_factory=KeyChoice)
    path: str | None = None  # a local folder (or one opened file) instead of a bucket
    # Recovery targets an audit measures this source's backups against (issue 14; the
    # CLI reads them from this same file: core/records/targets.py).
    target_rto_s: float | None = None
    target_rpo_h: float | None = None

    @classmethod
    def local(cls, path: Path, name: str | None = None, **kw: Any) -> SourceConfig:
        """A folder or file source; the path is made absolute, as jobs open it."""
        full = path.expanduser().absolute()
        return cls(name=name or full.name or str(full), bucket="", path=str(full), **kw)

    @property
    def is_local(self) -> bool:
        return self.path is not None

    def s3(self) -> S3Settings:
        return S3Settings(endpoint_url=self.endpoint_url, profile=self.profile, region=self.region)

    def targets(self) -> SourceTargets:
        return SourceTargets(self.name, self.uri, self.target_rto_s, self.target_rpo_h)

    def parsed_rules(self) -> tuple[Rule, ...]:
        return tuple(Rule.parse(r) for r in self.rules)

    @property
    def uri(self) -> str:
        return self.path if self.path is not None else f"s3://{self.bucket}/{self.prefix}"

    def holds(self, uri: str) -> bool:
        """Whether an object (its s3:// URI or absolute path, without a version) lies in
        this source: how history entries are counted per source."""
        if self.path is not None:
            return uri == self.path or uri.startswith(self.path.rstrip("/") + "/")
        return uri.startswith(f"s3://{self.bucket}/{self.prefix}")

    def listed(
        self,
        data: ObjectVersion,
        key: ObjectVersion | None,
        sidecars: tuple[str, ...] | None = None,
    ) -> ListedVersion:
        """A version this source listed, as a job opens it: in the bucket, or (a folder's
        listing names each file by its path) the file itself, with the sidecar files the
        listing found beside it (None: not known, looked for when the job runs)."""
        bucket = None if self.path is not None else self.bucket
        return ListedVersion(bucket, data, key, sidecars=sidecars)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["rules"] = list(self.rules)
        d["keys"]["key_specs"] = list(self.keys.key_specs)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SourceConfig:
        keys = d.get("keys") or {}
        known = {f for f in KeyChoice.__dataclass_fields__}
        kc = KeyChoice(**{k: v for k, v in keys.items() if k in known})
        kc = replace(kc, key_specs=tuple(kc.key_specs))
        fields = {f for f in cls.__dataclass_fields__} - {"keys", "rules"}
        return cls(
            **{k: v for k, v in d.items() if k in fields},
            rules=tuple(d.get("rules") or ()),
            keys=kc,
        )


def _upgrade_0_to_1(d: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "sources": d.get("sources", [])}


_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _upgrade_0_to_1}


class SourceStore:
    """Load and save the list of sources; writes are atomic (core's AtomicWriter)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_path()
        # Where an unreadable sources file was moved to, for the window to say so.
        self.set_aside: Path | None = None

    def load(self) -> list[SourceConfig]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError, UnicodeDecodeError):
            # Not fatal, but never lost: a hand edit with a typo must not be replaced
            # by the next save. The file is renamed aside and the window says where.
            self._set_aside()
            return []
        version = int(data.get("version", 0))
        while version < SETTINGS_VERSION:
            data = _UPGRADES[version](data)
            version = int(data["version"])
        out = []
        for item in data.get("sources", []):
            try:
                out.append(SourceConfig.from_json(item))
            except (TypeError, ValueError):
                continue
        return out

    def save(self, sources: list[SourceConfig]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"version": SETTINGS_VERSION, "sources": [s.to_json() for s in sources]}
        # A sources file kept as a symbolic link (dotfiles under version control) is
        # written where the link points, and the link stays: the atomic writer never
        # writes through a link itself.
        with AtomicWriter(self.path.resolve(), overwrite=True, error=SaveFailed) as f:
            f.write(json.dumps(payload, indent=2).encode())

    def _set_aside(self) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.unreadable-{stamp}")
        try:
            self.path.resolve().rename(aside)
        except OSError:
            return  # it stays where it is; save() will then refuse or replace it
        self.set_aside = aside
