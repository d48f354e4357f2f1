"""Where a key is used: the sources that try it, and the versions it opened last.

The sources come from the settings (their key lists name a key by its spec:
``keyring:NAME``, a PEM path or a ``pkcs11:`` URI); the versions from the history
(core's ``History.opened_by_key``, by fingerprint, so a key counts wherever it is
held). A source can show up with no version opened (configured, never used yet)
and a version can lie in no source any more (counted as "elsewhere").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sealcheck.core.records.history import Subject

from .settings import SourceConfig


@dataclass(frozen=True)
class SourceUse:
    source: str
    position: int | None  # 1-based place in the source's key list; None: not in it
    of: int  # how many keys the source tries
    opened: int  # versions of the source whose latest verdict this key opened

    @property
    def only_key(self) -> bool:
        return self.position is not None and self.of == 1

    def text(self) -> str:
        if self.position is None:
            tries = "not in its key list any more"
        elif self.of == 1:
            tries = "its only key"
        else:
            tries = f"tried {_ordinal(self.position)} of {self.of}"
        return f"{self.source}: {tries}; opened {_versions(self.opened)} last"


@dataclass(frozen=True)
class KeyUse:
    sources: tuple[SourceUse, ...]
    elsewhere: int  # versions it opened last that lie in no configured source

    def text(self) -> str:
        if not self.sources and not self.elsewhere:
            return "Not used by any source, and it opened no recorded version."
        lines = [u.text() for u in self.sources]
        if self.elsewhere:
            lines.append(f"{_versions(self.elsewhere)} outside these sources")
        return "\n".join(lines)

    def names(self) -> str:
        return ", ".join(u.source for u in self.sources)


def key_use(
    spec: str,
    fingerprint: str,
    sources: Sequence[SourceConfig],
    opened: dict[str, list[Subject]],
) -> KeyUse:
    subjects = opened.get(fingerprint, [])
    counted: set[int] = set()
    uses: list[SourceUse] = []
    for src in sources:
        mine = [i for i, s in enumerate(subjects) if src.holds(s.uri)]
        counted.update(mine)
        specs = src.keys.key_specs
        pos = specs.index(spec) + 1 if spec in specs else None
        if pos is not None or mine:
            uses.append(SourceUse(src.name, pos, len(specs), len(mine)))
    return KeyUse(tuple(uses), len(subjects) - len(counted))


def _versions(n: int) -> str:
    return f"{n} version{'' if n == 1 else 's'}"


def _ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")
