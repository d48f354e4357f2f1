"""Restore test: the wall-clock and disk limits, with real servers (issue 5, reliability.md E3).

A dump that loads for too long, or writes more than the disk limit, is stopped: exit 1
(``LimitExceeded``), a message naming the limit and its value, the server stopped and its
folder wiped, soon after the limit. The slow and large dumps here are legitimate SQL (a
stored routine that loops, many rows): no ``SLEEP`` is needed to make a load slow.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.restoretest import (
    MY_HEADER,
    api_run,
    hostile_pg_dump,
    restore_test_cli,
)
from sealcheck.core.restoretest.scan import common as sqlscan

# Every test: no server process and no folder of its runs remains afterwards.
pytestmark = pytest.mark.usefixtures("no_restore_leftovers")

TRAILER = "-- Dump completed on 2026-11-27 10:00:00\n"


def mariadb_dump(path: Path, body: str) -> Path:
    path.write_text(MY_HEADER + body.rstrip("\n") + "\n" + TRAILER)
    return path


SPIN = """CREATE TABLE `ticks` (`n` bigint NOT NULL);
DELIMITER ;;
CREATE PROCEDURE `spin`()
BEGIN
  DECLARE i BIGINT DEFAULT 0;
  LOOP
    SET i = i + 1;
  END LOOP;
