#!/usr/bin/env python3
"""AES decryption beside a busy Python thread (issue 17): does it hold the GIL?

``aes_gil.py [--mib N] [--runs N]`` decrypts N MiB (random ciphertext, in memory) with
AES-256-CBC and AES-256-CTR through ``cryptography`` and through libcrypto's EVP by
ctypes (``sealcheck.core.decrypt.openssl.evp``), in calls of 1 MiB (the pipeline's
chunk) and 64 MiB, and prints for each:

- CPU s per GiB, alone (``time.process_time``, best of ``--runs``);
- the probe: a thread that wakes every 0.5 ms; while the decrypting thread holds the
  GIL it cannot run (a thread that never lets go of the GIL by itself gives it up only
  when asked, after the 5 ms switch interval), so its worst gap and its lateness (the
  time beyond 1 ms past each 0.5 ms sleep, summed, per GiB decrypted) measure the time
  the GIL was held (a first line, the probe beside a 1 s sleep, is the machine's own
  lateness);
- a busy pure-Python thread beside the decryption: how much of its rate alone it kept
  (a decryptor that drops the GIL leaves it ~100 % on a free core).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

from gil import Busy, busy_rate, gaps_during

from sealcheck.core.decrypt.openssl.evp import CryptographyDecryptor, EvpDecryptor, libcrypto
from sealcheck.core.decrypt.openssl.header import CIPHERS_BY_NAME

MiB = 1 << 20


def decrypt_all(make: Callable[[], object], chunks: list[bytes]) -> None:
    dec = make()
    for c in chunks:
        dec.update(c)  # type: ignore[attr-defined]
    dec.finalize()  # type: ignore[attr-defined]


def probe(fn: Callable[[], object]) -> tuple[float, float, float]:
    """Wall, the probe's worst gap, and its lateness beyond 1 ms past each 0.5 ms
    sleep, summed: the time it waited for the GIL (and for a CPU: the baseline beside
    a sleep is the machine's share of it)."""
    wall, gaps = gaps_during(fn)
    return wall, max(gaps), sum(g - 0.0015 for g in gaps if g > 0.0015)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--calls", default="1,8,64", help="call sizes in MiB")
    args = ap.parse_args()
    lib = libcrypto()
    if lib is None:
        print("libcrypto could not be loaded: only cryptography's rows")
    data = os.urandom(args.mib * MiB)
    key, iv = bytearray(os.urandom(32)), bytearray(os.urandom(16))
    gib = len(data) / (1 << 30)
    base = probe(lambda: time.sleep(1))
    print(
        f"load average {os.getloadavg()[0]:.2f}; {args.mib} MiB; probe beside a 1 s sleep: "
        f"worst gap {base[1] * 1000:.1f} ms, late {base[2] * 1000:.0f} ms"
    )
    rates = {k: busy_rate(k) for k in ("python", "consumer")}
    print("busy threads alone: " + ", ".join(f"{k} {r:,.0f} loops/s" for k, r in rates.items()))
    print(
        "columns: cpu s/GiB alone | wall s/GiB alone | probe worst gap ms, probe late ms per"
        " GiB | beside a python / consumer thread: decrypt wall s/GiB, the thread's rate kept"
    )
    for cipher in ("aes-256-cbc", "aes-256-ctr"):
        spec = CIPHERS_BY_NAME[cipher]
        makers: dict[str, Callable[[], object]] = {
            "cryptography": lambda spec=spec: CryptographyDecryptor(spec, key, iv),  # type: ignore[misc]
        }
        if lib is not None:
            makers["EVP/ctypes"] = lambda spec=spec: EvpDecryptor(lib, spec, key, iv)  # type: ignore[misc]
        for call in (int(c) * MiB for c in args.calls.split(",")):
            mv = memoryview(data)
            chunks = [bytes(mv[i : i + call]) for i in range(0, len(data), call)]
            del mv
            for name, make in makers.items():
                cpu = wall = gap = held = float("inf")
                beside = {k: (float("inf"), 0.0) for k in rates}
                for _ in range(args.runs):
                    t0, c0 = time.perf_counter(), time.process_time()
                    decrypt_all(make, chunks)
                    cpu = min(cpu, time.process_time() - c0)
                    wall = min(wall, time.perf_counter() - t0)
                    _, worst, in_gaps = probe(lambda m=make, c=chunks: decrypt_all(m, c))  # type: ignore[misc]
                    gap, held = min(gap, worst), min(held, in_gaps)
                    for kind, rate in rates.items():
                        with Busy(kind) as b:
                            t0 = time.perf_counter()
                            decrypt_all(make, chunks)
                            w = time.perf_counter() - t0
                        if w < beside[kind][0]:
                            beside[kind] = (w, b.loops / w / rate)
                side = "  ".join(f"{w / gib:6.2f} {k:4.0%}" for w, k in beside.values())
                print(
                    f"{cipher} {name:<13} {call // MiB:>3} MiB  {cpu / gib:6.3f} {wall / gib:6.3f}"
                    f"  {gap * 1000:6.1f} {held * 1000 / gib:6.0f}   {side}"
                )
                sys.stdout.flush()

    return 0


if __name__ == "__main__":
    sys.exit(main())
