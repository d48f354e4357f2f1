"""Recovery targets per source (issue 14): the longest a restore may take (RTO, seconds)
and the oldest a backup may be when it is checked (RPO, hours).

One road for the app and the CLI: they are kept per source in the sources file the app
writes (``sources.json``: each source's ``target_rto_s`` and ``target_rpo_h``, set in
the app's Edit source → Audit tab or by hand), and the CLI reads the same file. A
backup takes the targets of the most specific source that holds it (the longest
prefix); ``--target-rto`` / ``--target-rpo`` override them. Each record says which
targets it was measured against and where they came from; a missed target is
reported, never a backup failure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs


def config_path() -> Path:
    """The sources file: ``$SEALCHECK_CONFIG_DIR/sources.json`` or the platform's user
    config folder (the app's saved sources)."""
    if env := os.environ.get("SEALCHECK_CONFIG_DIR"):
        return Path(env) / "sources.json"
    return platformdirs.user_config_path("sealcheck") / "sources.json"


@dataclass(frozen=True)
class Targets:
    """The targets one backup is measured against, and where each came from."""

    rto_s: float | None = None
    rpo_h: float | None = None
    rto_from: str | None = None  # "source NAME" or "--target-rto"
    rpo_from: str | None = None

    @property
    def empty(self) -> bool:
        return self.rto_s is None and self.rpo_h is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rto_s": self.rto_s,
            "rto_from": self.rto_from,
            "rpo_h": self.rpo_h,
            "rpo_from": self.rpo_from,
        }


@dataclass(frozen=True)
class SourceTargets:
    """A source's own targets: where it is (``s3://bucket/prefix`` or a folder)."""

    name: str
    uri: str
    rto_s: float | None = None
    rpo_h: float | None = None

    def holds(self, uri: str) -> bool:
        if self.uri.startswith("s3://"):
            return uri.startswith(self.uri)
        return uri == self.uri or uri.startswith(self.uri.rstrip("/") + "/")


def _positive(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
        return None  # absent, or a hand edit that is no target: none, as in the app
    return float(v)


def from_sources(doc: Any) -> tuple[SourceTargets, ...]:
    """The sources that set a target, from the sources file's JSON."""
    out = []
    items = doc.get("sources") if isinstance(doc, dict) else None
    for s in items if isinstance(items, list) else ():
        if not isinstance(s, dict):
            continue
        rto, rpo = _positive(s.get("target_rto_s")), _positive(s.get("target_rpo_h"))
        if rto is None and rpo is None:
            continue
        path, bucket = s.get("path"), s.get("bucket")
        if isinstance(path, str) and path:
            uri = path
        elif isinstance(bucket, str) and bucket:
            uri = f"s3://{bucket}/{s.get('prefix') or ''}"
        else:
            continue
        out.append(SourceTargets(str(s.get("name") or uri), uri, rto, rpo))
    return tuple(out)


def load(path: Path | None = None) -> tuple[SourceTargets, ...]:
    """The targets set in the sources file (none when it is missing or unreadable: the
    app sets an unreadable file aside and says so; an audit runs without targets)."""
    try:
        doc = json.loads((path or config_path()).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return ()
    return from_sources(doc)


def targets_for(
    uri: str,
    sources: Iterable[SourceTargets],
    rto_s: float | None = None,
    rpo_h: float | None = None,
) -> Targets:
    """The targets of the backup at ``uri``: the given ones (the command line's) first,
    else those of the most specific source that holds it and sets one."""
    holding = sorted((s for s in sources if s.holds(uri)), key=lambda s: -len(s.uri))
    rto = next((s for s in holding if s.rto_s is not None), None)
    rpo = next((s for s in holding if s.rpo_h is not None), None)
    return Targets(
        rto_s=rto_s if rto_s is not None else (rto.rto_s if rto else None),
        rpo_h=rpo_h if rpo_h is not None else (rpo.rpo_h if rpo else None),
        rto_from="--target-rto" if rto_s is not None else (f"source {rto.name}" if rto else None),
        rpo_from="--target-rpo" if rpo_h is not None else (f"source {rpo.name}" if rpo else None),
    )


def measured(
    targets: dict[str, Any] | None, recovery_s: float | None, age_s: float | None
) -> dict[str, Any] | None:
    """A record's targets with whether they were met: the recovery time of a restore
    test against the RTO, the backup's age when checked against the RPO (None: not
    measurable, or no target)."""
    if not targets:
        return None
    rto, rpo = targets.get("rto_s"), targets.get("rpo_h")
    return {
        **targets,
        "rto_met": None if rto is None or recovery_s is None else recovery_s <= rto,
        "rpo_met": None if rpo is None or age_s is None else age_s <= rpo * 3600,
    }
