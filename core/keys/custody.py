"""Private keys in custody: encrypted at rest, their passphrase in the OS keyring.

Design (works on Linux, macOS and Windows alike): Windows Credential Manager
stores at most ~2.5 KB per secret, less than a 4096-bit PEM, so the keyring
holds only a random 256-bit passphrase; the PEM itself is kept PKCS#8-encrypted
under that passphrase in the app's data folder (0700 folder, 0600 files). The
plaintext PEM is never written anywhere. Losing either half loses the key, so
``key import`` reads both back before it reports success.

Insecure keyring backends (keyrings.alt plaintext files, the ``fail`` and
``null`` backends) are refused with a clear message, never used silently.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import platformdirs
from cryptography.hazmat.primitives import serialization

from ..errors import KeyUnavailable, SaveFailed, SealcheckError, UsageError
from ..plumbing.atomic import AtomicWriter
from .base import Unwrapped
from .pem import PemKey

SERVICE = "sealcheck"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_INSECURE_MODULES = ("keyrings.alt", "keyring.backends.fail", "keyring.backends.null")


class InsecureKeyring(SealcheckError):
    """No secure OS keyring is available."""


class BadKeyName(UsageError):
    """This key name cannot be used."""


class DuplicateKey(UsageError):
    """This key is already held under another name."""

    def __init__(self, existing: HeldKey) -> None:
        self.existing = existing
        super().__init__(
            f"it is held as {existing.name!r} ({existing.fingerprint}); use that name, or rename it"
        )


def default_folder() -> Path:
    return platformdirs.user_data_path("sealcheck") / "keys"


def _account(name: str) -> str:
    return f"key:{name}"


def _backends(kr: Any) -> list[Any]:
    inner = getattr(kr, "backends", None)
    return list(inner) if inner else [kr]


def secure_keyring() -> Any:
    """The active keyring backend, or InsecureKeyring if it would not protect secrets."""
    import keyring

    kr = keyring.get_keyring()
    usable = [
        b
        for b in _backends(kr)
        if not type(b).__module__.startswith(_INSECURE_MODULES) and getattr(b, "priority", 1) > 0
    ]
    if not usable:
        names = ", ".join(f"{type(b).__module__}.{type(b).__name__}" for b in _backends(kr))
        raise InsecureKeyring(
            f"the keyring backend ({names}) would store keys in plain text or not at all. "
            "On Linux start a Secret Service (GNOME Keyring, KWallet) in your session; "
            "or keep using --key PEM_FILE"
        )
    return kr


@dataclass(frozen=True)
class HeldKey:
    """What Sealcheck knows about a key in custody (no secret material)."""

    name: str
    fingerprint: str
    bits: int
    created: str
    public_pem: str
    where: str = "OS keyring + encrypted file"


class KeyStore:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or default_folder()

    def _paths(self, name: str) -> tuple[Path, Path]:
        return self.folder / f"{name}.p8", self.folder / f"{name}.json"

    def _check_name(self, name: str) -> None:
        if not _NAME_RE.match(name):
            raise BadKeyName(
                f"key name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)"
            )

    def _write_private(self, path: Path, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        # 0600: the encrypted PEM is useless without the keyring half, but still nobody's
        # business; the metadata file is kept the same way.
        with AtomicWriter(path, overwrite=True, mode=0o600, error=SaveFailed) as f:
            f.write(data)

    def import_pem(
        self, pem: bytes, name: str, passphrase: Callable[[], bytes | None] | None = None
    ) -> HeldKey:
        self._check_name(name)
        kr = secure_keyring()
        p8, meta = self._paths(name)
        if meta.exists() or kr.get_password(SERVICE, _account(name)) is not None:
            raise BadKeyName(f"a key named {name!r} is already held; remove it first")
        key = PemKey.from_bytes(pem, f"PEM for {name}", passphrase)
        # The same key under two names would be two places to rotate or remove it.
        for held in self.list():
            if held.fingerprint == key.fingerprint:
                raise DuplicateKey(held)
        kek = secrets.token_urlsafe(32)
        encrypted = key.private_bytes_encrypted(kek.encode())
        pub = key.public_key()
        info = HeldKey(
            name=name,
            fingerprint=key.fingerprint,
            bits=key.modulus_bytes * 8,
            created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            public_pem=pub.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode(),
        )
        self._write_private(p8, encrypted)
        try:
            kr.set_password(SERVICE, _account(name), kek)
            # keyring's null/fail-like backends "store" without complaint: read back.
            if kr.get_password(SERVICE, _account(name)) != kek:
                raise InsecureKeyring("the keyring did not keep the secret (read-back differs)")
            self._load(name)  # both halves together must give the key back
        except BaseException:
            with contextlib.suppress(Exception):
                kr.delete_password(SERVICE, _account(name))
            with contextlib.suppress(OSError):
                p8.unlink()
            raise
        self._write_private(meta, json.dumps(asdict(info), indent=2).encode())
        return info

    def list(self) -> list[HeldKey]:
        out: list[HeldKey] = []
        if not self.folder.is_dir():
            return out
        for meta in sorted(self.folder.glob("*.json")):
            try:
                out.append(HeldKey(**json.loads(meta.read_text())))
            except (OSError, ValueError, TypeError):
                continue
        return out

    def get(self, name: str) -> HeldKey:
        _, meta = self._paths(name)
        try:
            return HeldKey(**json.loads(meta.read_text()))
        except FileNotFoundError:
            held = ", ".join(k.name for k in self.list()) or "none"
            raise KeyUnavailable(f"no key named {name!r} is held (held: {held})") from None

    def remove(self, name: str) -> None:
        self.get(name)
        kr = secure_keyring()
        with contextlib.suppress(Exception):
            kr.delete_password(SERVICE, _account(name))
        for p in self._paths(name):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def rename(self, old: str, new: str) -> HeldKey:
        """Hold ``old``'s key as ``new``. The new name is complete (keyring entry,
        encrypted file, metadata) and read back before the old one is removed, so an
        interruption leaves the key under one name or both, never under none."""
        self._check_name(new)
        info = self.get(old)
        if new == old:
            return info
        kr = secure_keyring()
        p8_new, meta_new = self._paths(new)
        if meta_new.exists() or kr.get_password(SERVICE, _account(new)) is not None:
            raise BadKeyName(f"a key named {new!r} is already held; choose another name")
        kek = kr.get_password(SERVICE, _account(old))
        if kek is None:
            raise KeyUnavailable(
                f"the keyring has no passphrase for key {old!r} (keyring locked or entry removed)"
            )
        renamed = HeldKey(**{**asdict(info), "name": new})
        try:
            self._write_private(p8_new, self._paths(old)[0].read_bytes())
            kr.set_password(SERVICE, _account(new), kek)
            if kr.get_password(SERVICE, _account(new)) != kek:
                raise InsecureKeyring("the keyring did not keep the secret (read-back differs)")
            if self._load(new).fingerprint != info.fingerprint:
                raise KeyUnavailable(f"the key read back as {new!r} differs from {old!r}")
            self._write_private(meta_new, json.dumps(asdict(renamed), indent=2).encode())
        except BaseException:
            with contextlib.suppress(Exception):
                kr.delete_password(SERVICE, _account(new))
            for p in (p8_new, meta_new):
                with contextlib.suppress(OSError):
                    p.unlink()
            raise
        self.remove(old)
        return renamed

    def export_public(self, name: str, dest: Path, *, overwrite: bool = False) -> HeldKey:
        """Write the key's public key (PEM) to ``dest``, whole or not at all."""
        info = self.get(name)
        with AtomicWriter(dest, overwrite=overwrite) as f:
            f.write(info.public_pem.encode())
        return info

    def _load(self, name: str) -> PemKey:
        p8, _ = self._paths(name)
        kr = secure_keyring()
        kek = kr.get_password(SERVICE, _account(name))
        if kek is None:
            raise KeyUnavailable(
                f"the keyring has no passphrase for key {name!r} (keyring locked or entry removed)"
            )
        try:
            data = p8.read_bytes()
        except FileNotFoundError:
            raise KeyUnavailable(f"the encrypted key file for {name!r} is missing") from None
        return PemKey.from_bytes(data, f"keyring:{name}", lambda: kek.encode())


class KeyringKey:
    """A KeySource for a key in custody; the private key is loaded per operation."""

    def __init__(self, name: str, store: KeyStore | None = None) -> None:
        self._store = store or KeyStore()
        self.info = self._store.get(name)
        self.label = f"keyring:{name}"

    @property
    def modulus_bytes(self) -> int:
        return self.info.bits // 8

    @property
    def fingerprint(self) -> str:
        return self.info.fingerprint

    def unwrap_candidates(self, wrapped: bytes) -> Iterator[Unwrapped]:
        key = self._store._load(self.info.name)
        try:
            yield from key.unwrap_candidates(wrapped)
        finally:
            del key
