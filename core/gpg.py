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

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import (
    IntegrityError,
    KeyUnavailable,
    Layer,
    MissingTool,
    TruncatedBackup,
    WrongKey,
)
from .progress import CancelToken
from .streams import CHUNK, Reader


@dataclass(frozen=True)
class GpgOptions:
    key_file: Path | None = None  # an exported secret key (armored or binary)
    homedir: Path | None = None  # an existing GNUPGHOME (the user's agent, smart cards)
    passphrase: Callable[[], bytes | None] | None = None


def gpg_binary() -> str:
    exe = shutil.which("gpg") or shutil.which("gpg2")
    if not exe:
        raise MissingTool("gpg is needed for OpenPGP backups (install the gnupg package)")
    return exe


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
    home = Path(tempfile.mkdtemp(prefix="sealcheck-gnupg-", dir=_private_tmp_root()))
    os.chmod(home, 0o700)
    try:
        proc = subprocess.run(
            [exe, "--batch", "--no-tty", "--homedir", str(home), "--import"],
            input=key_bytes,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if proc.returncode not in (0, 2):
            raise KeyUnavailable(f"gpg could not import {opts.key_file}")
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


@dataclass
class GpgResult:
    recipients: list[str] = field(default_factory=list)
    missing_keys: list[str] = field(default_factory=list)
    used_key: str | None = None
    status: list[str] = field(default_factory=list)
    cipher: str | None = None
    mdc: bool = False


class GpgDecryptReader:
    def __init__(
        self,
        upstream: Reader,
        *,
        home: Path | None,
        passphrase: bytes | None,
        cancel: CancelToken,
        obj: str | None = None,
    ) -> None:
        self._obj = obj
        self._cancel = cancel
        self.result = GpgResult()
        exe = gpg_binary()
        status_r, status_w = os.pipe()
        args = [exe, "--batch", "--no-tty", "--status-fd", str(status_w), "--decrypt"]
        pass_fds = [status_w]
        pw_r = pw_w = None
        if home is not None:
            args[1:1] = ["--homedir", str(home)]
        if passphrase:
            pw_r, pw_w = os.pipe()
            args[1:1] = ["--pinentry-mode", "loopback", "--passphrase-fd", str(pw_r)]
            pass_fds.append(pw_r)
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "GNUPGHOME")}
        env["LC_ALL"] = "C"
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=pass_fds,
            env=env,
        )
        os.close(status_w)
        if pw_r is not None and pw_w is not None:
            os.close(pw_r)
            with os.fdopen(pw_w, "wb") as f:
                f.write(passphrase or b"")
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
        words = {line.split()[0] for line in st if line}
        if rc == 0 and "DECRYPTION_OKAY" in words and "BADMDC" not in words:
            return
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
