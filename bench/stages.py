#!/usr/bin/env python3
"""One stage of ``sealcheck verify``, alone, on a file: for bench.py's limit line.

``stages.py STAGE FILE [PASSFILE]`` reads FILE (page cache warm) in the pipeline's
chunks and does only that stage's work with the primitive the pipeline uses, then
prints ``{"wall": s, "cpu": s, "bytes": n}`` for the stage loop alone (interpreter
start-up and imports excluded):

- ``fetch``: read the object and SHA-256 it (the fetch thread)
- ``aes``: AES-256-CBC decryption of an ``openssl enc`` object, key and IV from
  EVP_BytesToKey-SHA256 of PASSFILE's first line (the decode thread, first half);
  ``aes-cryptography`` the same through cryptography instead of libcrypto (evp.py)
- ``decompress``: the decompressor Sealcheck picks for FILE, read to its end
  (the decode thread, second half)
- ``sha256``: SHA-256 of the plaintext (the consumer thread)
- ``inspect``: the payload inspector fed every plaintext byte (the consumer thread)
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sealcheck.core.decompress.registry import open_decompressor
from sealcheck.core.decrypt.openssl import evp
from sealcheck.core.decrypt.openssl.header import CIPHERS_BY_NAME, raw_params
from sealcheck.core.decrypt.openssl.kdf import evp_bytes_to_key
from sealcheck.core.decrypt.openssl.stream import DecryptReader
from sealcheck.core.payload.inspector import PayloadInspector
from sealcheck.core.plumbing.streams import CHUNK


def _chunks(path: Path) -> Callable[[Callable[[bytes], object]], int]:
    def each(fn: Callable[[bytes], object]) -> int:
        n = 0
        with path.open("rb", buffering=0) as f:
            while b := f.read(CHUNK):
                fn(b)
                n += len(b)
        return n

    return each


def fetch(path: Path) -> int:
    return _chunks(path)(hashlib.sha256().update)


sha256 = fetch  # the same work, on the plaintext


def inspect(path: Path) -> int:
    insp = PayloadInspector(obj=path.name)
    n = _chunks(path)(insp.feed)
    insp.finish()
    return n


def aes(path: Path, passfile: Path) -> int:
    secret = passfile.read_bytes().split(b"\n", 1)[0]
    with path.open("rb") as f:
        head = f.read(16)
        if head[:8] != b"Salted__":
            raise SystemExit(f"{path}: not a salted openssl enc object")
        km = evp_bytes_to_key(secret, head[8:16], "sha256", 48)
        params = raw_params(CIPHERS_BY_NAME["aes-256-cbc"], km[:32].hex(), km[32:].hex())
        dec = DecryptReader(f, params, obj=path.name)  # the pipeline's own reader
        n = 0
        while b := dec.read(CHUNK):
            n += len(b)
    return n


def decompress(path: Path) -> int:
    with path.open("rb") as f:
        head = f.read(512)
        f.seek(0)
        reader = open_decompressor(head, f, obj=path.name)
        n = 0
        try:
            while b := reader.read(CHUNK):
                n += len(b)
        finally:
            close = getattr(reader, "close", None)
            if close is not None:
                close()
    return n


def main() -> int:
    stage, path = sys.argv[1], Path(sys.argv[2])
    t0, c0 = time.perf_counter(), time.process_time()
    if stage in ("aes", "aes-cryptography"):
        evp.USE_LIBCRYPTO = stage == "aes"
        n = aes(path, Path(sys.argv[3]))
    else:
        n = {"fetch": fetch, "sha256": sha256, "inspect": inspect, "decompress": decompress}[stage](
            path
        )
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"wall": wall, "cpu": cpu, "bytes": n}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
