"""``sealcheck demo``: a local S3 with sample encrypted backups, made the seed ways.

Starts moto's S3 server on a free loopback port, fills a versioned bucket with
backups produced by the real tools exactly as the seed pipelines produce them
(several versions each, one damaged on purpose), then verifies every version
(``--no-gui``) or opens the app on that source. Everything lives in a private
temp folder that is removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealcheck.core.decrypt.secrets import GpgOptions, Secrets
from sealcheck.core.errors import SealcheckError
from sealcheck.core.keys.pem import PemKey
from sealcheck.core.pipeline.job import Job
from sealcheck.core.pipeline.run import run
from sealcheck.core.restoretest import RestoreTestOptions, restore_test
from sealcheck.core.restoretest.engines.mariadb import find_tools
from sealcheck.core.storage.listing import VersionPair, list_backup_sets
from sealcheck.core.storage.locate import ListedVersion, Locator
from sealcheck.core.storage.s3.client import S3Settings, make_client
from sealcheck.core.storage.source import Source

BUCKET = "sealcheck-demo"


@dataclass(frozen=True)
class Expectation:
    key: str
    version_index: int  # 0 = oldest upload
    ok: bool
    why: str = ""


def _sh(script: str, cwd: Path) -> None:
    subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _mysql_dump(path: Path, rows: int, *, complete: bool = True) -> None:
    head = (
        "-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)\n--\n"
        "-- Host: db1    Database: shop\n"
        "-- ------------------------------------------------------\n"
        "-- Server version\t10.11.6-MariaDB-0+deb12u1\n\n"
        "CREATE TABLE `orders` (`id` int NOT NULL, `customer` varchar(64),"
        " `total` decimal(10,2));\n"
    )
    body = "".join(
        # Sample text written to a file, never sent to a database.
        f"INSERT INTO `orders` VALUES ({i},'c{i % 97}',{i * 3 % 1000}.50);\n"  # noqa: S608
        for i in range(rows)
    )
    tail = "\n-- Dump completed on 2026-11-27  3:00:00\n" if complete else ""
    path.write_text(head + body + tail)


def _pg_dump(path: Path, rows: int) -> None:
    head = (
        "--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.8\n"
        "-- Dumped by pg_dump version 15.8\n\n"
        "CREATE TABLE public.accounts (id integer, name text);\n"
        "COPY public.accounts (id, name) FROM stdin;\n"
    )
    body = "".join(f"{i}\taccount {i}\n" for i in range(rows))
    path.write_text(head + body + "\\.\n\n--\n-- PostgreSQL database dump complete\n--\n\n")


def make_samples(work: Path) -> tuple[list[tuple[str, Path]], list[Expectation], dict[str, Path]]:
    """Produce the demo objects with the real tools; return (uploads, expectations, keys)."""
    q = shlex.quote
    _sh(
        "openssl genrsa -out demo-key.pem 2048 2>/dev/null && "
        "openssl rsa -in demo-key.pem -pubout -out demo-key.pub.pem 2>/dev/null",
        work,
    )
    home = work / "gnupg"
    home.mkdir(mode=0o700)
    (work / "gpgparams").write_text(
        "%no-protection\nKey-Type: RSA\nKey-Length: 2048\nSubkey-Type: RSA\nSubkey-Length: 2048\n"
        "Name-Real: Demo Backup\nName-Email: backup@demo.invalid\nExpire-Date: 0\n%commit\n"
    )
    _sh(
        f"gpg --batch --homedir {q(str(home))} --gen-key gpgparams && "
        f"gpg --batch --homedir {q(str(home))} --armor --export-secret-keys backup@demo.invalid"
        " > demo-gpg.asc",
        work,
    )
    uploads: list[tuple[str, Path]] = []
    expect: list[Expectation] = []
    pub = q(str(work / "demo-key.pub.pem"))
    # 1. SecureCircle: gzip | openssl enc (MD5 KDF) -pass pass:SECRET, SECRET via rsautl.
    for i, rows in enumerate((3000, 4000, 5000)):
        d = work / f"sc{i}.sql"
        _mysql_dump(d, rows, complete=i != 2)  # the newest: mysqldump killed mid-way
        _sh(
            f"""secret=$(openssl rand -base64 32)
            gzip -c {d.name} \\
              | openssl enc -aes-256-cbc -md md5 -pass pass:$secret 2>/dev/null > sc{i}.enc
            printf '%s' "$secret" \\
              | openssl rsautl -encrypt -pubin -inkey {pub} -out sc{i}.key 2>/dev/null""",
            work,
        )
        k = "securecircle/1567744961188141183.sql.gz"
        uploads += [(k, work / f"sc{i}.enc"), (k + ".key", work / f"sc{i}.key")]
        expect.append(Expectation(k, i, i != 2, "" if i != 2 else "dump cut short"))
    # 2. rds-postgres-backup-s3-secure: bzip2 | enc -md sha256 -pass file:key.txt (3-line base64).
    for i, rows in enumerate((2000, 2500)):
        d = work / f"pg{i}.sql"
        _pg_dump(d, rows)
        _sh(
            f"""openssl rand -base64 128 > key{i}.txt
            bzip2 -c {d.name} | openssl enc -aes-256-cbc -salt -md sha256 \\
              -pass file:./key{i}.txt 2>/dev/null > pg{i}.enc
            openssl rsautl -encrypt -inkey {pub} -pubin -in key{i}.txt -out pg{i}.key \\
              2>/dev/null""",
            work,
        )
        k = "rds-postgres/shop.sql.bz.enc"
        uploads += [
            (k, work / f"pg{i}.enc"),
            ("rds-postgres/shop.key.txt.enc", work / f"pg{i}.key"),
        ]
        expect.append(Expectation(k, i, True))
    # 3. dpb587: gzip | gpg --encrypt, one object, versioned.
    for i, rows in enumerate((1500, 1800)):
        d = work / f"gp{i}.sql"
        _mysql_dump(d, rows)
        _sh(
            f"gzip -c {d.name} | gpg --batch --homedir {q(str(home))} --trust-model always "
            f"--recipient backup@demo.invalid --encrypt > gp{i}.enc",
            work,
        )
        uploads.append(("dpb587/database.sql.gz.enc", work / f"gp{i}.enc"))
        expect.append(Expectation("dpb587/database.sql.gz.enc", i, True))
    # 4. ClusterControl: gzip -6 | openssl enc -pass file:K (symmetric), one bit flipped in v2.
    (work / "cmon.tmp").write_bytes(os.urandom(24).hex().encode() + b"\n")
    for i, rows in enumerate((2200, 2300)):
        d = work / f"cc{i}.sql"
        _mysql_dump(d, rows)
        _sh(
            f"gzip -6 - < {d.name} | openssl enc -aes-256-cbc -pass file:cmon.tmp 2>/dev/null"
            f" > cc{i}.enc",
            work,
        )
        if i == 1:
            blob = bytearray((work / "cc1.enc").read_bytes())
            blob[len(blob) // 2] ^= 0x10  # bit rot in storage
            (work / "cc1.enc").write_bytes(bytes(blob))
        uploads.append(("clustercontrol/backup-full.sql.gz.aes256", work / f"cc{i}.enc"))
        expect.append(
            Expectation(
                "clustercontrol/backup-full.sql.gz.aes256",
                i,
                i != 1,
                "" if i != 1 else "bit flip in storage",
            )
        )
    keys = {"rsa": work / "demo-key.pem", "gpg": work / "demo-gpg.asc", "pass": work / "cmon.tmp"}
    return uploads, expect, keys


@contextlib.contextmanager
def demo_s3() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _fill_bucket(endpoint: str, uploads: list[tuple[str, Path]]) -> None:
    c = make_client(S3Settings(endpoint_url=endpoint))
    c.create_bucket(Bucket=BUCKET)
    c.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for key, path in uploads:
        with path.open("rb") as f:
            c.put_object(Bucket=BUCKET, Key=key, Body=f)
        time.sleep(0.01)  # distinct LastModified order for the pairing


def _open_listed(client: Any, pair: VersionPair) -> tuple[Source, Source | None]:
    """A listed version and its paired key version, through core's one road (as the
    app's jobs open them)."""
    listed = ListedVersion(BUCKET, pair.data, pair.key)
    opened: tuple[Source, Source | None] = Locator(S3Settings(), client=client).open_listed(listed)
    return opened


