"""The dump is untrusted input: reliability.md group E with real servers and clients (issue 5).

What test_restore_test.py already covers: E1 ``\\!``/``system`` with and without the sandbox
line; E2 OUTFILE, ``general_log_file``, LOAD DATA LOCAL, INSTALL SONAME, CREATE FUNCTION …
SONAME on MariaDB, ``\\!`` and COPY … PROGRAM on PostgreSQL; E4 an orphan MariaDB left by a
killed run; G2 passwords on the throwaway servers. Here: the other client commands and a
client without ``--sandbox`` (E1), PostgreSQL's server-side escapes (E2), the workloads of
E3 (bounded by the limits and reported in ``hostile``), no TCP port and a PostgreSQL
orphan (E4), the roles managed services name, and ``--engine mysql``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.databases import MariaDBServer, PostgresServer
from fixtures.restoretest import (
    MY_HEADER,
    RunWatcher,
    api_run,
    hostile_mysql_dump,
    hostile_pg_dump,
    mysql_kinds,
    pg_kinds,
    restore_test_cli,
)
from sealcheck.core.restoretest.engines import mariadb as mariadb_mod
from sealcheck.core.restoretest.procs import StateDir

pytestmark = pytest.mark.usefixtures("no_restore_leftovers")


def kinds(res: object) -> list[str]:
    return [h["kind"] for h in res.hostile]  # type: ignore[attr-defined]


# --- E1: no client command of the dump runs ---------------------------------------------


@pytest.mark.parametrize(
    "command",
    ["\\. {src}", "source {src}", "\\T {m}", "tee {m}", "pager touch {m}", "\\P touch {m}"],
    ids=["dot", "source", "T", "tee", "pager", "P"],
)
def test_other_client_commands_never_run(tmp_path: Path, rt_state: Path, command: str) -> None:
    """``source`` would run another file's SQL, ``tee``/``pager`` write files or run programs."""
    os.chmod(tmp_path, 0o777)
    marker = tmp_path / "MARKER"
    src = tmp_path / "other.sql"
    src.write_text(f"CREATE TABLE sourced (id int);\nsystem touch {marker}\n")
    line = command.format(src=src, m=marker)
    dump = hostile_mysql_dump(tmp_path / "d.sql", f"{line}\nSELECT 1;\n", sandbox_line=False)
    res = api_run(dump, rt_state)
    assert not marker.exists()
    assert res.exit_code == 1 and res.error.kind == "LoadFailed", res.error
    assert res.load_error.line == dump.read_text().splitlines().index(line) + 1
    assert kinds(res) == ["client command"]


@pytest.mark.parametrize("command", ["\\! touch {m}", "system touch {m}"], ids=["bang", "system"])
def test_the_protocol_load_runs_no_client_command(
    tmp_path: Path, rt_state: Path, command: str
) -> None:
    """No client reads the dump: a client command reaches the server as text and fails
    there, whatever the client installed would have made of the sandbox line."""
    marker = tmp_path / "MARKER"
    line = command.format(m=marker)
    dump = hostile_mysql_dump(tmp_path / "d.sql", f"SELECT 1;\n{line}\n", sandbox_line=True)
    res = api_run(dump, rt_state)
    assert not marker.exists()
    assert res.exit_code == 1 and res.error.kind == "LoadFailed", res.error
    assert res.load_error.line == dump.read_text().splitlines().index(line) + 1
    assert res.rewritten == ()
    assert "SQL syntax" in res.load_error.message
    assert kinds(res) == ["client command"]


def test_psql_file_meta_commands_never_run(tmp_path: Path, rt_state: Path) -> None:
    os.chmod(tmp_path, 0o777)
    out = tmp_path / "copied"
    for body in (f"\\copy public.before TO '{out}'", f"\\o {out}\nSELECT 'leak';"):
        res = api_run(hostile_pg_dump(tmp_path / "d.sql", body), rt_state)
        assert not out.exists()
        assert res.exit_code == 1 and res.error.kind == "LoadFailed", res.error
        assert "backslash commands are restricted" in res.load_error.message
        assert kinds(res) == ["psql meta-command"]


