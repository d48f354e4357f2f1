"""AES-CBC/CTR decryption that lets the other pipeline threads run (issue 17).

``cryptography``'s ``update`` holds the GIL while it decrypts (a probe thread saw a
431 ms gap per 64 MiB), and the reader around it copied every plaintext chunk twice
to hold back the last block. Here the same OpenSSL EVP calls are made through ctypes
(``CDLL``, not ``PyDLL``), which drops the GIL for each foreign call, and each chunk
is decrypted straight into the bytes object handed on, after the block held back from
the chunk before (two calls into one output: no concatenation, no copy).
bench/aes_gil.py measures both ways.

The libcrypto used is the one of the major version Python's ``ssl`` is built with
(``libcrypto.so.3`` here), when it loads and has the calls; otherwise (a Python
without ssl, a machine without that library) ``cryptography`` decrypts, with the
same output and errors.

Both decryptors hand out plaintext as the caller needs it for the PKCS#7 check
(stream.py): ``update`` returns all but the last block seen so far (CBC; CTR returns
everything), and ``finalize`` returns that last block, padding still on, or raises ValueError
when the ciphertext is not a whole number of blocks (as cryptography's does).

Secrets: the key and IV go to libcrypto from the caller's bytearrays (no copy made
here, so the caller's wipe is the only one needed); the key schedule lives in the EVP
context, freed and cleansed (``EVP_CIPHER_CTX_free``) by ``finalize``, by ``close`` (the
pipeline's closers, when a run ends early) or when the decryptor is dropped.
"""

from __future__ import annotations

import ctypes
import functools
import sys
import threading
from typing import Any, Protocol

from ...plumbing.cbytes import address
from .header import BLOCK, CipherSpec

# libcrypto's int lengths: one call never gets more than this (a larger chunk is split).
_MAX_CALL = 1 << 30
_c_int_p = ctypes.POINTER(ctypes.c_int)


class AesDecryptor(Protocol):
    def update(self, data: bytes, /) -> bytes: ...

    def finalize(self) -> bytes: ...

    def close(self) -> None: ...


class _Lib:
    """The EVP calls used here, typed, from one loaded libcrypto."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        vp, ci = ctypes.c_void_p, ctypes.c_int
        self.version = _fn(lib.OpenSSL_version_num, ctypes.c_ulong, [])
        self.ctx_new = _fn(lib.EVP_CIPHER_CTX_new, vp, [])
        self.ctx_free = _fn(lib.EVP_CIPHER_CTX_free, None, [vp])
        self.init = _fn(lib.EVP_DecryptInit_ex, ci, [vp, vp, vp, vp, vp])
        self.set_padding = _fn(lib.EVP_CIPHER_CTX_set_padding, ci, [vp, ci])
        self.update = _fn(lib.EVP_DecryptUpdate, ci, [vp, vp, _c_int_p, vp, ci])
        self.clear_errors = _fn(lib.ERR_clear_error, None, [])
        self.by_name = _fn(lib.EVP_get_cipherbyname, vp, [ctypes.c_char_p])
        # OpenSSL 3: an explicit fetch (the legacy getter fetches again on each init).
        fetch = getattr(lib, "EVP_CIPHER_fetch", None)
        self.fetch = _fn(fetch, vp, [vp, ctypes.c_char_p, ctypes.c_char_p]) if fetch else None
        # The output is decrypted straight into a new bytes object, made the C API's way
        # (PyBytes_FromStringAndSize(NULL, n): "the contents are uninitialized", filled
        # by its creator before anyone else sees it), as cryptography does in Rust: no
        # buffer to copy out of, so nothing holds the GIL in proportion to the data.
        # (pythonapi is a PyDLL: this call holds the GIL, as it must.)
        self.new_bytes = _fn(
            ctypes.pythonapi.PyBytes_FromStringAndSize,
            ctypes.py_object,
            [ctypes.c_void_p, ctypes.c_ssize_t],
        )
        self.ciphers: dict[str, int] = {}

    def cipher(self, name: str) -> int:
        if name not in self.ciphers:
            ptr = self.fetch(None, name.encode(), None) if self.fetch else None
            ptr = ptr or self.by_name(name.encode())
            if not ptr:
                self.clear_errors()
                raise OSError(f"libcrypto has no {name}")
            self.ciphers[name] = ptr  # kept for the process's life: one per cipher
        return self.ciphers[name]


def _fn(f: Any, restype: Any, argtypes: list[Any]) -> Any:
    f.restype = restype
    f.argtypes = argtypes
    return f


def _ssl_major() -> int | None:
    """The major version of the OpenSSL that Python's own ``ssl`` is built with.

    Not cryptography's: its wheels carry their own OpenSSL, linked in statically
    with its symbols hidden (4.x here, where the system has 3.0), so it says
    nothing about which libcrypto can be loaded.
    """
    try:
        import _ssl  # the C module alone: ``ssl`` itself costs start-up time
    except ImportError:  # a Python without ssl: nothing to match
        return None
    return int(_ssl.OPENSSL_VERSION_INFO[0])


def _names(major: int) -> list[str]:
    """The library's versioned names for this major version (1.1 was the last 1.x
    with these calls). Never the unversioned ``libcrypto.so``/``.dylib``: it may be
    another version (a development link), and macOS's aborts the process that loads it."""
    ver = "1.1" if major == 1 else str(major)
    if sys.platform == "win32":
        v = ver.replace(".", "_")
        return [f"libcrypto-{v}-x64.dll", f"libcrypto-{v}.dll"]
    if sys.platform == "darwin":
        return [f"libcrypto.{ver}.dylib"]
    return [f"libcrypto.so.{ver}"]


