"""Restore test, end to end with real servers, real clients and real dumps (issue 5).

Each test starts its own throwaway server (MariaDB ~5 s, PostgreSQL ~2 s) from the
locally installed binaries; the source databases come from fixtures.databases.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fixtures.common import SHARED, run_cli
from fixtures.databases import MariaDBServer, PostgresServer, RealDump
from fixtures.pipelines import RsaKey, rds_postgres, securecircle
from fixtures.restoretest import (
    ProcWatcher,
    RunWatcher,
    api_run,
    hostile_mysql_dump,
    hostile_pg_dump,
)
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.pipeline.job import Job
from sealcheck.core.plumbing.progress import CancelToken
from sealcheck.core.restoretest import RestoreTestOptions, restore_test
from sealcheck.core.restoretest.drift import compare
from sealcheck.core.restoretest.engines.mariadb import MariaDBTarget
from sealcheck.core.restoretest.engines.pgchecks import digests
from sealcheck.core.restoretest.engines.postgres import PostgresTarget
from sealcheck.core.restoretest.procs import StateDir
from sealcheck.core.storage.source import LocalFile

SAKILA = SHARED / "data" / "sakila-sequelpro-mysql57.sql"
SAKILA_ROWS = {
    "actor": 200, "address": 603, "category": 16, "city": 600, "country": 109,
    "customer": 599, "film": 1000, "film_actor": 5462, "film_category": 1000,
    "film_text": 1000, "inventory": 4581, "language": 6, "payment": 16049,
    "rental": 16044, "staff": 2, "store": 2,
}  # fmt: skip


def restore_test_cli(state: Path, *args: str) -> tuple[int, dict]:
    env = {**os.environ, "SEALCHECK_STATE_DIR": str(state)}
    r = run_cli("restore-test", *args, "--json", "--no-progress", env=env, timeout=300)
    try:
        return r.returncode, json.loads(r.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")


def rows(result: dict) -> dict[str, int]:
    return {t["name"]: t["rows"] for t in result["tables"]}


# Each test checks what its own runs started (their records in its state folder), never
# the whole process table: other restore tests may run on the machine at the same time.
pytestmark = pytest.mark.usefixtures("no_restore_leftovers")


# --- real dumps pass, with the right row counts --------------------------------------


def test_sakila_sequel_pro_dump_passes(tmp_path: Path, rsa_key: RsaKey, rt_state: Path) -> None:
    """A third-party dump (# comments, its own create schema/use, DELIMITER ;; routines,
    no trailer), encrypted the SecureCircle way, restores with exactly its rows."""
    b = securecircle(SAKILA, tmp_path / "s3", rsa_key)
    rc, res = restore_test_cli(rt_state, str(b.data), "--key", str(rsa_key.private))
    assert rc == 0, res["error"]
    assert res["ok"] is True and res["engine"] == "mariadb" and res["mode"] == "throwaway"
    assert res["server"].startswith("MariaDB 10.")
    assert rows(res) == SAKILA_ROWS
    assert all(t["ok"] and t["expected_rows"] == t["rows"] for t in res["tables"])
    assert all(t["checksum"] and t["checksum"].isdigit() for t in res["tables"])
    assert {t["schema"] for t in res["tables"]} == {"sakila_dojo"}
    assert len(res["views"]) == 7 and len(res["triggers"]) == 6 and len(res["routines"]) == 6
    assert res["missing"] == [] and res["hostile"] == []
    assert res["dump"]["producer"] == "Sequel Pro"
    assert res["load_seconds"] > 0 and res["total_seconds"] >= res["load_seconds"]
    # DEFINER=`root`@`localhost`: defined by the loading account (a definer-less load);
    # no account is created for it, and none may borrow another account's privileges.
    assert res["roles_created"] == []
    assert any("DEFINER=`root`@`localhost` (defined by the loading account" in r
               for r in res["rewritten"])  # fmt: skip
    assert res["verification"]["ok"] is True
    assert [x["status"] for x in res["verification"]["layers"][:4]] == ["ok"] * 4


def test_mariadb_dump_passes_with_source_counts_and_checksums(
    tmp_path: Path, rsa_key: RsaKey, rt_state: Path,
    mariadb_server: MariaDBServer, mariadb_rich_dump: RealDump,
) -> None:  # fmt: skip
    dump = mariadb_rich_dump
    b = securecircle(dump.path, tmp_path / "s3", rsa_key)
    rc, res = restore_test_cli(rt_state, str(b.data), "--key", str(rsa_key.private))
    assert rc == 0, res["error"]
    db = dump.database
    assert rows(res) == mariadb_server.row_counts(db.name) == db.row_counts
    src = mariadb_server.checksums(db.name)
    assert {t["name"]: t["checksum"] for t in res["tables"]} == src
    assert res["views"] == ["order_totals"] and res["triggers"] == ["order_lines_total"]
    assert res["routines"] == ["log_event"]
    assert res["dump"]["sandbox_line"] is (
        b"enable the sandbox mode" in dump.path.read_bytes()[:200]
    )


def test_pg_dump_passes_with_source_counts_and_digests(
    tmp_path: Path, rsa_key: RsaKey, rt_state: Path,
    pg_server: PostgresServer, pg_rich_dump: RealDump,
) -> None:  # fmt: skip
    dump = pg_rich_dump
    b = rds_postgres(dump.path, tmp_path / "s3", rsa_key)
    rc, res = restore_test_cli(rt_state, str(b.data), "--key", str(rsa_key.private))
    assert rc == 0, res["error"]
    assert res["engine"] == "postgresql" and res["server"].startswith("PostgreSQL 15")
    db = dump.database
    assert rows(res) == pg_server.row_counts(db.name) == db.row_counts
    # The same digest computed on the source database.
    psql = [str(pg_server.bindir / "psql"), "-X", "-h", str(pg_server.socket_dir),
            "-p", str(pg_server.port), "-U", pg_server.superuser, "-d", db.name]  # fmt: skip
    src = digests(psql, dict(os.environ), [("public", t) for t in db.tables], CancelToken())
    assert {t["name"]: t["checksum"] for t in res["tables"]} == {
        k[1]: f"sha256:{v[1]}" for k, v in src.items()
    }
    assert res["views"] == ["order_totals"] and res["triggers"] == ["order_lines_total"]
    assert set(res["routines"]) == {"log_event", "order_lines_total"}
    # pg_dump 15.14+ writes its own \restrict line: blanked, ours stays in effect.
    if b"\\restrict " in dump.path.read_bytes()[:4096]:
        assert any("restrict" in r for r in res["rewritten"])
    # Objects owned by `postgres`: the role is created NOLOGIN (our superuser is random).
    assert "postgres (NOLOGIN)" in res["roles_created"]


def test_pg_dump_create_clean_restores_into_the_test_database(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer, pg_rich_dump: RealDump
) -> None:
    """pg_dump -C --clean: DROP/CREATE/ALTER DATABASE and \\connect name the dumped
    database; they are blanked (reported) and its objects load into the test database."""
    db = pg_rich_dump.database
    out = tmp_path / "c.sql"
    cmd = [str(pg_server.bindir / "pg_dump"), "--format=plain", "-C", "--clean", "--if-exists",
           *pg_server._conn(db.name)]  # fmt: skip
    with out.open("wb") as f:
        subprocess.run(cmd, stdout=f, check=True, timeout=120)
    assert b"\\connect" in out.read_bytes() and b"CREATE DATABASE" in out.read_bytes()
    rc, res = restore_test_cli(rt_state, str(out))
    assert rc == 0, res["error"]
    assert rows(res) == db.row_counts
    notes = " ".join(res["rewritten"])
    assert f"CREATE DATABASE {db.name}" in notes and f"\\connect {db.name}" in notes


def test_pg_dumpall_style_second_database_is_refused(tmp_path: Path, rt_state: Path) -> None:
    dump = tmp_path / "all.sql"
    dump.write_text(
        "--\n-- PostgreSQL database dump\n--\n\n"
        "CREATE DATABASE one;\n\\connect one\nCREATE TABLE a (id int);\n"
        "CREATE DATABASE two;\n\\connect two\nCREATE TABLE b (id int);\n"
        "\n--\n-- PostgreSQL database dump complete\n--\n\n"
    )
    rc, res = restore_test_cli(rt_state, str(dump), "--engine", "postgres")
    assert rc == 1, res
    assert res["error"]["kind"] == "DumpRefused"
    assert "line 8: CREATE DATABASE two: a second database" in res["error"]["message"]


# --- the dump is untrusted input ---------------------------------------------------------


@pytest.mark.parametrize("sandbox_line", [True, False], ids=["sandbox-line", "no-sandbox-line"])
@pytest.mark.parametrize("command", ["\\! touch {m}", "system touch {m}"], ids=["bang", "system"])
def test_client_commands_never_run(
    tmp_path: Path, rt_state: Path, sandbox_line: bool, command: str
) -> None:
    marker = tmp_path / "MARKER"
    body = "SELECT 1;\n" + command.format(m=marker) + "\nSELECT 2;\n"
    dump = hostile_mysql_dump(tmp_path / "d.sql", body, sandbox_line=sandbox_line)
    res = api_run(dump, rt_state)
    assert not marker.exists()
    assert res.exit_code == 1 and res.error.kind == "LoadFailed", res.error
    lines = dump.read_text().splitlines()
    assert res.load_error.line == lines.index(command.format(m=marker)) + 1
    assert res.load_error.statement.startswith(command.split()[0])
    assert [h["kind"] for h in res.hostile] == ["client command"]
    assert res.dump["sandbox_line"] is sandbox_line


ESCAPES = {
    "outfile": ("SELECT 'pwned' INTO OUTFILE '{m}';", "file write", "FILE privilege"),
    "general_log": (
        "SET GLOBAL general_log_file='{m}';\nSET GLOBAL general_log=1;",
        "server settings", "SUPER privilege",
    ),
    "local_infile": (
        "CREATE TABLE loot (t TEXT);\nLOAD DATA LOCAL INFILE '{secret}' INTO TABLE loot;",
        "file read", "local infile",
    ),
    # The loader may not even write the plugin tables (mysql.*): refused before any
    # library is looked for (the plugin folder is empty as well).
    "install_soname": ("INSTALL SONAME 'ha_blackhole';", "shared library", "command denied"),
    "create_function_soname": (
        "CREATE FUNCTION pwn RETURNS STRING SONAME 'ha_example.so';",
        "shared library", "access denied",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(ESCAPES))
def test_server_side_escapes_fail_and_are_reported(tmp_path: Path, rt_state: Path, name: str):
    marker = tmp_path / "written-by-server"
    secret = tmp_path / "client-secret.txt"
    secret.write_text("top secret\n")
    os.chmod(tmp_path, 0o755)
    stmt, kind, error_text = ESCAPES[name]
    dump = hostile_mysql_dump(
        tmp_path / "d.sql", stmt.format(m=marker, secret=secret), sandbox_line=False
    )
    res = api_run(dump, rt_state)
    assert not marker.exists()
    assert res.exit_code == 1 and res.error.kind == "LoadFailed", res.error
    assert error_text.lower() in res.load_error.message.lower(), res.load_error
    assert any(h["kind"].startswith(kind) for h in res.hostile), res.hostile


def test_psql_meta_commands_and_copy_program_never_run(tmp_path: Path, rt_state: Path) -> None:
    marker = tmp_path / "PGMARKER"
    os.chmod(tmp_path, 0o777)  # so that only our defences, not permissions, stop it
    for body, why in (
        (f"\\! touch {marker}", "backslash commands are restricted"),
        (f"COPY public.before TO PROGRAM 'touch {marker}';", "must be superuser"),
    ):
        dump = hostile_pg_dump(tmp_path / "d.sql", body)
        res = api_run(dump, rt_state)
        assert not marker.exists()
        assert res.exit_code == 1 and res.error.kind == "LoadFailed", res.error
        assert res.load_error.line == dump.read_text().splitlines().index(body) + 1
        assert res.load_error.statement == body, res.load_error
        assert res.hostile, body
        assert why in res.load_error.message


def test_cut_dump_fails_with_statement_and_line(
    tmp_path: Path, rsa_key: RsaKey, rt_state: Path
) -> None:
    """Sequel Pro writes no trailer: only the load can tell that the dump was cut."""
    data = SAKILA.read_bytes()
    cut = data.index(b"(8000,", data.index(b"INSERT INTO `payment`"))
    short = tmp_path / "short.sql"
    short.write_bytes(data[:cut])
    b = securecircle(short, tmp_path / "s3", rsa_key)
    rc, res = restore_test_cli(rt_state, str(b.data), "--key", str(rsa_key.private))
    assert rc == 1, res
    assert res["error"]["kind"] == "DumpCutShort"
    le = res["load_error"]
    assert le["statement"].startswith("INSERT INTO `payment`")
    assert le["line"] == data[: data.rindex(b"INSERT INTO `payment`", 0, cut)].count(b"\n") + 1
    assert f"line {le['line']}" in res["error"]["message"]
    assert res["verification"]["ok"] is True  # the envelope itself was whole


def test_cut_mariadb_dump_fails_at_payload_and_names_the_statement(
    tmp_path: Path, rsa_key: RsaKey, rt_state: Path, mariadb_rich_dump: RealDump
) -> None:
    data = mariadb_rich_dump.path.read_bytes()
    short = tmp_path / "short.sql"
    short.write_bytes(data[: len(data) // 2])
    b = securecircle(short, tmp_path / "s3", rsa_key)
    rc, res = restore_test_cli(rt_state, str(b.data), "--key", str(rsa_key.private))
    assert rc == 1, res
    assert res["error"]["kind"] == "DumpCutShort"
    assert "Dump completed" in res["error"]["message"]  # the payload layer's verdict too
    assert res["load_error"]["statement"].startswith("INSERT INTO")


def test_short_cut_dump_names_the_statement_without_a_server(
    tmp_path: Path, rsa_key: RsaKey, rt_state: Path
) -> None:
    """Under 64 KiB the client never starts; the cut statement is still named."""
    data = (
        b"-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n"
        b"--\n-- Host: localhost    Database: small\n\n"
        b"CREATE TABLE `t` (`id` int NOT NULL, `s` text) ENGINE=InnoDB;\n"
        b"INSERT INTO `t` VALUES (1,'one'),(2,'two;\\' still text'),(3,'thr"
    )
    assert len(data) < 65536
    short = tmp_path / "short.sql"
    short.write_bytes(data)
    b = securecircle(short, tmp_path / "s3", rsa_key)
    rc, res = restore_test_cli(rt_state, str(b.data), "--key", str(rsa_key.private))
    assert rc == 1, res
    assert res["error"]["kind"] == "DumpCutShort", res["error"]
    assert res["load_error"]["line"] == 6
    assert res["load_error"]["statement"].startswith("INSERT INTO `t`")
    assert "line 6" in res["error"]["message"]


# --- cancel, orphans, secrets ---------------------------------------------------------------


def test_cancel_mid_load_leaves_nothing_and_no_password_is_visible(
    tmp_path: Path, rt_state: Path, proc_watcher: ProcWatcher, monkeypatch,
    no_restore_leftovers: RunWatcher,
) -> None:  # fmt: skip
    big = tmp_path / "big.sql"
    data = SAKILA.read_bytes().replace(b"create schema sakila_dojo;\nuse sakila_dojo;\n", b"")
    # ~60 MB more rows: the load runs for seconds, so the cancel lands mid-load.
    row = b"(%d,'" + b"x" * 200 + b"')"
    batch = b",".join(row % i for i in range(1000))
    extra = b"CREATE TABLE bulk (id int, s text);\n" + b"".join(
        b"INSERT INTO bulk VALUES " + batch + b";\n" for _ in range(300)
    )
    big.write_bytes(data + extra)
    started = monkeypatch_secrets(monkeypatch, proc_watcher)
    proc_watcher.start()
    loaded: list[int] = []
    job = Job(data=LocalFile(big), secrets=Secrets(keys=[]),
              progress=lambda ev: loaded.append(ev.done))  # fmt: skip
    out = {}
    t = threading.Thread(target=lambda: out.update(r=restore_test(
        job, RestoreTestOptions(state_dir=rt_state))))  # fmt: skip
    t.start()
    deadline = time.monotonic() + 60
    while not loaded or loaded[-1] < len(data) + 10_000_000:  # well into the load
        assert time.monotonic() < deadline and t.is_alive(), out
        time.sleep(0.05)
    job.cancel.cancel()
    t.join(30)
    assert not t.is_alive()
    proc_watcher.stop()
    res = out["r"]
    assert res.error.kind == "Cancelled" and res.exit_code == 130
    assert no_restore_leftovers.left() == []
    assert started and proc_watcher.scans > 5
    assert any("mariadbd" in p for p in proc_watcher.processes_seen)
    assert proc_watcher.hits == []


def monkeypatch_secrets(monkeypatch, watcher: ProcWatcher) -> list[bool]:
    """Hand the throwaway accounts' passwords to the watcher as soon as they exist."""
    started: list[bool] = []
    for cls in (MariaDBTarget, PostgresTarget):
        orig = cls.start

        def start(self, *a, _orig=orig, **kw):
            if isinstance(self, MariaDBTarget):
                watcher.secrets += [self.loader.password, self.admin.password]
            else:
                watcher.secrets += list(self._pw.values())
            started.append(True)
            return _orig(self, *a, **kw)

        monkeypatch.setattr(cls, "start", start)
    return started


