"""Restore test of pg_dump archives (issue 18): -Fc, -Ft and a tarred -Fd, made by the real
pg_dump from the test PostgreSQL, restored with pg_restore through the CLI into the
throwaway server and into --server, every table's rows checked against the counts the
payload check read from the archive's data blocks. A damaged archive never loads.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
from pathlib import Path

import pytest

from fixtures.databases import LoadedDatabase, PostgresServer
from fixtures.pipelines import sh
from fixtures.restoretest import ProcWatcher, api_run, restore_test_cli
from sealcheck.core.restoretest import archiveload
from sealcheck.core.restoretest.engines.postgres import PostgresTarget

pytestmark = pytest.mark.usefixtures("no_restore_leftovers")

PASS = "openssl rand -base64 32 > pass"


def q(p: Path | str) -> str:
    return shlex.quote(str(p))


def conn(srv: PostgresServer, db: str) -> str:
    return f"-h {q(srv.socket_dir)} -p {srv.port} -U {srv.superuser} -d {q(db)}"


# name -> (how the backup script makes it, the object it leaves)
ARCHIVES = {
    "custom, gzip, piped through openssl": (
        "{pg_dump} -Fc {conn} | openssl enc -aes-256-cbc -pbkdf2 -pass file:pass > b.dump.enc",
        "b.dump.enc",
    ),
    "custom, no compression": ("{pg_dump} -Fc -Z 0 -f b.dump {conn}", "b.dump"),
    "tar": ("{pg_dump} -Ft -f b.tar {conn}", "b.tar"),
    "tar, gzipped": ("{pg_dump} -Ft {conn} | gzip > b.tar.gz", "b.tar.gz"),
    "directory, gzip, tarred": (
        "{pg_dump} -Fd -j 2 -f db {conn} && tar czf b.tar.gz db",
        "b.tar.gz",
    ),
    "directory, no compression, tarred": (
        "{pg_dump} -Fd -Z 0 -f db {conn} && tar -C db -cf b.tar .",
        "b.tar",
    ),
}


def make(srv: PostgresServer, db: LoadedDatabase, name: str, folder: Path) -> Path:
    script, obj = ARCHIVES[name]
    folder.mkdir()
    cmd = script.format(pg_dump=q(srv.bindir / "pg_dump"), conn=conn(srv, db.name))
    sh(f"{PASS}\n{cmd}", folder)
    return folder / obj


def dsn(srv: PostgresServer) -> str:
    return f"postgresql://{srv.superuser}@/?host={srv.socket_dir}&port={srv.port}"


def key_args(path: Path) -> list[str]:
    return ["--passphrase-file", str(path.parent / "pass")] if path.suffix == ".enc" else []


def rows(res: dict) -> dict[str, int]:
    return {t["name"]: t["rows"] for t in res["tables"]}


@pytest.mark.parametrize("name", list(ARCHIVES))
def test_archive_restores_with_the_rows_of_its_data_blocks(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer, pg_rich_db: LoadedDatabase,
    name: str,
) -> None:  # fmt: skip
    path = make(pg_server, pg_rich_db, name, tmp_path / "b")
    rc, res = restore_test_cli(rt_state, str(path), *key_args(path))
    assert rc == 0, res["error"]
    assert res["engine"] == "postgresql" and res["mode"] == "throwaway"
    assert rows(res) == pg_rich_db.row_counts
    assert all(t["expected_rows"] == t["rows"] for t in res["tables"]), res["tables"]
    payload = next(x for x in res["verification"]["layers"] if x["layer"] == "payload")
    (facts,) = payload["details"]["archives"]
    assert facts["table_rows"] == {f"public.{t}": n for t, n in pg_rich_db.row_counts.items()}
    assert res["views"] == ["order_totals"] and res["triggers"] == ["order_lines_total"]
    assert res["dump"]["kind"].startswith("pg_dump-")
    assert res["hostile"] == []
    # --no-owner: the objects belong to the loading role, no role of the dump was made.
    assert not any("NOLOGIN" in r for r in res["roles_created"])


def test_archive_restores_into_the_server_as_the_confined_role(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer, pg_rich_db: LoadedDatabase
) -> None:
    path = make(pg_server, pg_rich_db, "directory, gzip, tarred", tmp_path / "b")
    rc, res = restore_test_cli(rt_state, str(path), "--server", dsn(pg_server))
    assert rc == 0, res["error"]
    assert res["mode"] == "server" and rows(res) == pg_rich_db.row_counts
    assert any(r.startswith("sealcheck_rt_") for r in res["roles_created"])
    left = pg_server.psql(
        "SELECT datname FROM pg_database WHERE datname LIKE 'sealcheck\\_rt\\_%' UNION ALL "
        "SELECT rolname FROM pg_roles WHERE rolname LIKE 'sealcheck\\_rt\\_%';"
    ).split()
    assert left == []


@pytest.mark.parametrize("name", ["custom, gzip, piped through openssl", "tar, gzipped"])
def test_damaged_archive_fails_at_the_payload_and_commits_nothing(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer, pg_rich_db: LoadedDatabase,
    name: str,
) -> None:  # fmt: skip
    path = make(pg_server, pg_rich_db, name, tmp_path / "b")
    raw = bytearray(path.read_bytes())
    raw[len(raw) * 3 // 4] ^= 0x10  # inside the data (CBC: a whole block garbled)
    path.write_bytes(raw)
    rc, res = restore_test_cli(rt_state, str(path), *key_args(path))
    assert rc == 1, res["error"]
    assert res["ok"] is False and res["tables"] == [] and res["checks_seconds"] is None
    assert res["error"]["layer"] in ("payload", "decompress", "cipher"), res["error"]


def test_missing_directory_member_is_rejected_before_pg_restore_runs(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer, pg_rich_db: LoadedDatabase,
    proc_watcher: ProcWatcher,
) -> None:  # fmt: skip
    folder = tmp_path / "b"
    folder.mkdir()
    sh(f"{q(pg_server.bindir / 'pg_dump')} -Fd -f db {conn(pg_server, pg_rich_db.name)}", folder)
    victim = sorted((folder / "db").glob("*.dat.gz"))[0]
    victim.unlink()
    sh("tar czf b.tar.gz db", folder)
    proc_watcher.start()
    rc, res = restore_test_cli(rt_state, str(folder / "b.tar.gz"))
    proc_watcher.stop()
    assert rc == 1 and res["error"]["kind"] == "IncompleteDump", res["error"]
    assert victim.name.split(".")[0] in res["error"]["message"]
    assert not any(p.endswith("pg_restore") for p in proc_watcher.processes_seen)


def test_tar_member_outside_its_folder_is_refused(tmp_path: Path, rt_state: Path) -> None:
    """A member named ../x is never written anywhere."""
    folder = tmp_path / "b"
    (folder / "db").mkdir(parents=True)
    (folder / "db" / "toc.dat").write_bytes(b"x")
    sh("tar -cf b.tar --transform 's,^db/toc.dat,db/../../escaped.dat,' db/toc.dat", folder)
    res = api_run(folder / "b.tar", rt_state, engine="postgres")
    assert res.exit_code == 1
    assert not (tmp_path / "escaped.dat").exists() and not (folder / "escaped.dat").exists()


def test_pg_restore_failure_names_the_layer(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer, pg_rich_db: LoadedDatabase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A pg_restore that fails (here one that is not pg_restore: the one fault injected)
    is a FAILED restore test naming pg_restore and what it said, and nothing commits."""
    path = make(pg_server, pg_rich_db, "custom, no compression", tmp_path / "b")
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in os.listdir(pg_server.bindir):
        (fake / tool).symlink_to(pg_server.bindir / tool)
    (fake / "pg_restore").unlink()
    (fake / "pg_restore").write_text(
        "#!/bin/sh\ncat >/dev/null\necho 'pg_restore: error: could not read input file' >&2\n"
        "exit 1\n"
    )
    (fake / "pg_restore").chmod(0o755)
    env = {"SEALCHECK_PG_BINDIR": str(fake)}
    rc, res = restore_test_cli(rt_state, str(path), "--server", dsn(pg_server), env=env)
    assert rc == 1, res["error"]
    assert res["error"]["kind"] == "ArchiveRestoreFailed"
    assert res["error"]["message"].startswith("restore test: pg_restore")
    assert "could not read input file" in res["error"]["message"]
    assert res["tables"] == []