# --- E2: server-side escapes fail (the loader is no superuser) ------------------------------

PG_ESCAPES = {
    "copy-from-file": ("COPY public.before FROM '/etc/hostname';", "server file access"),
    "pg_read_file": ("SELECT pg_read_file('/etc/hostname');", "server file access"),
    "lo_import": ("SELECT lo_import('/etc/hostname');", "server file access"),
    "language-c": (
        "CREATE FUNCTION sys(cstring) RETURNS int "
        "AS '/lib/x86_64-linux-gnu/libc.so.6', 'system' LANGUAGE c STRICT;",
        "untrusted code",
    ),
    "extension": ("CREATE EXTENSION dblink;", "untrusted code"),
    "alter-system": ("ALTER SYSTEM SET log_directory = '/tmp';", "server settings"),
}


@pytest.mark.parametrize("name", list(PG_ESCAPES))
def test_pg_server_side_escapes_fail_and_are_reported(
    tmp_path: Path, rt_state: Path, name: str
) -> None:
    body, kind = PG_ESCAPES[name]
    res = api_run(hostile_pg_dump(tmp_path / "d.sql", body), rt_state)
    assert res.exit_code == 1 and res.error.kind == "LoadFailed", res.error
    assert res.load_error.line == (tmp_path / "d.sql").read_text().splitlines().index(body) + 1
    assert any(k.startswith(kind) for k in kinds(res)), res.hostile


# --- E3: hostile workloads are bounded and reported -----------------------------------------

MY_WORKLOADS = {
    "sleep": ("SELECT SLEEP(1e9);", "workload (SLEEP/BENCHMARK)"),
    "benchmark": ("SELECT BENCHMARK(1e15, SHA2('x', 512));", "workload (SLEEP/BENCHMARK)"),
    # MariaDB stops a recursion after max_recursive_iterations (1000): a dump can raise it.
    "recursive-cte": (
        "SET SESSION max_recursive_iterations = 4294967295;\n"
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT COUNT(*) FROM r;",
        "workload (recursive query)",
    ),
    "insert-select-sleep": (
        "INSERT INTO `before` SELECT SLEEP(1e9) + 10;",
        "workload (SLEEP/BENCHMARK)",
    ),
}


@pytest.mark.parametrize("name", list(MY_WORKLOADS))
def test_mariadb_workloads_are_bounded_and_reported(
    tmp_path: Path, rt_state: Path, name: str
) -> None:
    body, kind = MY_WORKLOADS[name]
    res = api_run(
        hostile_mysql_dump(tmp_path / "d.sql", body, sandbox_line=True),
        rt_state,
        max_seconds=3,
        max_disk_bytes=64 << 20,
    )
    assert res.exit_code == 1 and res.error.kind == "LimitExceeded", res.error
    assert "limit of" in res.error.message
    assert res.load_seconds < 3 + 2
    assert kinds(res) == [kind]
    last = body.splitlines()[-1]
    assert res.hostile[0]["line"] == (tmp_path / "d.sql").read_text().splitlines().index(last) + 1


PG_WORKLOADS = {
    "pg_sleep": ("SELECT pg_sleep(1e9);", "workload (pg_sleep)"),
    "recursive-cte": (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r;",
        "workload (recursive query or generate_series)",
    ),
    "call": (
        "CREATE PROCEDURE public.spin() LANGUAGE plpgsql AS $$ BEGIN LOOP END LOOP; END $$;\n"
        "CALL public.spin();",
        "workload (CALL of a procedure)",
    ),
}


@pytest.mark.parametrize("name", list(PG_WORKLOADS))
def test_pg_workloads_are_bounded_and_reported(tmp_path: Path, rt_state: Path, name: str) -> None:
    body, kind = PG_WORKLOADS[name]
    res = api_run(
        hostile_pg_dump(tmp_path / "d.sql", body), rt_state, max_seconds=3, max_disk_bytes=64 << 20
    )
    assert res.exit_code == 1 and res.error.kind == "LimitExceeded", res.error
    assert res.load_seconds < 3 + 2
    assert kinds(res) == [kind]


