"""Turn a source's KeyChoice into core Secrets for one job, on the GUI thread.

Keys are opened once per session and kept (an encrypted PEM or a token asks
for its passphrase or PIN once, not per job: core's ``secret_once``, the rule the
CLI follows too); a passphrase *file* is read fresh for every job because core
wipes the bytes when the job ends.
Invariant: a PIN or passphrase typed here lives only in the provider handed to
core for the key that asked for it, and is never written anywhere.
"""

from __future__ import annotations

from pathlib import Path

from sealcheck.core.decrypt.secrets import GpgOptions, Secrets
from sealcheck.core.errors import KeyUnavailable
from sealcheck.core.keys.base import KeySource, close_key
from sealcheck.core.keys.prompt import SecretPrompt, secret_once
from sealcheck.core.keys.spec import KeyContext, open_key

from .settings import KeyChoice


class KeySession:
    def __init__(self, ask_passphrase: SecretPrompt, ask_pin: SecretPrompt) -> None:
        # The window's dialogs: prompt -> secret, or None if the user declined.
        self._ask_passphrase = ask_passphrase
        self._ask_pin = ask_pin
        self._keys: dict[tuple[str, str | None], KeySource] = {}

    def forget(self) -> None:
        """Drop every key opened so far and close each: a token key's session ends, and
        with it the token's login (logins are per process and token, so a key still
        held by a job would otherwise keep the token unlocked for anyone in this
        process). The next use opens the key anew, asking for its PIN or passphrase."""
        keys, self._keys = list(self._keys.values()), {}
        for key in keys:
            close_key(key)

    def _key(self, spec: str, module: str | None) -> KeySource:
        cached = self._keys.get((spec, module))
        if cached is not None:
            return cached
        # Asked at most once for this key, never retried (a retry would lock a token).
        ctx = KeyContext(
            pem_passphrase=secret_once(f"Passphrase for the key {spec}", self._ask_passphrase),
            pin=secret_once(f"PIN of the token holding {spec}", self._ask_pin),
            pkcs11_module=module,
        )
        key = open_key(spec, ctx)
        self._keys[(spec, module)] = key
        return key

    def secrets(self, choice: KeyChoice) -> Secrets:
        if choice.empty:
            raise KeyUnavailable("no key is set for this source: add one on the Keys page")
        keys = [self._key(s, choice.pkcs11_module) for s in choice.key_specs]
        passphrase = None
        if choice.passphrase_file:
            try:
                passphrase = bytearray(Path(choice.passphrase_file).read_bytes())
            except OSError as exc:
                raise KeyUnavailable(
                    f"cannot read the passphrase file {choice.passphrase_file}: {exc.strerror}"
                ) from None
        gpg = GpgOptions(key_file=Path(choice.gpg_key_file)) if choice.gpg_key_file else None
        return Secrets(keys=keys, passphrase=passphrase, gpg=gpg)
