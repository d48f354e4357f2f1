"""pg_dump archives as backup scripts pipe them: pg_dump | [gzip |] openssl enc > object.

The archive never touches disk before encryption (a custom-format archive written
to a pipe has no data offsets in its TOC), the CLI verifies and restores the object,
and the real pg_restore reads what was restored: Sealcheck's verdict and
pg_restore's agree, for the intact archive and for a damaged one.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from fixtures.adversarial import assert_failed, cli_json
from fixtures.databases import LoadedDatabase, PostgresServer
from fixtures.pipelines import sh

PASS = "openssl rand -base64 32 > pass"


def q(p: Path | str) -> str:
    return shlex.quote(str(p))


def conn(srv: PostgresServer, db: str) -> str:
    return f"-h {q(srv.socket_dir)} -p {srv.port} -U {srv.superuser} -d {q(db)}"


def pg_restore_reads(srv: PostgresServer, archive: Path) -> subprocess.CompletedProcess[str]:
    """pg_restore turns the whole archive into SQL (reads every data block)."""
    return subprocess.run(
        [str(srv.bindir / "pg_restore"), "-f", "/dev/null", str(archive)],
        capture_output=True,
        text=True,
        check=False,
    )


def payload(rep: dict) -> dict:
    return next(x for x in rep["layers"] if x["layer"] == "payload")


PIPELINES = {
    "custom piped, CBC": ("pg_dump -Fc {conn}", "-aes-256-cbc -pbkdf2", "pg_dump-custom"),
    "tar piped, gzip, CTR": ("pg_dump -Ft {conn} | gzip", "-aes-256-ctr -pbkdf2", "pg_dump-tar"),
    "directory -j2, tarred": (
        "pg_dump -Fd -j 2 -f dir {conn} && tar -cf - dir",
        "-aes-128-cbc -md sha256",
        "pg_dump-directory",
    ),
}


@pytest.mark.parametrize("name", list(PIPELINES))
def test_piped_archive_verifies_and_restores_for_pg_restore(
    name: str, pg_server: PostgresServer, pg_rich_db: LoadedDatabase, tmp_path: Path
):
    producer, enc, kind = PIPELINES[name]
    pgd = q(pg_server.bindir / "pg_dump")
    producer = producer.replace("pg_dump", pgd, 1).format(conn=conn(pg_server, pg_rich_db.name))
    sh(f"{PASS}\n{{ {producer}; }} | openssl enc {enc} -pass file:pass > backup.enc", tmp_path)
    data, pf = tmp_path / "backup.enc", tmp_path / "pass"
    rc, rep, err = cli_json("verify", str(data), "--passphrase-file", str(pf), "--strict")
    assert rc == 0, (rep, err)
    d = payload(rep)["details"]
    assert d["kind"] == kind and d["checked"] is True
    (facts,) = d["archives"]
    assert facts["table_rows"] == {f"public.{t}": n for t, n in pg_rich_db.row_counts.items()}
    out = tmp_path / "restored"
    rc, rep, err = cli_json("restore", str(data), "-o", str(out), "--passphrase-file", str(pf))
    assert rc == 0, (rep, err)
    if kind == "pg_dump-directory":  # the restored plaintext is the tar of the folder
        sh(f"mkdir x && tar -C x -xf {q(out)}", tmp_path)
        out = tmp_path / "x" / "dir"
    assert pg_restore_reads(pg_server, out).returncode == 0


def test_damaged_compressed_block_fails_like_pg_restore(
    pg_server: PostgresServer, pg_rich_db: LoadedDatabase, tmp_path: Path
):
    """CTR has no padding and no MAC: one flipped byte in a zlib block is found only
    by the payload, and pg_restore agrees the archive is damaged."""
    pgd = q(pg_server.bindir / "pg_dump")
    sh(f"{pgd} -Fc -f plain.dump {conn(pg_server, pg_rich_db.name)}", tmp_path)
    plain = (tmp_path / "plain.dump").read_bytes()
    sh(f"{PASS}\nopenssl enc -aes-256-ctr -pbkdf2 -pass file:pass -in plain.dump > b.enc", tmp_path)
    data = tmp_path / "b.enc"
    bad = bytearray(data.read_bytes())
    where = len(plain) * 3 // 4  # inside a data block
    bad[16 + where] ^= 0x10
    data.write_bytes(bad)
    (tmp_path / "damaged.dump").write_bytes(
        plain[:where] + bytes([plain[where] ^ 0x10]) + plain[where + 1 :]
    )
    assert pg_restore_reads(pg_server, tmp_path / "damaged.dump").returncode != 0
    rc, rep, _ = cli_json("verify", str(data), "--passphrase-file", str(tmp_path / "pass"))
    assert rc == 1
    err = assert_failed(rep, obj=data, layer="payload", kind="IntegrityError")
    assert "TABLE DATA public." in err["message"]
