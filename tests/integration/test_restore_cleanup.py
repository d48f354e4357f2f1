"""A restore test's record says whether what it made was cleaned up (issue 14): the
throwaway server stopped and its folder gone, checked after the clean-up, or what was
left. Real throwaway PostgreSQL servers, real psql; the one fake is a fault: a folder
removal that does nothing (as when a file in it cannot be deleted)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.restoretest import RunWatcher, api_run, hostile_pg_dump
from sealcheck.core.records.restore_result import RestoreTestResult
from sealcheck.core.restoretest import target
from sealcheck.core.restoretest.procs import StateDir


def _wiped(res: RestoreTestResult) -> Path:
    (line,) = [c for c in res.cleanup if c.startswith("wiped /")]
    return Path(line.removeprefix("wiped "))


def test_a_clean_run_records_cleaned(
    tmp_path: Path, rt_state: Path, no_restore_leftovers: RunWatcher
) -> None:
    dump = hostile_pg_dump(tmp_path / "d.sql", "SELECT 1;")
    res = api_run(dump, rt_state)
    assert res.exit_code == 0, res.error
    assert res.cleanup_status == "cleaned"
    assert not _wiped(res).exists()
    assert rt_state.is_dir() and not list(rt_state.glob("postgres-*.json"))
    # The record keeps it, and reads back (older records without it read as "").
    d = res.to_dict()
    assert d["cleanup_status"] == "cleaned"
    assert RestoreTestResult.from_dict(d).cleanup_status == "cleaned"
    del d["cleanup_status"]
    assert RestoreTestResult.from_dict(d).cleanup_status == ""
    # The CLI prints and records it too.
    env = {**os.environ, "SEALCHECK_STATE_DIR": str(rt_state)}
    r = run_cli("restore-test", str(dump), "--no-progress", "--no-history", env=env, timeout=300)
    assert r.returncode == 0 and "clean-up: cleaned" in r.stdout, r.stdout + r.stderr
    r = run_cli("restore-test", str(dump), "--json", "--no-history", env=env, timeout=300)
    assert json.loads(r.stdout)["cleanup_status"] == "cleaned"


def test_a_folder_that_stays_is_recorded_as_left_and_swept_next_time(
    tmp_path: Path, rt_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(target.shutil, "rmtree", lambda *_a, **_k: None)  # the fault
    res = api_run(hostile_pg_dump(tmp_path / "d.sql", "SELECT 1;"), rt_state)
    monkeypatch.undo()
    assert res.exit_code == 0, res.error  # the backup passed; the clean-up did not
    assert res.cleanup_status.startswith("left: folder /tmp/scrt-")
    root = Path(res.cleanup_status.removeprefix("left: folder ").split(" ")[0])
    assert root.is_dir() and res.cleanup_status.endswith("(could not be removed)")
    assert "stopped the throwaway server" in res.cleanup  # the server itself did stop
    # Its pid record stays, so the next restore test sweeps the folder.
    records = list(rt_state.glob("postgres-*.json"))
    assert [json.loads(r.read_text())["root"] for r in records] == [str(root)]
    assert any(c.startswith("kept postgres-") for c in res.cleanup)
    swept = StateDir(rt_state).clean_orphans("postgres")
    assert f"wiped orphan folder {root}" in swept and not root.exists()
