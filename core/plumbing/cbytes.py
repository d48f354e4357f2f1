"""A bytes object's own buffer, for the C calls made through ctypes (which drop the
GIL around each call: payload/search.py, decrypt/openssl/evp.py)."""

from __future__ import annotations

import ctypes


def address(buf: bytes) -> int:
    """The address of ``buf``'s bytes (no copy); valid while the caller holds ``buf``."""
    addr = ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p).value
    assert addr is not None
    return addr
