"""``sealcheck report export`` goes the one streamed road (records/report_file.py: the
records read back from the history a batch at a time while the report is signed and
written): its files are byte for byte what the command wrote when it held the whole
body (``evidence.build`` of the entries, then rendered whole), ``report verify`` passes
on them, and a damaged entry is still the history's typed error with nothing written.
The history is made in-process; the command runs as a user runs it, signing with the
evidence key in a real keyring."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from test_evidence_stream import _report

from fixtures.common import run_cli
from fixtures.keyring_session import KeyringSession
from sealcheck.core.records import evidence, evidence_verify, report_formats
from sealcheck.core.records.history import FILENAME, Entry, History, Trigger
from sealcheck.core.records.report import ErrorInfo


def _history(data: Path) -> History:
    """Several entries: OK, FAILED (text that needs escaping), a version checked again
    (OK after FAILED) and one a run could not check (``--latest`` passes over it)."""
    h = History(data / FILENAME)
    first = [_report(n) for n in range(9)]
    again = dataclasses.replace(first[3], ok=True, error=None)
    setup = dataclasses.replace(
        first[5], ok=False, error=ErrorInfo("KeyUnavailable", "key", "no key", 2)
    )
    h.record_many(
        ((r, r.to_dict(), None) for r in [*first, again, setup]),
        trigger=Trigger.MANUAL,
        campaign=None,
    )
    return h


@pytest.fixture
def env(tmp_path: Path, keyring_session: KeyringSession) -> dict[str, str]:
    return {**os.environ, **keyring_session.env, "SEALCHECK_DATA_DIR": str(tmp_path / "data")}


def _export(env: dict[str, str], out: Path, fmt: str, *which: str) -> bytes:
    r = run_cli("report", "export", *which, "--format", fmt, "-o", str(out), env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "wrote an evidence report of" in r.stdout and "signed by SHA256:" in r.stdout
    return out.read_bytes()


def _whole(hist: History, entries: list[Entry], signed: dict[str, Any]) -> dict[str, Any]:
    """The body as the command built it before it streamed (every record made first),
    with the chain the exported file carries: its statement must be this body's."""
    at = dt.datetime.fromisoformat(signed["generated_at"])
    held = evidence.build(entries, now=at)
    assert evidence.statement(held, hist) == signed["chain"]["statement"]
    return {**held, "chain": signed["chain"]}


@pytest.mark.parametrize("latest", [False, True], ids=["by-id", "latest"])
def test_report_export_is_the_whole_body_rendering(
    env: dict[str, str], tmp_path: Path, latest: bool
) -> None:
    hist = _history(tmp_path / "data")
    if latest:
        entries = list(hist.latest_by_version(verdicts_only=True).values())
        which: tuple[str, ...] = ("--latest",)
        assert len(entries) == 9 and 11 not in [e.id for e in entries]
    else:
        by_id = {e.id: e for e in hist.entries()}
        order = [7, 2, 11, 10, 1, 4, 9]  # any order: the report keeps it
        entries = [by_id[i] for i in order]
        which = tuple(map(str, order))
    files = {fmt: _export(env, tmp_path / f"r.{fmt}", fmt, *which) for fmt in ("json", "html")}
    csv = _export(env, tmp_path / "r.csv", "csv", *which)
    whole = {}
    for fmt, data in files.items():
        got, signed = evidence_verify.body_of(data)
        assert got == fmt
        assert [r["history_id"] for r in signed["entries"]] == [e.id for e in entries]
        whole[fmt] = _whole(hist, entries, signed)
        assert report_formats.render(whole[fmt], fmt) == data, fmt
        v = run_cli("report", "verify", str(tmp_path / f"r.{fmt}"), env=env, timeout=120)
        assert v.returncode == 0 and "report intact" in v.stdout, v.stdout + v.stderr
    # The CSV carries no time of its own: the JSON's chain (same head, same key) makes it.
    assert report_formats.render(whole["json"], "csv") == csv


def test_an_entry_named_twice_is_reported_once(env: dict[str, str], tmp_path: Path) -> None:
    _history(tmp_path / "data").close()
    data = _export(env, tmp_path / "r.json", "json", "4", "2", "4", "2")
    _, signed = evidence_verify.body_of(data)
    assert [r["history_id"] for r in signed["entries"]] == [4, 2]
    v = run_cli("report", "verify", str(tmp_path / "r.json"), env=env, timeout=120)
    assert v.returncode == 0 and "report intact" in v.stdout, v.stdout + v.stderr


def test_a_damaged_entry_is_the_historys_error_and_nothing_is_written(
    env: dict[str, str], tmp_path: Path
) -> None:
    hist = _history(tmp_path / "data")
    db = sqlite3.connect(hist.path)
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("UPDATE entries SET result = '{not json' WHERE id = 4")
    db.commit()
    db.close()
    out = tmp_path / "r.json"
    args = ("report", "export", "3", "4", "5", "--format", "json", "-o", str(out))
    r = run_cli(*args, env=env, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "an entry is damaged" in r.stderr and FILENAME in r.stderr
    assert not out.exists() and list(tmp_path.glob("*.partial")) == []
