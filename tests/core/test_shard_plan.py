"""The shard plan's file (issue 15): work items round-trip exactly to the listed version
a worker opens, the file is deterministic, and a plan edited after it was written is
refused by name. (The plan's runs over real backups: tests/integration/test_scale.py.)"""

from __future__ import annotations

import datetime as _dt
from dataclasses import replace
from pathlib import Path

import pytest

from sealcheck.core.audit.item import ItemResult
from sealcheck.core.audit.plan import (
    Operation,
    PlanError,
    WorkItem,
    read_plan,
    write_plan,
)
from sealcheck.core.audit.shard import parse_shard
from sealcheck.core.errors import UsageError
from sealcheck.core.records.identity import SourceIdentity
from sealcheck.core.records.report import Report
from sealcheck.core.storage.listing import ObjectVersion
from sealcheck.core.storage.locate import ListedVersion

WHEN = _dt.datetime(2026, 12, 1, 2, 3, 4, tzinfo=_dt.UTC)


def listed(n: int, *, paired: bool = True, sidecars: tuple[str, ...] | None = ()) -> ListedVersion:
    data = ObjectVersion(f"db/n{n}.sql.gz", f"v{n}", 1000 + n, WHEN, f'"e{n}"', n == 0, False, None)
    key = ObjectVersion(f"db/n{n}.sql.gz.key", f"k{n}", 256, WHEN, '"k"', True, False, "STANDARD")
    return ListedVersion("bkt", data, key if paired else None, sidecars=sidecars)


def test_a_listed_version_round_trips_through_a_work_item() -> None:
    for v in (listed(0), listed(1, paired=False, sidecars=None), listed(2, sidecars=("x.sha256",))):
        item = WorkItem.of(v, endpoint="http://s3:9000", operation=Operation.VERIFY, strict=True)
        back = WorkItem.from_json(item.to_json())
        assert back == item and back.listed() == v
        assert item.id == f"s3://bkt/{v.data.key}@{v.data.version_id}"


def test_rotation_links_round_trip_and_an_older_plan_reads_as_not_known() -> None:
    """The links the listing found (issue 14) travel with the item; an item written
    without the field (a plan made before it) means "not known": the worker lists."""
    link = "db/n0.sql.gz.key.rewrap/v0/" + "ab" * 32
    for links in ((), (link,)):
        v = replace(listed(0), links=links)
        item = WorkItem.of(v, endpoint=None, operation=Operation.VERIFY, strict=False)
        back = WorkItem.from_json(item.to_json())
        assert back == item and back.listed() == v and back.links == links
    older = WorkItem.of(listed(0), endpoint=None, operation=Operation.VERIFY, strict=False)
    assert older.links is None and '"links"' not in older.to_json()
    assert WorkItem.from_json(older.to_json()).listed().links is None


def test_plan_is_deterministic_and_sealed(tmp_path: Path) -> None:
    items = [
        WorkItem.of(listed(n), endpoint=None, operation=Operation.VERIFY, strict=False)
        for n in range(5)
    ]
    camp = {"id": "audit-x", "seed": 7}
    a = write_plan(tmp_path / "a.jsonl", camp, items)
    b = write_plan(tmp_path / "b.jsonl", camp, list(reversed(items)))
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert a.sha256 == b.sha256
    back = read_plan(tmp_path / "a.jsonl")
    assert back.items == a.items and back.campaign == camp

    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    edits = {
        "edited": [lines[0], lines[1].replace('"size":1000', '"size":999'), *lines[2:]],
        "removed": [lines[0], *lines[2:]],
        "swapped": [lines[0], lines[2], lines[1], *lines[3:]],
        "garbled": [lines[0], lines[1][:-9], *lines[2:]],  # no longer a work item
    }
    for name, text in edits.items():
        bad = tmp_path / f"{name}.jsonl"
        bad.write_text("\n".join(text) + "\n")
        with pytest.raises(PlanError) as err:
            read_plan(bad)
        assert str(bad) in str(err.value) and "SHA-256 does not match" in str(err.value)
    (tmp_path / "junk.jsonl").write_text("hello\n")
    with pytest.raises(PlanError, match="not a shard plan"):
        read_plan(tmp_path / "junk.jsonl")


def test_an_item_result_round_trips() -> None:
    item = WorkItem.of(listed(3), endpoint=None, operation=Operation.VERIFY, strict=True)
    report = Report(
        source=SourceIdentity(uri="s3://bkt/db/n3.sql.gz", size=1003, version_id="v3"),
        wrapped_key=None,
        operation="verify",
        ok=True,
        layers=(),
        formats=(),
        error=None,
        started_at=WHEN.isoformat(),
        duration_s=0.5,
        sealcheck_version="test",
    )
    r = ItemResult.of(item, report)
    back = ItemResult.from_json(r.to_json())
    assert back.same(r) and back.result() == report and back.exit_code == 0
    with pytest.raises(PlanError, match="not a result row"):
        ItemResult.from_json('{"item": 1}')


@pytest.mark.parametrize("split", ["strided", "contiguous"])
def test_shards_split_every_item_exactly_once(split: str) -> None:
    items = list(range(23))
    for n in (1, 2, 5, 23, 40):
        got = [parse_shard(f"{i}/{n}", split, env={}).pick(items) for i in range(n)]  # type: ignore[arg-type]
        assert sorted(x for g in got for x in g) == items
        again = [parse_shard(f"{i}/{n}", split, env={}).pick(items) for i in range(n)]  # type: ignore[arg-type]
        assert got == again
    env = {"AWS_BATCH_JOB_ARRAY_INDEX": "3"}
    assert parse_shard("auto/4", split, env=env).index == 3
    for bad in ("4/4", "x/2", "1/0"):
        with pytest.raises(UsageError):
            parse_shard(bad, split, env={})
