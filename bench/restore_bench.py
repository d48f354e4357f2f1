#!/usr/bin/env python3
"""Benchmark the restore test's load against the plain client on the same dump.

Makes a mysqldump-like dump and a pg_dump-like dump of ``--rows`` rows (bench/out/,
git-ignored; text with quotes, NULLs, decimals, multi-row INSERTs / COPY), then for
each engine, ``--runs`` times and alternating:

* baseline: a throwaway server started exactly as the restore test starts it, then
  ``mariadb DB < dump.sql`` / ``psql -f dump.sql`` (plain client, no sandbox flags);
* Sealcheck: ``restore_test()`` on the same file (pipeline, scanner, the load through
  the protocol for MariaDB / sandboxed ``psql`` for PostgreSQL, checks), its load time
  (first byte to the last statement done), checks time and total (RTO).

The server start is excluded from the baseline and reported separately for Sealcheck
(total - load - checks). Best run counts. A script, not a test:

    .venv/bin/python bench/restore_bench.py [--rows 1000000] [--runs 2]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.pipeline.job import Job
from sealcheck.core.plumbing.progress import CancelToken
from sealcheck.core.restoretest import RestoreTestOptions, restore_test
from sealcheck.core.restoretest.engines.mariadb import MariaDBTarget, find_tools
from sealcheck.core.restoretest.engines.postgres import PostgresTarget, find_pg_tools
from sealcheck.core.restoretest.procs import StateDir
from sealcheck.core.storage.source import LocalFile

OUT = Path(__file__).resolve().parent / "out"
WORDS = 'alpha beta gamma delta O\'Brien café naïve 😀 \\ back "quoted" tab\tnewline'.split(" ")


def rows(n: int, seed: int = 7) -> list[tuple[int, str, str | None, str]]:
    r = random.Random(seed)
    out = []
    for i in range(1, n + 1):
        text = " ".join(r.choice(WORDS) for _ in range(r.randint(3, 18)))
        note = None if i % 7 == 0 else f"{i * 37 % 1000}.{i % 100:02d}"
        out.append((i, f"name {i} {r.choice(WORDS)}", note, text))
    return out


def my_lit(v: object) -> str:
    if v is None:
        return "NULL"
    s = str(v).replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t")
    return f"'{s}'"


def make_mysql(path: Path, data: list[tuple[int, str, str | None, str]]) -> None:
    with path.open("w") as f:
        f.write(
            "-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n"
            "--\n-- Host: localhost    Database: bench\n-- Server version\t10.11.19\n\n"
        )
        f.write(
            "CREATE TABLE `t` (`id` int NOT NULL PRIMARY KEY, `name` varchar(100), "
            "`amount` decimal(10,2), `body` text) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n"
        )
        for i in range(0, len(data), 2000):
            vals = ",".join(
                f"({a},{my_lit(b)},{'NULL' if c is None else c},{my_lit(d)})"
                for a, b, c, d in data[i : i + 2000]
            )
            f.write(f"INSERT INTO `t` VALUES {vals};\n")
        f.write("-- Dump completed on 2026-11-27 10:00:00\n")


def pg_copy(v: object) -> str:
    if v is None:
        return "\\N"
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def make_pg(path: Path, data: list[tuple[int, str, str | None, str]]) -> None:
    with path.open("w") as f:
        f.write("--\n-- PostgreSQL database dump\n--\n\n-- Dumped by pg_dump version 15.18\n\n")
        f.write(
            "CREATE TABLE public.t (id integer PRIMARY KEY, name text, amount numeric(10,2), "
            "body text);\n\nCOPY public.t (id, name, amount, body) FROM stdin;\n"
        )
        for row in data:
            f.write("\t".join(pg_copy(v) for v in row) + "\n")
        f.write("\\.\n\n--\n-- PostgreSQL database dump complete\n--\n\n")


def baseline_mariadb(dump: Path, state: StateDir) -> float:
    t = MariaDBTarget(find_tools())
    try:
        t.start(state, CancelToken(), "bench")
        with tempfile.TemporaryDirectory() as tmp:
            # What a user types: the plain client, credentials in an option file.
            cnf = Path(tmp) / "client.cnf"
            cnf.write_text(
                f"[client]\nuser={t.loader.user}\npassword={t.loader.password}\nsocket={t.socket}\n"
            )
            cnf.chmod(0o600)
            plain = [
                t.tools.client,
                f"--defaults-file={cnf}",
                "--default-character-set=utf8mb4",
                "bench",
            ]
            t0 = time.monotonic()
            with dump.open("rb") as f:
                subprocess.run(plain, stdin=f, check=True)
            return time.monotonic() - t0
    finally:
        t.close()


def baseline_pg(dump: Path, state: StateDir) -> float:
    t = PostgresTarget(find_pg_tools())
    try:
        t.start(state, CancelToken(), "bench")
        argv = [
            str(t.tools.bindir / "psql"),
            *t.conn_args(t.loader, "bench"),
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            str(dump),
        ]
        t0 = time.monotonic()
        subprocess.run(argv, check=True, env=t._env(), stdout=subprocess.DEVNULL)
        return time.monotonic() - t0
    finally:
        t.close()


def sealcheck(dump: Path, state_dir: Path) -> tuple[float, float, float]:
    job = Job(data=LocalFile(dump), secrets=Secrets(keys=[]))
    res = restore_test(job, RestoreTestOptions(state_dir=state_dir))
    if not res.ok:
        raise SystemExit(f"restore test failed: {res.error}")
    return res.load_seconds or 0.0, res.checks_seconds or 0.0, res.total_seconds


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--engine", choices=("mariadb", "postgres", "both"), default="both")
    a = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    data = rows(a.rows)
    state_dir = OUT / "restore-state"
    state = StateDir(state_dir / "restoretest")
    engines = ("mariadb", "postgres") if a.engine == "both" else (a.engine,)
    for engine in engines:
        dump = OUT / f"restore-bench-{engine}-{a.rows}.sql"
        if not dump.exists():
            (make_mysql if engine == "mariadb" else make_pg)(dump, data)
        size = dump.stat().st_size / 1e6
        base, ours = [], []
        for _ in range(a.runs):
            base.append(
                baseline_mariadb(dump, state) if engine == "mariadb" else baseline_pg(dump, state)
            )
            ours.append(sealcheck(dump, state_dir))
        b = min(base)
        load, checks, total = min(ours, key=lambda x: x[0])
        client = "mariadb DB < dump.sql" if engine == "mariadb" else "psql -f dump.sql"
        print(f"{engine}: {a.rows} rows, {size:.1f} MB dump, best of {a.runs}")
        print(f"  {client:<24} load {b:7.2f} s  {size / b:7.1f} MB/s")
        print(
            f"  {'sealcheck restore-test':<24} load {load:7.2f} s  {size / load:7.1f} MB/s  "
            f"({(load / b - 1) * 100:+.0f} %); checks {checks:.2f} s; total (RTO, with server "
            f"start) {total:.2f} s"
        )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
