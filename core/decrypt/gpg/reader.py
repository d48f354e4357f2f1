"""OpenPGP (``gpg -e``) decryption through the gpg binary, streaming.

The gpg binary, not a Python OpenPGP library, because it is what produced the
backups and what reaches gpg-agent, pinentry and OpenPGP smart cards, and it
handles every packet version the producer's gpg may have written (formats.md
§4). gpg writes plaintext *before* it has checked the MDC at the end, so its
exit status and status lines are the verdict, enforced in :meth:`finish`.

A key given as a file is imported into a private GNUPGHOME created on a
memory-backed file system when there is one (/dev/shm), so an unprotected
secret key is never written to disk; the home and its agent are destroyed
afterwards. Passphrases go through a pipe (``--passphrase-fd``), never argv
or the environment.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import (
    IntegrityError,
    KeyUnavailable,
    Layer,
    MissingTool,
    PassphraseNeeded,
    TruncatedBackup,
    WrongKey,
    WrongPassphrase,
)
from ...plumbing.progress import CancelToken
from ...plumbing.streams import CHUNK, Reader
from ..secrets import GpgOptions

if TYPE_CHECKING:
    from .session import GpgSessionKey


def gpg_binary() -> str:
    exe = shutil.which("gpg") or shutil.which("gpg2")
    if not exe:
        raise MissingTool("gpg is needed for OpenPGP backups (install the gnupg package)")
    return exe


def gpg_env() -> dict[str, str]:
    """gpg's environment: what finds it, its home and its locale's name, with C messages
    (its status lines are parsed here). Nothing else of ours, so no secret can ride in it."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "GNUPGHOME")}
    env["LC_ALL"] = "C"
    return env


def passphrase_pipe(passphrase: bytes | bytearray) -> tuple[list[str], int]:
    """gpg's options to read a secret key's passphrase from a pipe, and the pipe's read
    end: give it to gpg (``pass_fds``), then close it. Never argv, the environment or a
    file. The passphrase is written now, before gpg starts: a line, far below what a pipe
    holds; the write end is non-blocking so an absurdly long one cannot hang us (gpg
    reads its first line only)."""
    r, w = os.pipe()
    try:
        os.set_blocking(w, False)
        with contextlib.suppress(BlockingIOError):
            os.write(w, passphrase)
    finally:
        os.close(w)
    return ["--pinentry-mode", "loopback", "--passphrase-fd", str(r)], r


# libgpg-error numbers: the low 16 bits are the code, bits 24-30 the component that
# raised it. A secret key's passphrase: gpg-agent says "bad passphrase" (code 11); when
# nobody gave one, the pinentry it started fails (component 5), there is no pinentry
# (85), it failed or was cancelled (86, 99), or no passphrase came (177).
_ERR_BAD_PASSPHRASE = 11
_SOURCE_PINENTRY = 5
_ERR_NO_PASSPHRASE = frozenset({85, 86, 99, 177})


def _pkdecrypt_error(line: str) -> int | None:
    """The error number of gpg's ``ERROR pkdecrypt_failed N`` status line, else None."""
    parts = line.split()
    if len(parts) > 2 and parts[:2] == ["ERROR", "pkdecrypt_failed"] and parts[2].isdigit():
        return int(parts[2])
    return None


def says_bad_passphrase(line: str) -> bool:
    """A status line (without ``[GNUPG:]``) saying the passphrase given does not unlock a
    secret key: BAD_PASSPHRASE (older gpg), or gpg 2.2's ``ERROR pkdecrypt_failed`` with
    the agent's bad-passphrase code (it writes no BAD_PASSPHRASE then)."""
    if line.split()[:1] == ["BAD_PASSPHRASE"]:
        return True
    err = _pkdecrypt_error(line)
    return err is not None and err & 0xFFFF == _ERR_BAD_PASSPHRASE


def says_no_passphrase(line: str) -> bool:
    """A status line saying a secret key stayed locked because no passphrase reached
    gpg (its agent could not ask for one: no terminal, no pinentry, a private home)."""
    err = _pkdecrypt_error(line)
    return err is not None and (
        (err >> 24) & 0x7F == _SOURCE_PINENTRY or err & 0xFFFF in _ERR_NO_PASSPHRASE
    )


def _private_tmp_root() -> str | None:
    # Memory-backed, so an imported secret key never reaches a disk; the
    # folder itself is created 0700 by mkdtemp.
    shm = Path("/dev/shm")  # noqa: S108
    if shm.is_dir() and os.access(shm, os.W_OK):
        return str(shm)
    return None


