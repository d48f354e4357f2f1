"""Names from the store or the file system reach the terminal escaped (issue 10).

A backup's file name, an object key, a table name or an error quoting them is
chosen by whoever wrote the backup. The CLI's human-readable output shows their
control characters as visible escapes (core/cli/termtext.py): no ESC, BEL, CR or
other C0/C1 byte reaches stdout or stderr, while ``--json`` keeps the names
exact. The backups are made by gzip + openssl enc (fixtures.pipelines) under
names that carry ESC[2J (clear screen), BEL and CR.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.dumps import mysql_like
from fixtures.pipelines import openssl_variant
from fixtures.s3servers import Bucket
from fixtures.softhsm import SoftHsm, make_token_store
from sealcheck.core.cli.common import TerminalProgress
from sealcheck.core.cli.restoretest import print_result
from sealcheck.core.cli.termtext import safe
from sealcheck.core.plumbing.progress import ProgressEvent
from sealcheck.core.records.restore_result import RestoreTestResult, TableResult

EVIL = "evil\x1b[2J\x07\rname"
SHOWN = "evil\\x1b[2J\\x07\\rname"


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The CLI in a subprocess, its output checked as bytes: text mode would turn
    a raw CR into a LF before the test could see it."""
    r = subprocess.run(
        [sys.executable, "-m", "sealcheck.core.cli", *args],
        capture_output=True,
        check=False,
        timeout=120,
        env=env,
    )
    out, err = r.stdout.decode(), r.stderr.decode()
    assert "Traceback" not in err, err
    return r.returncode, out, err


def assert_terminal_safe(*texts: str) -> None:
    for t in texts:
        bad = sorted({c for c in t if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0})
        assert not bad, f"raw control characters {bad!r} in:\n{t!r}"


@dataclass(frozen=True)
class EvilBackup:
    data: Path
    passphrase_file: Path
    plaintext: bytes


@pytest.fixture(scope="module")
def evil(tmp_path_factory: pytest.TempPathFactory) -> EvilBackup:
    d = tmp_path_factory.mktemp("evil")
    dump = mysql_like(d / "dump.sql", rows=100)
    b = openssl_variant(dump, d / "out", name=f"{EVIL}.sql.gz.enc")
    assert b.passphrase_file is not None and EVIL in b.data.name
    return EvilBackup(b.data, b.passphrase_file, dump.read_bytes())


def test_verify_ok_shows_the_name_escaped(evil: EvilBackup) -> None:
    rc, out, err = cli(
        "--debug", "verify", str(evil.data), "--passphrase-file", str(evil.passphrase_file)
    )
    assert rc == 0, out + err
    assert f"VERIFIED  {safe(evil.data)}" in out
    assert SHOWN in out
    assert_terminal_safe(out, err)  # --debug log lines included


