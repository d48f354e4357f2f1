"""Key-rotation benchmark (issue 13; a script, not a timed test).

Starts moto_server on a loopback port, fills a versioned bucket with N SecureCircle
backups (made by the seed's own openssl commands: ``openssl enc -aes-256-cbc`` and
``openssl rsautl -encrypt``, RSA-4096 by default; K distinct backups uploaded under N
names), then rotates them to a new key pair in-process and reports versions per
second and where the time goes (each phase timed around the engine's own calls).

    .venv/bin/python bench/rotate_bench.py --versions 1000
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from sealcheck.core.keys.pem import PemKey
from sealcheck.core.keys.spec import KeyContext
from sealcheck.core.rotation import engine
from sealcheck.core.rotation.engine import Rotation, Settings
from sealcheck.core.rotation.journal import Journal
from sealcheck.core.rotation.newkey import open_new_key
from sealcheck.core.rotation.scope import Scope
from sealcheck.core.storage.s3.client import S3Settings, make_client

PREFIX = "bench/"


def sh(script: str, cwd: Path) -> None:
    subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=cwd, check=True)


def make_backups(work: Path, k: int, bits: int) -> list[tuple[bytes, bytes]]:
    sh(
        f"openssl genrsa -out old.pem {bits} 2>/dev/null\n"
        "openssl rsa -in old.pem -pubout -out old.pub.pem 2>/dev/null\n"
        f"openssl genrsa -out new.pem {bits} 2>/dev/null\n"
        "head -c 200000 /dev/urandom | base64 > dump.sql",
        work,
    )
    out = []
    for i in range(k):
        sh(
            "secret=$(openssl rand -base64 32)\n"
            f"gzip -c dump.sql | openssl enc -aes-256-cbc -md md5 -pass pass:$secret "
            f"2>/dev/null > {i}.sql.gz\n"
            "printf '%s' \"$secret\" | openssl rsautl -encrypt -pubin -inkey old.pub.pem "
            f"-out {i}.sql.gz.key 2>/dev/null",
            work,
        )
        out.append(((work / f"{i}.sql.gz").read_bytes(), (work / f"{i}.sql.gz.key").read_bytes()))
    return out


def timed(table: dict[str, list[float]], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            table[name].append(time.perf_counter() - t0)

    return wrapper


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--distinct", type=int, default=10, help="distinct backups made by openssl")
    ap.add_argument("--bits", type=int, default=4096)
    ap.add_argument("--workers", type=int, default=8, help="versions in flight (rotate --workers)")
    args = ap.parse_args()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        with tempfile.TemporaryDirectory(prefix="rotate-bench-") as tmp:
            work = Path(tmp)
            t0 = time.perf_counter()
            backups = make_backups(work, args.distinct, args.bits)
            setup = boto3.client(
                "s3",
                endpoint_url=endpoint,
                config=Config(s3={"addressing_style": "path"}),
            )
            setup.create_bucket(Bucket="rotate-bench")
            setup.put_bucket_versioning(
                Bucket="rotate-bench", VersioningConfiguration={"Status": "Enabled"}
            )
            for n in range(args.versions):
                data, key = backups[n % len(backups)]
                setup.put_object(Bucket="rotate-bench", Key=f"{PREFIX}{n:05d}.sql.gz", Body=data)
                setup.put_object(Bucket="rotate-bench", Key=f"{PREFIX}{n:05d}.sql.gz.key", Body=key)
            print(f"setup: {args.versions} backups in {time.perf_counter() - t0:.1f} s")
            return run(endpoint, work, args)
    finally:
        server.stop()


def run(endpoint: str, work: Path, args: argparse.Namespace) -> int:
    phases: dict[str, list[float]] = collections.defaultdict(list)
    engine.open_version = timed(phases, "fetch + unwrap + prove (old key)", engine.open_version)  # type: ignore[assignment]
    engine.wrap = timed(phases, "wrap (new public key)", engine.wrap)  # type: ignore[assignment]
    engine.put_create_only = timed(phases, "create-only PUT", engine.put_create_only)  # type: ignore[assignment]
    engine.get_version = timed(phases, "read-back GET", engine.get_version)  # type: ignore[assignment]
    Rotation._mismatch = timed(phases, "read-back unwrap (new key)", Rotation._mismatch)  # type: ignore[method-assign]
    Journal.update = timed(phases, "journal commits (fsync)", Journal.update)  # type: ignore[method-assign]
    settings = Settings(
        bucket="rotate-bench",
        prefix=PREFIX,
        new=open_new_key(str(work / "new.pem"), KeyContext(), public_only=False),
        old_keys=[PemKey.from_file(work / "old.pem")],
        scope=Scope.CURRENT,
        workers=args.workers,
    )
    client = make_client(S3Settings(endpoint_url=endpoint))
    journal = Journal(work / "journal.sqlite3")
    t0 = time.perf_counter()
    outcome = Rotation(client, settings).run(journal, "bench")
    total = time.perf_counter() - t0
    counts = outcome.counts()
    done = counts.get("done", 0)
    print(
        f"rotated {done}/{len(outcome.items)} versions (RSA-{args.bits}) in {total:.1f} s: "
        f"{done / total:.1f} versions/s"
    )
    print(f"load average (1 min) at end: {os.getloadavg()[0]:.1f}; nproc {os.cpu_count()}")
    busy = "thread-seconds, summed over the workers" if args.workers > 1 else "seconds"
    print(f"where the time goes ({busy}; {args.workers} worker(s)):")
    for name, ts in sorted(phases.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {name:<36} {sum(ts):7.2f} s  {1000 * sum(ts) / max(done, 1):6.1f} ms/version")
    if args.workers == 1:
        accounted = sum(sum(ts) for ts in phases.values())
        print(f"  {'other (listing, lock, probe, Python)':<36} {total - accounted:7.2f} s")
    return 0 if outcome.complete else 1


if __name__ == "__main__":
    sys.exit(main())