@contextlib.contextmanager
def gpg_home(opts: GpgOptions) -> Iterator[Path | None]:
    """Yield the GNUPGHOME to use: the user's, or a private one holding key_file."""
    if opts.key_file is None:
        yield opts.homedir
        return
    exe = gpg_binary()
    try:
        key_bytes = opts.key_file.read_bytes()
    except OSError as exc:
        raise KeyUnavailable(
            f"cannot read the gpg key file {opts.key_file}: {exc.strerror}"
        ) from None
    with private_home() as home:
        proc = subprocess.run(
            [exe, "--batch", "--no-tty", "--homedir", str(home), "--import"],
            input=key_bytes,
            capture_output=True,
            timeout=60,
            check=False,
            env=gpg_env(),
        )
        if proc.returncode not in (0, 2):
            raise KeyUnavailable(f"gpg could not import {opts.key_file}")
        yield home


@contextlib.contextmanager
def private_home() -> Iterator[Path]:
    """An empty GNUPGHOME of our own, destroyed with its agent afterwards.

    Symmetric backups are opened in one too: the user's agent may hold a
    cached passphrase for the same S2K salt, which would open the backup
    whatever the passphrase file says and hide a wrong file."""
    home = Path(tempfile.mkdtemp(prefix="sealcheck-gnupg-", dir=_private_tmp_root()))
    os.chmod(home, 0o700)
    try:
        yield home
    finally:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["gpgconf", "--homedir", str(home), "--kill", "all"],
                capture_output=True,
                timeout=10,
                check=False,
            )
        shutil.rmtree(home, ignore_errors=True)


# OpenPGP packet tags (RFC 4880 §4.3) that may open a message.
_PKESK, _SKESK, _MARKER = 1, 3, 10


@dataclass(frozen=True)
class SessionKeyPackets:
    """How an OpenPGP message's session key can be recovered, read from its first packets."""

    public_key: int = 0  # PKESK: encrypted to a key pair (gpg -e)
    passphrase: int = 0  # SKESK: derived from a passphrase (gpg -c / --symmetric)

    @property
    def symmetric_only(self) -> bool:
        return self.passphrase > 0 and self.public_key == 0


def session_key_packets(head: bytes) -> SessionKeyPackets:
    """Count the session-key packets before the encrypted data (binary or armored).

    Read from the object's first bytes, before anything is downloaded, so a
    passphrase-only backup asks for --passphrase-file instead of gpg asking an
    agent that never gets Sealcheck's secret.
    """
    data = dearmor_head(head) if head.startswith(b"-----BEGIN PGP") else head
    counts = {_PKESK: 0, _SKESK: 0}
    pos = 0
    while pos < len(data):
        parsed = _packet_header(data, pos)
        if parsed is None:
            break
        tag, body_start, body_len = parsed
        if tag not in (_PKESK, _SKESK, _MARKER):
            break  # the encrypted data itself: no more session-key packets
        if tag in counts:
            counts[tag] += 1
        pos = body_start + body_len
    return SessionKeyPackets(public_key=counts[_PKESK], passphrase=counts[_SKESK])