# Tests only: False makes every decryption take cryptography's path (the fallback).
USE_LIBCRYPTO = True


def libcrypto() -> _Lib | None:
    """The libcrypto of ``ssl``'s major version, or None (then cryptography decrypts).

    ``_ssl`` is imported first, which loads the libcrypto it is linked with (the
    system's, or the copy a PyInstaller bundle carries), so the versioned name finds
    that very library rather than another copy."""
    return _load() if USE_LIBCRYPTO else None


@functools.cache
def _load() -> _Lib | None:
    major = _ssl_major()
    if major is None or major < 1:
        return None
    for name in _names(major):
        try:
            lib = _Lib(ctypes.CDLL(name))  # CDLL: each call drops the GIL
        except (OSError, AttributeError):  # not there, or without these calls
            continue
        if lib.version() >> 28 == major:  # 0xMNN00PP0L (3.x), 0x1010117f (1.1.1w)
            return lib
    return None


class EvpDecryptor:
    """One AES-CBC (no padding removal) or AES-CTR decryption through libcrypto.

    ``close`` may come from another thread than the one decrypting (the pipeline's
    closers run when a run ends, by error or cancel, while the decode thread may
    still be inside ``update``): a lock makes it wait for that call instead of
    freeing the context under it; an ``update`` after it raises ValueError.
    """

    def __init__(self, lib: _Lib, spec: CipherSpec, key: bytearray, iv: bytearray) -> None:
        self._lib = lib
        self._ctx: int | None = None  # first: __del__ runs even if this raises
        self._lock = threading.Lock()
        self._cbc = spec.mode == "cbc"
        self._tail = b""  # CBC: the last whole block seen and any partial one after it
        self._outl = ctypes.c_int(0)
        cipher = lib.cipher(spec.name)
        ctx = lib.ctx_new()
        if not ctx:
            raise OSError("EVP_CIPHER_CTX_new failed")
        self._ctx = ctx
        # The caller's bytearrays themselves, no copy (the caller wipes them once this
        # is made); EVP keeps the key schedule, which EVP_CIPHER_CTX_free cleanses.
        k = (ctypes.c_char * len(key)).from_buffer(key)
        v = (ctypes.c_char * len(iv)).from_buffer(iv)
        try:
            ok = lib.init(ctx, cipher, None, k, v) == 1 and lib.set_padding(ctx, 0) == 1
        finally:
            del k, v  # release the exports, or the caller's wipe could not resize them
        if not ok:
            self.close()
            lib.clear_errors()
            raise OSError(f"EVP_DecryptInit_ex failed for {spec.name}")

    def update(self, data: bytes, /) -> bytes:
        if len(data) > _MAX_CALL:
            mv = memoryview(data)
            return b"".join(
                self.update(bytes(mv[i : i + _MAX_CALL])) for i in range(0, len(data), _MAX_CALL)
            )
        with self._lock:
            if not self._cbc:
                return self._decrypt(b"", data, len(data))
            total = len(self._tail) + len(data)
            # Held back: the last whole block, and the partial one after it if any.
            keep = min(total, BLOCK + total % BLOCK)
            feed = total - keep
            if feed <= len(self._tail):  # a few bytes in: not worth two calls
                joined = self._tail + data
                out, self._tail = self._decrypt(b"", joined, feed), joined[feed:]
                return out
            out = self._decrypt(self._tail, data, feed - len(self._tail))
            self._tail = data[len(data) - keep :]
            return out

    def _decrypt(self, head: bytes, data: bytes, n: int) -> bytes:
        """Decrypt ``head`` then the first ``n`` bytes of ``data`` (a whole number of
        blocks in all for CBC) into a new bytes object, with the GIL released."""
        if self._ctx is None:
            raise ValueError("the decryption has ended")
        size = len(head) + n
        if not size:
            return b""
        # Whole blocks in, so exactly ``size`` bytes out: EVP keeps nothing back
        # without padding, and its buffer is empty between calls here.
        out: bytes = self._lib.new_bytes(None, size)
        base, done = address(out), 0
        for part, length in ((head, len(head)), (data, n)):
            if not length:
                continue
            if self._lib.update(self._ctx, base + done, self._outl, part, length) != 1:
                self._lib.clear_errors()
                raise ValueError("EVP_DecryptUpdate failed")
            done += self._outl.value
        if done != size:  # cannot happen with whole blocks; never hand out the rest unset
            raise ValueError(f"libcrypto returned {done} bytes for {size}")
        return out

    def finalize(self) -> bytes:
        try:
            with self._lock:
                if len(self._tail) % BLOCK:
                    raise ValueError("the ciphertext is not a whole number of blocks")
                tail, self._tail = self._tail, b""
                return self._decrypt(b"", tail, len(tail)) if tail else b""
        finally:
            self.close()

    def close(self) -> None:
        with self._lock:
            if self._ctx is not None:
                self._lib.ctx_free(self._ctx)  # cleanses the key schedule
                self._ctx = None

    def __del__(self) -> None:
        self.close()


