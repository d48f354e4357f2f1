"""What the user gave to open backups: keys, passphrase, gpg options, a raw key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..keys.base import KeySource
from .gpg import GpgOptions


@dataclass
class Secrets:
    """What the user gave to open backups. Never logged, never serialised."""

    keys: Sequence[KeySource] = ()
    passphrase: bytearray | None = None  # symmetric backups (-pass file:K)
    gpg: GpgOptions | None = None
    raw_key: tuple[str, str] | None = None  # (-K hex, -iv hex)
    pbkdf2_iter: int | None = None
    cipher: str | None = None

    def wipe(self) -> None:
        if self.passphrase is not None:
            for i in range(len(self.passphrase)):
                self.passphrase[i] = 0
