#!/usr/bin/env python3
"""zstd decoders beside a busy Python thread (issue 17): which one lets decoding overlap.

``zstd_gil.py FILE.zst [--runs N] [--busy python|consumer|none,...]`` decodes FILE
with each candidate, alone and with another thread running beside it, and prints
wall time (best of ``--runs``), MB/s of output and how much the other thread got
done meanwhile (its loop count per second: a decoder that holds the GIL starves it,
one that releases it lets both run on two cores).

The other thread:

- ``python``: a pure-Python loop (holds the GIL except at the switch interval): the
  worst case for a decoder that has to take the GIL back after every call.
- ``consumer``: what Sealcheck's consumer thread does per plaintext MiB: SHA-256
  and the payload marks searched (bench/gil.py; ``bytes.find``/``count``, which hold
  the GIL, before payload/search.py).

Candidates: ``zstandard`` (stream_reader at several read sizes, decompressobj,
read_to_iter), ``backports.zstd`` (Python 3.14's ``compression.zstd``: the bz2-style
``ZstdDecompressor.decompress(data, max_length)``) at several output caps, and the
pipeline's own reader (``sealcheck.core.decompress.registry.open_decompressor``).
Every candidate's output is counted and must equal the others' (the bytes are not
kept: the point is the time).

``--probe``: instead, whether each candidate holds the GIL while it decodes, a
measure a busy machine blurs less than wall times: a probe thread wakes every
0.5 ms and records how long each wake-up took; while a decoder holds the GIL the
probe cannot run, so its worst gap and the share of the time spent in gaps over
10 ms grow to the length of the decoder's calls (a first line, the probe beside a
sleep, is the machine's own lateness).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from gil import Busy, busy_rate, gaps_during

MiB = 1 << 20


def _chunks(path: Path, size: int = MiB) -> Iterator[bytes]:
    with path.open("rb", buffering=0) as f:
        while b := f.read(size):
            yield b


def zstandard_stream_reader(path: Path, read: int) -> int:
    import zstandard

    dctx = zstandard.ZstdDecompressor(max_window_size=1 << 31)
    n = 0
    with path.open("rb") as f:
        r = dctx.stream_reader(f, read_size=MiB, read_across_frames=True)
        while b := r.read(read):
            n += len(b)
    return n


def zstandard_decompressobj(path: Path) -> int:
    import zstandard

    dctx = zstandard.ZstdDecompressor(max_window_size=1 << 31)
    obj = dctx.decompressobj(write_size=MiB, read_across_frames=True)
    n = 0
    for chunk in _chunks(path):
        n += len(obj.decompress(chunk))  # no output cap: one input MiB, all its output
    return n


def zstandard_read_to_iter(path: Path) -> int:
    import zstandard

    dctx = zstandard.ZstdDecompressor(max_window_size=1 << 31)
    n = 0
    with path.open("rb") as f:
        for b in dctx.read_to_iter(f, read_size=MiB, write_size=MiB):
            n += len(b)
    return n


def backports_zstd(path: Path, cap: int, feed: int = MiB) -> int:
    from backports import zstd

    d = zstd.ZstdDecompressor()
    n = 0
    pending = b""
    src = _chunks(path, feed)
    while True:
        if d.eof:
            pending = d.unused_data
            if not pending:
                pending = next(src, b"")
                if not pending:
                    return n
            d = zstd.ZstdDecompressor()
        if d.needs_input and not pending:
            pending = next(src, b"")
            if not pending:
                raise SystemExit("truncated")
        out = d.decompress(pending, cap)
        pending = b""
        n += len(out)


def pipeline_reader(path: Path) -> int:
    from stages import decompress  # bench/stages.py: the pipeline's own reader, read 1 MiB

    n: int = decompress(path)
    return n


CANDIDATES: dict[str, Callable[[Path], int]] = {
    "zstandard stream_reader read 1 MiB": lambda p: zstandard_stream_reader(p, MiB),
    "zstandard stream_reader read 4 MiB": lambda p: zstandard_stream_reader(p, 4 * MiB),
    "zstandard stream_reader read 16 MiB": lambda p: zstandard_stream_reader(p, 16 * MiB),
    "zstandard decompressobj (1 MiB in, uncapped)": zstandard_decompressobj,
    "zstandard read_to_iter": zstandard_read_to_iter,
    "backports.zstd cap 1 MiB": lambda p: backports_zstd(p, MiB),
    "backports.zstd cap 4 MiB": lambda p: backports_zstd(p, 4 * MiB),
    "backports.zstd cap 4 MiB, 4 MiB in": lambda p: backports_zstd(p, 4 * MiB, 4 * MiB),
    "sealcheck's reader (read 1 MiB)": pipeline_reader,
}


def probe(name: str, fn: Callable[[], object]) -> None:
    wall, gaps = gaps_during(fn)
    held = sum(g for g in gaps if g > 0.010) / wall
    print(f"{name:<46} {wall:6.2f}s  worst gap {max(gaps) * 1000:6.1f} ms  gaps>10ms {held:4.0%}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--busy", default="none,python,consumer")
    ap.add_argument("--only", help="candidates whose name contains this")
    ap.add_argument("--probe", action="store_true", help="GIL probe instead of busy threads")
    args = ap.parse_args()
    try:
        import backports.zstd  # noqa: F401  (a candidate, not a dependency of Sealcheck)
    except ImportError:
        print("backports.zstd not installed (pip install backports.zstd): its rows skipped")
        for name in [n for n in CANDIDATES if n.startswith("backports")]:
            del CANDIDATES[name]
    if args.probe:
        probe("(baseline: the probe beside a 1 s sleep)", lambda: time.sleep(1))
        for name, fn in CANDIDATES.items():
            if not args.only or args.only in name:
                probe(name, lambda fn=fn: fn(args.file))  # type: ignore[misc]
        return 0
    kinds = args.busy.split(",")
    rates = {k: busy_rate(k) for k in kinds if k != "none"}
    for k, r in rates.items():
        print(f"the {k} thread alone: {r:,.0f} loops/s")
    sizes: set[int] = set()
    print(f"{'candidate':<46} {'beside':<9} {'wall':>7} {'MB/s':>7} {'other thread':>13}")
    for name, fn in CANDIDATES.items():
        if args.only and args.only not in name:
            continue
        for kind in kinds:
            best = float("inf")
            other = 0.0
            for _ in range(args.runs):
                t0 = time.perf_counter()
                if kind == "none":
                    n = fn(args.file)
                    loops = 0
                else:
                    with Busy(kind) as b:
                        n = fn(args.file)
                    loops = b.loops
                wall = time.perf_counter() - t0
                if wall < best:
                    best = wall
                    other = loops / wall / rates[kind] if kind != "none" else 0.0
                sizes.add(n)
            share = f"{other:.0%} of alone" if kind != "none" else ""
            print(f"{name:<46} {kind:<9} {best:6.2f}s {n / best / 1e6:7.0f} {share:>13}")
            sys.stdout.flush()
    if len(sizes) != 1:
        raise SystemExit(f"the candidates disagree on the output size: {sorted(sizes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
