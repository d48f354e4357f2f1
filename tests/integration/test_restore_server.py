"""Restore test on an existing server (``--server DSN``), with real servers (issue 5).

The dump goes into a new, uniquely named scratch database that is dropped afterwards,
also when the load fails, goes over a limit or is cancelled; a dump that would touch
another database is refused before it runs; the account's password is only ever in a
0600 file, never in a child's argv or environment (reliability.md G2).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.databases import MariaDBServer, PostgresServer, RealDump
from fixtures.pipelines import RsaKey, rds_postgres
from fixtures.restoretest import (
    ProcWatcher,
    api_run,
    hostile_mysql_dump,
    hostile_pg_dump,
    restore_test_cli,
)
from sealcheck.core.errors import UsageError
from sealcheck.core.plumbing.progress import CancelToken
from sealcheck.core.restoretest.dsn import parse_dsn

pytestmark = pytest.mark.usefixtures("no_restore_leftovers")


# --- PostgreSQL ------------------------------------------------------------------------


@dataclass(frozen=True)
class PgAccount:
    dsn: str
    name: str
    password_file: Path | None
    password: str | None


def pg_scratch_databases(pg: PostgresServer) -> list[str]:
    """Scratch databases and the roles confined to them still on the server."""
    out = pg.psql(
        "SELECT datname FROM pg_database WHERE datname LIKE 'sealcheck\\_rt\\_%' UNION ALL "
        "SELECT rolname FROM pg_roles WHERE rolname LIKE 'sealcheck\\_rt\\_%';"
    )
    return out.split()


def pg_roles(pg: PostgresServer) -> set[str]:
    return set(pg.psql("SELECT rolname FROM pg_roles;").split())


@pytest.fixture(scope="module")
def pg_password_account(
    pg_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PgAccount]:
    """A superuser that must give its password (SCRAM): pg_hba says so for it alone."""
    name = f"sc_rt_pw_{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(18)
    hba = pg_server.datadir / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"local all {name} scram-sha-256\n" + original)
    pg_server.psql(f"CREATE ROLE {name} LOGIN SUPERUSER PASSWORD '{password}';")
    pg_server.psql("SELECT pg_reload_conf();")
    pwfile = tmp_path_factory.mktemp("pgpw") / "password"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    dsn = f"postgresql://{name}@/?host={pg_server.socket_dir}&port={pg_server.port}"
    try:
        yield PgAccount(dsn, name, pwfile, password)
    finally:
        hba.write_text(original)
        pg_server.psql("SELECT pg_reload_conf();")
        pg_server.psql(f"DROP ROLE IF EXISTS {name};")


@pytest.fixture(scope="module")
def pg_plain_account(pg_server: PostgresServer) -> Iterator[PgAccount]:
    """Not a superuser: may create databases and roles (what --server needs)."""
    name = f"sc_rt_plain_{secrets.token_hex(3)}"
    pg_server.psql(f"CREATE ROLE {name} LOGIN CREATEDB CREATEROLE;")
    dsn = f"postgresql://{name}@/?host={pg_server.socket_dir}&port={pg_server.port}"
    try:
        yield PgAccount(dsn, name, None, None)
    finally:
        pg_server.psql(f"DROP ROLE IF EXISTS {name};")


def test_pg_server_restores_into_a_scratch_database_and_drops_it(
    tmp_path: Path, rsa_key: RsaKey, rt_state: Path, proc_watcher: ProcWatcher,
    pg_server: PostgresServer, pg_rich_dump: RealDump, pg_password_account: PgAccount,
) -> None:  # fmt: skip
    acct = pg_password_account
    assert acct.password and acct.password_file
    b = rds_postgres(pg_rich_dump.path, tmp_path / "s3", rsa_key)
    proc_watcher.secrets.append(acct.password)
    proc_watcher.start()
    rc, res = restore_test_cli(
        rt_state, str(b.data), "--key", str(rsa_key.private),
        "--server", acct.dsn, "--server-password-file", str(acct.password_file),
    )  # fmt: skip
    proc_watcher.stop()
    assert rc == 0, res["error"]
    assert res["mode"] == "server" and res["engine"] == "postgresql"
    assert res["server"] == f"PostgreSQL {pg_server.version}"
    db = pg_rich_dump.database
    assert {t["name"]: t["rows"] for t in res["tables"]} == db.row_counts
    assert res["views"] == ["order_totals"] and res["triggers"] == ["order_lines_total"]
    dropped = [c for c in res["cleanup"] if c.startswith("dropped scratch database sealcheck_rt_")]
    assert len(dropped) == 1, res["cleanup"]
    assert pg_scratch_databases(pg_server) == []
    # The password went through a 0600 passfile only (G2): psql ran, and never showed it.
    assert any(p.endswith("/psql") for p in proc_watcher.processes_seen)
    assert proc_watcher.scans > 5 and proc_watcher.hits == []


def test_pg_server_wrong_password_is_an_environment_error(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer, pg_password_account: PgAccount
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    dump = hostile_pg_dump(tmp_path / "d.sql", "SELECT 1;")
    res = api_run(dump, rt_state, server=pg_password_account.dsn, server_password_file=wrong)
    assert res.exit_code == 2 and res.error.kind == "ServerUnreachable", res.error
    assert "password authentication failed" in res.error.message
    assert "not-the-password" not in res.error.message
    assert pg_scratch_databases(pg_server) == []


def test_pg_server_skips_ownership_and_privileges_and_drops_its_role(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer, pg_plain_account: PgAccount
) -> None:
    """A dump from RDS / Cloud SQL names roles this server lacks: on --server nothing is
    made for them; OWNER TO and GRANT are not applied (pg_restore --no-owner
    --no-privileges); the dump loads as a fresh role, dropped with the scratch database."""
    body = (
        "ALTER TABLE public.before OWNER TO rdsadmin;\n"
        "GRANT SELECT ON TABLE public.before TO cloudsqlsuperuser;\n"
        "GRANT ALL ON SCHEMA public TO rds_superuser;\n"
    )
    assert not {"rdsadmin", "cloudsqlsuperuser", "rds_superuser"} & pg_roles(pg_server)
    dump = hostile_pg_dump(tmp_path / "d.sql", body)
    res = api_run(dump, rt_state, server=pg_plain_account.dsn)
    assert res.exit_code == 0, res.error
    lines = dump.read_text().splitlines()
    at = [f"line {lines.index(b) + 1}" for b in body.splitlines()]
    assert len(res.roles_created) == 1 and res.roles_created[0].startswith("sealcheck_rt_")
    role = res.roles_created[0].split()[0]
    skipped = [r for r in res.rewritten if "pg_restore --no-owner --no-privileges" in r]
    assert [r.split(":")[0] for r in skipped] == at, skipped
    assert {t.name: t.rows for t in res.tables} == {"before": 2, "after": 0}
    assert not {"rdsadmin", "cloudsqlsuperuser", "rds_superuser", role} & pg_roles(pg_server)
    assert pg_scratch_databases(pg_server) == []
    assert f"dropped role {role}" in res.cleanup, res.cleanup


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("\\connect other", "\\connect other: another database"),
        ("DROP DATABASE {victim};", "DROP DATABASE {victim}: another database"),
        ("ALTER ROLE postgres PASSWORD 'x';", "roles and sessions"),
        ("COPY public.before TO PROGRAM 'touch /tmp/pwned';", "program execution"),
    ],
    ids=["connect", "drop-database", "alter-role", "copy-program"],
)
def test_pg_server_refuses_dumps_that_reach_outside_the_scratch_database(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer, body: str, kind: str
) -> None:
    victim = f"victim_{secrets.token_hex(3)}"
    pg_server.psql(f"CREATE DATABASE {victim};")
    try:
        dump = hostile_pg_dump(tmp_path / "d.sql", body.format(victim=victim))
        dsn = f"postgresql://{pg_server.superuser}@/?host={pg_server.socket_dir}&port={pg_server.port}"
        res = api_run(dump, rt_state, server=dsn)
        assert res.exit_code == 1 and res.error.kind == "DumpRefused", res.error
        line = dump.read_text().splitlines().index(body.format(victim=victim)) + 1
        assert f"line {line}: {kind.format(victim=victim)}" in res.error.message, res.error.message
        assert pg_scratch_databases(pg_server) == []
        assert victim in pg_server.psql("SELECT datname FROM pg_database;").split()
    finally:
        pg_server.psql(f"DROP DATABASE IF EXISTS {victim};")


def test_pg_server_restores_a_create_database_dump_into_the_scratch_database(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer
) -> None:
    """pg_dump -C's CREATE DATABASE and \\connect are rewritten: nothing is created."""
    other = f"other_{secrets.token_hex(3)}"
    dump = hostile_pg_dump(tmp_path / "d.sql", f"CREATE DATABASE {other};\n\\connect {other}")
    dsn = f"postgresql://{pg_server.superuser}@/?host={pg_server.socket_dir}&port={pg_server.port}"
    res = api_run(dump, rt_state, server=dsn)
    assert res.exit_code == 0, res.error
    assert any(f"CREATE DATABASE {other}" in r for r in res.rewritten)
    assert other not in pg_server.psql("SELECT datname FROM pg_database;").split()
    assert pg_scratch_databases(pg_server) == []


