"""A ``gpg -e`` message's session key, as the user's gpg recovers it from the first bytes.

gpg is run with the user's OpenPGP key (a key file imported into a private home, or
their GNUPGHOME and its agent) on the object's first bytes only: it says
``SESSION_KEY`` on its status pipe before it reaches the end of the data. The key
counts only when its algorithm is one this code knows and it passes the quick check on
the data's first block (RFC 4880 §5.7). Used by key rotation (to add a recipient, and
to read a rotated object back) and by an audit campaign's coordinator (to give a worker
only that backup's session key, issue 15).

The secrets' path: the passphrase reaches gpg through a pipe, never argv or the
environment; its environment is ``reader.gpg_env``'s (PATH, HOME, LANG, GNUPGHOME,
LC_ALL=C); its stdout (plaintext) and stderr (which repeats the session key) are
dropped; the status buffer is wiped once read.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import PassphraseNeeded, WrongPassphrase
from ..secrets import GpgOptions
from . import packets as pgp
from .reader import (
    gpg_binary,
    gpg_env,
    gpg_home,
    passphrase_pipe,
    says_bad_passphrase,
    says_no_passphrase,
)


@dataclass(frozen=True, eq=False)
class RecoveredKey:
    """What gpg said: the key it used (``used_key``: DECRYPTION_KEY's key id, "?" when it
    named none) and the session key's symmetric algorithm and bytes. ``secret`` is the
    caller's to wipe; ``repr`` leaves it out."""

    used_key: str
    algo: int
    secret: bytearray = field(repr=False)


def session_key_with_gpg(
    message: pgp.Message, head: bytes, opts: GpgOptions
) -> RecoveredKey | None:
    """The session key of the message whose first bytes are ``head`` (binary packets,
    parsed as ``message``), proved on its first block; None when gpg gives none that
    opens it. When gpg holds the recipient's secret key but it stays locked, says why
    instead: WrongPassphrase (the passphrase given does not unlock it), PassphraseNeeded
    (a key file's protected key, and no passphrase given: nobody can type one into the
    private home's agent)."""
    exe = gpg_binary()
    status_r, status_w = os.pipe()
    with gpg_home(opts) as home:
        args = [exe, "--batch", "--no-tty", "--status-fd", str(status_w)]
        if home is not None:
            args += ["--homedir", str(home)]
        pw = opts.passphrase() if opts.passphrase else None
        fds = [status_w]
        pw_r = None
        if pw:
            pw_args, pw_r = passphrase_pipe(pw)
            args += pw_args
            fds.append(pw_r)
        # stdout (plaintext) and stderr (which repeats the session key) are dropped.
        proc = subprocess.Popen(
            [*args, "--show-session-key", "--decrypt"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=fds,
            env=gpg_env(),
        )
        os.close(status_w)
        if pw_r is not None:
            os.close(pw_r)
        try:
            assert proc.stdin is not None
            proc.stdin.write(head)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        with os.fdopen(status_r, "rb") as f:
            status = bytearray(f.read())
        proc.wait(timeout=120)
    try:
        found = _from_status(status, message, head)
        if found is None:
            _say_why_locked(status, passphrase_given=bool(pw), key_file=opts.key_file)
        return found
    finally:
        status[:] = bytes(len(status))


def _from_status(status: bytearray, message: pgp.Message, head: bytes) -> RecoveredKey | None:
    used = "?"
    found: tuple[int, bytearray] | None = None
    for line in bytes(status).split(b"\n"):
        parts = line.split()
        if len(parts) > 2 and parts[1] == b"DECRYPTION_KEY":
            used = parts[3].decode() if len(parts) > 3 else parts[2].decode()
        if len(parts) > 2 and parts[1] == b"SESSION_KEY":
            algo_s, _, hexkey = parts[2].partition(b":")
            if algo_s.isdigit():
                found = int(algo_s), bytearray(bytes.fromhex(hexkey.decode()))
    if found is None:
        return None
    algo, secret = found
    if not pgp.cipher_known(algo) or not pgp.quick_check(algo, secret, message, head):
        secret[:] = bytes(len(secret))
        return None
    return RecoveredKey(used, algo, secret)


def _say_why_locked(status: bytearray, *, passphrase_given: bool, key_file: Path | None) -> None:
    """Raise when gpg's status says the recipient's secret key was there but stayed
    locked (gpg found no session key; the SESSION_KEY line is not among these)."""
    lines = [
        ln[len(b"[GNUPG:] ") :].decode(errors="replace")
        for ln in bytes(status).split(b"\n")
        if ln.startswith(b"[GNUPG:] ") and b" SESSION_KEY " not in ln
    ]
    if any(says_bad_passphrase(ln) for ln in lines):
        raise WrongPassphrase(
            "the passphrase given for the OpenPGP secret key does not unlock it (gpg: bad "
            "passphrase)"
        )
    if (
        key_file is not None
        and not passphrase_given
        and any(says_no_passphrase(ln) for ln in lines)
    ):
        raise PassphraseNeeded(
            f"the OpenPGP secret key in {key_file} is passphrase-protected and no passphrase "
            "was given for it"
        )
