"""The statement scanners read a statement as the server tokenizes it, so what a dump
tried is reported even when disguised (issue 10). No server: the scanners alone.

The report is not the boundary (the loading account's privileges are, see
tests/integration/test_restore_confined.py); these tests pin what the report says.
"""

from __future__ import annotations

import pytest

from fixtures.restoretest import mysql_kinds, pg_kinds
from sealcheck.core.restoretest.scan.mysql import without_definers


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SET/**/GLOBAL max_connections = 7;", "server settings (SET GLOBAL)"),
        ("SET /* a */ GLOBAL general_log = 1;", "server settings (SET GLOBAL)"),
        ("/*!50000 SET GLOBAL max_connections = 7 */;", "server settings (SET GLOBAL)"),
        ("SELECT 'x' INTO/**/OUTFILE '/tmp/x';", "file write (INTO OUTFILE/DUMPFILE)"),
        ("SELECT 1 INTO -- c\n DUMPFILE '/tmp/x';", "file write (INTO OUTFILE/DUMPFILE)"),
        ("PREPARE s FROM CONCAT('DROP DATA', 'BASE x');", "dynamic SQL (PREPARE/EXECUTE)"),
        ("EXECUTE s;", "dynamic SQL (PREPARE/EXECUTE)"),
        ("INSERT INTO t VALUES (1, LOAD_FILE('/etc/passwd'));", "file read (LOAD_FILE)"),
        ("INSERT INTO t VALUES (1, load_file /* x */ ('/etc/passwd'));", "file read (LOAD_FILE)"),
        ("INSERT INTO t VALUES (SLEEP(100));", "workload (SLEEP/BENCHMARK)"),
        ("USE mysql;", "a system database"),
        ("INSERT INTO mysql.global_priv VALUES ('x');", "a system database"),
        ("INSERT INTO `mysql`.`db` VALUES ('x');", "a system database"),
        ("UPDATE mysql.user SET x = 1;", "a system database"),
    ],
)
def test_mysql_disguises_are_reported(sql: str, kind: str) -> None:
    assert kind in mysql_kinds(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t VALUES (1, 'LOAD_FILE(''/etc/passwd'')'), (2, 'sleep (well)');",
        "SELECT 'SET GLOBAL x = 1';",
        "CREATE TABLE t (a int) COMMENT 'INTO OUTFILE';",
        "/* SET GLOBAL max_connections = 7 */ SELECT 1;",
        "INSERT INTO t VALUES ('a mysql.user note');",
    ],
)
def test_mysql_data_that_looks_hostile_is_not_reported(sql: str) -> None:
    assert mysql_kinds(sql) == []


def test_definer_clauses_become_the_loading_account() -> None:
    raw = (
        b"/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER t "
        b"BEFORE INSERT ON x FOR EACH ROW SET NEW.a = 'DEFINER=`x`@`y`' */"
    )
    out, found = without_definers(raw)
    assert found == ["DEFINER=`root`@`localhost`"]
    assert b"DEFINER=CURRENT_USER*/" in out and b"'DEFINER=`x`@`y`'" in out
    same, none = without_definers(b"CREATE DEFINER=CURRENT_USER PROCEDURE p() SELECT 1")
    assert none == [] and same == b"CREATE DEFINER=CURRENT_USER PROCEDURE p() SELECT 1"


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT \"pg_read_file\"('/etc/passwd');", "server file access"),
        ("SELECT pg_catalog.pg_read_file('/etc/passwd');", "server file access"),
        ("COPY public.t TO $q$/tmp/x$q$;", "server file access"),
        ("COPY public.t TO PROGRAM 'id';", "program execution (COPY … PROGRAM)"),
        (
            "CREATE FUNCTION f() RETURNS int AS 'libc.so.6', 'system' LANGUAGE \"c\" STRICT;",
            "untrusted code (languages, extensions, C functions)",
        ),
        ("ALTER/**/SYSTEM SET work_mem = '1MB';", "server settings (ALTER SYSTEM)"),
        (
            "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
            "PERFORM pg_read_file('/etc/passwd'); END $$;",
            "server file access",
        ),
        ("DROP /* x */ DATABASE prod;", "other databases and tablespaces"),
    ],
)
def test_pg_disguises_are_reported(sql: str, kind: str) -> None:
    assert any(k.startswith(kind) for k in pg_kinds(sql)), pg_kinds(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "COMMENT ON TABLE public.t IS 'COPY x TO PROGRAM ''rm''';",
        "INSERT INTO public.t VALUES (1, 'pg_read_file(''/x'')');",
        "CREATE VIEW public.v AS SELECT 'ALTER SYSTEM' AS a;",
    ],
)
def test_pg_data_that_looks_hostile_is_not_reported(sql: str) -> None:
    assert pg_kinds(sql) == []