def test_drift_between_two_archives(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer
) -> None:
    """The same drift as for SQL dumps: two nights of a -Fc backup, rows gone and a table
    emptied in between."""
    db = f"drift_{secrets.token_hex(3)}"
    pg_server.psql(f"CREATE DATABASE {db};")
    try:
        pg_server.psql(
            "CREATE TABLE a (id int); INSERT INTO a SELECT generate_series(1, 10);\n"
            "CREATE TABLE b (id int); INSERT INTO b VALUES (1), (2);",
            db,
        )
        pgd = q(pg_server.bindir / "pg_dump")
        sh(f"{pgd} -Fc -f night1.dump {conn(pg_server, db)}", tmp_path)
        pg_server.psql("DELETE FROM a WHERE id > 6; TRUNCATE b;", db)
        sh(f"{pgd} -Fc -f night2.dump {conn(pg_server, db)}", tmp_path)
    finally:
        pg_server.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE);")
    rc, first = restore_test_cli(rt_state, str(tmp_path / "night1.dump"))
    assert rc == 0, first["error"]
    base = tmp_path / "night1.json"
    base.write_text(json.dumps(first))
    rc, res = restore_test_cli(rt_state, str(tmp_path / "night2.dump"), "--baseline", str(base))
    assert rc == 0, res["error"]
    drift = res["drift"]
    assert {c["name"]: (c["before"], c["after"]) for c in drift["row_changes"]} == {
        "public.a": (10, 6), "public.b": (2, 0),
    }  # fmt: skip
    assert drift["emptied"] == ["public.b"]


