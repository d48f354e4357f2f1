"""Recovery targets per source (issue 14): read from the sources file the app writes,
the most specific source wins, the command line overrides."""

from __future__ import annotations

import json
from pathlib import Path

from sealcheck.core.records.targets import (
    SourceTargets,
    config_path,
    from_sources,
    load,
    measured,
    targets_for,
)

DOC = {
    "version": 1,
    "sources": [
        {"name": "all", "bucket": "b", "prefix": "", "target_rto_s": 3600, "target_rpo_h": 48},
        {"name": "mysql", "bucket": "b", "prefix": "mysql/", "target_rpo_h": 26},
        {"name": "plain", "bucket": "b", "prefix": "pg/"},  # no target: not listed
        {"name": "hand edit", "bucket": "b", "prefix": "x/", "target_rto_s": "soon"},
        {"name": "disk", "bucket": "", "path": "/srv/dumps", "target_rto_s": 60},
    ],
}


def test_the_most_specific_source_sets_each_target() -> None:
    book = from_sources(DOC)
    assert [s.name for s in book] == ["all", "mysql", "disk"]
    t = targets_for("s3://b/mysql/db.sql.gz", book)
    # RPO from the narrower source, RTO from the wider one (the narrower sets none).
    assert (t.rto_s, t.rto_from, t.rpo_h, t.rpo_from) == (3600, "source all", 26, "source mysql")
    assert targets_for("s3://b/pg/x.sql.gz", book).rpo_from == "source all"
    assert targets_for("s3://other/x", book).empty
    assert targets_for("/srv/dumps/a.sql", book).rto_s == 60
    assert targets_for("/srv/dumpsX/a.sql", book).empty  # a folder holds only what is in it


def test_the_command_line_overrides_each_target() -> None:
    book = from_sources(DOC)
    t = targets_for("s3://b/mysql/db.sql.gz", book, rto_s=10)
    assert (t.rto_s, t.rto_from, t.rpo_h, t.rpo_from) == (10, "--target-rto", 26, "source mysql")
    t = targets_for("s3://other/x", (), rpo_h=5)
    assert t.to_dict() == {"rto_s": None, "rto_from": None, "rpo_h": 5, "rpo_from": "--target-rpo"}


def test_the_sources_file_is_the_apps(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SEALCHECK_CONFIG_DIR", str(tmp_path))
    assert config_path() == tmp_path / "sources.json"
    assert load() == ()  # no file: no targets
    (tmp_path / "sources.json").write_text(json.dumps(DOC))
    assert load()[1] == SourceTargets("mysql", "s3://b/mysql/", None, 26.0)
    (tmp_path / "sources.json").write_text("{not json")
    assert load() == ()  # unreadable: no targets (the app sets it aside and says so)


def test_met_or_missed() -> None:
    t = targets_for("s3://b/mysql/x", from_sources(DOC)).to_dict()
    m = measured(t, recovery_s=4000, age_s=3600)
    assert m is not None and m["rto_met"] is False and m["rpo_met"] is True
    m = measured(t, recovery_s=None, age_s=27 * 3600)
    assert m is not None and m["rto_met"] is None and m["rpo_met"] is False
    assert measured(None, 1, 1) is None
