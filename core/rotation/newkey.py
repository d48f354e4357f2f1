"""The key a rotation re-wraps to, and the proof that someone holds it.

Re-wrapping every backup to a key nobody holds loses every backup at once (the
data-loss case of reliability.md F2). So before any write the new key proves
possession: a random challenge, encrypted to its public key with the padding the
rotation will use, must decrypt with its private half (file, keyring or token) to
the same bytes. A public key alone is accepted only when the user says so
(``--public-only``: the private half is held offline), and that is recorded.

The new key may also be an OpenPGP key (``gpg --export`` or ``--export-secret-keys``
of it, armored or binary): its encryption subkey is the RSA key re-wrapped to, and a
gpg backup's new recipient packet carries its key id (envelope.py). Its possession is
proved through gpg: a small message built here for it must ``gpg --decrypt`` (the key
imported into a private home) to the challenge, which also proves gpg accepts the
recipient packets this code builds. A passphrase-protected one takes its passphrase as an
encrypted PEM does (--key-passphrase-file or the prompt, asked when the key is opened), and
gpg gets it on a pipe through the reader that opens gpg backups; a passphrase that does
not unlock it is said as such (WrongNewKeyPassphrase), not as a failed proof.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..decrypt.gpg import packets as pgp
from ..decrypt.gpg.reader import GpgDecryptReader, plan_decryption
from ..decrypt.secrets import GpgOptions
from ..errors import BackupFailed, KeyUnavailable, PassphraseNeeded, UsageError, WrongPassphrase
from ..keys.base import KeySource, spki_fingerprint
from ..keys.pem import PemKey
from ..keys.prompt import SecretProvider
from ..keys.spec import KeyContext, open_key
from ..plumbing.progress import CancelToken
from ..plumbing.streams import BytesReader
from .wire import wrap

MIN_BITS = 2048


class WeakNewKey(UsageError):
    """The new key is refused: it is not an RSA key of at least 2048 bits."""


class NoPrivateHalf(UsageError):
    """The new key's private half is not available, so nobody is known to hold it.

    Give the private key (PEM, keyring:NAME or a pkcs11: URI) as --to, or pass
    --public-only to re-wrap to a public key whose private half is held offline.
    """


class NoProofOfPossession(UsageError):
    """The new key failed the proof of possession: its private half does not decrypt a
    challenge encrypted to its public key."""


class WrongNewKeyPassphrase(WrongPassphrase):
    """The passphrase given does not open the new OpenPGP secret key.

    Its secret key is passphrase-protected and the passphrase given for it (the new
    key's, --key-passphrase-file or the prompt) does not unlock it: not a wrong key,
    and nothing was written.
    """


@dataclass
class NewKey:
    label: str
    public: rsa.RSAPublicKey
    private: KeySource | None  # None: public only (--public-only), or an OpenPGP key
    key_id: bytes = pgp.WILDCARD  # an OpenPGP key's encryption key id; else "anonymous"
    gpg: GpgOptions | None = None  # an OpenPGP secret key: how gpg reaches it

    @property
    def holds_private(self) -> bool:
        return self.private is not None or self.gpg is not None

    @property
    def fingerprint(self) -> str:
        return spki_fingerprint(self.public)

    @property
    def bits(self) -> int:
        return self.public.key_size


def _public_of(key: KeySource) -> rsa.RSAPublicKey:
    get = getattr(key, "public_key", None)
    if get is not None:
        pub = get()
    else:  # a keyring key keeps its public half in its custody record
        info = getattr(key, "info", None)
        pem = getattr(info, "public_pem", None)
        if not pem:
            raise KeyUnavailable(f"the public half of {key.label} is not known")
        pub = serialization.load_pem_public_key(pem.encode())
    if not isinstance(pub, rsa.RSAPublicKey):
        raise WeakNewKey(f"{key.label} is not an RSA key")
    return pub


def open_new_key(spec: str, ctx: KeyContext, *, public_only: bool) -> NewKey:
    """``--to``: a private or public PEM file, ``keyring:NAME`` or a ``pkcs11:`` URI."""
    private: KeySource | None
    if spec.startswith(("keyring:", "pkcs11:")):
        private = open_key(spec, ctx)
        public = _public_of(private)
    else:
        path = Path(spec)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KeyUnavailable(f"cannot read the new key {spec}: {exc.strerror}") from None
        if _is_openpgp(data):
            return _openpgp_new_key(spec, data, public_only=public_only, ctx=ctx)
        if b"PRIVATE KEY-----" in data:
            pem = PemKey.from_bytes(data, f"PEM file {spec}", ctx.pem_passphrase)
            private, public = pem, pem.public_key()
        else:
            private, public = None, _load_public(data, spec)
    if public.key_size < MIN_BITS:
        raise WeakNewKey(f"{spec} is RSA-{public.key_size}; at least RSA-{MIN_BITS} is required")
    if private is None and not public_only:
        raise NoPrivateHalf(obj=spec)
    return NewKey(spec if private is None else private.label, public, private)


def _is_openpgp(data: bytes) -> bool:
    head = data.lstrip()
    if head.startswith(b"-----BEGIN PGP"):
        return True
    return bool(data) and data[0] & 0x80 != 0 and pgp.packet_at(data, 0).tag in (5, 6)


def _openpgp_new_key(spec: str, data: bytes, *, public_only: bool, ctx: KeyContext) -> NewKey:
    try:
        keys = pgp.read_keys(data)
    except pgp.PacketError as exc:
        raise KeyUnavailable(f"{spec} is not a readable OpenPGP key ({exc})") from None
    enc = pgp.encryption_key(keys)
    if enc is None:
        raise WeakNewKey(f"{spec} has no RSA key for encryption (an OpenPGP v4 RSA key)")
    if enc.public.key_size < MIN_BITS:
        raise WeakNewKey(
            f"{spec} is RSA-{enc.public.key_size}; at least RSA-{MIN_BITS} is required"
        )
    secret = any(k.secret for k in keys)
    if not secret and not public_only:
        raise NoPrivateHalf(obj=spec)
    label = f"OpenPGP key {enc.fingerprint} ({spec})"
    opts = (
        GpgOptions(key_file=Path(spec), passphrase=_passphrase(enc, ctx, label)) if secret else None
    )
    return NewKey(label, enc.public, None, enc.key_id, opts)


def _passphrase(enc: pgp.PgpKey, ctx: KeyContext, label: str) -> SecretProvider | None:
    """The provider of the passphrase of the new key's encryption secret key, asked now
    as an encrypted PEM's is (--key-passphrase-file or the prompt, once); None when that
    key is not protected (nothing is asked)."""
    if not enc.protected:
        return None
    if not (ctx.pem_passphrase and ctx.pem_passphrase()):
        # gpg --batch would ask an agent that has no way to get it, and fail as a wrong key.
        raise PassphraseNeeded(
            "its OpenPGP secret key is passphrase-protected; give its passphrase "
            "(--key-passphrase-file or the prompt)",
            obj=label,
        )
    return ctx.pem_passphrase


def _load_public(data: bytes, spec: str) -> rsa.RSAPublicKey:
    try:
        pub = (
            serialization.load_pem_public_key(data)
            if b"-----BEGIN" in data
            else serialization.load_der_public_key(data)
        )
    except (ValueError, TypeError):
        raise KeyUnavailable(f"{spec} is neither a private nor a public key") from None
    if not isinstance(pub, rsa.RSAPublicKey):
        raise WeakNewKey(f"{spec} is not an RSA key")
    return pub


def prove_possession(new: NewKey, padding_name: str) -> bool:
    """True once the private half decrypted a fresh challenge; False for a public-only
    key (nothing to prove with). Raises NoProofOfPossession on a wrong private half."""
    if new.gpg is not None:
        return _prove_with_gpg(new)
    if new.private is None:
        return False
    challenge = os.urandom(32)
    wrapped = wrap(new.public, padding_name, challenge)
    for cand in new.private.unwrap_candidates(wrapped):
        ok = hmac.compare_digest(bytes(cand.secret), challenge)
        cand.secret[:] = bytes(len(cand.secret))
        if ok:
            return True
    raise NoProofOfPossession(obj=new.label)


def _prove_with_gpg(new: NewKey) -> bool:
    """gpg, given the new OpenPGP secret key alone, decrypts a message built for it.

    Through the gpg reader that opens gpg backups (decrypt/gpg/reader.py): the key file
    imported into a private home, the passphrase on a pipe, gpg's environment, and its
    status read as for any backup, which tells a locked key from a wrong one."""
    assert new.gpg is not None
    challenge = os.urandom(32).hex().encode()
    message = pgp.challenge_message(new.key_id, new.public, challenge)
    plan = plan_decryption(message, new.gpg, None, obj=new.label)
    try:
        with plan.home as home:
            reader = GpgDecryptReader(
                BytesReader(message),
                home=home,
                passphrase=plan.passphrase,
                cancel=CancelToken(),
                obj=new.label,
            )
            try:
                got = b""
                while chunk := reader.read():
                    got += chunk
            finally:
                reader.close()
    except WrongPassphrase:
        raise WrongNewKeyPassphrase(
            "gpg: bad passphrase; nothing was written", obj=new.label
        ) from None
    except BackupFailed:  # a wrong key, or gpg refusing the message: not proved
        raise NoProofOfPossession(obj=new.label) from None
    if hmac.compare_digest(got, challenge):
        return True
    raise NoProofOfPossession(obj=new.label)