def _packet_header(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(tag, body offset, body length) of the packet at pos; None when unreadable."""
    b0 = data[pos]
    if not b0 & 0x80:
        return None
    if not b0 & 0x40:  # old format: length type in the low two bits
        tag, ltype = (b0 >> 2) & 0x0F, b0 & 0x03
        if ltype == 3:
            return None  # indeterminate length: never a session-key packet
        n = (1, 2, 4)[ltype]
        if pos + 1 + n > len(data):
            return None
        return tag, pos + 1 + n, int.from_bytes(data[pos + 1 : pos + 1 + n], "big")
    tag = b0 & 0x3F
    if pos + 2 > len(data):
        return None
    l0 = data[pos + 1]
    if l0 < 192:
        return tag, pos + 2, l0
    if l0 < 224:
        if pos + 3 > len(data):
            return None
        return tag, pos + 3, ((l0 - 192) << 8) + data[pos + 2] + 192
    if l0 == 255 and pos + 6 <= len(data):
        return tag, pos + 6, int.from_bytes(data[pos + 2 : pos + 6], "big")
    return None  # partial body lengths: encrypted data, not a session-key packet


def dearmor_head(head: bytes) -> bytes:
    """The binary start of an ASCII-armored message (as much as the head holds)."""
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    try:
        blank = lines.index(b"", 1)  # armor headers ("Comment: ...") end at a blank line
    except ValueError:
        return b""
    text = b""
    for line in lines[blank + 1 :]:
        line = line.strip()
        if not line or line.startswith((b"=", b"-----")):
            break
        text += line
    text = text[: len(text) - len(text) % 4]
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        return b""


@dataclass
class GpgPlan:
    """How to run gpg on one message: which home, which passphrase, which kind."""

    home: contextlib.AbstractContextManager[Path | None]
    passphrase: bytes | bytearray | None
    symmetric: bool
    # A session key recovered on a campaign's coordinator (session.py): gpg takes it
    # instead of unwrapping one, in an empty home.
    session: GpgSessionKey | None = None


def plan_decryption(
    head: bytes,
    opts: GpgOptions | None,
    passphrase: bytearray | None,
    obj: str | None = None,
    session: GpgSessionKey | None = None,
) -> GpgPlan:
    """Decide from the message's first packets how gpg must be run.

    A passphrase-encrypted message (``gpg --symmetric``) gets the user's
    --passphrase-file through a pipe in a private home; a message encrypted to
    a key pair goes to the key the user gave (or their own GNUPGHOME). With no
    passphrase for a passphrase-only message, gpg would ask an agent that has
    no way to get it and fail as if the data were bad: say what to give instead.
    A session key given for this very message (a campaign's worker) is used alone.
    """
    esk = session_key_packets(head)
    if session is not None:
        if not (esk.public_key and session.fits(head)):
            # Never this machine's own GNUPGHOME instead: the campaign runs it again
            # on the coordinator (a key-layer failure).
            raise WrongKey(
                "the session key sent for this backup was recovered from other session-key "
                "packets than its own",
                obj=obj,
            )
        return GpgPlan(private_home(), None, symmetric=False, session=session)
    if esk.passphrase and passphrase is not None:
        first_line = bytes(passphrase).split(b"\n", 1)[0]
        if not first_line.strip(b"\r"):
            raise KeyUnavailable("the passphrase file is empty (gpg reads its first line)", obj=obj)
        return GpgPlan(private_home(), passphrase, symmetric=True)
    if esk.symmetric_only:
        raise KeyUnavailable(
            "it is encrypted with gpg --symmetric (a passphrase, no key pair): give the "
            "passphrase in a file with --passphrase-file FILE",
            obj=obj,
        )
    opts = opts or GpgOptions()
    pw = opts.passphrase() if opts.passphrase else None
    return GpgPlan(gpg_home(opts), pw, symmetric=False)


@dataclass
class GpgResult:
    recipients: list[str] = field(default_factory=list)
    missing_keys: list[str] = field(default_factory=list)
    used_key: str | None = None
    status: list[str] = field(default_factory=list)
    cipher: str | None = None
    mdc: bool = False
    aead: bool = False  # OpenPGP AEAD (OCB/EAX) chunks, whose tags gpg checked
    symmetric: bool = False  # the session key came from a passphrase (S2K)
    s2k: str | None = None  # "cipher 9, S2K mode 3, hash 2" from NEED_PASSPHRASE_SYM


class GpgDecryptReader:
    def __init__(
        self,
        upstream: Reader,
        *,
        home: Path | None,
        passphrase: bytes | bytearray | None,
        cancel: CancelToken,
        obj: str | None = None,
        symmetric: bool = False,
        session: GpgSessionKey | None = None,
    ) -> None:
        self._obj = obj
        self._cancel = cancel
        self._symmetric = symmetric
        self.result = GpgResult(symmetric=symmetric)
        exe = gpg_binary()
        status_r, status_w = os.pipe()
        args = [exe, "--batch", "--no-tty", "--status-fd", str(status_w), "--decrypt"]
        if symmetric:
            # Nothing of the passphrase stays in the agent after the run.
            args[1:1] = ["--no-symkey-cache"]
        pass_fds = [status_w]
        if home is not None:
            args[1:1] = ["--homedir", str(home)]
        pw_r = None
        if passphrase:
            pw_args, pw_r = passphrase_pipe(passphrase)
            args[1:1] = pw_args
            pass_fds.append(pw_r)
        sk_r = sk_w = None
        if session is not None:
            # On a pipe, never argv or the environment (gpg's --override-session-key
            # would show it to every process).
            sk_r, sk_w = os.pipe()
            args[1:1] = ["--override-session-key-fd", str(sk_r)]
            pass_fds.append(sk_r)
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=pass_fds,
            env=gpg_env(),
        )
        os.close(status_w)
        if pw_r is not None:
            os.close(pw_r)
        if sk_r is not None and sk_w is not None and session is not None:
            os.close(sk_r)
            line = session.line()
            try:
                with os.fdopen(sk_w, "wb") as f:
                    f.write(line)
            finally:
                line[:] = bytes(len(line))
        self._status_lines: list[str] = []
        self._stderr = b""
        self._feed_error: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._feed, args=(upstream,), daemon=True),
            threading.Thread(target=self._read_status, args=(status_r,), daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._threads:
            t.start()
        self._done = False

    def _feed(self, upstream: Reader) -> None:
        assert self._proc.stdin is not None
        try:
            while True:
                data = upstream.read(CHUNK)
                if not data:
                    break
                self._proc.stdin.write(data)
        except BrokenPipeError:
            pass  # gpg stopped reading: its status says why
        except BaseException as exc:  # noqa: BLE001 - re-raised in the reader thread
            self._feed_error = exc
            self._proc.kill()
        finally:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()

    def _read_status(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as f:
            for line in f:
                if line.startswith(b"[GNUPG:] "):
                    self._status_lines.append(line[9:].decode(errors="replace").strip())

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            if line.startswith(b"gpg: DBG:"):
                continue  # with an overridden session key gpg prints it there ("seskey")
            if line.startswith(b"gpg: keybox '") and line.rstrip().endswith(b"' created"):
                continue  # an empty home of ours: not what went wrong
            self._stderr = (self._stderr + line)[-4096:]

    def read(self, n: int = -1, /) -> bytes:
        if self._done:
            return b""
        assert self._proc.stdout is not None
        if self._cancel.cancelled:
            self.close()
            self._cancel.check()
        # os.read returns as soon as gpg has written anything (no 8 KiB refill loop).
        data = os.read(self._proc.stdout.fileno(), n if n > 0 else CHUNK)
        if data:
            return data
        self._done = True
        self._finish()
        return b""

    def _finish(self) -> None:
        rc = self._proc.wait()
        for t in self._threads:
            t.join(timeout=10)
        if self._feed_error is not None:
            raise self._feed_error
        st = self._status_lines
        res = self.result
        res.status = st
        for line in st:
            parts = line.split()
            if parts[0] == "ENC_TO" and len(parts) > 1:
                res.recipients.append(parts[1])
            elif parts[0] == "NO_SECKEY" and len(parts) > 1:
                res.missing_keys.append(parts[1])
            elif parts[0] == "DECRYPTION_KEY" and len(parts) > 2:
                res.used_key = parts[2]
            elif parts[0] == "GOODMDC":
                res.mdc = True
            elif parts[0] == "DECRYPTION_INFO" and len(parts) > 2:
                res.cipher = f"mdc={parts[1]} sym={parts[2]}"
                # A third field names an AEAD algorithm (RFC 4880bis); 0 or absent: none.
                res.aead = len(parts) > 3 and parts[3] != "0"
            elif parts[0] == "NEED_PASSPHRASE_SYM" and len(parts) > 3:
                res.symmetric = True
                res.s2k = f"cipher {parts[1]}, S2K mode {parts[2]}, hash {parts[3]}"
        words = {line.split()[0] for line in st if line}
        if rc == 0 and "DECRYPTION_OKAY" in words and "BADMDC" not in words:
            return
        if self._symmetric and any("BAD_PASSPHRASE" in line for line in st):
            # gpg checks the passphrase-derived key against the first bytes of the
            # encrypted data (the quick check) before anything else is decrypted.
            raise WrongKey(
                "the passphrase from --passphrase-file does not open this gpg --symmetric "
                "backup (gpg: bad passphrase): it was encrypted with another passphrase (or "
                "the start of the backup, where gpg checks the passphrase, is damaged)",
                obj=self._obj,
            )
        # The key is there but stays locked: not a wrong key, nor damaged data.
        if not self._symmetric and any(says_bad_passphrase(line) for line in st):
            raise WrongPassphrase(
                "the passphrase given for the OpenPGP secret key does not unlock it (gpg: "
                "bad passphrase)",
                obj=self._obj,
            )
        if not self._symmetric and any(says_no_passphrase(line) for line in st):
            raise PassphraseNeeded(
                "the OpenPGP secret key that opens it is passphrase-protected and no "
                "passphrase reached gpg (its agent could not ask for one)",
                obj=self._obj,
            )
        if res.recipients and set(res.missing_keys) >= set(res.recipients):
            raise WrongKey(
                "none of the recipients' secret keys is available: it was encrypted to "
                + ", ".join(res.recipients),
                obj=self._obj,
            )
        if "BADMDC" in words or "DECRYPTION_FAILED" in words:
            raise IntegrityError(
                "OpenPGP decryption failed (modification detection or data error): "
                + self._stderr_summary(),
                obj=self._obj,
                layer=Layer.CIPHER,
            )
        if "NODATA" in words:
            raise TruncatedBackup(
                "no valid OpenPGP data: " + self._stderr_summary(),
                obj=self._obj,
                layer=Layer.CIPHER,
            )
        raise IntegrityError(
            f"gpg failed (exit {rc}): " + self._stderr_summary(), obj=self._obj, layer=Layer.CIPHER
        )

    def _stderr_summary(self) -> str:
        lines = [ln for ln in self._stderr.decode(errors="replace").splitlines() if ln.strip()]
        return "; ".join(lines[-3:]) or "no message"

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