SPIN_PG = (
    "CREATE FUNCTION public.spin() RETURNS void LANGUAGE plpgsql AS $$\n"
    "BEGIN LOOP END LOOP; END $$;\n"
    "SELECT public.spin();"
)


def pg_spinning(pg: PostgresServer) -> list[str]:
    return pg.psql(
        "SELECT pid FROM pg_stat_activity WHERE query LIKE '%public.spin()%' "
        "AND pid <> pg_backend_pid();"
    ).split()


def test_pg_server_limit_drops_the_scratch_database_and_ends_the_statement(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer
) -> None:
    """A function that loops (not recognisable as a workload) runs into the time limit;
    the scratch database is dropped with FORCE, which ends the statement still running."""
    dsn = f"postgresql://{pg_server.superuser}@/?host={pg_server.socket_dir}&port={pg_server.port}"
    t0 = time.monotonic()
    res = api_run(hostile_pg_dump(tmp_path / "d.sql", SPIN_PG), rt_state, server=dsn, max_seconds=3)
    assert res.exit_code == 1 and res.error.kind == "LimitExceeded", res.error
    assert "wall-clock limit of 3 s (--max-time) reached while loading the dump" in (
        res.error.message
    )
    assert time.monotonic() - t0 < 3 + 4
    assert pg_scratch_databases(pg_server) == []
    assert pg_spinning(pg_server) == []


