"""Drawing the sample: reproducible from a recorded seed, or a rotating slice.

Both work on a version's identity (``s3://bucket/key@version``), never on listing
order, so the same population gives the same sample on any machine and any day:

* random: the population sorted by identity, then ``random.Random(seed).sample``;
* slice i of k: the versions whose stable hash (SHA-256 of the identity) is i-1 modulo
  k. Every version falls in exactly one slice, so k runs (one a night) check the whole
  population, as restic's ``--read-data-subset n/t`` does for packs.
"""

from __future__ import annotations

import hashlib
import random
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import UsageError
from ..storage.locate import ListedVersion


def identity(v: ListedVersion) -> str:
    return f"{v.where}@{v.data.version_id or ''}"


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


@dataclass(frozen=True)
class SampleSpec:
    """``--sample N|P%`` (count or percent) with ``--seed``, or ``--slice i/k``; all
    None: the whole population."""

    count: int | None = None
    percent: float | None = None
    seed: int | None = None
    slice: tuple[int, int] | None = None

    @property
    def method(self) -> str:
        if self.slice is not None:
            return f"slice {self.slice[0]}/{self.slice[1]} (stable hash of the version identity)"
        if self.count is not None:
            return f"random {self.count} (seeded)"
        if self.percent is not None:
            return f"random {self.percent:g}% (seeded)"
        return "whole population"

    def with_seed(self) -> SampleSpec:
        """A random sample without ``--seed`` gets one now, to be recorded."""
        if self.seed is None and (self.count is not None or self.percent is not None):
            return SampleSpec(self.count, self.percent, secrets.randbelow(2**31), self.slice)
        return self


def parse_sample(text: str | None, seed: int | None, slice_text: str | None) -> SampleSpec:
    if text is not None and slice_text is not None:
        raise UsageError("--sample and --slice are two ways to choose: give one")
    if seed is not None and text is None:
        raise UsageError("--seed goes with --sample")
    if slice_text is not None:
        m = re.fullmatch(r"(\d+)/(\d+)", slice_text.strip())
        if not m or not 1 <= int(m[1]) <= int(m[2]):
            raise UsageError(f"--slice {slice_text!r}: give i/k with 1 <= i <= k (e.g. 3/7)")
        return SampleSpec(slice=(int(m[1]), int(m[2])))
    if text is None:
        return SampleSpec()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(%?)", text.strip())
    if not m:
        raise UsageError(f"--sample {text!r}: give a count (50) or a percentage (10%)")
    if m[2]:
        pct = float(m[1])
        if not 0 < pct <= 100:
            raise UsageError(f"--sample {text}: a percentage above 0 and at most 100")
        return SampleSpec(percent=pct, seed=seed)
    if "." in m[1] or int(m[1]) < 1:
        raise UsageError(f"--sample {text}: a whole number of versions, at least 1")
    return SampleSpec(count=int(m[1]), seed=seed)


def draw(population: Sequence[ListedVersion], spec: SampleSpec) -> list[ListedVersion]:
    """The sample, in identity order."""
    ordered = sorted(population, key=identity)
    if spec.slice is not None:
        i, k = spec.slice
        return [v for v in ordered if stable_hash(identity(v)) % k == i - 1]
    if spec.count is None and spec.percent is None:
        return ordered
    n = spec.count if spec.count is not None else -(-len(ordered) * (spec.percent or 0) // 100)
    n = min(int(n), len(ordered))
    picked = set(
        random.Random(spec.seed).sample(range(len(ordered)), n)
    )  # a reproducible draw, not a secret
    return [v for j, v in enumerate(ordered) if j in picked]