def test_pg_passwords_never_visible(
    tmp_path: Path, rt_state: Path, proc_watcher: ProcWatcher, monkeypatch
) -> None:
    monkeypatch_secrets(monkeypatch, proc_watcher)
    proc_watcher.start()
    res = api_run(hostile_pg_dump(tmp_path / "d.sql", "SELECT pg_sleep(1);"), rt_state)
    proc_watcher.stop()
    assert res.exit_code == 0, res.error
    assert any(p.endswith("/psql") for p in proc_watcher.processes_seen)
    assert len(proc_watcher.secrets) == 2 and proc_watcher.hits == []
    assert [h["kind"] for h in res.hostile] == ["workload (pg_sleep)"]


def test_killed_run_leaves_an_orphan_that_the_next_start_cleans(
    tmp_path: Path, rt_state: Path, no_restore_leftovers: RunWatcher
) -> None:
    env = {**os.environ, "SEALCHECK_STATE_DIR": str(rt_state)}
    p = subprocess.Popen([sys.executable, "-m", "sealcheck.core.cli", "restore-test", str(SAKILA),
                          "--json"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    records = rt_state / "restoretest"
    deadline = time.monotonic() + 60
    # Mid-start: its record names a process group (the installer or the server runs).
    while not any(json.loads(r.read_text() or "{}").get("pgid") for r in _records(records)):
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)  # the tool dies mid-start: no clean-up runs
    p.wait()
    assert no_restore_leftovers.left(wait=0), "expected an orphan folder or server"
    state = StateDir(records)
    cleaned = state.clean_orphans("mariadb")
    time.sleep(0.5)
    # The set-up step that was running may exit on its own before the clean-up
    # (then there is no server to stop): the invariant is that nothing remains.
    assert any("wiped orphan folder" in c for c in cleaned), cleaned
    assert no_restore_leftovers.left() == []


def _records(folder: Path) -> list[Path]:
    try:
        return [r for r in folder.glob("mariadb-*.json") if r.stat().st_size]
    except OSError:
        return []


# --- --server mode, drift, environment ---------------------------------------------------


def test_server_mode_uses_a_scratch_database_and_drops_it(
    tmp_path: Path, rt_state: Path, mariadb_server: MariaDBServer
) -> None:
    dsn = f"mysql://{mariadb_server.user}@localhost/?socket={mariadb_server.socket}"
    res = api_run(SAKILA, rt_state, server=dsn)
    assert res.exit_code == 0, res.error
    assert res.mode == "server"
    assert {t.name: t.rows for t in res.tables} == SAKILA_ROWS
    scratch = {t.schema for t in res.tables}.pop()
    assert scratch.startswith("sealcheck_rt_")
    assert any("sakila_dojo" in r for r in res.rewritten)  # create schema / use, mapped
    assert scratch not in mariadb_server.sql("SHOW DATABASES;").split()
    # A second database is refused, and nothing is left either.
    two = tmp_path / "two.sql"
    text = SAKILA.read_text()
    two.write_text(text[: text.index("LOCK TABLES")] + "CREATE DATABASE other;\nUSE other;\n")
    res2 = api_run(two, rt_state, server=dsn)
    assert res2.exit_code == 1 and res2.error.kind == "DumpRefused", res2.error
    assert not [d for d in mariadb_server.sql("SHOW DATABASES;").split() if "sealcheck_rt" in d]


def test_drift_against_an_earlier_result(tmp_path: Path) -> None:
    from sealcheck.core.records.restore_result import RestoreTestResult, TableResult

    def result(tables):
        return RestoreTestResult(
            ok=True, engine="mariadb", server="", mode="throwaway", databases=("s",),
            tables=tuple(TableResult(n, "s", r, r, c, True) for n, r, c in tables),
            views=(), triggers=(), routines=(), events=(), missing=(), load_seconds=1,
            checks_seconds=1, total_seconds=2, started_at="then", warnings=(), hostile=(),
            roles_created=(), rewritten=(), error=None, load_error=None, verification=None,
        )  # fmt: skip

    before = tmp_path / "before.json"
    before.write_text(result([("a", 5, "1"), ("b", 7, "2"), ("gone", 1, "3")]).to_json())
    d = compare(result([("a", 5, "1"), ("b", 0, "9"), ("new", 2, "4")]), before)
    assert d.tables_added == ("s.new",) and d.tables_removed == ("s.gone",)
    assert d.emptied == ("s.b",) and [c.name for c in d.row_changes] == ["s.b"]
    assert d.checksum_changes == ("s.b",)


def test_no_server_binaries_is_an_environment_error(tmp_path: Path, rt_state: Path) -> None:
    env = {**os.environ, "SEALCHECK_STATE_DIR": str(rt_state), "SEALCHECK_PG_BINDIR": str(tmp_path)}
    r = run_cli("restore-test", str(SAKILA), "--engine", "postgres", env=env, timeout=60)
    # The dump is MySQL-format but the engine was forced: no PostgreSQL tools here.
    assert r.returncode == 2, r.stderr + r.stdout
    assert "install" in (r.stdout + r.stderr).lower()


def test_server_warnings_during_the_load_are_reported(tmp_path: Path, rt_state: Path) -> None:
    body = (
        "CREATE TABLE `w` (`c` tinyint);\nSET SESSION sql_mode = '';\n"
        "INSERT INTO `w` VALUES (300),(301);\n"
    )
    res = api_run(hostile_mysql_dump(tmp_path / "d.sql", body, sandbox_line=False), rt_state)
    assert res.ok, res.error
    assert any(w.startswith("Warning 1264: Out of range value") for w in res.warnings), res.warnings
