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

from ..errors import UsageError
from .sidecar import sidecar_base

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
        if looks_like_wrapped_key(name, rules) or sidecar_base(name, all_names) is not None:
            continue  # a key, or a sidecar shown with the backup it describes
        key = next((k for k in key_candidates(name, rules) if k in all_names), None)
        pairs[name] = key
        if key:
            keys_used.add(key)
    # A ".key"-looking object no data object claims is still listed (as an orphan key).
    for name in all_names:
        if looks_like_wrapped_key(name, rules) and name not in keys_used:
            pairs.setdefault(name, None)
    return pairs


# --- nightly series ------------------------------------------------------------------
#
# Producers that keep one object per night put the date in the name: a folder per night
# (``clustercontrol/2025-01-01/backup-full.sql.gz.aes256``, ``…/20250101/…``,
# ``…/2025/01/01/…``) or a stamp in the file name (``backup-2025-01-01T0300.sql.gz.enc``).
# The nights of one backup are versions of one series, as the S3 versions of one key are.
# A date is 19xx/20xx, a real month and day, its parts written alike (``-``, ``_``, ``/``
# or nothing), with an optional time after ``T``, ``_``, ``-`` or nothing; never part of
# a longer run of digits (``1567744961188141183.sql.gz`` is an id, not a date).

_STAMP = re.compile(
    r"(?<!\d)(?P<y>(?:19|20)\d\d)(?P<s>[-_/]?)(?P<m>0[1-9]|1[0-2])(?P=s)"
    r"(?P<d>0[1-9]|[12]\d|3[01])"
    r"(?:(?P<t>[T_-]?)(?P<H>[01]\d|2[0-3])(?P<c>:?)(?P<M>[0-5]\d)(?:(?P=c)(?P<S>[0-5]\d))?)?"
    r"(?!\d)"
)


@dataclass(frozen=True)
class Stamp:
    """Where a name puts its night: the name with each date replaced by its pattern
    (``backup-YYYY-MM-DDThhmm.sql.gz.enc``), the night as written, and a sort key."""

    template: str
    night: str
    order: tuple[str, ...]  # YYYYMMDDhhmmss per date in the name, for sorting


def _pattern(m: re.Match[str]) -> str:
    out = "YYYY" + m["s"] + "MM" + m["s"] + "DD"
    if m["H"]:
        out += (m["t"] or "") + "hh" + (m["c"] or "") + "mm"
        if m["S"]:
            out += (m["c"] or "") + "ss"
    return out


def stamp_of(name: str) -> Stamp | None:
    """The night in a date-stamped name, or None for a name without a date."""
    matches = list(_STAMP.finditer(name))
    if not matches:
        return None
    parts, last = [], 0
    for m in matches:
        parts += [name[last : m.start()], _pattern(m)]
        last = m.end()
    parts.append(name[last:])
    order = tuple(
        m["y"] + m["m"] + m["d"] + (m["H"] or "00") + (m["M"] or "00") + (m["S"] or "00")
        for m in matches
    )
    # The most precise date names the night (a folder's day, or the file's day and hour).
    best = max(matches, key=lambda m: (sum(c.isdigit() for c in m.group(0)), m.start()))
    return Stamp("".join(parts), best.group(0), order)


def series_name(name: str) -> str:
    """The series a name belongs to: its template when it carries a date, else itself."""
    s = stamp_of(name)
    return s.template if s else name