END ;;
DELIMITER ;
CALL `spin`();
INSERT INTO `ticks` VALUES (1);
"""


def rows_dump(path: Path, megabytes: int) -> Path:
    """A plain many-rows dump: ``megabytes`` MB of 4 KB text values."""
    value = "'" + "x" * 4000 + "'"
    parts = ["CREATE TABLE `big` (`id` int NOT NULL PRIMARY KEY, `t` text NOT NULL);\n"]
    n = 0
    for _ in range(megabytes * 1000 // 800):  # 200 rows of ~4 KB: ~0.8 MB per INSERT
        parts.append(
            "INSERT INTO `big` VALUES " + ",".join(f"({n + i},{value})" for i in range(200)) + ";\n"
        )
        n += 200
    return mariadb_dump(path, "".join(parts))


def test_max_time_stops_a_load_that_never_ends(tmp_path: Path, rt_state: Path) -> None:
    """CLI ``--max-time 3``: a stored routine that loops forever is stopped soon after 3 s
    (counted from the start of the load: starting the server does not depend on the dump)."""
    dump = mariadb_dump(tmp_path / "spin.sql", SPIN)
    rc, res = restore_test_cli(rt_state, str(dump), "--max-time", "3")
    assert rc == 1, res
    err = res["error"]
    assert err["kind"] == "LimitExceeded" and err["layer"] == "database"
    assert (
        "wall-clock limit of 3 s (--max-time) reached while loading the dump" in (err["message"])
    ), err
    assert 2.5 < res["load_seconds"] < 3 + 2, res["load_seconds"]
    assert res["ok"] is False and res["tables"] == []
    assert [h["kind"] for h in res["hostile"]] == ["workload (CALL of a stored routine)"]
    assert res["hostile"][0]["statement"] == "CALL `spin`()"
    assert "stopped the throwaway server" in res["cleanup"], res["cleanup"]
    assert any(c.startswith("wiped /tmp/scrt-my-") for c in res["cleanup"]), res["cleanup"]


def test_max_time_stops_a_postgres_load_that_never_ends(tmp_path: Path, rt_state: Path) -> None:
    """The same on PostgreSQL: a DO block that loops."""
    dump = hostile_pg_dump(tmp_path / "d.sql", "DO $$ BEGIN LOOP END LOOP; END $$;")
    res = api_run(dump, rt_state, max_seconds=3)
    assert res.exit_code == 1 and res.error.kind == "LimitExceeded", res.error
    assert "wall-clock limit of 3 s (--max-time) reached while loading the dump" in (
        res.error.message
    )
    assert 2.5 < res.load_seconds < 3 + 2, res.load_seconds
    assert [h["kind"] for h in res.hostile] == ["workload (anonymous code block DO)"]
    # The backend running the loop is in a process group of its own (PostgreSQL's setsid):
    # killing the postmaster's group does not stop it, and a backend in a loop never
    # notices that its postmaster died. It is found by its working folder, and stopped.
    assert any(re.fullmatch(r"stopped \d+ more server process\(es\)", c) for c in res.cleanup)


def test_max_disk_stops_a_dump_larger_than_the_limit(tmp_path: Path, rt_state: Path) -> None:
    """CLI ``--max-disk 4M``: a plain dump inserting ~12 MB of rows is stopped."""
    dump = rows_dump(tmp_path / "rows.sql", 12)
    rc, res = restore_test_cli(rt_state, str(dump), "--max-disk", "4M")
    assert rc == 1, res
    err = res["error"]
    assert err["kind"] == "LimitExceeded", err
    assert "disk limit of 4 MiB (--max-disk)" in err["message"], err
    assert "grew by" in err["message"]
    assert res["hostile"] == []


def test_a_dump_within_the_disk_limit_passes(tmp_path: Path, rt_state: Path) -> None:
    """The freshly started server's own files (~300 MB for MariaDB's redo log) do not count."""
    dump = rows_dump(tmp_path / "rows.sql", 2)
    rc, res = restore_test_cli(rt_state, str(dump), "--max-disk", "64M")
    assert rc == 0, res["error"]
    assert [(t["name"], t["rows"]) for t in res["tables"]] == [("big", 400)]


def test_max_disk_stops_a_cartesian_insert(tmp_path: Path, rt_state: Path) -> None:
    """E3: a huge cartesian INSERT … SELECT (10^5 rows of 8 KB from ten rows) is bounded."""
    body = (
        "CREATE TABLE `d` (`i` int NOT NULL);\n"
        "INSERT INTO `d` VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9);\n"
        "CREATE TABLE `bomb` (`t` text NOT NULL);\n"
        "INSERT INTO `bomb` SELECT REPEAT('x', 8000) FROM `d` a, `d` b, `d` c, `d` e, `d` f;\n"
    )
    t0 = time.monotonic()
    res = api_run(mariadb_dump(tmp_path / "d.sql", body), rt_state, max_disk_bytes=8 << 20)
    assert res.exit_code == 1 and res.error.kind == "LimitExceeded", res.error
    assert "disk limit of 8 MiB (--max-disk)" in res.error.message
    assert time.monotonic() - t0 < 15


def test_max_disk_on_postgres(tmp_path: Path, rt_state: Path) -> None:
    """E3: a generate_series bomb on PostgreSQL, reported and bounded by the disk limit."""
    body = (
        "CREATE TABLE public.bomb (t text);\n"
        "INSERT INTO public.bomb SELECT repeat('x', 2000) FROM generate_series(1, 100000000);"
    )
    res = api_run(hostile_pg_dump(tmp_path / "d.sql", body), rt_state, max_disk_bytes=8 << 20)
    assert res.exit_code == 1 and res.error.kind == "LimitExceeded", res.error
    assert "disk limit of 8 MiB (--max-disk)" in res.error.message
    assert [h["kind"] for h in res.hostile] == ["workload (recursive query or generate_series)"]


def test_a_statement_too_large_is_a_limit(
    tmp_path: Path, rt_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """E3: a single INSERT larger than the statement limit (1 GiB, lowered here to 1 MiB)
    stops the load with the statement's line, instead of being buffered without end."""
    monkeypatch.setattr(sqlscan, "MAX_STATEMENT", 1 << 20)
    value = "'" + "y" * 1000 + "'"
    body = "CREATE TABLE `t` (`v` text);\nINSERT INTO `t` VALUES " + ",".join(
        f"({value})" for _ in range(3000)
    )  # ~3 MB, and no end: the scanner never sees its ';'
    res = api_run(mariadb_dump(tmp_path / "d.sql", body), rt_state)
    assert res.exit_code == 1 and res.error.kind == "LimitExceeded", res.error
    assert "statement size limit of 1 MiB: the statement starting at line 8" in (res.error.message)


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("--max-disk", "lots"), "is not a size"),
        (("--max-disk", "0"), "at least 1 byte"),
        (("--max-time", "0"), "must be positive"),
        (("--max-time", "soon"), "not a number of seconds"),
    ],
)
def test_bad_limits_are_usage_errors(args: tuple[str, str], text: str, tmp_path: Path) -> None:
    r = run_cli("restore-test", str(tmp_path / "none.sql"), *args, timeout=60)
    assert r.returncode == 2 and text in r.stderr, r.stderr
