"""What the user gave to open backups: keys, passphrase, gpg options, a raw key."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..keys.base import KeySource

if TYPE_CHECKING:
    from .gpg.session import GpgSessionKey
    from .xbkey import XbcryptKey  # made by the CLI or app only when one is given (issue 17)


@dataclass(frozen=True)
class GpgOptions:
    """How to reach the OpenPGP secret key: a key file or an existing GNUPGHOME."""

    key_file: Path | None = None  # an exported secret key (armored or binary)
    homedir: Path | None = None  # an existing GNUPGHOME (the user's agent, smart cards)
    # The secret key's passphrase, given to gpg through a pipe (loopback pinentry): the
    # key file's, or that of the key in the GNUPGHOME when its agent cannot ask (the app's
    # prompt). None, or a provider answering None: gpg's agent asks, as it would anyway.
    passphrase: Callable[[], bytes | None] | None = None


@dataclass
class Secrets:
    """What the user gave to open backups. Never logged, never serialised."""

    keys: Sequence[KeySource] = ()
    passphrase: bytearray | None = None  # symmetric backups (-pass file:K)
    gpg: GpgOptions | None = None
    raw_key: tuple[str, str] | None = None  # (-K hex, -iv hex)
    pbkdf2_iter: int | None = None
    cipher: str | None = None
    xbcrypt: XbcryptKey | None = None  # XtraBackup --encrypt key (issue 16)
    # One gpg -e backup's session key, recovered on a campaign's coordinator (issue 15)
    gpg_session: GpgSessionKey | None = None

    def wipe(self) -> None:
        if self.gpg_session is not None:
            self.gpg_session.wipe()
        if self.xbcrypt is not None:
            self.xbcrypt.wipe()
        if self.passphrase is not None:
            for i in range(len(self.passphrase)):
                self.passphrase[i] = 0
