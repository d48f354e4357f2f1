"""Restore test of physical backups (issue 16): real mariabackup backups of sakila,
extracted into the sandbox, ``mariabackup --prepare``, a throwaway MariaDB started on
them, and the logical test's checks. ClusterControl's physical pipeline (xbstream →
gzip -6 → openssl enc) from a versioned moto bucket, plain and ``--compress``; xbcrypt
members; damaged variants; drift; backups of a server that is not installed here.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from fixtures.physical import (
    APSARA_KEY,
    CHANGED_ROWS,
    SAKILA_DB,
    SAKILA_ROWS,
    RealPhysical,
    encrypted_folder,
    flip_bit,
    foreign_tablespace,
    gnu_tar,
    gzip_openssl,
    mbstream_extract,
)
from fixtures.restoretest import descendants, restore_test_cli
from fixtures.s3servers import S3Store
from fixtures.xbcrypt import PERCONA_TEST_KEY, encrypt_members, write_xbstream, xbstream_files

pytestmark = pytest.mark.timeout(900)

SAKILA_VIEWS = [
    "actor_info", "customer_list", "film_list", "nicer_but_slower_film_list",
    "sales_by_film_category", "sales_by_store", "staff_list",
]  # fmt: skip
SAKILA_TRIGGERS = [
    "customer_create_date", "del_film", "ins_film", "payment_date", "rental_date", "upd_film",
]  # fmt: skip


def rows(res: dict[str, Any]) -> dict[str, int]:
    return {t["name"]: t["rows"] for t in res["tables"]}


def wiped(res: dict[str, Any]) -> None:
    """The sandbox is gone: the result says so, and the folder it names is not there."""
    folders = [c.split(" ", 1)[1] for c in res["cleanup"] if c.startswith("wiped /")]
    assert folders and not any(Path(f).exists() for f in folders), res["cleanup"]
    assert res["cleanup_status"] == "cleaned", res["cleanup"]


def passes(res: dict[str, Any], want: dict[str, int] = SAKILA_ROWS) -> None:
    assert res["ok"] and res["error"] is None, res["error"]
    assert res["engine"] == "mariadb" and res["mode"] == "throwaway"
    assert res["databases"] == [SAKILA_DB]
    assert rows(res) == want
    assert all(t["ok"] and t["checksum"] for t in res["tables"])
    assert res["views"] == SAKILA_VIEWS and res["triggers"] == SAKILA_TRIGGERS
    assert len(res["routines"]) == 6 and res["missing"] == []
    dump = res["dump"]
    assert dump["physical"] and dump["producer"] == "mariabackup"
    for step in ("extract_seconds", "prepare_seconds", "start_seconds"):
        assert dump[step] is not None and dump[step] >= 0
    assert res["total_seconds"] >= res["load_seconds"] > 0
    wiped(res)


def put(store: S3Store, path: Path) -> tuple[str, str]:
    bucket = store.bucket()
    bucket.put(f"db/{path.name}", path)
    return bucket.uri(f"db/{path.name}"), bucket.endpoint


@pytest.mark.parametrize("which", ["plain", "compressed"])
def test_clustercontrol_physical_from_s3_restores_and_checks(
    which: str,
    real_physical: RealPhysical,
    physical_keys: dict[str, Path],
    moto_store: S3Store,
    rt_state: Path,
    tmp_path: Path,
) -> None:
    src = real_physical.plain if which == "plain" else real_physical.compressed
    bk = gzip_openssl(src, tmp_path / "backup-full.xbstream.gz.aes256", physical_keys["openssl"])
    uri, endpoint = put(moto_store, bk)
    pw = ("--passphrase-file", str(physical_keys["openssl"]))
    rc, res = restore_test_cli(rt_state, uri, "--endpoint-url", endpoint, *pw)
    assert rc == 0, res["error"]
    passes(res)
    rep = res["verification"]
    assert rep["formats"][:3] == ["openssl-enc", "gzip", "xbstream"]
    statuses = {x["layer"]: x["status"] for x in rep["layers"]}
    assert statuses["backup"] == "ok" and statuses["pages"] == "ok"
    if which == "compressed":
        assert statuses["member-decompress"] == "ok"


def test_xbcrypt_members_restore(
    real_physical: RealPhysical, physical_keys: dict[str, Path], rt_state: Path, tmp_path: Path
) -> None:
    """ApsaraDB's layout: NAME.qp.xbcrypt members (v3), the key from a file."""
    enc = encrypt_members(real_physical.compressed.read_bytes(), PERCONA_TEST_KEY, version=3)
    bk = tmp_path / "test1_qp.xb"
    bk.write_bytes(enc)
    rc, res = restore_test_cli(
        rt_state, str(bk), "--xbcrypt-key-file", str(physical_keys["percona"])
    )
    assert rc == 0, res["error"]
    passes(res)
    mc = next(x for x in res["verification"]["layers"] if x["layer"] == "member-cipher")
    assert mc["status"] == "ok" and mc["details"]["key_proved"] is True


