"""An audit campaign over SeaweedFS (issue 14): another S3 implementation's listing,
versions and ranged reads, with backups made by the real openssl commands, one cut
short; its slices still cover every version exactly once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.dumps import mysql_like
from fixtures.pipelines import RsaKey, securecircle
from fixtures.s3servers import S3Store

pytestmark = pytest.mark.seaweedfs


def test_campaign_over_seaweedfs(seaweedfs: S3Store, rsa_key: RsaKey, tmp_path: Path) -> None:
    bucket = seaweedfs.bucket()
    dump = mysql_like(tmp_path / "dump.sql", rows=1500)
    for night in range(3):
        bucket.put_backup(
            "db/", securecircle(dump, tmp_path / f"n{night}", rsa_key, name="nightly")
        )
    good = securecircle(dump, tmp_path / "cut", rsa_key, name="cut")
    assert good.wrapped_key is not None
    bucket.put("db/cut.sql.gz", good.data.read_bytes()[:-500])
    bucket.put("db/cut.sql.gz.key", good.wrapped_key)

    def audit(data: str, *args: str) -> tuple[int, dict]:
        r = run_cli(
            "audit",
            bucket.uri("db/"),
            "--key",
            str(rsa_key.private),
            "--endpoint-url",
            bucket.endpoint,
            "--json",
            "--parallel",
            "2",
            *args,
            env={**os.environ, "SEALCHECK_DATA_DIR": str(tmp_path / data)},
            timeout=300,
        )
        return r.returncode, json.loads(r.stdout)

    code, doc = audit("all")
    assert code == 1 and doc["campaign"]["totals"] == {"ok": 3, "failed": 1}
    everything = {(x["key"], x["version_id"]) for x in doc["results"]}
    seen: list[tuple[str, str]] = []
    for i in (1, 2):
        _, part = audit("slices", "--slice", f"{i}/2")
        seen += [(x["key"], x["version_id"]) for x in part["results"]]
    assert len(seen) == len(set(seen)) and set(seen) == everything
