#!/usr/bin/env python3
"""Benchmark ``sealcheck verify`` against the seed pipelines' own check.

Makes a mysqldump-like plaintext of ``--size`` bytes (default 1 GiB) in
bench/out/ (git-ignored), encrypts it the way the seed producers do, with the
real tools::

    openssl rand -base64 32 > K
    gzip -c DUMP | openssl enc -aes-256-cbc -salt -pass file:K > DUMP.gz.enc
    openssl rsautl -encrypt -pubin -inkey backup.pub.pem -in K -out DUMP.gz.enc.key

(likewise ``zstd -c`` and ``bzip2 -c``), then times, on the same file, the
seed's check::

    openssl enc -d -aes-256-cbc -pass file:K -in F | gzip -dc | sha256sum

and the pipeline a power user would type (``pigz``/``zstd``/``lbzip2 -dc`` and
``openssl dgst -sha256``) against ``sealcheck verify F --wrapped-key F.key --key
backup.pem``. Each side runs ``--runs`` times (the order rotated every run, page
cache warm) and the median run counts; then the same again with one CPU-bound
process per core running, started and stopped by the bench (the loaded rows;
``--no-loaded`` skips them).
Wall time, MB/s of plaintext, CPU time and peak RSS (``os.wait4`` rusage of
the child: for the shell pipeline the largest of its processes) are printed
and written to bench/RESULTS.md.

The limit line (issue 17): each stage is also run alone on the same input
(bench/stages.py: fetch + ciphertext SHA-256, AES, the decompressor, plaintext
SHA-256, payload inspection) and the two-core limit derived from them, the larger
of the longest stage's wall time and half the sum of their CPU times; every row is
reported as a ratio to the seed check and as a fraction of that limit
(``--no-limit`` skips it).

Usage: ``./dev bench`` or ``.venv/bin/python bench/bench.py [--size 10G]``.
The 10 GiB run needs ~25 GB of disk and is manual (not part of CI).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
RESULTS = HERE / "RESULTS.md"
VENV_BIN = Path(sys.executable).parent
SEALCHECK = VENV_BIN / "sealcheck"

# issue 17; xz is only reported (no target): its decoder is liblzma on one core.
TARGETS: dict[str, float | None] = {"gzip": 4.0, "zstd": 3.0, "bzip2": 2.0, "xz": None}
RSS_TARGET_MB = 150.0
FORMATS = {
    # name: (compress command, seed decompress command, file suffix)
    "gzip": ("gzip -c", "gzip -dc", "gz"),
    "zstd": ("zstd -q -c", "zstd -dc", "zst"),
    "bzip2": ("bzip2 -c", "bzip2 -dc", "bz2"),
    # xz's own default here (5.4: one thread, one block), as a backup script writes it.
    "xz": ("xz -c", "xz -dc", "xz"),
}
# The fastest pipeline a power user would type for the same check (issue 17): a
# parallel decompressor where there is one, and OpenSSL's SHA-256 (sha256sum is
# several times slower on this machine).
# xz -T0 decodes multi-block files in parallel (a single-block one on one thread).
POWER = {"gzip": "pigz -dc", "zstd": "zstd -dc", "bzip2": "lbzip2 -dc", "xz": "xz -T0 -dc"}
SIDES = ("seed", "power", "tool")
SIDE_NAMES = {"seed": "seed check", "power": "power user", "tool": "sealcheck verify"}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?", text.strip(), re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1G, 512M, 10G)")
    mult = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()]
    return int(float(m.group(1)) * mult)


def size_label(n: int) -> str:
    for unit, mult in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= mult and n % mult == 0:
            return f"{n // mult}{unit}"
    return f"{n}B"


def sh(script: str) -> None:
    subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], check=True, cwd=OUT)


# --- input ----------------------------------------------------------------------

HEADER = (
    "-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n"
    "--\n-- Host: db.internal    Database: shop\n"
    "-- ------------------------------------------------------\n"
    "-- Server version\t8.0.36\n\n"
    "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n"
    "/*!40101 SET NAMES utf8mb4 */;\n"
    "/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n\n"
)
TRAILER = (
    "/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;\n\n"
    "-- Dump completed on 2026-11-27 10:00:00\n"
)
WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu red green "
    "blue small large order customer invoice shipped pending refund widget gadget premium "
    "basic express standard berlin paris london madrid rome vienna oslo warsaw prague lisbon"
).split()
TABLE_ROWS = 200_000  # rows per table: one CREATE TABLE every ~30 MB


def make_dump(path: Path, size: int, seed: int = 1) -> None:
    """A mysqldump-like file: extended INSERTs of varied rows, ~4-5x compressible."""
    rng = random.Random(seed)
    words = WORDS
    tmp = path.with_suffix(".tmp")
    written = 0
    table = 0
    row_id = 0
    with tmp.open("w", encoding="ascii", buffering=1 << 20) as f:
        f.write(HEADER)
        written += len(HEADER)
        while written < size - 4096:
            if row_id % TABLE_ROWS == 0:
                table += 1
                ddl = (
                    f"\n--\n-- Table structure for table `t{table}`\n--\n\n"
                    f"DROP TABLE IF EXISTS `t{table}`;\n"
                    f"CREATE TABLE `t{table}` (\n  `id` bigint NOT NULL,\n"
                    "  `customer` varchar(64) NOT NULL,\n  `email` varchar(128) DEFAULT NULL,\n"
                    "  `amount` decimal(12,2) NOT NULL,\n  `created` datetime NOT NULL,\n"
                    "  `note` text,\n  PRIMARY KEY (`id`)\n"
                    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\n"
                    f"LOCK TABLES `t{table}` WRITE;\n"
                )
                f.write(ddl)
                written += len(ddl)
            rows = []
            for _ in range(1000):
                row_id += 1
                w = rng.choices(words, k=6)
                rows.append(
                    f"({row_id},'{w[0]} {w[1]}','{w[2]}.{rng.getrandbits(20)}@{w[3]}.example',"
                    f"{rng.getrandbits(24) / 100:.2f},'2025-{rng.randint(1, 12):02d}-"
                    f"{rng.randint(1, 28):02d} {rng.getrandbits(4):02d}:{rng.getrandbits(5):02d}:"
                    f"{rng.getrandbits(5):02d}','{w[4]} {w[5]} {rng.getrandbits(32):x}')"
                )
            line = f"INSERT INTO `t{table}` VALUES " + ",".join(rows) + ";\n"
            if row_id % TABLE_ROWS == 0:
                line += "UNLOCK TABLES;\n"
            f.write(line)
            written += len(line)
        f.write(TRAILER)
    tmp.rename(path)


@dataclass
class Inputs:
    dump: Path
    pem: Path
    files: dict[str, tuple[Path, Path, Path]]  # fmt -> (data, wrapped key, K)


def prepare(size: int, formats: list[str], regen: bool) -> Inputs:
    OUT.mkdir(parents=True, exist_ok=True)
    label = size_label(size)
    dump = OUT / f"dump-{label}.sql"
    unit = OUT / f"dump-{size_label(1 << 30)}.sql"
    if regen or not dump.exists():
        t = time.perf_counter()
        if size > 1 << 30 and size % (1 << 30) == 0 and unit.exists() and not regen:
            # 10 GiB: the 1 GiB dump N times over, N complete mysqldumps one after another
            # (the inspector checks every one); generating it afresh takes ~30 min here.
            print(f"bench: {dump.name} = {unit.name} x {size >> 30}...", flush=True)
            sh(f"for i in $(seq {size >> 30}); do cat {unit.name}; done > {dump.name}.tmp")
            Path(f"{dump}.tmp").rename(dump)
        else:
            print(f"bench: generating {dump.name} ({label})...", flush=True)
            make_dump(dump, size)
        print(f"bench:   {time.perf_counter() - t:.0f} s", flush=True)
    pem, pub = OUT / "backup.pem", OUT / "backup.pub.pem"
    if not pem.exists():
        sh(
            f"openssl genrsa -out {pem.name} 2048 2>/dev/null\n"
            f"openssl rsa -in {pem.name} -pubout -out {pub.name} 2>/dev/null"
        )
    files = {}
    for fmt in formats:
        comp, _, suffix = FORMATS[fmt]
        data = OUT / f"{dump.name}.{suffix}.enc"
        wrapped = OUT / f"{data.name}.key"
        k = OUT / f"{data.name}.K"
        if regen or not data.exists() or data.stat().st_mtime < dump.stat().st_mtime:
            t = time.perf_counter()
            print(f"bench: {comp} | openssl enc -aes-256-cbc -> {data.name}...", flush=True)
            sh(
                f"openssl rand -base64 32 > {k.name}\n"
                f"{comp} {dump.name} | openssl enc -aes-256-cbc -salt -pass file:{k.name} "
                f"> {data.name}.tmp\n"
                f"openssl rsautl -encrypt -pubin -inkey {pub.name} -in {k.name} "
                f"-out {wrapped.name} 2>/dev/null\n"
                f"mv {data.name}.tmp {data.name}"
            )
            print(f"bench:   {time.perf_counter() - t:.0f} s", flush=True)
        comp_file = OUT / f"{dump.name}.{suffix}"
        if not comp_file.exists() or comp_file.stat().st_mtime < data.stat().st_mtime:
            # The decrypted object, for the decompressor's stage alone (limit line).
            sh(
                f"openssl enc -d -aes-256-cbc -pass file:{k.name} -in {data.name} "
                f"-out {comp_file.name}.tmp 2>/dev/null\nmv {comp_file.name}.tmp {comp_file.name}"
            )
        files[fmt] = (data, wrapped, k)
    return Inputs(dump, pem, files)


# --- timing ---------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mb: float
    stdout: str


def timed_child(argv: list[str]) -> Run:
    """Run argv (fork/exec, then wait4): wall time, CPU time and peak RSS of it and
    of the children it reaped (for a shell pipeline: its largest process)."""
    r_out, w_out = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.chdir(OUT)
            os.dup2(w_out, 1)
            os.close(r_out)
            os.close(w_out)
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    os.close(w_out)
    chunks = []
    while b := os.read(r_out, 1 << 16):
        chunks.append(b)
    os.close(r_out)
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    out = b"".join(chunks).decode(errors="replace")
    if rc != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {rc}:\n{out[-2000:]}")
    return Run(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, out)


def seed_argv(fmt: str, data: Path, k: Path) -> list[str]:
    dec = FORMATS[fmt][1]
    script = f"openssl enc -d -aes-256-cbc -pass file:{k.name} -in {data.name} | {dec} | sha256sum"
    return ["bash", "-o", "pipefail", "-c", script]


def power_argv(fmt: str, data: Path, k: Path) -> list[str]:
    script = (
        f"openssl enc -d -aes-256-cbc -pass file:{k.name} -in {data.name} | {POWER[fmt]} "
        "| openssl dgst -sha256"
    )
    return ["bash", "-o", "pipefail", "-c", script]


def sealcheck_argv(data: Path, wrapped: Path, pem: Path) -> list[str]:
    return [
        str(SEALCHECK),
        "verify",
        data.name,
        "--wrapped-key",
        wrapped.name,
        "--key",
        pem.name,
        "--no-progress",
        "--json",
    ]


def median_run(runs: list[Run]) -> Run:
    """The run with the median wall time (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r.wall)[(len(runs) - 1) // 2]


@dataclass
class Result:
    fmt: str
    compressed: int
    runs: dict[str, list[Run]]  # side -> its runs, in the order made
    loaded: dict[str, list[Run]] | None = None  # the same with a CPU hog per core

    def wall(self, side: str, loaded: bool = False) -> float:
        runs = self.loaded if loaded else self.runs
        assert runs is not None
        return median_run(runs[side]).wall

    def ratio(self, loaded: bool = False) -> float:
        return self.wall("seed", loaded) / self.wall("tool", loaded)

    @property
    def seed(self) -> Run:
        return median_run(self.runs["seed"])

    @property
    def tool(self) -> Run:
        return median_run(self.runs["tool"])


class Hogs:
    """One CPU-bound process per usable CPU, started and stopped by the bench: the
    "busy machine" of issue 17 (others' work on every core)."""

    def __init__(self) -> None:
        self.n = len(os.sched_getaffinity(0))
        self._procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Hogs:
        for _ in range(self.n):
            self._procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        time.sleep(1.0)  # running (and seen as running) before the first timed run
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self._procs:
            p.kill()
        for p in self._procs:
            p.wait()


LOADS: list[float] = []  # 1-minute load average before each timed run


def run_sides(fmt: str, inp: Inputs, runs: int, label: str = "") -> dict[str, list[Run]]:
    """Each side ``runs`` times, the order rotated every run (page cache warm)."""
    data, wrapped, k = inp.files[fmt]
    argv = {
        "seed": seed_argv(fmt, data, k),
        "power": power_argv(fmt, data, k),
        "tool": sealcheck_argv(data, wrapped, inp.pem),
    }
    out: dict[str, list[Run]] = {side: [] for side in SIDES}
    for i in range(runs):
        for j in range(len(SIDES)):
            side = SIDES[(i + j) % len(SIDES)]
            LOADS.append(os.getloadavg()[0])
            r = timed_child(argv[side])
            out[side].append(r)
            print(
                f"bench:   {fmt:<6}{label} {side:<6} run {i + 1}: {r.wall:6.2f} s  "
                f"cpu {r.cpu:6.2f} s  rss {r.rss_mb:6.1f} MB  load {LOADS[-1]:.1f}",
                flush=True,
            )
    return out


def check_answers(fmt: str, runs: dict[str, list[Run]], plain_size: int) -> None:
    """Every side found the same plaintext SHA-256."""
    want = runs["seed"][0].stdout.split()[0]
    for r in runs["power"]:
        if r.stdout.split()[-1] != want:
            raise RuntimeError(f"{fmt}: the power-user pipeline's hash differs from the seed's")
    for r in runs["tool"]:
        rep = json.loads(r.stdout)
        hashes = next(x for x in rep["layers"] if x["layer"] == "hashes")["details"]
        if hashes["plaintext_sha256"] != want or hashes["plaintext_bytes"] != plain_size:
            raise RuntimeError(f"{fmt}: sealcheck's plaintext hash/size differs from the seed's")


def bench_format(fmt: str, inp: Inputs, runs: int, plain_size: int, loaded: bool) -> Result:
    data = inp.files[fmt][0]
    sh(f"cat {data.name} > /dev/null")  # page cache warm for every side
    result = Result(fmt, data.stat().st_size, run_sides(fmt, inp, runs))
    check_answers(fmt, result.runs, plain_size)
    if loaded:
        with Hogs():
            result.loaded = run_sides(fmt, inp, runs, label=" loaded")
        check_answers(fmt, result.loaded, plain_size)
    return result


# --- the limit line ---------------------------------------------------------------

STAGES = HERE / "stages.py"
CORES = 2  # the limit is for this many cores (the machine the targets are set on)


@dataclass
class Stage:
    name: str
    wall: float  # best run
    cpu: float  # CPU of that run


def run_stage(name: str, stage: str, *args: Path, runs: int) -> Stage:
    """One stage alone (bench/stages.py), best of ``runs``; the stage loop's own
    wall and CPU time, without the child's start-up."""
    best: Stage | None = None
    for _ in range(runs):
        r = timed_child([sys.executable, str(STAGES), stage, *map(str, args)])
        got = json.loads(r.stdout)
        if best is None or got["wall"] < best.wall:
            best = Stage(name, got["wall"], got["cpu"])
    assert best is not None
    return best


def plaintext_stages(inp: Inputs, runs: int) -> list[Stage]:
    """The consumer's stages: the same plaintext whatever the compression."""
    return [
        run_stage("plaintext SHA-256", "sha256", inp.dump, runs=runs),
        run_stage("payload inspection", "inspect", inp.dump, runs=runs),
    ]


def format_stages(fmt: str, inp: Inputs, runs: int) -> list[Stage]:
    data, _, k = inp.files[fmt]
    comp_file = OUT / f"{inp.dump.name}.{FORMATS[fmt][2]}"
    return [
        run_stage("fetch + ciphertext SHA-256", "fetch", data, runs=runs),
        run_stage("AES-256-CBC", "aes", data, k, runs=runs),
        run_stage(f"decompress ({fmt})", "decompress", comp_file, runs=runs),
    ]


def limit_of(stages: list[Stage]) -> float:
    """The two-core limit: no faster than the slowest stage alone, nor than all the
    stages' CPU time shared by the cores."""
    return max(max(s.wall for s in stages), sum(s.cpu for s in stages) / CORES)


def limit_tables(results: list[Result], stages: dict[str, list[Stage]]) -> str:
    out = [
        f"Stages alone (bench/stages.py, best of runs; wall and CPU s). Limit = max(longest "
        f"stage's wall, sum of CPU / {CORES}).",
        "",
        "| format | stage | wall | cpu |",
        "|---|---|---|---|",
    ]
    for r in results:
        for st in stages[r.fmt]:
            out.append(f"| {r.fmt} | {st.name} | {st.wall:.2f} s | {st.cpu:.2f} s |")
    out += [
        "",
        "| format | row | wall | ratio to seed check | fraction of the limit |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        limit = limit_of(stages[r.fmt])
        seed = r.wall("seed")
        for row, wall in (
            ("two-core limit", limit),
            *((SIDE_NAMES[side], r.wall(side)) for side in SIDES),
        ):
            out.append(
                f"| {r.fmt} | {row} | {wall:.2f} s | {seed / wall:.2f}x | {limit / wall:.0%} |"
            )
    return "\n".join(out)


# --- report ---------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / (1 << 20):.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    ossl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    return (
        f"nproc {os.cpu_count()}, {cpu}{mem}; {platform.platform()}; "
        f"Python {platform.python_version()}; {ossl}"
    )


def table(results: list[Result], plain: int) -> str:
    mb = plain / 1e6
    rows = [
        "| format | compressed | seed check | power user | sealcheck verify | ratio | "
        "vs power user | target | sealcheck peak RSS | seed peak RSS | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        target = TARGETS[r.fmt]
        seed, power, tool = r.wall("seed"), r.wall("power"), r.wall("tool")
        met = (
            "reported"
            if target is None
            else "yes"
            if r.ratio() >= target and power / tool >= 1.0 and r.tool.rss_mb <= RSS_TARGET_MB
            else "NO"
        )
        goal = "reported" if target is None else f">= {target}x, >= 1.0x"
        rows.append(
            f"| {r.fmt} | {r.compressed / 1e6:.0f} MB | {seed:.2f} s ({mb / seed:.0f} MB/s) | "
            f"{power:.2f} s ({mb / power:.0f} MB/s) | {tool:.2f} s ({mb / tool:.0f} MB/s, "
            f"cpu {r.tool.cpu:.1f} s) | **{r.ratio():.2f}x** | {power / tool:.2f}x | "
            f"{goal} | {r.tool.rss_mb:.0f} MB (<= {RSS_TARGET_MB:.0f}) | "
            f"{r.seed.rss_mb:.0f} MB | {met} |"
        )
    return "\n".join(rows)


def loaded_table(results: list[Result]) -> str:
    rows = [
        "| format | seed check | power user | sealcheck verify | ratio | vs power user | "
        "target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.loaded is None:
            continue
        seed, power, tool = (r.wall(side, loaded=True) for side in SIDES)
        rows.append(
            f"| {r.fmt} | {seed:.2f} s | {power:.2f} s | {tool:.2f} s | "
            f"**{seed / tool:.2f}x** | {power / tool:.2f}x | >= 1.0x | "
            f"{'yes' if seed / tool >= 1.0 else 'NO'} |"
        )
    return "\n".join(rows)


def all_runs(results: list[Result]) -> str:
    def walls(runs: dict[str, list[Run]]) -> str:
        return " / ".join(
            f"{SIDE_NAMES[side]} {', '.join(f'{x.wall:.2f}' for x in runs[side])}" for side in SIDES
        )

    lines = []
    for r in results:
        lines.append(f"- {r.fmt}: {walls(r.runs)}")
        if r.loaded is not None:
            lines.append(f"- {r.fmt}, loaded: {walls(r.loaded)}")
    return "\n".join(lines)


def write_results(label: str, body: str) -> None:
    begin, end = f"<!-- BEGIN {label} -->", f"<!-- END {label} -->"
    text = (
        RESULTS.read_text()
        if RESULTS.exists()
        else (
            "# Sealcheck verify benchmark\n\n"
            "Produced by `bench/bench.py` (`./dev bench`); each section is rewritten by the run "
            "of that size. The 10 GiB run is manual:\n"
            "`.venv/bin/python bench/bench.py --size 10G` (needs ~25 GB in bench/out/).\n"
            "MB/s are of plaintext (10^6 bytes). Best of N runs; page cache warm.\n"
        )
    )
    section = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        text = re.sub(
            re.escape(begin) + ".*?" + re.escape(end), lambda _m: section, text, flags=re.S
        )
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--size",
        type=parse_size,
        default=1 << 30,
        help="plaintext size (default 1G; the 10G run is optional and manual)",
    )
    ap.add_argument(
        "--runs", type=int, default=3, help="runs per command, alternating; the median counts"
    )
    ap.add_argument(
        "--no-loaded",
        action="store_true",
        help="skip the loaded rows (each side again with one CPU-bound process per core)",
    )
    ap.add_argument("--formats", default="gzip,zstd,bzip2")
    ap.add_argument(
        "--only",
        metavar="FORMAT",
        help="bench these formats only (comma-separated); written to a section of their own",
    )
    ap.add_argument("--regen", action="store_true", help="regenerate the inputs")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    ap.add_argument(
        "--no-limit", action="store_true", help="skip the stages-alone measurement (limit line)"
    )
    args = ap.parse_args()
    formats = [f.strip() for f in (args.only or args.formats).split(",") if f.strip()]
    for f in formats:
        if f not in FORMATS:
            ap.error(f"unknown format {f!r}; known: {', '.join(FORMATS)}")
    missing = [POWER[f].split()[0] for f in formats if not shutil.which(POWER[f].split()[0])]
    if missing:
        ap.error(f"the power-user rows need: apt-get install {' '.join(missing)}")
    inp = prepare(args.size, formats, args.regen)
    # Bytecode as an installed copy has it (pip compiles on install): a session with
    # PYTHONDONTWRITEBYTECODE set would otherwise compile ~100 modules on every run
    # (0.8 s here), which is not Sealcheck's speed.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "core"), str(ROOT / "gui")],
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    )
    load_start = os.getloadavg()[0]
    plain = inp.dump.stat().st_size
    results = [
        bench_format(fmt, inp, args.runs, plain, loaded=not args.no_loaded) for fmt in formats
    ]
    stages: dict[str, list[Stage]] = {}
    if not args.no_limit:
        print("bench: stages alone (the limit line)...", flush=True)
        consumer = plaintext_stages(inp, args.runs)
        stages = {fmt: format_stages(fmt, inp, args.runs) + consumer for fmt in formats}
    label = size_label(args.size) + ("-" + "-".join(formats) if args.only else "")
    cmd = ".venv/bin/python bench/bench.py" + "".join(
        f" {a}" for a in sys.argv[1:] if a != "--no-write"
    )
    body = "\n".join(
        [
            f"## {label} plaintext ({plain} bytes, mysqldump-like)",
            "",
            f"- date: {_dt.datetime.now(_dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- command: `{cmd}` (median of {args.runs} runs each, the order rotated every run)",
            f"- machine: {machine()}",
            f"- load average (1 min) at start/end: {load_start:.1f} / {os.getloadavg()[0]:.1f}; "
            f"before each timed run: {min(LOADS):.1f}-{max(LOADS):.1f} (the loaded rows' own "
            "hogs included; other work on the machine slows every side: compare ratios)",
            "- seed check: `openssl enc -d -aes-256-cbc -pass file:K -in F | "
            "<gzip|zstd|bzip2|xz> -dc | sha256sum`",
            "- power user: `openssl enc -d -aes-256-cbc -pass file:K -in F | "
            "<pigz|zstd|lbzip2|xz -T0> -dc | openssl dgst -sha256`",
            "- sealcheck: `sealcheck verify F --wrapped-key F.key --key backup.pem --no-progress "
            "--json` (includes interpreter start-up and the RSA unwrap)",
            "",
            table(results, plain),
            "",
            *(
                [
                    f"Loaded: the same, each run with {len(os.sched_getaffinity(0))} CPU-bound "
                    "processes (one per core) started and stopped by the bench:",
                    "",
                    loaded_table(results),
                    "",
                ]
                if not args.no_loaded
                else []
            ),
            *([limit_tables(results, stages), ""] if stages else []),
            "All runs (wall s):",
            "",
            all_runs(results),
        ]
    )
    print()
    print(body)
    if not args.no_write:
        write_results(label, body)
        print(f"\nbench: wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