@pytest.mark.parametrize("top", [False, True], ids=["root", "top-folder"])
def test_apsaradb_tar_gz_restores(
    top: bool,
    real_physical: RealPhysical,
    physical_keys: dict[str, Path],
    rt_state: Path,
    tmp_path: Path,
) -> None:
    """ApsaraDB's ``*.tar.gz``: the tar of the backup's folder, NAME.xbcrypt files, the
    key from the KMS plaintext; the same sandbox, prepare, server and checks. Also as
    ``tar czf b.tgz backupdir/`` makes it: the folder is the backup's root."""
    mbstream_extract(real_physical.plain, tmp_path / "plain")
    enc = encrypted_folder(tmp_path / "plain", tmp_path / "enc", APSARA_KEY)
    bk = tmp_path / "test1.tar.gz"
    if top:
        subprocess.run(["tar", "czf", str(bk), "-C", str(tmp_path), "enc/"], check=True)
    else:
        gnu_tar(enc, bk, "-z")
    rc, res = restore_test_cli(
        rt_state, str(bk), "--kms-plaintext-file", str(physical_keys["apsara"])
    )
    assert rc == 0, res["error"]
    passes(res)
    assert res["dump"]["kind"] == "xtrabackup-tar"
    assert res["verification"]["formats"][-1] == "tar"


def test_drift_against_a_baseline_and_the_redo_log_applied(
    real_physical: RealPhysical, rt_state: Path, tmp_path: Path
) -> None:
    """The later backup's changes are in its redo log only: the counts prove the prepare
    applied it; against the earlier result, drift names them."""
    rc, first = restore_test_cli(rt_state, str(real_physical.plain))
    assert rc == 0, first["error"]
    base = tmp_path / "baseline.json"
    base.write_text(json.dumps(first))
    rc, res = restore_test_cli(rt_state, str(real_physical.changed), "--baseline", str(base))
    assert rc == 0, res["error"]
    passes(res, CHANGED_ROWS)
    drift = res["drift"]
    q = f"{SAKILA_DB}."
    assert drift["emptied"] == [q + "film_text"]
    assert {c["name"]: (c["before"], c["after"]) for c in drift["row_changes"]} == {
        q + "film_text": (1000, 0),
        q + "payment": (16049, 16000),
    }
    assert q + "payment" in drift["checksum_changes"]


