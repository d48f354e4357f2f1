"""How the seed pipelines name a backup's data object and its wrapped key.

* SecureCircle: ``X`` and ``X.key`` (``1567744961188141183.sql.gz`` + ``….sql.gz.key``);
* rds-postgres-backup-s3-secure: ``STEM.sql.bz.enc`` + ``STEM.key.txt.enc``
  (``STEM.key.bin.enc`` in its older versions);
* dpb587 (gpg) and ClusterControl (``-pass file:``): a single object.

Users add their own rules as ``DATA_SUFFIX:KEY_SUFFIX`` pairs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import UsageError

_ENC_STEM = re.compile(
    r"^(?P<stem>.+?)(?:\.(?:sql|dump|psql|pgsql|xb|xbstream|tar|mbstream))?"
    r"(?:\.(?:gz|gzip|bz|bz2|zst|zstd|xz))?\.(?:enc|aes|aes256)$"
)
WRAPPED_SUFFIXES = (".key", ".key.txt.enc", ".key.bin.enc", ".key.enc", ".key.txt", ".key.bin")


@dataclass(frozen=True)
class Rule:
    data_suffix: str
    key_suffix: str

    @classmethod
    def parse(cls, text: str) -> Rule:
        data, sep, key = text.partition(":")
        if not sep or not key:
            raise UsageError(f"a naming rule is DATA_SUFFIX:KEY_SUFFIX, not {text!r}")
        return cls(data, key)


def key_candidates(name: str, rules: Sequence[Rule] = ()) -> list[str]:
    """Names the wrapped key of data object ``name`` may have, likeliest first."""
    out: list[str] = []
    for r in rules:
        if name.endswith(r.data_suffix):
            out.append(name[: len(name) - len(r.data_suffix)] + r.key_suffix)
    out.append(name + ".key")
    if m := _ENC_STEM.match(name):
        stem = m.group("stem")
        out += [stem + ".key.txt.enc", stem + ".key.bin.enc", stem + ".key.enc"]
    return [c for i, c in enumerate(out) if c not in out[:i] and c != name]


def looks_like_wrapped_key(name: str, rules: Sequence[Rule] = ()) -> bool:
    return name.endswith(WRAPPED_SUFFIXES) or any(name.endswith(r.key_suffix) for r in rules)


def pair_names(names: Iterable[str], rules: Sequence[Rule] = ()) -> dict[str, str | None]:
    """Map each data object name to its wrapped-key name (or None)."""
    all_names = set(names)
    keys_used: set[str] = set()
    pairs: dict[str, str | None] = {}
    for name in sorted(all_names):
        if looks_like_wrapped_key(name, rules):
            continue
        key = next((k for k in key_candidates(name, rules) if k in all_names), None)
        pairs[name] = key
        if key:
            keys_used.add(key)
    # A ".key"-looking object no data object claims is still listed (as an orphan key).
    for name in all_names:
        if looks_like_wrapped_key(name, rules) and name not in keys_used:
            pairs.setdefault(name, None)
    return pairs