def test_pg_server_cancel_drops_the_scratch_database(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer
) -> None:
    dsn = f"postgresql://{pg_server.superuser}@/?host={pg_server.socket_dir}&port={pg_server.port}"
    cancel = CancelToken()
    out: dict[str, object] = {}
    dump = hostile_pg_dump(tmp_path / "d.sql", SPIN_PG)
    t = threading.Thread(target=lambda: out.update(r=api_run(dump, rt_state, cancel, server=dsn)))
    t.start()
    deadline = time.monotonic() + 30
    while not pg_spinning(pg_server):
        assert time.monotonic() < deadline and t.is_alive(), out
        time.sleep(0.1)
    cancel.cancel()
    t.join(20)
    assert not t.is_alive()
    res = out["r"]
    assert res.exit_code == 130 and res.error.kind == "Cancelled", res.error  # type: ignore[attr-defined]
    assert pg_scratch_databases(pg_server) == []
    assert pg_spinning(pg_server) == []


def test_pg_server_disk_limit_counts_the_scratch_database(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer
) -> None:
    """--server: the disk limit is the scratch database's growth (pg_database_size)."""
    dsn = f"postgresql://{pg_server.superuser}@/?host={pg_server.socket_dir}&port={pg_server.port}"
    rows = "".join(f"{i}\t{'z' * 2000}\n" for i in range(6000))  # ~12 MB
    body = f"CREATE TABLE public.big (id int, t text);\nCOPY public.big (id, t) FROM stdin;\n{rows}\\.\n"
    res = api_run(hostile_pg_dump(tmp_path / "d.sql", body), rt_state, server=dsn,
                  max_disk_bytes=4 << 20)  # fmt: skip
    assert res.exit_code == 1 and res.error.kind == "LimitExceeded", res.error
    assert "disk limit of 4 MiB (--max-disk)" in res.error.message
    assert pg_scratch_databases(pg_server) == []


def test_dsn_refuses_a_password_in_the_address() -> None:
    with pytest.raises(UsageError, match="--server-password-file"):
        parse_dsn("postgresql://u:secret@/?host=/run/postgresql", "postgres", None)
    with pytest.raises(UsageError, match="local socket"):
        parse_dsn("postgresql://u@db.example.com/", "postgres", None)


# --- MariaDB ---------------------------------------------------------------------------


