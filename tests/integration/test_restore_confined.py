"""A hostile dump reaches nothing but its scratch database, even on the user's own server
(issue 10). Privileges are the boundary, not the scanner's patterns.

Every disguise a hostile tester used is loaded twice on a real server: as Sealcheck runs
it (the scanner reports the attempt and, on ``--server``, refuses it before it runs), and
with that refusal switched off (the one fault injected here), so that only the loading
account's privileges stand between the dump and the server. Each time the observable
effect is checked: no file on the host, no process spawned, no connection accepted on a
loopback listener, the user's other databases and the server's settings unchanged, and
no account or database of the test left behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.databases import LoadedDatabase, MariaDBServer, PostgresServer
from fixtures.restoretest import api_run, hostile_mysql_dump, hostile_pg_dump
from sealcheck.core.restoretest.engines.mariadb import MariaDBTarget
from sealcheck.core.restoretest.engines.postgres import PostgresTarget

pytestmark = pytest.mark.usefixtures("no_restore_leftovers")


class Listener:
    """A loopback TCP listener that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = self.sock.accept()
                self.accepted += 1
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    """A folder every user may write to: a file appearing there was written by a server."""
    d = tmp_path / "world"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o777)
    return d


@pytest.fixture(params=["reported", "privileges-only"])
def refusal(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``privileges-only``: the scanner's refusal on --server is switched off."""
    if request.param == "privileges-only":
        monkeypatch.setattr(MariaDBTarget, "_refuse_hostile", lambda *_a: None)
        monkeypatch.setattr(PostgresTarget, "_refuse", lambda *_a: None)
    return str(request.param)


def assert_not_a_plain_pass(res: object) -> None:
    """Whatever happened, the result says what the dump tried."""
    assert res.hostile, res  # type: ignore[attr-defined]
    if res.exit_code == 0:  # type: ignore[attr-defined]
        return
    assert res.exit_code == 1, res.error  # type: ignore[attr-defined]
    assert res.error.kind in ("DumpRefused", "LoadFailed"), res.error  # type: ignore[attr-defined]


# --- MariaDB --server ---------------------------------------------------------------------


@pytest.fixture
def my_victim(mariadb_server: MariaDBServer) -> Iterator[str]:
    name = f"victim_{secrets.token_hex(3)}"
    mariadb_server.sql(
        f"CREATE DATABASE {name};\n"
        f"CREATE TABLE {name}.customers (id int PRIMARY KEY, name text);\n"
        f"INSERT INTO {name}.customers VALUES (1, 'alice');\n"
    )
    yield name
    mariadb_server.sql(f"DROP DATABASE IF EXISTS {name};")


def my_dsn(my: MariaDBServer) -> str:
    return f"mysql://{my.user}@localhost/?socket={my.socket}"


def my_leftovers(my: MariaDBServer) -> list[str]:
    dbs = [d for d in my.sql("SHOW DATABASES;").split() if d.startswith("sealcheck_rt_")]
    users = my.sql("SELECT User FROM mysql.user WHERE User LIKE 'sealcheck\\_rt\\_%';").split()
    return dbs + users


MY_DISGUISES = {
    "drop-database-comment": "DROP /*x*/ DATABASE {victim};",
    # The dump's own database is mapped onto the scratch one; a second one is not.
    "use-comment": "USE `shop`;\nUSE /* c */ {victim};\nCREATE TABLE pwned (id int);",
    "set-global-comment": "SET/**/GLOBAL max_connections = 77;",
    "outfile-comment": "SELECT 'x' INTO/**/OUTFILE '{marker}';",
    "executable-comment": "/*!SET GLOBAL max_connections = 77 */;",
    "prepare-concat": "PREPARE s FROM CONCAT('DROP DATA', 'BASE {victim}');\nEXECUTE s;",
    "qualified-update": "UPDATE {victim}.customers SET name = 'pwned';",
    "load-file-in-values": "CREATE TABLE loot (t longtext NOT NULL);\n"
    "INSERT INTO loot VALUES (LOAD_FILE('{secret}'));",
    "replication-connect": "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={port}, "
    "MASTER_USER='x';\nSTART SLAVE;",
    "mysql-schema": "INSERT INTO mysql.db (Host, Db, User) VALUES ('%', '%', 'pwned');",
}


@pytest.mark.parametrize("name", list(MY_DISGUISES))
def test_mariadb_server_disguises_reach_nothing(
    tmp_path: Path, rt_state: Path, mariadb_server: MariaDBServer, my_victim: str,
    marker_dir: Path, listener: Listener, refusal: str, name: str,
) -> None:  # fmt: skip
    marker = marker_dir / "written-by-server"
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret\n")
    os.chmod(secret, 0o644)
    before = mariadb_server.sql("SELECT @@GLOBAL.max_connections;").strip()
    body = MY_DISGUISES[name].format(
        victim=my_victim, marker=marker, secret=secret, port=listener.port
    )
    dump = hostile_mysql_dump(tmp_path / "d.sql", body, sandbox_line=True)
    res = api_run(dump, rt_state, server=my_dsn(mariadb_server))
    assert_not_a_plain_pass(res)
    if name == "load-file-in-values":
        # No FILE privilege: LOAD_FILE gives NULL, which the NOT NULL column refuses.
        assert res.exit_code == 1
        if refusal == "privileges-only":
            assert "cannot be null" in res.load_error.message.lower(), res.load_error
    elif not (refusal == "privileges-only" and name == "drop-database-comment"):
        # (a DROP DATABASE as the first database statement is never run on --server: it
        # is blanked, and reported since no CREATE DATABASE of that name follows)
        assert res.exit_code == 1, res.error
    if refusal == "privileges-only" and res.exit_code == 1 and res.error.kind == "LoadFailed":
        if name != "load-file-in-values":
            assert "for lack of privilege" in res.error.message, res.error.message
            assert any(h["kind"].startswith("refused by the server") for h in res.hostile)
    # The observable effects: none.
    assert not marker.exists()
    assert listener.accepted == 0
    assert mariadb_server.sql(f"SELECT name FROM {my_victim}.customers;").split() == ["alice"]
    assert "pwned" not in mariadb_server.sql(f"SHOW TABLES FROM {my_victim};")
    assert mariadb_server.sql("SELECT @@GLOBAL.max_connections;").strip() == before
    assert mariadb_server.sql("SELECT COUNT(*) FROM mysql.db WHERE User = 'pwned';").strip() == "0"
    assert my_leftovers(mariadb_server) == []


def test_mariadb_server_refuses_an_account_that_cannot_confine(
    tmp_path: Path, rt_state: Path, mariadb_server: MariaDBServer, my_victim: str
) -> None:
    """An account without CREATE USER / GRANT OPTION cannot make a confined account: the
    dump is not loaded at all (never with the given, privileged account)."""
    name = f"sc_rt_nogrant_{secrets.token_hex(3)}"
    mariadb_server.sql(
        f"CREATE USER '{name}'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password "
        "USING PASSWORD('x');\n"
        f"GRANT ALL PRIVILEGES ON *.* TO '{name}'@'localhost';\n"  # no GRANT OPTION
    )
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    try:
        dump = hostile_mysql_dump(
            tmp_path / "d.sql", f"DROP DATABASE {my_victim};", sandbox_line=True
        )
        res = api_run(
            dump, rt_state, server=f"mysql://{name}@localhost/?socket={mariadb_server.socket}",
            server_password_file=pw,
        )  # fmt: skip
    finally:
        mariadb_server.sql(f"DROP USER IF EXISTS '{name}'@'localhost';")
    assert res.exit_code == 2 and res.error.kind == "ConfinementUnavailable", res.error
    assert "GRANT OPTION" in res.error.message
    assert res.load_seconds is None
    assert mariadb_server.sql(f"SELECT name FROM {my_victim}.customers;").split() == ["alice"]
    assert my_leftovers(mariadb_server) == []


SPIN = """CREATE TABLE `t` (`id` int);
DELIMITER ;;
CREATE TRIGGER `t_spin` BEFORE INSERT ON `t` FOR EACH ROW
BEGIN
  DECLARE i BIGINT DEFAULT 0;
  WHILE i >= 0 DO SET i = i + 1; END WHILE;
END ;;
DELIMITER ;
INSERT INTO `t` VALUES (1);
"""


def _kill_mid_load(args: list[str], state: Path, ready: object) -> None:
    env = {**os.environ, "SEALCHECK_STATE_DIR": str(state)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sealcheck.core.cli", "restore-test", *args, "--no-history"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not ready():  # type: ignore[operator]
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def test_mariadb_server_crash_leftovers_are_swept_by_the_next_run(
    tmp_path: Path, rt_state: Path, mariadb_server: MariaDBServer
) -> None:
    dump = hostile_mysql_dump(tmp_path / "spin.sql", SPIN, sandbox_line=True)
    dsn = my_dsn(mariadb_server)

    def spinning() -> bool:
        out = mariadb_server.sql(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER LIKE 'sealcheck%';"
        )
        return out.strip() not in ("", "0")

    _kill_mid_load([str(dump), "--server", dsn], rt_state, spinning)
    left = my_leftovers(mariadb_server)
    assert len(left) == 2, left  # the scratch database and its account
    ok = hostile_mysql_dump(tmp_path / "ok.sql", "SELECT 1;", sandbox_line=True)
    res = api_run(ok, rt_state / "restoretest", server=dsn)
    assert res.exit_code == 0, res.error
    assert my_leftovers(mariadb_server) == []


# --- the throwaway MariaDB ------------------------------------------------------------------


def test_throwaway_loader_cannot_write_the_system_tables(tmp_path: Path, rt_state: Path) -> None:
    body = "INSERT INTO mysql.global_priv (Host, User, Priv) VALUES ('localhost', 'x', '{}');\n"
    res = api_run(hostile_mysql_dump(tmp_path / "d.sql", body, sandbox_line=True), rt_state)
    assert res.exit_code == 1 and res.error.kind == "LoadFailed", res.error
    assert "for lack of privilege" in res.error.message
    assert next(h["kind"] for h in res.hostile) == "a system database"


def test_throwaway_multi_database_dump_still_restores(tmp_path: Path, rt_state: Path) -> None:
    """mysqldump --databases a b: the loader is granted each database as the dump makes it."""
    body = (
        "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop_a`;\nUSE `shop_a`;\n"
        "CREATE TABLE `x` (`id` int);\nINSERT INTO `x` VALUES (1),(2);\n"
        "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop_b`;\nUSE `shop_b`;\n"
        "CREATE TABLE `y` (`id` int);\nINSERT INTO `y` VALUES (1);\n"
    )
    res = api_run(hostile_mysql_dump(tmp_path / "d.sql", body, sandbox_line=True), rt_state)
    assert res.exit_code == 0, res.error
    got = {t.name: t.rows for t in res.tables}
    assert got["shop_a.x"] == 2 and got["shop_b.y"] == 1


# --- PostgreSQL --server ------------------------------------------------------------------


@pytest.fixture
def pg_victim(pg_server: PostgresServer) -> Iterator[str]:
    name = f"victim_{secrets.token_hex(3)}"
    pg_server.psql(f"CREATE DATABASE {name};")
    pg_server.psql("CREATE TABLE customers (id int, name text);", name)
    pg_server.psql("INSERT INTO customers VALUES (1, 'alice');", name)
    yield name
    pg_server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE);")


def pg_dsn(pg: PostgresServer) -> str:
    return f"postgresql://{pg.superuser}@/?host={pg.socket_dir}&port={pg.port}"


def pg_leftovers(pg: PostgresServer) -> list[str]:
    return pg.psql(
        "SELECT datname FROM pg_database WHERE datname LIKE 'sealcheck\\_rt\\_%' UNION ALL "
        "SELECT rolname FROM pg_roles WHERE rolname LIKE 'sealcheck\\_rt\\_%';"
    ).split()


PG_DISGUISES = {
    "drop-database-comment": "DROP /*x*/ DATABASE {victim};",
    "quoted-pg_read_file": "SELECT \"pg_read_file\"('/etc/hostname');",
    "dollar-quoted-copy-to": "COPY public.before TO $q${marker}$q$;",
    "plpgsql-execute-program": (
        "CREATE FUNCTION public.f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
        "EXECUTE 'COPY public.before TO PROG' || 'RAM ' || quote_literal('touch {marker}'); "
        "END $$;\nSELECT public.f();"
    ),
    "quoted-language-c": (
        "CREATE FUNCTION public.sys(cstring) RETURNS int "
        "AS '/lib/x86_64-linux-gnu/libc.so.6', 'system' LANGUAGE \"c\" STRICT;"
    ),
    "alter-system-comment": "ALTER/**/SYSTEM SET work_mem = '1MB';",
    "copy-program-connect": (
        "COPY public.before TO PROGRAM 'bash -c \"exec 3<>/dev/tcp/127.0.0.1/{port}\"';"
    ),
    "lo_import-quoted": "SELECT \"lo_import\"('/etc/hostname');",
    "set-role-superuser": "SET ROLE {superuser};\nCREATE TABLE public.owned_by_su (id int);\n"
    "COPY public.owned_by_su TO '{marker}';",
}


@pytest.mark.parametrize("name", list(PG_DISGUISES))
def test_pg_server_disguises_reach_nothing(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer, pg_victim: str,
    marker_dir: Path, listener: Listener, refusal: str, name: str,
) -> None:  # fmt: skip
    marker = marker_dir / "written-by-server"
    auto_conf = (pg_server.datadir / "postgresql.auto.conf").read_text()
    body = PG_DISGUISES[name].format(
        victim=pg_victim, marker=marker, port=listener.port, superuser=pg_server.superuser
    )
    res = api_run(hostile_pg_dump(tmp_path / "d.sql", body), rt_state, server=pg_dsn(pg_server))
    assert_not_a_plain_pass(res)
    assert res.exit_code == 1, res.error
    # ALTER SYSTEM and DROP DATABASE cannot run in the load's one transaction: that
    # refusal comes first (the privilege one would follow).
    in_txn = name in ("alter-system-comment", "drop-database-comment")
    if refusal == "privileges-only" and res.error.kind == "LoadFailed" and not in_txn:
        assert "for lack of privilege" in res.error.message, res.error.message
    assert not marker.exists()
    assert listener.accepted == 0
    assert pg_server.psql("SELECT name FROM customers;", pg_victim).split() == ["alice"]
    assert (pg_server.datadir / "postgresql.auto.conf").read_text() == auto_conf
    assert pg_leftovers(pg_server) == []


def test_pg_server_refuses_an_account_that_cannot_confine(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer
) -> None:
    name = f"sc_rt_nocreaterole_{secrets.token_hex(3)}"
    pg_server.psql(f"CREATE ROLE {name} LOGIN CREATEDB;")  # no CREATEROLE
    try:
        dsn = f"postgresql://{name}@/?host={pg_server.socket_dir}&port={pg_server.port}"
        res = api_run(hostile_pg_dump(tmp_path / "d.sql", "SELECT 1;"), rt_state, server=dsn)
    finally:
        pg_server.psql(f"DROP ROLE IF EXISTS {name};")
    assert res.exit_code == 2 and res.error.kind == "ConfinementUnavailable", res.error
    assert "CREATEROLE" in res.error.message
    assert pg_leftovers(pg_server) == []


def test_pg_server_crash_leftovers_are_swept_by_the_next_run(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer
) -> None:
    spin = (
        "CREATE FUNCTION public.spin() RETURNS void LANGUAGE plpgsql AS $$\n"
        "BEGIN LOOP END LOOP; END $$;\nSELECT public.spin();"
    )
    dump = hostile_pg_dump(tmp_path / "spin.sql", spin)
    dsn = pg_dsn(pg_server)

    def spinning() -> bool:
        out = pg_server.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%public.spin()%' "
            "AND pid <> pg_backend_pid();"
        )
        return out.strip() not in ("", "0")

    _kill_mid_load([str(dump), "--server", dsn], rt_state, spinning)
    assert len(pg_leftovers(pg_server)) == 2
    res = api_run(hostile_pg_dump(tmp_path / "ok.sql", "SELECT 1;"), rt_state / "restoretest",
                  server=dsn)  # fmt: skip
    assert res.exit_code == 0, res.error
    assert pg_leftovers(pg_server) == []