def test_verify_failure_shows_the_name_escaped(evil: EvilBackup, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not the passphrase\n")
    rc, out, err = cli("verify", str(evil.data), "--passphrase-file", str(wrong))
    assert rc == 1, out + err
    assert f"FAILED  {safe(evil.data)}" in out
    assert SHOWN in out.splitlines()[1]  # the error line quotes the object
    assert_terminal_safe(out, err)


def test_error_on_stderr_is_escaped(tmp_path: Path) -> None:
    missing = tmp_path / f"{EVIL}-missing.sql.gz.enc"
    rc, out, err = cli("verify", str(missing), "--passphrase-file", str(tmp_path / "p"))
    assert rc == 2, out + err
    assert err.startswith("sealcheck: ") and SHOWN in err
    assert_terminal_safe(out, err)


def test_restore_output_and_errors_are_escaped(evil: EvilBackup, tmp_path: Path) -> None:
    dest = tmp_path / f"{EVIL}.sql"
    args = ("restore", str(evil.data), "--passphrase-file", str(evil.passphrase_file))
    rc, out, err = cli(*args, "-o", str(dest))
    assert rc == 0, out + err
    assert dest.read_bytes() == evil.plaintext
    assert f"written to {safe(dest)}" in out
    assert_terminal_safe(out, err)

    rc, out, err = cli(*args, "-o", str(dest))  # exists, no --force
    assert rc == 2, out + err
    assert "--force" in out and f"{safe(dest)}: The file could not be written" in out
    assert_terminal_safe(out, err)


def test_json_keeps_names_exact(evil: EvilBackup) -> None:
    rc, out, err = cli(
        "verify", str(evil.data), "--passphrase-file", str(evil.passphrase_file), "--json"
    )
    assert rc == 0, err
    assert_terminal_safe(out)  # JSON escapes them itself ("\u001b")
    assert json.loads(out)["source"]["uri"] == str(evil.data)


def test_history_lines_are_escaped(evil: EvilBackup) -> None:
    rc, out, err = cli("verify", str(evil.data), "--passphrase-file", str(evil.passphrase_file))
    assert rc == 0, out + err
    rc, out, err = cli("history")
    assert rc == 0, err
    assert SHOWN in out
    assert_terminal_safe(out, err)


def test_argparse_errors_are_escaped(tmp_path: Path) -> None:
    """argparse quotes what it was given: a name globbed from a folder of backups."""
    rc, out, err = cli("verify", str(tmp_path / "a"), str(tmp_path / EVIL))
    assert rc == 2
    assert "unrecognized arguments" in err and SHOWN in err
    assert_terminal_safe(out, err)


def test_list_escapes_object_keys(evil: EvilBackup, moto_s3: Bucket) -> None:
    """moto answers ListObjectVersions with a 500 for keys holding ESC or BEL (it
    writes them raw into the XML), so the S3 names here carry C1 controls and DEL:
    CSI (0x9b) is a one-character ESC[ to terminals that honour 8-bit controls."""
    name = "db/c1\x9b2J\x85\x7fname.sql.gz.enc"
    moto_s3.put(name, evil.data)
    rc, out, err = cli("list", moto_s3.uri("db/"), "--endpoint-url", moto_s3.endpoint)
    assert rc == 0, out + err
    assert "db/c1\\x9b2J\\x85\\x7fname.sql.gz.enc" in out
    assert_terminal_safe(out, err)

    rc, out, err = cli("list", moto_s3.uri("db/"), "--endpoint-url", moto_s3.endpoint, "--json")
    assert rc == 0, err
    assert json.loads(out)["backup_sets"][0]["name"] == name


def test_key_list_escapes_token_labels(softhsm: SoftHsm, tmp_path: Path) -> None:
    """Keyring names are restricted to [A-Za-z0-9._-]; a token's label is whatever
    its owner (or whoever handed the token over) wrote into it."""
    label = "tok\x1b[2J\x07\rX"
    store = make_token_store(softhsm, tmp_path / "hsm", {label: "111111"})
    env = {**store.env, "XDG_DATA_HOME": str(tmp_path / "no-keyring-keys")}
    rc, out, err = cli("key", "list", "--pkcs11-module", softhsm.module, env=env)
    assert rc == 0, out + err
    assert "tok\\x1b[2J\\x07\\rX/rsakey" in out
    assert_terminal_safe(out, err)
    rc, out, err = cli("key", "list", "--pkcs11-module", softhsm.module, "--json", env=env)
    assert rc == 0, err
    assert f"{label}/rsakey" in {row["name"] for row in json.loads(out)["keys"]}


def test_restore_test_result_is_escaped() -> None:
    """print_result: table names, warnings and the error come from the dump and
    the server's messages."""
    table = TableResult(f"t{EVIL}", "db", 3, 3, "abc", ok=True, note=f"n{EVIL}")
    result = RestoreTestResult(
        ok=True,
        engine="mariadb",
        server=f"MariaDB {EVIL}",
        mode="throwaway",
        databases=("db",),
        tables=(table,),
        views=(f"v{EVIL}",),
        triggers=(),
        routines=(),
        events=(),
        missing=(f"m{EVIL}",),
        load_seconds=1.0,
        checks_seconds=0.5,
        total_seconds=1.5,
        started_at="2026-01-01T00:00:00+00:00",
        warnings=(f"w{EVIL}",),
        hostile=({"line": 3, "kind": "k", "statement": f"s{EVIL}"},),
        roles_created=(f"r{EVIL}",),
        rewritten=(),
        error=None,
        load_error=None,
        verification=None,
    )
    out = io.StringIO()
    print_result(result, out)
    text = out.getvalue()
    assert_terminal_safe(text)
    for prefix in ("t", "n", "MariaDB ", "v", "m", "w", "s", "r"):
        assert prefix + SHOWN in text, prefix


def test_progress_line_escapes_the_stage() -> None:
    out = io.StringIO()
    bar = TerminalProgress(out)
    bar(ProgressEvent(EVIL, 10, 100, 5.0, 18.0, 2.0, ()))
    line = out.getvalue()
    assert line.startswith("\r")  # the bar's own CR, and only that one
    assert_terminal_safe(line[1:])
    assert SHOWN in line


def test_safe_escapes_what_a_terminal_acts_on_and_keeps_the_rest() -> None:
    assert safe("a\x1b[2Jb\x07c\rd\ne\tf\x00\x7f\x85\x9b") == (
        "a\\x1b[2Jb\\x07c\\rd\\ne\\tf\\x00\\x7f\\x85\\x9b"
    )
    # A name that really holds a backslash cannot pass for an escape.
    assert safe("x\\x1b") == "x\\\\x1b"
    # Bidirectional overrides reorder a line; undecodable file-name bytes
    # (surrogateescape) would make printing fail.
    assert safe("a\u202eb\u2028c\udcff") == "a\\u202eb\\u2028c\\udcff"
    kept = "café 日本 😀 naïve – “quoted” …"
    assert safe(kept) == kept