def my_scratch_databases(my: MariaDBServer) -> list[str]:
    """Scratch databases and the accounts confined to them still on the server."""
    dbs = [d for d in my.sql("SHOW DATABASES;").split() if d.startswith("sealcheck_rt_")]
    return dbs + my.sql("SELECT User FROM mysql.user WHERE User LIKE 'sealcheck\\_rt\\_%';").split()


def test_mariadb_server_with_a_password_never_shows_it(
    tmp_path: Path, rt_state: Path, proc_watcher: ProcWatcher,
    mariadb_server: MariaDBServer, mariadb_rich_dump: RealDump,
) -> None:  # fmt: skip
    name = f"sc_rt_pw_{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(18)
    mariadb_server.sql(
        f"CREATE USER '{name}'@'localhost' IDENTIFIED BY '{password}';\n"
        # An administrator: it makes the scratch database and the account that loads it.
        f"GRANT ALL PRIVILEGES ON *.* TO '{name}'@'localhost' WITH GRANT OPTION;\n"
    )
    pwfile = tmp_path / "password"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    try:
        proc_watcher.secrets.append(password)
        proc_watcher.start()
        rc, res = restore_test_cli(
            rt_state, str(mariadb_rich_dump.path),
            "--server", f"mysql://{name}@localhost/?socket={mariadb_server.socket}",
            "--server-password-file", str(pwfile),
        )  # fmt: skip
        proc_watcher.stop()
    finally:
        mariadb_server.sql(f"DROP USER IF EXISTS '{name}'@'localhost';")
    assert rc == 0, res["error"]
    assert res["mode"] == "server" and res["engine"] == "mariadb"
    assert {t["name"]: t["rows"] for t in res["tables"]} == mariadb_rich_dump.database.row_counts
    assert my_scratch_databases(mariadb_server) == []
    # The load goes through the protocol: no client process that could show it.
    assert not any(p.endswith("/mariadb") for p in proc_watcher.processes_seen)
    assert proc_watcher.scans > 5 and proc_watcher.hits == []


SPIN_TRIGGER = """CREATE TABLE `t` (`id` int);
DELIMITER ;;
CREATE TRIGGER `t_spin` BEFORE INSERT ON `t` FOR EACH ROW
BEGIN
  DECLARE i BIGINT DEFAULT 0;
  WHILE i >= 0 DO SET i = i + 1; END WHILE;
END ;;
DELIMITER ;
INSERT INTO `t` VALUES (1);
"""


def test_mariadb_server_limit_ends_the_statement_and_drops_the_scratch_database(
    tmp_path: Path, rt_state: Path, mariadb_server: MariaDBServer
) -> None:
    """A trigger that loops keeps running on the server after the client is killed, and
    would hold DROP DATABASE forever: its connection is ended first."""
    dsn = f"mysql://{mariadb_server.user}@localhost/?socket={mariadb_server.socket}"
    dump = hostile_mysql_dump(tmp_path / "d.sql", SPIN_TRIGGER, sandbox_line=True)
    t0 = time.monotonic()
    res = api_run(dump, rt_state, server=dsn, max_seconds=3)
    assert res.exit_code == 1 and res.error.kind == "LimitExceeded", res.error
    assert "wall-clock limit of 3 s (--max-time)" in res.error.message
    assert any(c.startswith("ended connection") for c in res.cleanup), res.cleanup
    assert time.monotonic() - t0 < 3 + 5
    assert my_scratch_databases(mariadb_server) == []
    running = mariadb_server.sql(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB LIKE 'sealcheck_rt_%';"
    )
    assert running.strip() == "0"


def test_mariadb_server_refuses_what_a_throwaway_server_would_confine(
    tmp_path: Path, rt_state: Path, mariadb_server: MariaDBServer
) -> None:
    dsn = f"mysql://{mariadb_server.user}@localhost/?socket={mariadb_server.socket}"
    marker = tmp_path / "written"
    os.chmod(tmp_path, 0o777)
    dump = hostile_mysql_dump(
        tmp_path / "d.sql", f"SELECT 'x' INTO OUTFILE '{marker}';", sandbox_line=False
    )
    res = api_run(dump, rt_state, server=dsn)
    assert res.exit_code == 1 and res.error.kind == "DumpRefused", res.error
    assert "file write (INTO OUTFILE/DUMPFILE)" in res.error.message
    assert not marker.exists()
    assert my_scratch_databases(mariadb_server) == []