def test_pg_server_whose_hba_lets_no_new_role_in_is_refused(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer
) -> None:
    """pg_hba.conf that admits only the given account (the usual peer-only set-up): the
    confined role cannot log in, and the dump is not loaded as the given account instead."""
    hba = pg_server.datadir / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"local all {pg_server.superuser} trust\nlocal all all reject\n")
    pg_server.psql("SELECT pg_reload_conf();")
    try:
        res = api_run(hostile_pg_dump(tmp_path / "d.sql", "SELECT 1;"), rt_state,
                      server=pg_dsn(pg_server))  # fmt: skip
    finally:
        hba.write_text(original)
        pg_server.psql("SELECT pg_reload_conf();")
    assert res.exit_code == 2 and res.error.kind == "ConfinementUnavailable", res.error
    assert "could not log in" in res.error.message and "pg_hba.conf" in res.error.message
    assert res.load_seconds is None
    assert pg_leftovers(pg_server) == []


@pytest.fixture(scope="module")
def drop_database_dump(
    mariadb_server: MariaDBServer, mariadb_rich_db: LoadedDatabase,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:  # fmt: skip
    """``mariadb-dump --databases shop --add-drop-database --routines --triggers``."""
    out = tmp_path_factory.mktemp("dropdb") / "shop.sql"
    cmd = [
        mariadb_server.tools["mariadb-dump"], "--no-defaults", f"--socket={mariadb_server.socket}",
        f"--user={mariadb_server.user}", "--default-character-set=utf8mb4",
        "--single-transaction", "--routines", "--triggers", "--add-drop-database",
        "--databases", mariadb_rich_db.name,
    ]  # fmt: skip
    with out.open("wb") as f:
        subprocess.run(cmd, stdout=f, check=True, timeout=120)
    assert b"DROP DATABASE IF EXISTS" in out.read_bytes()
    return out


@pytest.mark.parametrize("where", ["throwaway", "server"])
def test_a_databases_dump_with_drop_database_restores(
    rt_state: Path, mariadb_server: MariaDBServer, mariadb_rich_db: LoadedDatabase,
    drop_database_dump: Path, where: str,
) -> None:  # fmt: skip
    """The dump's own DROP DATABASE: granted on a throwaway server (the loader may drop
    what it makes), blanked on --server (the scratch database stands for it)."""
    server = {"server": my_dsn(mariadb_server)} if where == "server" else {}
    res = api_run(drop_database_dump, rt_state, **server)
    assert res.exit_code == 0, res.error
    assert {t.name.split(".")[-1]: t.rows for t in res.tables} == mariadb_rich_db.row_counts
    assert res.hostile == ()
    if where == "server":
        assert any(r.startswith("line ") and "DROP DATABASE" in r for r in res.rewritten)
        assert my_leftovers(mariadb_server) == []
        assert mariadb_rich_db.name in mariadb_server.sql("SHOW DATABASES;").split()