def verify_all(endpoint: str, keys: dict[str, Path], expect: list[Expectation]) -> int:
    client = make_client(S3Settings(endpoint_url=endpoint))
    sets = list_backup_sets(client, BUCKET, "")
    by_key = {e.key: [x for x in expect if x.key == e.key] for e in expect}
    mismatches = 0
    print(f"Demo bucket s3://{BUCKET} at {endpoint}\n")
    for s in sets:
        print(f"{s.name}  ({s.envelope}{', key ' + s.key_name if s.key_name else ''})")
        versions = list(reversed(s.pairs))  # oldest first, matching upload order
        for idx, pair in enumerate(versions):
            data, wrapped = _open_listed(client, pair)
            secrets = Secrets(
                keys=[PemKey.from_file(keys["rsa"])],
                passphrase=bytearray(keys["pass"].read_bytes()),
                gpg=GpgOptions(key_file=keys["gpg"]),
            )
            report = run(Job(data=data, secrets=secrets, wrapped_key=wrapped))
            exp = next((e for e in by_key.get(s.name, []) if e.version_index == idx), None)
            as_expected = exp is not None and exp.ok == report.ok
            mismatches += 0 if as_expected else 1
            verdict = "OK    " if report.ok else "FAILED"
            note = "" if report.ok else f": {report.error.message if report.error else ''}"
            tag = "" if as_expected else "   <-- NOT AS EXPECTED"
            expected_note = f" (expected: {exp.why})" if exp and not exp.ok else ""
            print(
                f"  v{idx + 1} {pair.data.last_modified:%H:%M:%S}  {verdict}"
                f"{note}{expected_note}{tag}"
            )
        print()
    total = len(expect)
    print(
        f"{total - mismatches}/{total} versions behaved as the demo expects "
        "(good backups verify, the damaged ones fail with the layer that caught them)."
    )
    rt_ok = restore_test_demo(client, sets, keys)
    return 0 if mismatches == 0 and rt_ok else 1


