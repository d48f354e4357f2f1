"""The Ed25519 key that signs evidence reports, kept in custody like the RSA keys.

Created on first use. Its private half is PKCS#8-encrypted under a random passphrase
that only the OS keyring holds (custody.py explains why the keyring holds only the
passphrase); the public half and its fingerprint are kept beside it in plain, since
every report prints them and ``sealcheck key export-public --signing`` hands them out.
It lives in its own folder, so the RSA key inventory (and the unwrapping it feeds)
never sees it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import KeyUnavailable, SaveFailed, SealcheckError
from ..plumbing.atomic import AtomicWriter
from .custody import SERVICE, InsecureKeyring, default_folder, secure_keyring

NAME = "evidence"
_ACCOUNT = f"signing:{NAME}"


@dataclass(frozen=True)
class SigningKeyInfo:
    """The public facts of the signing key (no secret)."""

    fingerprint: str
    public_pem: str
    created: str
    algorithm: str = "Ed25519"


class EvidenceSigner:
    """Signs with the custody key; the private key is loaded once per signer, kept in
    memory only, and never leaves this object."""

    def __init__(self, info: SigningKeyInfo, key: Ed25519PrivateKey) -> None:
        self.info = info
        self._key = key

    @property
    def public_pem(self) -> str:
        return self.info.public_pem

    @property
    def fingerprint(self) -> str:
        return self.info.fingerprint

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


class SigningKeyStore:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or default_folder() / "signing"

    @property
    def _p8(self) -> Path:
        return self.folder / f"{NAME}.p8"

    @property
    def _meta(self) -> Path:
        return self.folder / f"{NAME}.json"

    def info(self) -> SigningKeyInfo | None:
        """The key's public facts, or None when none was made yet."""
        try:
            return SigningKeyInfo(**json.loads(self._meta.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise KeyUnavailable(
                f"the signing key's record {self._meta} is damaged ({exc})"
            ) from None

    def signer(self) -> EvidenceSigner:
        """The signer, making the key on first use (KeyUnavailable/InsecureKeyring
        when the keyring cannot be used)."""
        info = self.info()
        if info is None:
            return self._create()
        kek = secure_keyring().get_password(SERVICE, _ACCOUNT)
        if kek is None:
            raise KeyUnavailable(
                "the keyring has no passphrase for the evidence signing key (keyring locked "
                "or entry removed)"
            )
        try:
            key = serialization.load_pem_private_key(self._p8.read_bytes(), kek.encode())
        except FileNotFoundError:
            raise KeyUnavailable(f"the signing key file {self._p8} is missing") from None
        except ValueError as exc:
            raise KeyUnavailable(f"the signing key does not open ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyUnavailable(f"{self._p8} is not an Ed25519 key")
        return EvidenceSigner(info, key)

    def _create(self) -> EvidenceSigner:
        kr = secure_keyring()
        key = Ed25519PrivateKey.generate()
        kek = secrets.token_urlsafe(32)
        pub = key.public_key()
        pem = pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        der = pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        info = SigningKeyInfo(
            fingerprint="SHA256:" + hashlib.sha256(der).hexdigest(),  # as for every key
            public_pem=pem,
            created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        )
        encrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(kek.encode()),
        )
        self._write(self._p8, encrypted)
        try:
            kr.set_password(SERVICE, _ACCOUNT, kek)
            if kr.get_password(SERVICE, _ACCOUNT) != kek:
                raise InsecureKeyring("the keyring did not keep the secret (read-back differs)")
        except BaseException:
            with contextlib.suppress(Exception):
                kr.delete_password(SERVICE, _ACCOUNT)
            with contextlib.suppress(OSError):
                self._p8.unlink()
            raise
        self._write(self._meta, json.dumps(asdict(info), indent=2).encode())
        return EvidenceSigner(info, key)

    def _write(self, path: Path, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        with AtomicWriter(path, overwrite=True, mode=0o600, error=SaveFailed) as f:
            f.write(data)


class CustodySigner:
    """A signed report's ``signer`` (records/report_file.write), for the CLI and the app
    alike: the evidence key from custody, made on first use (``created``), or None when
    custody cannot give it, ``why`` then saying what custody said. Not signing is no
    failure: the report is written sealed but unsigned, and says so."""

    def __init__(self, store: SigningKeyStore | None = None) -> None:
        self._store = store or SigningKeyStore()
        self.why = ""
        self.created = False

    def __call__(self) -> EvidenceSigner | None:
        try:
            fresh = self._store.info() is None  # a damaged record: unsigned, as below
            signer = self._store.signer()
        except SealcheckError as exc:
            self.why = exc.message()
            return None
        self.created = fresh
        return signer
