"""Make the physical backups bench/physical_bench.py reads (issue 16; a script).

A throwaway MariaDB (the tests' own fixture) is filled with ``--tables`` InnoDB tables
of ``--rows`` rows each, generated inside the server (``INSERT … SELECT`` from the
SEQUENCE engine: no client round trips), flushed to their files, then backed up by
Debian's ``mariabackup`` twice, plain and ``--compress`` (real qpress members). From
those, in bench/out/physical/ (git-ignored):

* ``cc.xbstream.gz.aes256``: ClusterControl's physical pipeline,
  ``mariabackup --stream=xbstream | gzip -6 | openssl enc -aes-256-cbc -pbkdf2``;
* ``apsara_qp.xb``: ApsaraDB's layout, an xbstream of ``NAME.qp.xbcrypt`` members
  (mariabackup's qpress members, each encrypted by the tests' independent xbcrypt
  encoder, v3, AES-256, 64 KiB chunks), streamed member by member.

    .venv/bin/python bench/physical_make.py [--rows 1000000] [--tables 4]
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import BinaryIO

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
OUT = REPO / "bench" / "out" / "physical"
KEY = b"percona_xtrabackup_is_awesome___"  # the tests' AES-256 xbcrypt key
PASS = "bench-passphrase-not-secret"

TABLE = """CREATE TABLE t{i} (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  name VARCHAR(64) NOT NULL, email VARCHAR(96) NOT NULL, note VARCHAR(255),
  amount DECIMAL(12,2), created DATETIME, KEY (email)) ENGINE=InnoDB;"""
FILL = """INSERT INTO t{i} SELECT seq, CONCAT('customer ', seq),
  CONCAT(LEFT(MD5(seq * {i}), 12 + seq % 9), '@example.com'),
  CONCAT('order ', SHA1(seq + {i}), ' lorem ipsum dolor sit amet ', seq % 97),
  (seq * 137 % 1000000) / 100, '2024-01-01' + INTERVAL seq MINUTE
  FROM seq_{lo}_to_{hi};"""


def fill(srv, rows: int, tables: int) -> None:
    srv.sql("SET GLOBAL innodb_buffer_pool_size=536870912;")
    srv.sql("CREATE DATABASE bench;")
    step = 250_000
    for i in range(1, tables + 1):
        srv.sql(TABLE.format(i=i), "bench")
        for lo in range(1, rows + 1, step):
            srv.sql(FILL.format(i=i, lo=lo, hi=min(lo + step - 1, rows)), "bench")
        print(f"  t{i}: {rows} rows", flush=True)


def _chunk(out: BinaryIO, path: str, payload: bytes | None, offset: int = 0) -> None:
    raw = path.encode()
    if payload is None:
        out.write(b"XBSTCK01\0E" + struct.pack("<I", len(raw)) + raw)
        return
    out.write(b"XBSTCK01\0P" + struct.pack("<I", len(raw)) + raw)
    out.write(struct.pack("<QQI", len(payload), offset, zlib.crc32(payload)) + payload)


def encrypt_members_streamed(src: Path, dst: Path, *, chunk: int = 64 * 1024) -> None:
    """What ``xtrabackup --compress --encrypt`` streams, one chunk at a time (the test
    fixture's whole-stream rewrite would hold GBs in memory)."""
    from fixtures.xbcrypt import encrypt_chunk

    pending: dict[str, bytearray] = {}
    written: dict[str, int] = {}
    with src.open("rb") as f, dst.open("wb") as out:

        def emit(path: str, data: bytes) -> None:
            enc = encrypt_chunk(data, KEY, 3)
            _chunk(out, path + ".xbcrypt", enc, written.get(path, 0))
            written[path] = written.get(path, 0) + len(enc)

        while head := f.read(14):
            assert head[:8] == b"XBSTCK01", head
            (plen,) = struct.unpack_from("<I", head, 10)
            path = f.read(plen).decode()
            buf = pending.setdefault(path, bytearray())
            if head[9:10] == b"E":
                if buf or path not in written:
                    emit(path, bytes(buf))
                _chunk(out, path + ".xbcrypt", None)
                del pending[path]
                continue
            n, _off, _crc = struct.unpack("<QQI", f.read(20))
            buf += f.read(n)
            while len(buf) >= chunk:
                emit(path, bytes(buf[:chunk]))
                del buf[:chunk]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows per table")
    ap.add_argument("--tables", type=int, default=4)
    args = ap.parse_args()

    from fixtures.databases import running_mariadb
    from fixtures.physical import _settle, gzip_openssl

    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with running_mariadb() as srv:
        print(f"MariaDB {srv.version}: filling {args.tables} x {args.rows} rows", flush=True)
        fill(srv, args.rows, args.tables)
        _settle(srv)
        print(f"  filled in {time.monotonic() - t0:.0f} s", flush=True)
        for name, extra in (("plain", []), ("compressed", ["--compress"])):
            p = OUT / f"{name}.xbstream"
            with p.open("wb") as f, (OUT / f"{name}.log").open("wb") as log:
                subprocess.run(srv.backup_cmd() + extra, stdout=f, stderr=log, check=True)
            print(f"  {p.name}: {p.stat().st_size / 2**20:.0f} MiB", flush=True)
    (OUT / "pass").write_text(PASS)
    (OUT / "xbcrypt.key").write_bytes(KEY)
    cc = gzip_openssl(OUT / "plain.xbstream", OUT / "cc.xbstream.gz.aes256", OUT / "pass")
    print(f"  {cc.name}: {cc.stat().st_size / 2**20:.0f} MiB", flush=True)
    apsara = OUT / "apsara_qp.xb"
    encrypt_members_streamed(OUT / "compressed.xbstream", apsara)
    print(f"  {apsara.name}: {apsara.stat().st_size / 2**20:.0f} MiB", flush=True)
    print(f"made in {time.monotonic() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
