"""Physical-backup verify against the shell pipeline a user would type (issue 16;
a script, not a timed test). Reads what bench/physical_make.py made in
bench/out/physical/ (a ~1 GiB mariabackup backup of generated InnoDB tables).

ClusterControl's layout (``mariabackup --stream=xbstream | gzip -6 | openssl enc``):

* Sealcheck: ``sealcheck verify cc.xbstream.gz.aes256 --passphrase-file pass``
  (decrypt → gunzip → every xbstream chunk CRC → completeness → innochecksum of
  every tablespace, streamed, nothing extracted but the system tablespace);
* pipeline: ``openssl enc -d … | gzip -dc | mbstream -x -C DIR``, then
  ``innochecksum`` on every tablespace (``*.ibd``, ``ibdata*``, ``undo*``) of DIR.

ApsaraDB's layout (xbstream of ``NAME.qp.xbcrypt`` members): no packaged tool
here decrypts xbcrypt or decodes qpress (Percona's xbstream/xbcrypt/qpress are not
in Debian; mariabackup --decompress needs the qpress binary), so its pipeline
cannot be run. Its lower bound is given instead: ``mbstream -x`` of the stream
(no decryption, no decompression) plus the pipeline's own innochecksum time.

Runs alternate (Sealcheck, pipeline, Sealcheck, …); medians are reported with
each side's peak RSS (the largest process of its tree, from wait4), and the load
average before and after. The extraction folder is removed between runs, untimed.

    .venv/bin/python bench/physical_make.py --rows 1000000 --tables 4
    .venv/bin/python bench/physical_bench.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "physical"
SEALCHECK = Path(sys.executable).parent / "sealcheck"
SPACES = r"\( -name '*.ibd' -o -name 'ibdata*' -o -name 'undo[0-9]*' \)"


def timed(cmd: list[str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the whole process tree, peak RSS in MiB of its
    largest process). On a loaded machine the CPU time is the steadier figure."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(p.pid, 0)
    dt = time.monotonic() - t0
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {cmd}\n{err[-2000:]}")
    return dt, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024


def sealcheck(path: Path, *args: str) -> tuple[float, float, int]:
    return timed([str(SEALCHECK), "verify", str(path), "--no-history", *args])


def pipeline(work: Path) -> tuple[float, float, float, float, int]:
    """(extract s, innochecksum s, extract CPU s, innochecksum CPU s, peak RSS MiB)."""
    d = work / "x"
    d.mkdir()
    extract = (
        f"openssl enc -d -aes-256-cbc -pbkdf2 -pass file:{OUT / 'pass'} "
        f"-in {OUT / 'cc.xbstream.gz.aes256'} | gzip -dc | mbstream -x -C {d}"
    )
    t1, c1, rss1 = timed(["bash", "-o", "pipefail", "-c", extract])
    check = f"find {d} -type f {SPACES} -exec innochecksum {{}} \\;"
    t2, c2, rss2 = timed(["bash", "-o", "pipefail", "-c", check])
    shutil.rmtree(d)
    return t1, t2, c1, c2, max(rss1, rss2)


def mbstream_only(work: Path, stream: Path) -> tuple[float, float, int]:
    d = work / "y"
    d.mkdir()
    out = timed(["bash", "-o", "pipefail", "-c", f"mbstream -x -C {d} < {stream}"])
    shutil.rmtree(d)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    cc, apsara = OUT / "cc.xbstream.gz.aes256", OUT / "apsara_qp.xb"
    if not cc.exists() or not apsara.exists():
        raise SystemExit("run bench/physical_make.py first")
    plain = (OUT / "plain.xbstream").stat().st_size
    work = Path(tempfile.mkdtemp(prefix="physical-bench-", dir=OUT))
    load0 = os.getloadavg()
    rows: dict[str, list[tuple[float, ...]]] = {"sc": [], "pipe": [], "aps": [], "mbs": []}
    try:
        for i in range(args.runs):
            rows["sc"].append(sealcheck(cc, "--passphrase-file", str(OUT / "pass")))
            rows["pipe"].append(pipeline(work))
            rows["aps"].append(sealcheck(apsara, "--xbcrypt-key-file", str(OUT / "xbcrypt.key")))
            rows["mbs"].append(mbstream_only(work, apsara))
            last = {k: " ".join(f"{x:.1f}" for x in v[-1]) for k, v in rows.items()}
            print(f"run {i + 1}: " + "; ".join(f"{k} {v}" for k, v in last.items()), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load1 = os.getloadavg()

    def med(key: str, col: int = 0) -> float:
        return float(statistics.median(r[col] for r in rows[key]))

    def peak(key: str) -> int:
        return max(int(r[-1]) for r in rows[key])

    sc, pipe = med("sc"), med("pipe") + med("pipe", 1)
    aps, floor = med("aps"), med("mbs") + med("pipe", 1)
    sc_cpu, pipe_cpu = med("sc", 1), med("pipe", 2) + med("pipe", 3)
    aps_cpu, floor_cpu = med("aps", 1), med("mbs", 1) + med("pipe", 3)
    gib = plain / 2**30
    print(f"\nplain xbstream {plain / 2**20:.0f} MiB; {args.runs} alternating runs, medians")
    print(f"load average before {load0[0]:.1f} {load0[1]:.1f}, after {load1[0]:.1f} {load1[1]:.1f}")
    print(
        f"ClusterControl: sealcheck {sc:.1f} s ({gib / sc * 1024:.0f} MiB/s, peak RSS "
        f"{peak('sc')} MiB); pipeline {pipe:.1f} s (extract {med('pipe'):.1f} + innochecksum "
        f"{med('pipe', 1):.1f}; peak RSS {peak('pipe')} MiB); ratio {pipe / sc:.2f}x"
    )
    print(
        f"  CPU (user+sys, whole tree): sealcheck {sc_cpu:.1f} s, pipeline {pipe_cpu:.1f} s; "
        f"ratio {pipe_cpu / sc_cpu:.2f}x"
    )
    print(
        f"ApsaraDB qp+xbcrypt: sealcheck {aps:.1f} s ({gib / aps * 1024:.0f} MiB/s decoded, "
        f"peak RSS {peak('aps')} MiB); lower bound of any pipeline (mbstream -x {med('mbs'):.1f}"
        f" + innochecksum {med('pipe', 1):.1f}) {floor:.1f} s; ratio to it {floor / aps:.2f}x"
    )
    print(f"  CPU: sealcheck {aps_cpu:.1f} s; the lower bound's {floor_cpu:.1f} s")


if __name__ == "__main__":
    main()
