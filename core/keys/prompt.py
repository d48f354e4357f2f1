"""Asking for a secret (a token PIN, a key's passphrase): asked once, never retried.

A token locks its user PIN after a few wrong tries (a YubiKey PIV after three),
and unblocking it needs a PUK that the person running a restore test may not
have. So every front end asks the same way, through :func:`secret_once`:

- the secret comes from a file when one is named, otherwise from the front end's
  :data:`SecretPrompt` (the CLI: getpass on a terminal; the GUI: its dialog);
- either is consulted at most once per provider; later calls get the same answer
  (or the same refusal) back, so no loop anywhere asks again after a wrong PIN;
- the answer lives in this closure's memory only, for as long as the key that
  holds the provider: nothing is written to disk, logged or put in a message.

A rejected PIN is not handed to that token again either: the login code
remembers which provider's PIN a token refused (``pkcs11/login.py``), and it
can, because one secret is one provider object here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

from ..errors import KeyUnavailable

SecretPrompt: TypeAlias = Callable[[str], bytes | None]
"""The front end's way to ask: the prompt text in, the secret out; None when the
user declined or there is no one to ask (no terminal)."""

SecretProvider: TypeAlias = Callable[[], bytes | None]
"""What a key is given: called when, and only if, the secret is needed."""


def read_secret_file(path: Path, what: str) -> bytes:
    """The secret held in ``path`` (trailing newlines removed); the message names the
    file, never its content."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyUnavailable(f"cannot read the {what} {path}: {exc.strerror}") from None
    return data.rstrip(b"\r\n")


class _Once:
    """One secret: fetched on the first call, the same answer on every later one.

    A plain object (not ``__slots__``) so the login code can hold it weakly."""

    def __init__(self, fetch: SecretProvider) -> None:
        self._fetch: SecretProvider | None = fetch
        self._answer: bytes | None = None

    def __call__(self) -> bytes | None:
        fetch, self._fetch = self._fetch, None
        if fetch is not None:
            # Dropped before asking: a prompt that raised (Ctrl-D at the terminal)
            # counts as asked, and gives None from then on.
            self._answer = fetch()
        return self._answer


def secret_once(
    text: str,
    prompt: SecretPrompt | None,
    *,
    file: Path | None = None,
    what: str = "secret file",
) -> SecretProvider:
    """A provider for one secret: ``file`` if given (``what`` names it in errors),
    else ``prompt(text)``; asked at most once, never retried (module docstring)."""
    if file is not None:
        path = file
        return _Once(lambda: read_secret_file(path, what))
    if prompt is None:
        return _Once(lambda: None)
    ask = prompt
    return _Once(lambda: ask(text))
