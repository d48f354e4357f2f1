"""openssl enc key derivation and the exact password bytes openssl used.

formats.md §2.2-2.5. The same secret reaches openssl in different ways, and
each way changes the password bytes:

* ``-pass pass:$(cmd)``: the shell drops NUL bytes and strips *all* trailing
  newlines from the command output;
* ``-pass file:F`` (also ``stdin``/``fd:``): only the bytes before the first
  ``\\n`` or ``\\0``, at most 1023 of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

KdfKind = Literal["evp", "pbkdf2", "raw"]


@dataclass(frozen=True)
class Kdf:
    kind: KdfKind
    digest: str = "sha256"
    iterations: int = 1

    def describe(self) -> str:
        if self.kind == "evp":
            return f"EVP_BytesToKey-{self.digest.upper()}"
        if self.kind == "pbkdf2":
            return f"PBKDF2-HMAC-{self.digest.upper()} ({self.iterations} iterations)"
        return "raw key and IV"

    @property
    def cost(self) -> int:
        return self.iterations if self.kind == "pbkdf2" else 1


@dataclass(frozen=True)
class PasswordForm:
    """How the producer handed the secret to openssl."""

    name: str  # "pass", "file", "raw"
    description: str


PASS_ARG = PasswordForm("pass", "-pass pass:$(…) (NULs dropped, trailing newlines stripped)")
PASS_FILE = PasswordForm("file", "-pass file: (up to the first newline, at most 1023 bytes)")
PASS_EITHER = PasswordForm(
    "either", "-pass pass:$(…) or -pass file: (both give the same bytes for this secret)"
)


def as_pass_arg(secret: bytes) -> bytes:
    return secret.replace(b"\0", b"").rstrip(b"\n")


def as_pass_file(secret: bytes) -> bytes:
    end = len(secret)
    for stop in (b"\n", b"\0"):
        i = secret.find(stop)
        if i != -1:
            end = min(end, i)
    return secret[: min(end, 1023)]


def password_candidates(
    secret: bytes, *, prefer_file: bool = False
) -> list[tuple[PasswordForm, bytes]]:
    """Distinct password byte strings the producer may have used, likeliest first.

    A secret kept in a file (a passphrase file) most likely reached openssl as
    ``-pass file:``; an unwrapped data key as either, ``pass:$(…)`` first.
    """
    out: list[tuple[PasswordForm, bytes]] = []
    forms = [(PASS_ARG, as_pass_arg(secret)), (PASS_FILE, as_pass_file(secret))]
    if prefer_file:
        forms.reverse()
    for form, pw in forms:
        if not pw:
            continue
        if any(pw == seen for _, seen in out):
            # Both readings agree: the data cannot tell which one the producer used.
            out = [(PASS_EITHER, seen) if seen == pw else (f, seen) for f, seen in out]
            continue
        out.append((form, pw))
    return out


def _md(name: str) -> hashlib._Hash:
    # MD5 here is openssl's key-derivation function, not a security control;
    # usedforsecurity=False keeps FIPS builds of Python from refusing it.
    return hashlib.new(name, usedforsecurity=False)


def evp_bytes_to_key(password: bytes, salt: bytes, digest: str, need: int) -> bytes:
    out = b""
    prev = b""
    while len(out) < need:
        h = _md(digest)
        h.update(prev + password + salt)
        prev = h.digest()
        out += prev
    return out[:need]


def derive(kdf: Kdf, password: bytes, salt: bytes, key_len: int, iv_len: int) -> bytes:
    need = key_len + iv_len
    if kdf.kind == "evp":
        return evp_bytes_to_key(password, salt, kdf.digest, need)
    if kdf.kind == "pbkdf2":
        return hashlib.pbkdf2_hmac(kdf.digest, password, salt, kdf.iterations, need)
    raise ValueError("raw keys are not derived")


# Tried in this order (formats.md §2.7): the cheap EVP variants first, then the
# PBKDF2 default, then the user's hint, then rarer choices.
COMMON_KDFS: tuple[Kdf, ...] = (
    Kdf("evp", "sha256"),
    Kdf("evp", "md5"),
    Kdf("pbkdf2", "sha256", 10000),
    Kdf("evp", "sha1"),
)
EXTRA_PBKDF2_ITERATIONS = (1000, 20000, 50000, 100000, 200000, 310000, 600000)


def kdf_candidates(pbkdf2_iter: int | None = None, *, exhaustive: bool = True) -> list[Kdf]:
    kdfs = list(COMMON_KDFS)
    if pbkdf2_iter:
        for digest in ("sha256", "sha512", "sha1"):
            k = Kdf("pbkdf2", digest, pbkdf2_iter)
            if k not in kdfs:
                kdfs.insert(3, k) if digest == "sha256" else kdfs.append(k)
    if exhaustive:
        kdfs.append(Kdf("pbkdf2", "sha512", 10000))
        kdfs.append(Kdf("pbkdf2", "sha1", 10000))
        for it in EXTRA_PBKDF2_ITERATIONS:
            for digest in ("sha256", "sha512"):
                k = Kdf("pbkdf2", digest, it)
                if k not in kdfs:
                    kdfs.append(k)
    return kdfs
