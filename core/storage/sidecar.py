"""Sidecar files: what backup scripts write next to a backup (``X.sha256``, ``X.md5``,
``X.info``, ``X.log``, ``X.json``).

A sidecar is named after the backup it describes (its name plus one of the suffixes
below) and is never a backup itself: the listing shows it with its backup. Where it
carries a checksum of the object as stored (``sha256sum``/``md5sum`` output, the BSD
``SHA256 (X) = …`` form, a bare digest, a JSON manifest's or an info file's ``sha256``,
``md5`` or ``size``), verify compares it with what it read. A log is compared only
where a line of it states this backup's checksum (a ``sha256sum``/``md5sum``/BSD line
naming it, as a script that logs its ``sha256sum`` output writes) or its size (a line
naming it with ``N bytes``); the producers' logs seen so far (ClusterControl's and
xtrabackup's, the seed documents) state neither, and such a log is only shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container
from dataclasses import dataclass

SIDECAR_SUFFIXES = (".sha256", ".sha256sum", ".md5", ".md5sum", ".info", ".log", ".json")
MAX_SIDECAR = 64 * 1024  # read of a sidecar; a checksum file is a line, a manifest a page

_HEX = {"sha256": 64, "md5": 32}
_SUM_LINE = re.compile(r"^\\?([0-9a-fA-F]{32}|[0-9a-fA-F]{64})(?: [ *]?(.*))?$")
_BSD_LINE = re.compile(r"^(SHA256|MD5) ?\((.*)\) ?= ?([0-9a-fA-F]{32,64})$", re.I)
_KV_LINE = re.compile(r"^\s*\"?([A-Za-z0-9_ .-]+?)\"?\s*[:=]\s*\"?([^\"]*?)\"?\s*,?\s*$")
_LOG_SIZE = re.compile(r"\b(\d+) bytes\b")
_SIZE_KEYS = ("size", "bytes", "size_bytes", "filesize", "file_size", "length")


def sidecar_base(name: str, names: Container[str]) -> str | None:
    """The backup ``name`` is a sidecar of (present in ``names``), or None."""
    for suffix in SIDECAR_SUFFIXES:
        if name.endswith(suffix) and (base := name[: -len(suffix)]) in names and base:
            return base
    return None


def sidecars_of(name: str, names: Container[str]) -> tuple[str, ...]:
    return tuple(name + s for s in SIDECAR_SUFFIXES if name + s in names)


@dataclass(frozen=True)
class Claim:
    """One thing a sidecar says about its backup: ``kind`` "sha256", "md5" or "size"."""

    kind: str
    value: str


@dataclass(frozen=True)
class Sidecar:
    name: str  # s3://bucket/key or the file's path
    text: bytes  # its first MAX_SIDECAR bytes
    version_id: str | None = None


@dataclass(frozen=True)
class Reading:
    """What could be read from a sidecar: its claims, or why none is checked."""

    claims: tuple[Claim, ...]
    note: str | None = None  # why nothing is checked (a log, another file's digest, …)


def _base(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def object_base(name: str) -> str:
    """The file name a checksum line would give for a source named ``name`` (an S3
    source's name carries its ``?versionId=``, which no sidecar writes)."""
    if name.startswith("s3://"):
        name = name.split("?versionId=", 1)[0]
    return _base(name)


def read_sidecar(sc: Sidecar, backup: str) -> Reading:
    """The claims ``sc`` makes about the object named ``backup``."""
    own = object_base(sc.name)
    suffix = next((s for s in SIDECAR_SUFFIXES if own.endswith(s)), "")
    text = sc.text.decode("utf-8", "replace")
    if suffix == ".log":
        return _log(text, _base(backup))
    if suffix in (".sha256", ".sha256sum", ".md5", ".md5sum"):
        return _sums(text, suffix.lstrip(".").removesuffix("sum"), _base(backup))
    if suffix == ".json":
        try:
            doc = json.loads(text)
        except ValueError:
            return Reading((), "not JSON: nothing to compare")
        pairs = doc.items() if isinstance(doc, dict) else ()
        return _claims(((str(k), v) for k, v in pairs), "a manifest")
    pairs_kv = []
    for line in text.splitlines():
        if m := _KV_LINE.match(line):
            pairs_kv.append((m.group(1), m.group(2)))
    return _claims(pairs_kv, "an info file")


def _sums(text: str, algo: str, backup: str) -> Reading:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    found: list[tuple[str, str, str | None]] = []  # (algorithm, digest, file name)
    for line in lines:
        if m := _SUM_LINE.match(line):
            digest = m.group(1).lower()
            found.append(("sha256" if len(digest) == 64 else "md5", digest, m.group(2)))
        elif m := _BSD_LINE.match(line):
            found.append((m.group(1).lower(), m.group(3).lower(), m.group(2)))
    found = [f for f in found if len(f[1]) == _HEX[f[0]]]
    if not found:
        return Reading((), f"no {algo} digest in it: nothing to compare")
    # The line naming this object; one unnamed line ("-": sha256sum < file) is its own.
    mine = [f for f in found if f[2] is not None and _base(f[2]) == backup]
    if not mine and len(found) == 1 and found[0][2] in (None, "-", ""):
        mine = found
    if not mine:
        names = ", ".join(sorted({_base(f[2] or "-") for f in found}))[:120]
        return Reading((), f"names another file ({names}), not {backup}: not compared")
    return Reading(tuple(Claim(a, d) for a, d, _ in mine[:1]))


def _log(text: str, backup: str) -> Reading:
    """A log's lines that name this backup with its checksum or its size; anything else
    in a log (times, progress, other files) states nothing about the object."""
    # The name as a whole word: "db.sql.enc.sha256" or "old-db.sql.enc" is another file.
    own = re.compile(rf"(?<![\w.-]){re.escape(backup)}(?![\w.-])")
    named = [ln.strip() for ln in text.splitlines() if own.search(ln)]
    claims = list(_sums("\n".join(named), "sha256", backup).claims) if named else []
    sizes = {m for ln in named for m in _LOG_SIZE.findall(ln)}
    if len(sizes) == 1:  # two different figures: which one is the object's is not known
        claims.append(Claim("size", sizes.pop()))
    if not claims:
        return Reading((), "a log: shown, nothing to compare")
    return Reading(tuple(claims))


def _claims(pairs: object, what: str) -> Reading:
    out: dict[str, Claim] = {}
    for key, value in pairs:  # type: ignore[attr-defined]
        k = str(key).strip().lower().replace("-", "_").replace(" ", "_")
        v = str(value).strip().lower() if not isinstance(value, bool) else ""
        if "sha256" in k and re.fullmatch(r"[0-9a-f]{64}", v):
            out.setdefault("sha256", Claim("sha256", v))
        elif "md5" in k and re.fullmatch(r"[0-9a-f]{32}", v):
            out.setdefault("md5", Claim("md5", v))
        elif k in _SIZE_KEYS and re.fullmatch(r"\d+", v):
            out.setdefault("size", Claim("size", v))
    if not out:
        return Reading((), f"{what} without a checksum or size: nothing to compare")
    return Reading(tuple(out.values()))