def test_many_tables_are_bounded_by_the_time_limit(tmp_path: Path, rt_state: Path) -> None:
    """E3: 10^5 CREATE TABLE (plain DDL, nothing hostile about each) meets the time limit."""
    body = "".join(f"CREATE TABLE `t{i}` (`id` int);\n" for i in range(100_000))
    res = api_run(hostile_mysql_dump(tmp_path / "d.sql", body, sandbox_line=True), rt_state,
                  max_seconds=3)  # fmt: skip
    assert res.exit_code == 1 and res.error.kind == "LimitExceeded", res.error
    assert "wall-clock limit of 3 s (--max-time) reached while loading the dump" in (
        res.error.message
    )
    assert res.hostile == ()


def test_an_event_never_runs(tmp_path: Path, rt_state: Path) -> None:
    """E3: ``CREATE EVENT … EVERY 1 SECOND`` is created (and reported) but never fires:
    the event scheduler is off and the dump cannot turn it on."""
    body = (
        "CREATE TABLE `ticks` (`at` datetime(6) NOT NULL);\n"
        "CREATE EVENT `tick` ON SCHEDULE EVERY 1 SECOND STARTS '2000-01-01 00:00:00'\n"
        "  DO INSERT INTO `ticks` VALUES (NOW(6));\n"
        "SELECT SLEEP(1.5);\n"
    )
    res = api_run(hostile_mysql_dump(tmp_path / "d.sql", body, sandbox_line=True), rt_state)
    assert res.exit_code == 0, res.error
    assert {t.name: t.rows for t in res.tables}["ticks"] == 0
    assert res.events == ("tick",)
    assert kinds(res) == ["event (scheduler is off)", "workload (SLEEP/BENCHMARK)"]


def test_the_dump_cannot_turn_the_event_scheduler_on(tmp_path: Path, rt_state: Path) -> None:
    body = "SET GLOBAL event_scheduler = ON;\n"
    res = api_run(hostile_mysql_dump(tmp_path / "d.sql", body, sandbox_line=True), rt_state)
    assert res.exit_code == 1 and res.error.kind == "LoadFailed", res.error
    assert "SUPER" in res.load_error.message
    assert kinds(res)[0] == "server settings (SET GLOBAL)"
    assert kinds(res)[1].startswith("refused by the server: ") and len(kinds(res)) == 2
    assert "for lack of privilege" in res.error.message
    assert "the dump tried: server settings (SET GLOBAL)" in res.error.message


# --- E4: no TCP port at any time; a PostgreSQL orphan is cleaned ---------------------------


def _listening_inodes() -> set[str]:
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if f[3] == "0A":  # LISTEN
                    out.add(f[9])
    return out


def _tcp_listeners_of(roots: set[str]) -> list[str]:
    """Processes running from one of ``roots`` that hold a listening TCP socket."""
    listening = _listening_inodes()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if not any(r.encode() in cmd for r in roots):
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in listening:
                    found.append(f"{pid}: {cmd[:80]!r}")
        except OSError:
            continue
    return found


@pytest.mark.parametrize("engine", ["mariadb", "postgres"])
def test_no_tcp_port_is_ever_opened(
    tmp_path: Path, rt_state: Path, engine: str, no_restore_leftovers: RunWatcher
) -> None:
    if engine == "mariadb":
        dump = hostile_mysql_dump(tmp_path / "d.sql", "SELECT SLEEP(2);", sandbox_line=True)
    else:
        dump = hostile_pg_dump(tmp_path / "d.sql", "SELECT pg_sleep(2);")
    out: dict[str, object] = {}
    t = threading.Thread(target=lambda: out.update(r=api_run(dump, rt_state)))
    t.start()
    looks = 0
    seen: set[str] = set()
    while t.is_alive():
        seen |= no_restore_leftovers.roots
        assert _tcp_listeners_of(seen) == []
        looks += 1
        time.sleep(0.05)
    t.join()
    assert out["r"].exit_code == 0, out["r"].error  # type: ignore[attr-defined]
    assert seen and looks > 20