def test_pg_restore_and_psql_never_see_a_password(
    tmp_path: Path, rt_state: Path, pg_server: PostgresServer, pg_rich_db: LoadedDatabase,
    proc_watcher: ProcWatcher, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """pg_restore runs with no credentials at all (PATH, locale, a HOME of ours) and no
    password of the test's roles is in any argv or environment while the archive loads."""
    path = make(pg_server, pg_rich_db, "directory, gzip, tarred", tmp_path / "b")
    start, spawned = PostgresTarget.start, []

    def watched_start(self, *a, **kw):  # type: ignore[no-untyped-def]
        proc_watcher.secrets += list(self._pw.values())
        return start(self, *a, **kw)

    def watched_spawn(argv, **kw):  # type: ignore[no-untyped-def]
        spawned.append((list(argv), dict(kw["env"])))
        return real_spawn(argv, **kw)

    real_spawn = archiveload.spawn
    monkeypatch.setattr(PostgresTarget, "start", watched_start)
    monkeypatch.setattr(archiveload, "spawn", watched_spawn)
    proc_watcher.start()
    res = api_run(path, rt_state)
    proc_watcher.stop()
    assert res.exit_code == 0, res.error
    assert len(proc_watcher.secrets) == 2 and proc_watcher.hits == []
    ((argv, env),) = spawned
    assert argv[0].endswith("/pg_restore") and "--no-owner" in argv and "--no-privileges" in argv
    assert "-d" not in argv and set(env) == {"PATH", "LANG", "LC_ALL", "HOME"}
    assert not any(s in " ".join(argv) + " ".join(env.values()) for s in proc_watcher.secrets)