class CryptographyDecryptor:
    """The same through ``cryptography`` (holds the GIL while it decrypts)."""

    def __init__(self, spec: CipherSpec, key: bytearray, iv: bytearray) -> None:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        mode = modes.CBC(bytes(iv)) if spec.mode == "cbc" else modes.CTR(bytes(iv))
        self._dec = Cipher(algorithms.AES(bytes(key)), mode).decryptor()
        self._cbc = spec.mode == "cbc"
        self._held = b""  # CBC: the last plaintext block, for the caller's padding check

    def update(self, data: bytes, /) -> bytes:
        pt = self._dec.update(data)
        if not self._cbc:
            return pt
        buf = self._held + pt if self._held else pt
        self._held = buf[-BLOCK:]
        return buf[:-BLOCK] if len(buf) > BLOCK else b""

    def finalize(self) -> bytes:
        last = self._held + self._dec.finalize()
        self._held = b""
        return last

    def close(self) -> None:
        pass  # the context is freed with the object


def aes_decryptor(spec: CipherSpec, key: bytearray, iv: bytearray) -> AesDecryptor:
    """libcrypto's EVP when it loads, else cryptography's (same output and errors)."""
    lib = libcrypto()
    if lib is not None:
        try:
            return EvpDecryptor(lib, spec, key, iv)
        except OSError:
            pass
    return CryptographyDecryptor(spec, key, iv)
