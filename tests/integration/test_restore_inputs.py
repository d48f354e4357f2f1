"""Restore test: what it is given besides the backup (issue 10).

``--baseline`` is checked before anything starts: a file that cannot be read, is not
JSON, or has a field of the wrong type is a usage error (exit 2) naming the file and
the field, not an internal error after the whole test. A statement has a stated size
limit (1 GiB, the server's max_allowed_packet) and one close to it loads in memory
bounded by its size, not by several copies of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.restoretest import MY_HEADER, hostile_mysql_dump, restore_test_cli
from sealcheck.core.restoretest.scan import common as sqlscan
from sealcheck.core.restoretest.scan.common import StatementTooLarge
from sealcheck.core.restoretest.scan.mysql import MySQLScanner

pytestmark = pytest.mark.usefixtures("no_restore_leftovers")

TRAILER = "-- Dump completed on 2026-11-27 10:00:00\n"


def small_dump(path: Path) -> Path:
    return hostile_mysql_dump(path, "", sandbox_line=False)


def cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEALCHECK_STATE_DIR": str(state)}
    return run_cli("restore-test", *args, "--no-progress", env=env, timeout=120)


# --- --baseline ----------------------------------------------------------------------------


def _result_with_tables(tables: list[dict[str, object]]) -> dict[str, object]:
    return {"ok": True, "engine": "mariadb", "started_at": "then", "tables": tables}


def _table(name: str, rows: object) -> dict[str, object]:
    return {"name": name, "schema": "hostile", "rows": rows, "checksum": "1", "ok": True}


BAD_BASELINES = [
    pytest.param('{"tables": "x"}', "tables: expected a list, got str", id="tables-not-a-list"),
    pytest.param(
        json.dumps(_result_with_tables([_table(n, 1) for n in "abc"] + [_table("d", "12")])),
        "tables[3].rows: expected an integer, got str",
        id="rows-a-string",
    ),
    pytest.param(
        json.dumps(_result_with_tables([{"schema": "s", "rows": 1}])),
        "tables[0].name: missing",
        id="table-without-name",
    ),
    pytest.param('{"started_at": 5, "tables": []}', "started_at: expected a string", id="date"),
    pytest.param("[1, 2]", "expected an object (a restore-test result), got list", id="list"),
    pytest.param('{"tables": [', "not a JSON restore-test result", id="invalid-json"),
    pytest.param(b"\xff\xfe{}", "cannot read it", id="not-utf8"),
]


@pytest.mark.parametrize(("content", "says"), BAD_BASELINES)
def test_a_bad_baseline_is_a_usage_error_before_anything_starts(
    tmp_path: Path, rt_state: Path, content: str | bytes, says: str
) -> None:
    baseline = tmp_path / "before.json"
    if isinstance(content, bytes):
        baseline.write_bytes(content)
    else:
        baseline.write_text(content)
    t0 = time.monotonic()
    r = cli(rt_state, str(small_dump(tmp_path / "d.sql")), "--baseline", str(baseline))
    assert r.returncode == 2, r.stderr + r.stdout
    assert f"--baseline {baseline}: {says}" in r.stderr, r.stderr
    # Refused before the restore test did anything: not even its state folder exists
    # (no lock taken, no server started, no byte of the backup read).
    assert not rt_state.exists()
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_an_unreadable_baseline_is_a_usage_error(tmp_path: Path, rt_state: Path, kind: str) -> None:
    baseline = tmp_path / "before.json"
    if kind == "directory":
        baseline.mkdir()
    r = cli(rt_state, str(small_dump(tmp_path / "d.sql")), "--baseline", str(baseline), "--json")
    assert r.returncode == 2, r.stderr + r.stdout
    reason = "No such file or directory" if kind == "missing" else "Is a directory"
    assert f"--baseline {baseline}: cannot read it: {reason}" in r.stderr, r.stderr
    # --json: an object on this path too, naming the error.
    out = json.loads(r.stdout)
    assert out["ok"] is False and out["error"]["kind"] == "UsageError"
    assert not rt_state.exists()


def test_a_real_result_serves_as_baseline_even_without_the_keys_drift_does_not_read(
    tmp_path: Path, rt_state: Path
) -> None:
    """An earlier --json result (here with keys an older writer may lack removed) passes
    the check and gives drift: the check refuses wrong types, not older files."""
    dump = small_dump(tmp_path / "d.sql")
    code, first = restore_test_cli(rt_state, str(dump))
    assert code == 0, first.get("error")
    for key in ("hostile", "cleanup", "rewritten", "roles_created", "verification"):
        first.pop(key)
    first["tables"][0]["rows"] += 5
    baseline = tmp_path / "before.json"
    baseline.write_text(json.dumps(first))
    code, second = restore_test_cli(rt_state, str(dump), "--baseline", str(baseline))
    assert code == 0, second.get("error")
    changed = first["tables"][0]
    key = f"{changed['schema']}.{changed['name']}"
    assert second["drift"]["baseline"] == str(baseline)
    assert second["drift"]["row_changes"] == [
        {"name": key, "before": changed["rows"], "after": changed["rows"] - 5}
    ]


# --- the statement size limit ------------------------------------------------------------


def _feed(scanner: MySQLScanner, data: bytes, chunk: int = 1 << 16) -> None:
    for i in range(0, len(data), chunk):
        scanner.feed(data[i : i + chunk])


def test_a_statement_over_the_limit_is_refused_with_its_line_as_soon_as_it_is_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sqlscan, "MAX_STATEMENT", 1 << 20)
    head = b"CREATE TABLE `t` (`v` text);\n\nINSERT INTO `t` VALUES "
    row = b"('" + b"y" * 1000 + b"'),"
    s = MySQLScanner("db")
    sent: list[int] = []
    s.statement_sink = lambda raw, ref: sent.append(len(raw))
    with pytest.raises(StatementTooLarge) as exc:
        _feed(s, head + row * 3000)  # ~3 MB, no end
    assert exc.value.line == 3  # the INSERT's own line, not the one where the last ended
    # Stopped when the limit was reached, not once the buffer had grown past it.
    assert exc.value.size == (1 << 20) + 1
    assert s.summary.bytes <= len(head) + (1 << 20) + (1 << 16)
    assert sent == [len(b"CREATE TABLE `t` (`v` text)")]
    # Refused for good: the rest of the dump is not scanned.
    with pytest.raises(StatementTooLarge):
        s.feed(b"');\n")
    with pytest.raises(StatementTooLarge):
        s.finish()
    assert sent == [len(b"CREATE TABLE `t` (`v` text)")]


def test_a_statement_just_under_the_limit_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlscan, "MAX_STATEMENT", 1 << 20)
    s = MySQLScanner("db")
    sent: list[bytes] = []
    s.statement_sink = lambda raw, ref: sent.append(bytes(raw))
    stmt = b"INSERT INTO `t` VALUES ('" + b"z" * ((1 << 20) - 100) + b"')"
    _feed(s, b"\n" + stmt + b";\nINSERT INTO `t` VALUES ('after');\n", chunk=77777)
    assert s.finish() == []
    assert sent == [stmt, b"INSERT INTO `t` VALUES ('after')"]
    assert s.summary.tables[("db", "t")].rows == 2 and s.summary.lines == 3


def test_over_the_limit_through_the_cli_is_exit_1_with_the_line(
    tmp_path: Path, rt_state: Path
) -> None:
    """Exit 1 (LimitExceeded, like the time and disk limits): it is the backup that
    cannot be restored into a server whose max_allowed_packet is at its 1 GiB maximum,
    and no option of the run would change that. The limit is lowered to 1 MiB for the
    test; the run is the real CLI otherwise."""
    value = "'" + "y" * 1000 + "'"
    body = "CREATE TABLE `t` (`v` text);\nINSERT INTO `t` VALUES " + ",".join(
        f"({value})" for _ in range(3000)
    )
    dump = tmp_path / "d.sql"
    dump.write_text(MY_HEADER + body + "\n" + TRAILER)
    code = (
        "import sys; from sealcheck.core.restoretest.scan import common as sqlscan; "
        "sqlscan.MAX_STATEMENT = 1 << 20; from sealcheck.core.cli.main import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "SEALCHECK_STATE_DIR": str(rt_state)}
    r = subprocess.run(
        [sys.executable, "-c", code, "restore-test", str(dump), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 1, r.stderr + r.stdout
    assert "Traceback" not in r.stderr + r.stdout
    assert "statement size limit of 1 MiB: the statement starting at line 8 is larger" in (
        r.stdout
    ), r.stdout


# --- memory: one huge statement ----------------------------------------------------------


def _huge_insert_dump(path: Path, megabytes: int) -> tuple[int, int]:
    """One extended INSERT of ``megabytes`` MB on one line, rows of ~200 bytes as a
    dump tool writes them; returns (the statement's size, its rows)."""
    text = "'" + "café and more text, " * 9 + "'"
    rows = megabytes * 1_000_000 // 210
    with path.open("w") as f:
        f.write(MY_HEADER)
        f.write("CREATE TABLE `big` (`id` int NOT NULL PRIMARY KEY, `s` text NOT NULL);\n")
        start = f.tell()
        f.write("INSERT INTO `big` VALUES ")
        f.write(",".join(f"({i},{text})" for i in range(rows)))
        size = f.tell() - start
        f.write(";\nCREATE TABLE `after` (`id` int);\nINSERT INTO `after` VALUES (1);\n")
        f.write(TRAILER)
    return size, rows


def test_a_huge_single_line_insert_loads_in_memory_bounded_by_its_size(
    tmp_path: Path, rt_state: Path
) -> None:
    """A 120 MB INSERT on one line: the process's peak RSS (VmHWM) stays within the
    statement held once (the scanner's buffer; the driver gets a view of it and the rows
    are counted in place), one 16 MiB protocol packet and the process's own ~50 MiB,
    with room for the allocator: S + 120 MiB (measured: 185 MiB for S = 109 MiB).
    Before, the chunk list and the joined buffer, the copies of the output and of the
    rest, and PyMySQL slicing off what was left after each packet made it about 3 × S."""
    dump = tmp_path / "big.sql"
    size, rows = _huge_insert_dump(dump, 120)
    env = {**os.environ, "SEALCHECK_STATE_DIR": str(rt_state)}
    cmd = [sys.executable, "-m", "sealcheck.core.cli", "restore-test", str(dump), "--json",
           "--no-progress"]  # fmt: skip
    out = tmp_path / "out.json"
    with out.open("wb") as stdout:
        proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=subprocess.PIPE)
        peak = 0
        while proc.poll() is None:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
            time.sleep(0.05)
        _, err = proc.communicate()
    res = json.loads(out.read_text())
    assert proc.returncode == 0, (err.decode()[-2000:], res.get("error"))
    assert {t["name"]: t["rows"] for t in res["tables"]} == {"big": rows, "after": 1}
    bound = size + (120 << 20)
    print(f"peak RSS {peak >> 20} MiB for a statement of {size >> 20} MiB")
    assert peak <= bound, f"peak RSS {peak >> 20} MiB over {bound >> 20} MiB (S = {size >> 20})"