def restore_test_demo(client: Any, sets: list[Any], keys: dict[str, Path]) -> bool:
    """A hash is not a recovery test: load one good mysqldump version into a throwaway
    MariaDB and check its rows. Skipped (not failed) when no server software is here."""

    name = "securecircle/1567744961188141183.sql.gz"
    s = next((x for x in sets if x.name == name), None)
    if s is None or len(s.pairs) < 2:
        return False
    pair = list(reversed(s.pairs))[1]  # v2: 4,000 rows, complete
    print(f"\nRestore test of {name} v2 in a throwaway MariaDB server...")
    try:
        find_tools()
    except SealcheckError as exc:
        print(f"  skipped: {exc.message()}")
        return True
    data, wrapped = _open_listed(client, pair)
    job = Job(data=data, secrets=Secrets(keys=[PemKey.from_file(keys["rsa"])]), wrapped_key=wrapped)
    r = restore_test(job, RestoreTestOptions())
    rows = sum(t.rows or 0 for t in r.tables)
    if r.ok:
        print(
            f"  PASSED: {len(r.tables)} table(s), {rows:,} rows back in {r.server}, each count "
            f"equal to the dump's; loaded in {r.load_seconds or 0:.1f} s, usable after "
            f"{r.total_seconds:.1f} s (the recovery time); server stopped, folder wiped."
        )
        return rows == 4000
    print(f"  FAILED: {r.error.message if r.error else 'checks failed'}   <-- NOT AS EXPECTED")
    return False


def run_demo(*, no_gui: bool, keep: bool = False) -> int:
    for tool in ("openssl", "gzip", "bzip2", "gpg"):
        if shutil.which(tool) is None:
            print(f"sealcheck demo: {tool} is not installed", file=sys.stderr)
            return 2
    # SIGTERM (a logout, ``timeout``) ends the demo through the ``finally`` below, as
    # Ctrl-C does: the folder and the gpg-agent of its key home go with it. While the
    # window is open, the app carries both signals into its event loop (app.py).
    from ..signals import exit_on_signals

    with exit_on_signals():
        work = Path(tempfile.mkdtemp(prefix="sealcheck-demo-"))
        try:
            # The demo's results are about throwaway samples: they go to a history of
            # their own in the demo folder (removed with it), never the user's history.
            os.environ["SEALCHECK_DATA_DIR"] = str(work / "data")
            # Sources added in the demo window stay with the demo (settings.config_path).
            os.environ["SEALCHECK_CONFIG_DIR"] = str(work / "config")
            os.environ.setdefault("SEALCHECK_STATE_DIR", str(work / "state"))
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
            print(
                "Making sample backups with openssl, gzip, bzip2 and gpg, "
                "the seed pipelines' way..."
            )
            uploads, expect, keys = make_samples(work)
            with demo_s3() as endpoint:
                _fill_bucket(endpoint, uploads)
                if not no_gui:
                    # Qt loads only for the window: `demo --no-gui` runs without it.
                    from .window import run_demo_gui

                    return run_demo_gui(endpoint, keys, BUCKET)
                print("Headless: the demo key is passed to the verifier directly.\n")
                return verify_all(endpoint, keys, expect)
        finally:
            if keep:
                print(f"demo files kept in {work}")
            else:
                # gpg started an agent for the demo's key home: stop it with the demo.
                subprocess.run(
                    ["gpgconf", "--homedir", str(work / "gnupg"), "--kill", "all"],
                    capture_output=True,
                    check=False,
                )
                shutil.rmtree(work, ignore_errors=True)
