"""Audit campaign benchmark (issue 14; a script, not a timed test).

A local moto_server holds N small backup versions (SecureCircle: gzip | openssl enc,
secret wrapped with openssl rsautl; made once by the real tools and uploaded N times
as versions of N/10 objects). It measures:

* the campaign's per-version overhead beyond the verify itself (listing, sampling,
  the history record with its chain hash): a campaign at --parallel 1 in process, its
  wall time minus the sum of the verifies' own durations, divided by N;
* the wall time of ``sealcheck audit --parallel 2`` (the CLI, one process) against a
  shell loop running ``sealcheck verify`` once per version (measured on --loop versions
  and scaled to N: a loop over 1,000 takes a quarter of an hour).

    .venv/bin/python bench/audit_bench.py --versions 1000 --loop 40
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--loop", type=int, default=40, help="versions the shell loop verifies")
    args = ap.parse_args()

    import logging

    from moto.server import ThreadedMotoServer

    from fixtures.dumps import mysql_like
    from fixtures.pipelines import make_rsa_key, securecircle
    from fixtures.s3servers import ACCESS_KEY, REGION, SECRET_KEY, S3Store

    os.environ.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    work = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    os.environ["SEALCHECK_DATA_DIR"] = str(work / "data")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        store = S3Store(endpoint, "moto")
        bucket = store.bucket(prefix="bench")
        key = make_rsa_key(work, "bench", 2048)
        b = securecircle(mysql_like(work / "dump.sql", rows=200), work / "b", key, name="x")
        assert b.wrapped_key is not None
        data, wrapped = b.data.read_bytes(), b.wrapped_key.read_bytes()
        t0 = time.monotonic()
        for i in range(args.versions):
            name = f"db/set{i % max(1, args.versions // 10):03d}.sql.gz"
            bucket.put(name, data)
            bucket.put(name + ".key", wrapped)
        print(f"uploaded {args.versions} versions in {time.monotonic() - t0:.1f} s")
        location = bucket.uri("db/")
        overhead(location, endpoint, key.private, args.versions)
        cli_vs_loop(location, endpoint, key.private, bucket, args)
        print(f"machine: nproc {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    finally:
        server.stop()


def overhead(location: str, endpoint: str, pem: Path, n: int) -> None:
    from sealcheck.core.audit.campaign import Campaign, CampaignOptions
    from sealcheck.core.decrypt.secrets import Secrets
    from sealcheck.core.keys.pem import PemKey
    from sealcheck.core.records.history import History
    from sealcheck.core.records.report import Report
    from sealcheck.core.storage.s3.client import S3Settings

    hist = History(Path(os.environ["SEALCHECK_DATA_DIR"]) / "overhead.sqlite3", keep_open=True)
    secrets = Secrets(keys=[PemKey.from_bytes(pem.read_bytes(), str(pem))])
    opts = CampaignOptions(location, S3Settings(endpoint_url=endpoint), parallel=1)
    t0 = time.monotonic()
    out = Campaign(opts, secrets, hist).run()
    wall = time.monotonic() - t0
    verifies = 0.0
    for e in out.entries:
        if e.kind.value == "audit":
            continue
        r = e.result()
        if isinstance(r, Report):
            verifies += r.duration_s
    per = (wall - verifies) / n * 1000
    print(
        f"campaign --parallel 1 (in process): {wall:.1f} s for {n} versions, verifies "
        f"{verifies:.1f} s, overhead {per:.1f} ms per version (target < 20 ms); "
        f"totals {out.summary['totals']}"
    )


def cli_vs_loop(location: str, endpoint: str, pem: Path, bucket, args) -> None:  # type: ignore[no-untyped-def]
    base = [sys.executable, "-m", "sealcheck.core.cli"]
    t0 = time.monotonic()
    r = subprocess.run(
        [
            *base,
            "audit",
            location,
            "--key",
            str(pem),
            "--endpoint-url",
            endpoint,
            "--parallel",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    audit_wall = time.monotonic() - t0
    print(f"sealcheck audit --parallel 2: {audit_wall:.1f} s (exit {r.returncode})")
    versions = bucket.store.client.list_object_versions(Bucket=bucket.name, Prefix="db/")
    data = [v for v in versions["Versions"] if not v["Key"].endswith(".key")][: args.loop]
    t0 = time.monotonic()
    for v in data:
        subprocess.run(
            [
                *base,
                "verify",
                f"s3://{bucket.name}/{v['Key']}",
                "--version-id",
                v["VersionId"],
                "--key",
                str(pem),
                "--endpoint-url",
                endpoint,
                "--no-progress",
                "--no-history",
            ],
            capture_output=True,
            check=False,
        )
    loop = (time.monotonic() - t0) / len(data) * args.versions
    print(
        f"shell loop of sealcheck verify: {loop:.1f} s for {args.versions} versions "
        f"(measured on {len(data)}); audit is {loop / audit_wall:.1f}x faster (target >= 3x)"
    )


if __name__ == "__main__":
    main()