def test_killed_run_leaves_a_postgres_orphan_that_the_next_start_cleans(
    tmp_path: Path, rt_state: Path, no_restore_leftovers: RunWatcher
) -> None:
    dump = hostile_pg_dump(tmp_path / "d.sql", "SELECT pg_sleep(60);")
    env = {**os.environ, "SEALCHECK_STATE_DIR": str(rt_state)}
    p = subprocess.Popen(
        [sys.executable, "-m", "sealcheck.core.cli", "restore-test", str(dump), "--json"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _postgres_running(no_restore_leftovers.roots):
            assert time.monotonic() < deadline and p.poll() is None
            time.sleep(0.05)
    finally:
        p.send_signal(signal.SIGKILL)  # the tool dies mid-load: no clean-up runs
        p.wait()
    assert no_restore_leftovers.left(wait=0.5), "expected an orphan server and folder"
    cleaned = StateDir(rt_state / "restoretest").clean_orphans("postgres")
    assert any("stopped orphan server" in c for c in cleaned), cleaned
    assert any("wiped orphan folder" in c for c in cleaned), cleaned
    assert no_restore_leftovers.left() == []


def _postgres_running(roots: set[str]) -> bool:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if cmd.split(b"\0")[0].endswith(b"/psql") and any(r.encode() in cmd for r in roots):
                    return True
    return False


# --- managed services' roles and definers (real dumps) -----------------------------------


@pytest.fixture(scope="module")
def rds_like_pg_dump(
    pg_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A pg_dump of a database owned as on RDS / Cloud SQL: tables owned by ``rdsadmin``,
    grants to ``cloudsqlsuperuser``. The roles exist only while the dump is made."""
    db = "managed"
    pg_server.psql(
        "CREATE ROLE rdsadmin NOLOGIN; CREATE ROLE cloudsqlsuperuser NOLOGIN;\n"
        f"CREATE DATABASE {db} OWNER rdsadmin;"
    )
    try:
        pg_server.psql(
            "CREATE TABLE public.accounts (id int PRIMARY KEY, name text);\n"
            "INSERT INTO public.accounts VALUES (1, 'a'), (2, 'b'), (3, 'c');\n"
            "ALTER TABLE public.accounts OWNER TO rdsadmin;\n"
            "GRANT SELECT ON public.accounts TO cloudsqlsuperuser;\n",
            db,
        )
        path = pg_server.dump(db, tmp_path_factory.mktemp("managed") / "managed.sql")
    finally:
        pg_server.psql(f"DROP DATABASE IF EXISTS {db};")
        pg_server.psql("DROP ROLE IF EXISTS rdsadmin; DROP ROLE IF EXISTS cloudsqlsuperuser;")
    text = path.read_text()
    assert "OWNER TO rdsadmin" in text and "TO cloudsqlsuperuser" in text
    yield path


def test_pg_dump_from_a_managed_service_creates_its_roles(
    rt_state: Path, rds_like_pg_dump: Path
) -> None:
    res = api_run(rds_like_pg_dump, rt_state)
    assert res.exit_code == 0, res.error
    assert {"rdsadmin (NOLOGIN)", "cloudsqlsuperuser (NOLOGIN)"} <= set(res.roles_created)
    assert {t.name: t.rows for t in res.tables} == {"accounts": 3}
    assert res.hostile == ()


@pytest.fixture(scope="module")
def rds_like_mariadb_dump(
    mariadb_server: MariaDBServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A mariadb-dump whose routine, view and trigger have ``DEFINER=`rdsadmin`@`localhost```."""
    db = "managed"
    mariadb_server.sql(
        f"CREATE DATABASE {db};\n"
        "CREATE USER 'rdsadmin'@'localhost' ACCOUNT LOCK;\n"
        "GRANT ALL PRIVILEGES ON *.* TO 'rdsadmin'@'localhost';\n"
    )
    try:
        mariadb_server.sql(
            "CREATE TABLE accounts (id int PRIMARY KEY, name text);\n"
            "INSERT INTO accounts VALUES (1, 'a'), (2, 'b');\n"
            "CREATE DEFINER=`rdsadmin`@`localhost` VIEW names AS SELECT name FROM accounts;\n"
            "CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE touch_all() "
            "UPDATE accounts SET name = name;\n",
            db,
        )
        path = mariadb_server.dump(db, tmp_path_factory.mktemp("managed") / "managed.sql")
    finally:
        mariadb_server.sql(
            f"DROP DATABASE IF EXISTS {db};\nDROP USER IF EXISTS 'rdsadmin'@'localhost';"
        )
    assert "DEFINER=`rdsadmin`@`localhost`" in path.read_text()
    yield path


def test_mariadb_dump_with_a_managed_service_definer_loads_definer_less(
    rt_state: Path, rds_like_mariadb_dump: Path
) -> None:
    """The DEFINER becomes the loading account, which has no SET USER: no account is
    made for ``rdsadmin`` and no object runs with more than the loader's privileges."""
    res = api_run(rds_like_mariadb_dump, rt_state)
    assert res.exit_code == 0, res.error
    assert res.roles_created == ()
    assert sum("DEFINER=`rdsadmin`@`localhost`" in r for r in res.rewritten) == 2, res.rewritten
    assert res.views == ("names",) and res.routines == ("touch_all",)
    assert {t.name: t.rows for t in res.tables} == {"accounts": 2}


# --- --engine mysql -------------------------------------------------------------------


def test_engine_mysql_loads_into_mariadb(tmp_path: Path, rt_state: Path) -> None:
    """Oracle MySQL's server is not installable here; a MySQL dump loads into MariaDB."""
    dump = tmp_path / "mysql.sql"
    dump.write_text(
        "-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n--\n-- Host: localhost"
        "    Database: shop\n-- ------------------------------------------------------\n"
        "-- Server version\t8.0.36\n\n"
        "CREATE TABLE `t` (`id` int NOT NULL PRIMARY KEY) ENGINE=InnoDB;\n"
        "INSERT INTO `t` VALUES (1),(2);\n-- Dump completed on 2026-11-27 10:00:00\n"
    )
    rc, res = restore_test_cli(rt_state, str(dump), "--engine", "mysql")
    assert rc == 0, res["error"]
    assert res["engine"] == "mariadb" and res["server"].startswith("MariaDB ")
    assert [(t["name"], t["rows"]) for t in res["tables"]] == [("t", 2)]


def test_engine_mysql_without_server_software_says_what_to_install(
    tmp_path: Path, rt_state: Path
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    dump = hostile_mysql_dump(tmp_path / "d.sql", "SELECT 1;", sandbox_line=False)
    env = {"SEALCHECK_STATE_DIR": str(rt_state), "SEALCHECK_MARIADB_BINDIR": str(empty)}
    r = run_cli("restore-test", str(dump), "--engine", "mysql", env={**os.environ, **env},
                timeout=60)  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "not found: mariadbd, mariadb-install-db" in out
    assert "a MySQL dump is restore-tested in a throwaway MariaDB server" in out
    assert "apt-get install mariadb-server mariadb-client" in out


def test_engine_mysql_with_oracle_mysqld_only_is_an_environment_error(
    tmp_path: Path, rt_state: Path
) -> None:
    """Oracle MySQL's ``mysqld`` cannot be a throwaway server here: a clear exit 2."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "mysqld"
    fake.write_text(
        "#!/bin/sh\necho 'mysqld  Ver 8.4.3 for Linux on x86_64 (MySQL Community Server - GPL)'\n"
    )
    fake.chmod(0o755)
    (bindir / "mysql_install_db").symlink_to(fake)
    client = mariadb_mod.find_tools(need_server=False).client
    (bindir / "mysql").symlink_to(client)
    dump = hostile_mysql_dump(tmp_path / "d.sql", "SELECT 1;", sandbox_line=False)
    rc, res = restore_test_cli(
        rt_state, str(dump), "--engine", "mysql", env={"SEALCHECK_MARIADB_BINDIR": str(bindir)}
    )
    assert rc == 2, res
    assert res["error"]["kind"] == "ServerSoftwareMissing"
    assert "is not MariaDB (mysqld  Ver 8.4.3" in res["error"]["message"]
    assert "or give an existing MySQL server with --server" in res["error"]["message"]


# --- the scanners' hostile patterns (no server) -----------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("CALL spin();", ["workload (CALL of a stored routine)"]),
        ("WITH RECURSIVE r AS (SELECT 1) SELECT * FROM r;", ["workload (recursive query)"]),
        ("INSERT INTO t SELECT LOAD_FILE('/etc/passwd');", ["file read (LOAD DATA/LOAD_FILE)"]),
        ("INSERT INTO t VALUES ('CALL x(); SLEEP(1)');", []),
        ("CREATE VIEW v AS WITH RECURSIVE r AS (SELECT 1) SELECT * FROM r;", []),
        ("/*!50003 CREATE PROCEDURE p() BEGIN CALL q(); END */;", []),
    ],
)
def test_mysql_workload_patterns(sql: str, expected: list[str]) -> None:
    assert mysql_kinds(MY_HEADER + sql + "\n") == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("DO $$ BEGIN LOOP END LOOP; END $$;", ["workload (anonymous code block DO)"]),
        ("CALL public.spin();", ["workload (CALL of a procedure)"]),
        ("SELECT count(*) FROM generate_series(1, 1e12);", ["workload (recursive query or generate_series)"]),
        ("INSERT INTO t SELECT g FROM generate_series(1, 9) g;", ["workload (recursive query or generate_series)"]),
        ("DROP DATABASE prod;", ["other databases and tablespaces"]),
        ("CREATE TABLESPACE x LOCATION '/tmp/x';", ["other databases and tablespaces"]),
        ("SELECT pg_terminate_backend(1);", ["server control"]),
        ("RESET ROLE;", ["roles and sessions"]),
        ("CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p;", ["network connection (subscription, dblink)"]),
        # What pg_dump itself writes is not flagged.
        ("SELECT pg_catalog.set_config('search_path', '', false);", []),
        ("SELECT pg_catalog.setval('public.t_id_seq', 5, true);", []),
        ("CREATE VIEW v AS SELECT * FROM generate_series(1, 3);", []),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;", []),
        ("INSERT INTO t VALUES ('DO $$ generate_series(');", []),
    ],
)  # fmt: skip
def test_pg_workload_patterns(sql: str, expected: list[str]) -> None:
    assert pg_kinds(sql + "\n") == expected


def test_a_huge_result_set_is_read_and_dropped_in_flat_memory(
    tmp_path: Path, rt_state: Path
) -> None:
    """A dump's SELECT returning ~640,000 rows (~380 MB) does not fill Sealcheck's memory:
    the protocol load reads a result set row by row and drops it."""
    rows = ",".join(f"({i},'{'x' * 300}')" for i in range(800))
    body = (
        "CREATE TABLE `t` (`id` int, `s` text);\n"
        f"INSERT INTO `t` VALUES {rows};\n"
        "SELECT a.s, b.s FROM `t` a, `t` b;\n"
    )
    dump = hostile_mysql_dump(tmp_path / "d.sql", body, sandbox_line=False)
    env = {**os.environ, "SEALCHECK_STATE_DIR": str(rt_state)}
    cmd = [sys.executable, "-m", "sealcheck.core.cli", "restore-test", str(dump), "--json",
           "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        time.sleep(0.05)
    _, err = proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert peak < 250 << 20, f"peak RSS {peak >> 20} MiB"