def test_damaged_backups_fail_at_their_layer(
    real_physical: RealPhysical, physical_keys: dict[str, Path], rt_state: Path, tmp_path: Path
) -> None:
    # A bit in the openssl ciphertext: caught by the stream's own checks, exit 1, no
    # server started, the sandbox the stream was being extracted into wiped.
    cc = gzip_openssl(real_physical.plain, tmp_path / "cc.aes256", physical_keys["openssl"])
    raw = cc.read_bytes()
    bad = tmp_path / "cc-bad.aes256"
    bad.write_bytes(flip_bit(raw, len(raw) // 2))
    rc, res = restore_test_cli(
        rt_state, str(bad), "--passphrase-file", str(physical_keys["openssl"])
    )
    assert rc == 1 and res["error"]["layer"] in ("decompress", "payload"), res["error"]
    assert res["tables"] == [] and res["dump"]["prepare_seconds"] is None
    wiped(res)
    # A table definition (.frm) damaged, the stream's CRCs recomputed: every layer of the
    # backup verifies (no checksum covers a .frm), and only the server reading it fails.
    files = xbstream_files(real_physical.plain.read_bytes())
    frm = bytearray(files[f"{SAKILA_DB}/film.frm"])
    for i in range(64, len(frm), 7):
        frm[i] ^= 0x5A
    files[f"{SAKILA_DB}/film.frm"] = bytes(frm)
    bk = tmp_path / "frm.xbstream"
    bk.write_bytes(write_xbstream(files))
    rc, res = restore_test_cli(rt_state, str(bk))
    assert rc == 1, res["error"]
    assert res["verification"]["ok"] is True
    assert res["error"]["kind"] == "PreparedDataUnreadable" and res["error"]["layer"] == "database"
    assert "film.frm" in res["error"]["message"]
    wiped(res)


def test_a_table_the_server_cannot_read_fails_alone(
    real_physical: RealPhysical, rt_state: Path, tmp_path: Path
) -> None:
    """One tablespace whose pages are all whole but carry another tablespace's id: every
    layer verifies (page checksums too), the backup prepares and the server starts, and
    only that table cannot be read. It fails by name with the server's error; the other
    tables are still listed, counted and checksummed, and the verdict says so."""
    files = xbstream_files(real_physical.plain.read_bytes())
    name = f"{SAKILA_DB}/language.ibd"
    files[name] = foreign_tablespace(files[name], 4000, tmp_path)
    bk = tmp_path / "foreign.xbstream"
    bk.write_bytes(write_xbstream(files))
    rc, res = restore_test_cli(rt_state, str(bk))
    assert rc == 1, res["error"]
    statuses = {x["layer"]: x["status"] for x in res["verification"]["layers"]}
    assert res["verification"]["ok"] is True and statuses["pages"] == "ok"
    assert res["dump"]["prepare_seconds"] is not None and res["dump"]["start_seconds"] is not None
    err = res["error"]
    assert err["kind"] == "PreparedDataUnreadable" and err["layer"] == "database", err
    msg = err["message"]
    assert "1 of 16 tables could not be read: language (the server's error" in msg, msg
    assert "Tablespace is missing" in msg and "the other 15 tables were read whole" in msg
    by_name = {t["name"]: t for t in res["tables"]}
    assert set(by_name) == set(SAKILA_ROWS)
    bad = by_name.pop("language")
    assert bad["ok"] is False and bad["rows"] is None and bad["checksum"] is None
    assert bad["note"].startswith("unreadable: the server's error ") and "194" in bad["note"]
    assert {n: t["rows"] for n, t in by_name.items()} == {
        n: r for n, r in SAKILA_ROWS.items() if n != "language"
    }
    assert all(t["ok"] and t["checksum"] for t in by_name.values())
    assert res["views"] == SAKILA_VIEWS and res["triggers"] == SAKILA_TRIGGERS
    assert res["missing"] == [] and not res["ok"]
    wiped(res)


def _relabel(stream: bytes, info: dict[bytes, bytes]) -> bytes:
    """The backup's own words about who made it, as another producer writes them."""
    files = xbstream_files(stream)
    text = files["xtrabackup_info"]
    for old, new in info.items():
        assert old in text
        text = text.replace(old, new)
    files["xtrabackup_info"] = text
    return write_xbstream(files)


@pytest.mark.parametrize(
    ("info", "words"),
    [
        (  # ApsaraDB RDS for MySQL 8.0: Percona XtraBackup 8.0
            {
                b"tool_name = mariabackup": b"tool_name = xtrabackup",
                b"tool_version = 10.11.19-MariaDB": b"tool_version = 8.0.35-30",
                b"server_version = 10.11.19-MariaDB-0+deb12u1": b"server_version = 8.0.36",
            },
            ["Percona XtraBackup 8.0", "MySQL Server 8.0", "every layer", "--extract"],
        ),
        (  # ApsaraDB RDS for MySQL 5.7: innobackupex, Percona XtraBackup 2.4
            {
                b"tool_name = mariabackup": b"tool_name = innobackupex",
                b"tool_version = 10.11.19-MariaDB": b"tool_version = 2.4.29",
                b"server_version = 10.11.19-MariaDB-0+deb12u1": b"server_version = 5.7.44-log",
            },
            ["Percona XtraBackup 2.4", "MySQL Server 5.7", "every layer"],
        ),
        (  # MariaDB of another series
            {b"server_version = 10.11.19-MariaDB-0+deb12u1": b"server_version = 10.6.16-MariaDB"},
            ["install MariaDB 10.6", "mariadb-backup"],
        ),
    ],
)
def test_server_not_installed_here_is_not_checked_and_says_what_to_install(
    info: dict[bytes, bytes],
    words: list[str],
    real_physical: RealPhysical,
    rt_state: Path,
    tmp_path: Path,
) -> None:
    bk = tmp_path / "other.xbstream"
    bk.write_bytes(_relabel(real_physical.plain.read_bytes(), info))
    rc, res = restore_test_cli(rt_state, str(bk))
    assert rc == 2, res["error"]
    assert res["error"]["kind"] == "ServerSoftwareMissing"
    for w in words:
        assert w.lower() in res["error"]["message"].lower(), res["error"]["message"]
    # Verified to the pages before saying so, and nothing was prepared or started.
    assert res["verification"]["ok"] is True
    assert res["dump"]["prepare_seconds"] is None and res["tables"] == []
    wiped(res)


def test_apsaradb_mysql80_backup_verifies_and_says_what_to_install(
    real_physical: RealPhysical, physical_keys: dict[str, Path], rt_state: Path, tmp_path: Path
) -> None:
    """As ApsaraDB makes it (``.xb.gz``): XtraBackup 8.0 of MySQL 8.0, every member
    xbcrypt-encrypted, the key from KMS's Plaintext. Decrypted and verified to the
    pages, then exit 2 naming the XtraBackup and MySQL series to install; nothing
    prepared or started."""
    relabelled = _relabel(
        real_physical.plain.read_bytes(),
        {
            b"tool_name = mariabackup": b"tool_name = xtrabackup",
            b"tool_version = 10.11.19-MariaDB": b"tool_version = 8.0.35-30",
            b"server_version = 10.11.19-MariaDB-0+deb12u1": b"server_version = 8.0.36",
        },
    )
    bk = tmp_path / "test1.xb.gz"  # gzip around an xbstream of NAME.xbcrypt members
    bk.write_bytes(gzip.compress(encrypt_members(relabelled, APSARA_KEY, version=3), 1))
    rc, res = restore_test_cli(
        rt_state, str(bk), "--kms-plaintext-file", str(physical_keys["apsara"])
    )
    assert rc == 2 and res["error"]["kind"] == "ServerSoftwareMissing", res["error"]
    msg = res["error"]["message"]
    for w in (
        "xtrabackup 8.0.35-30 from MySQL 8.0.36",
        "Percona XtraBackup 8.0",
        "MySQL Server 8.0",
    ):
        assert w in msg, msg
    statuses = {x["layer"]: x["status"] for x in res["verification"]["layers"]}
    assert res["verification"]["ok"] is True
    assert statuses["member-cipher"] == "ok" and statuses["pages"] == "ok"
    assert res["dump"]["prepare_seconds"] is None and res["tables"] == []
    wiped(res)


@pytest.mark.parametrize(
    "option",
    [("--server", "mysql://root@localhost/?socket=/nonexistent.sock"), ("--engine", "postgres")],
)
def test_physical_backup_with_server_or_postgres_is_refused(
    option: tuple[str, str], real_physical: RealPhysical, rt_state: Path
) -> None:
    rc, res = restore_test_cli(rt_state, str(real_physical.compressed), *option)
    assert rc == 2 and res["error"]["kind"] == "NotRestorable", res["error"]
    assert f"not with {option[0]}" in res["error"]["message"]
    assert res["cleanup_status"] == "cleaned"


def test_incremental_backup_is_not_restorable_on_its_own(
    real_physical: RealPhysical, rt_state: Path, tmp_path: Path
) -> None:
    files = xbstream_files(real_physical.plain.read_bytes())
    cp = files["xtrabackup_checkpoints"]
    files["xtrabackup_checkpoints"] = cp.replace(
        b"backup_type = full-backuped", b"backup_type = incremental"
    )
    assert files["xtrabackup_checkpoints"] != cp
    bk = tmp_path / "inc.xbstream"
    bk.write_bytes(write_xbstream(files))
    rc, res = restore_test_cli(rt_state, str(bk))
    assert rc == 2 and res["error"]["kind"] == "NotPreparable", res["error"]
    assert "full backup" in res["error"]["message"]
    wiped(res)


class ServerWatch(threading.Thread):
    """While a restore test runs, looks at the mariadbd this test started: its argv,
    its socket's folder, and whether it holds a listening TCP socket."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.argv: list[str] = []
        self.folder_mode: int | None = None
        self.folder_uid: int | None = None
        self.tcp_listening: set[str] = set()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            for pid in descendants(os.getpid()):
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
                except OSError:
                    continue
                if not argv[0].endswith("mariadbd") or "--skip-grant-tables" not in argv:
                    continue
                self.argv = argv
                sock = next(a.split("=", 1)[1] for a in argv if a.startswith("--socket="))
                with contextlib.suppress(OSError):
                    st = os.stat(Path(sock).parent)
                    self.folder_mode, self.folder_uid = stat.S_IMODE(st.st_mode), st.st_uid
                self.tcp_listening |= _listening_inodes(pid)


def _listening_inodes(pid: int) -> set[str]:
    """Inodes of the TCP sockets in LISTEN state that process ``pid`` holds."""
    held = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    held.add(target[8:-1])
    listening = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A":  # TCP_LISTEN
                    listening.add(cols[9])
    return held & listening


def test_the_backups_accounts_never_count_and_the_server_has_no_network(
    real_physical: RealPhysical, rt_state: Path
) -> None:
    """The prepared server runs without grant tables (the backup's mysql.* accounts,
    hostile input, never exist), which is safe only because nothing but its private
    folder's socket reaches it: seen on the running server."""
    watch = ServerWatch()
    watch.start()
    try:
        rc, res = restore_test_cli(rt_state, str(real_physical.plain))
    finally:
        watch.stop.set()
        watch.join(5)
    assert rc == 0, res["error"]
    argv = watch.argv
    assert argv, "the prepared server was never seen"
    for flag in ("--skip-grant-tables", "--skip-networking", "--skip-slave-start",
                 "--skip-symbolic-links", "--local-infile=0", "--event-scheduler=OFF"):  # fmt: skip
        assert flag in argv, flag
    assert "--no-defaults" == argv[1]  # no my.cnf, nor the backup's backup-my.cnf
    assert watch.folder_mode == 0o700 and watch.tcp_listening == set()
    if os.geteuid() == 0:  # the server ran as an unprivileged user, who owns the folder
        assert watch.folder_uid not in (None, 0)
    wiped(res)


def test_max_disk_bounds_the_sandbox(real_physical: RealPhysical, rt_state: Path) -> None:
    """The files are written into the sandbox under --max-disk: past it the extraction
    stops, nothing is prepared or started, and the folder is gone."""
    rc, res = restore_test_cli(rt_state, str(real_physical.plain), "--max-disk", "10000000")
    assert rc == 1 and res["error"]["kind"] == "SizeLimitExceeded", res["error"]
    assert "--max-disk" in res["error"]["message"]
    assert res["tables"] == [] and res["dump"]["prepare_seconds"] is None
    wiped(res)
