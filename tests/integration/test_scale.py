"""A campaign past one machine (issue 15), through the shipped manifests: the Kubernetes
Indexed Job and the AWS Batch array job under packaging/scale/ are parsed, and their
shard command lines run here for two shards (the index from JOB_COMPLETION_INDEX /
AWS_BATCH_JOB_ARRAY_INDEX, as the engines set it) against moto_server holding real
backups made by openssl, one of them cut short, one in Glacier. The merge records what
a local ``audit`` campaign would; reruns are idempotent; a merge names what is missing
or conflicting; an edited plan is refused."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.common import run_cli
from fixtures.dumps import MYSQL_HEADER, MYSQL_TRAILER
from fixtures.keyring_session import KeyringSession
from fixtures.pipelines import RsaKey
from fixtures.s3scenarios import put_audit_estate
from fixtures.s3servers import Bucket, S3Store

SCALE = Path(__file__).resolve().parents[2] / "packaging" / "scale"
SHARDS = 2
INDEX_VARIABLE = {"k8s": "JOB_COMPLETION_INDEX", "batch": "AWS_BATCH_JOB_ARRAY_INDEX"}


@dataclass(frozen=True)
class Estate:
    bucket: Bucket
    key: RsaKey
    damaged: str


@pytest.fixture(scope="module")
def estate(
    moto_store: S3Store, rsa_key: RsaKey, tmp_path_factory: pytest.TempPathFactory
) -> Estate:
    root = tmp_path_factory.mktemp("scale-estate")
    bucket = moto_store.bucket()
    dump = root / "dump.sql"
    rows = "".join(f"INSERT INTO `t` VALUES ({i},'row {i}');\n" for i in range(500))
    dump.write_text(MYSQL_HEADER + "CREATE TABLE `t` (`id` int);\n" + rows + MYSQL_TRAILER)
    put_audit_estate(bucket, dump, rsa_key, root, nights=4)
    return Estate(bucket, rsa_key, "db/cut.sql.gz")


def manifest_commands() -> dict[str, list[str]]:
    """The shard command line of each shipped manifest, after checking what the engines
    need of them (indexed completion, per-index retries, the key as a Secret file)."""
    job = yaml.safe_load((SCALE / "k8s-indexed-job.yaml").read_text())
    spec = job["spec"]
    assert job["kind"] == "Job" and spec["completionMode"] == "Indexed"
    assert (
        spec["backoffLimitPerIndex"] >= 1 and spec["template"]["spec"]["restartPolicy"] == "Never"
    )
    pod = spec["template"]["spec"]
    (k8s,) = pod["containers"]
    batch = json.loads((SCALE / "batch-job-definition.json").read_text())
    submit = json.loads((SCALE / "batch-submit-job.json").read_text())
    bpod = batch["eksProperties"]["podProperties"]
    (bc,) = bpod["containers"]
    assert submit["jobDefinition"] == batch["jobDefinitionName"]
    size = submit["arrayProperties"]["size"]
    assert 2 <= size <= 10_000  # AWS Batch's limit on array children
    for c, volumes, n in ((k8s, pod["volumes"], spec["completions"]), (bc, bpod["volumes"], size)):
        cmd = c["command"]
        assert cmd[:2] == ["sealcheck", "audit"] and "env" not in c  # the key is no env var
        assert _after(cmd, "--shard") == f"auto/{n}"  # N is the number of indexes
        key_dir = str(Path(_after(cmd, "--key")).parent)
        mount = next(m for m in c["volumeMounts"] if m["mountPath"] == key_dir)
        volume = next(v for v in volumes if v["name"] == mount["name"])
        assert "secret" in volume and mount["readOnly"]
    return {"k8s": k8s["command"], "batch": bc["command"]}


def _after(cmd: list[str], flag: str) -> str:
    return cmd[cmd.index(flag) + 1]


def here(cmd: list[str], *, plan: str, results: str, key: Path, endpoint: str) -> list[str]:
    """The manifest's command with this test's plan, results, key and two shards, and the
    moto endpoint (in the cluster, S3 is the pod's own)."""
    out = list(cmd[1:])  # run_cli runs `sealcheck`
    for flag, value in (
        ("--plan", plan),
        ("--results", results),
        ("--key", str(key)),
        ("--shard", f"auto/{SHARDS}"),
    ):
        out[out.index(flag) + 1] = value
    return [*out, "--endpoint-url", endpoint]


def cli(
    data: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {}), "SEALCHECK_DATA_DIR": str(data)}
    return run_cli(*args, env=full, timeout=300)


def verdicts(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(r["key"], r["version_id"]): r["verdict"] for r in doc["results"]}


@pytest.fixture(scope="module")
def local(estate: Estate, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What one machine's ``audit`` makes of the estate."""
    data = tmp_path_factory.mktemp("local-data")
    b = estate.bucket
    r = cli(data, "audit", b.uri("db/"), "--key", str(estate.key.private),
            "--endpoint-url", b.endpoint, "--json")  # fmt: skip
    assert r.returncode == 1, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


@pytest.fixture(scope="module")
def plan(estate: Estate, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The coordinator's plan (no key needed), also uploaded where the pods read it."""
    root = tmp_path_factory.mktemp("plan")
    path = root / "plan.jsonl"
    b = estate.bucket
    r = cli(root / "data", "audit", b.uri("db/"), "--endpoint-url", b.endpoint,
            "--plan-out", str(path), "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["items"] == 6 and len(doc["sha256"]) == 64
    assert not (root / "data" / "history.sqlite3").exists()  # planning records nothing
    b.put("work/plan.jsonl", path)
    return path


def run_shards(
    engine: str, estate: Estate, plan: Path, results: str, tmp: Path, shards: range = range(SHARDS)
) -> list[dict[str, Any]]:
    b = estate.bucket
    cmd = here(
        manifest_commands()[engine],
        plan=b.uri("work/plan.jsonl"),
        results=results,
        key=estate.key.private,
        endpoint=b.endpoint,
    )
    docs = []
    for i in shards:
        data = tmp / f"{engine}-shard-{i}"
        r = cli(data, *cmd, env={INDEX_VARIABLE[engine]: str(i)})
        assert r.returncode == 0, r.stderr  # every item has a verdict (FAILED included)
        assert not data.exists() or not any(data.iterdir())  # a shard writes no history
        docs.append(json.loads(r.stdout))
    return docs


def listing(b: Bucket, prefix: str) -> dict[str, str]:
    objs = b.store.client.list_object_versions(Bucket=b.name, Prefix=prefix).get("Versions", [])
    return {f"{o['Key']}@{o['VersionId']}": o["ETag"] for o in objs}


@pytest.mark.parametrize("engine", ["k8s", "batch"])
def test_manifests_shards_and_merge_equal_a_local_campaign(
    engine: str,
    estate: Estate,
    plan: Path,
    local: dict[str, Any],
    tmp_path: Path,
    keyring_session: KeyringSession,
) -> None:
    b = estate.bucket
    results = b.uri(f"results-{engine}/")
    docs = run_shards(engine, estate, plan, results, tmp_path)
    assert sorted(d["shard"][0] for d in docs) == [0, 1]
    assert sum(d["items"] for d in docs) == 6 and all(d["already_proved"] == 0 for d in docs)

    # A rerun of a shard proves nothing again and replaces nothing.
    before = listing(b, f"results-{engine}/")
    (again,) = run_shards(engine, estate, plan, results, tmp_path / "again", range(1))
    assert again["written"] == 0 and again["already_proved"] == again["items"]
    assert listing(b, f"results-{engine}/") == before

    report = tmp_path / "audit.json"
    coord = tmp_path / "coordinator"
    r = cli(coord, "audit", "merge", str(plan), results, "--endpoint-url", b.endpoint,
            "--report", str(report), "--json", env=keyring_session.env)  # fmt: skip
    assert r.returncode == local["campaign"]["exit_code"] == 1, r.stderr
    doc = json.loads(r.stdout)
    assert verdicts(doc) == verdicts(local)
    c, lc = doc["campaign"], local["campaign"]
    for field in ("population", "sample_size", "totals", "skipped", "complete"):
        assert c[field] == lc[field], field
    assert c["plan_sha256"] and c["signed_by"]
    v = cli(coord, "report", "verify", str(report), env=keyring_session.env)
    assert v.returncode == 0 and "report intact" in v.stdout, v.stdout

    # The coordinator records a campaign once.
    twice = cli(coord, "audit", "merge", str(plan), results, "--endpoint-url", b.endpoint)
    assert twice.returncode == 2 and "merged already" in twice.stderr


def test_merge_names_missing_and_conflicting_items(
    estate: Estate, plan: Path, tmp_path: Path
) -> None:
    b = estate.bucket
    results = b.uri("results-faults/")
    run_shards("k8s", estate, plan, results, tmp_path)
    whole = tmp_path / "whole"
    whole.mkdir()
    rows: list[str] = []
    for key in listing(b, "results-faults/"):
        name = key.split("@")[0]
        body = b.store.client.get_object(Bucket=b.name, Key=name)["Body"].read()
        (whole / Path(name).name).write_bytes(body)
        rows += body.decode().splitlines()

    # The same results given twice are one proof each: a complete merge.
    twice = cli(tmp_path / "d1", "audit", "merge", str(plan), str(whole), str(whole), "--json")
    assert twice.returncode == 1, twice.stderr
    assert json.loads(twice.stdout)["campaign"]["duplicates_merged"] == 6

    # One item lost, another proved twice with different records.
    lost, doubled = json.loads(rows[0]), json.loads(rows[1])
    other = {**doubled, "record": {**doubled["record"], "started_at": "2000-01-01T00:00:00+00:00"}}
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jsonl").write_text("\n".join(rows[1:]) + "\n")
    (broken / "b.jsonl").write_text(json.dumps(other) + "\n")
    data = tmp_path / "d2"
    r = cli(data, "audit", "merge", str(plan), str(broken))
    assert r.returncode == 2, r.stderr
    assert "MERGE INCOMPLETE" in r.stdout and "nothing was recorded" in r.stdout
    assert f"missing      {lost['item']}" in r.stdout
    assert f"conflicting  {doubled['item']}" in r.stdout
    assert not (data / "history.sqlite3").exists()
    j = cli(data, "audit", "merge", str(plan), str(broken), "--json")
    doc = json.loads(j.stdout)
    assert j.returncode == 2 and doc["missing"] == [lost["item"]]
    assert list(doc["conflicts"]) == [doubled["item"]]


def test_an_edited_plan_is_refused(estate: Estate, plan: Path, tmp_path: Path) -> None:
    lines = plan.read_text().splitlines()
    edited = tmp_path / "edited.jsonl"
    item = json.loads(lines[1])
    item["key"] = estate.damaged  # point a verified item at another object
    edited.write_text("\n".join([lines[0], json.dumps(item, sort_keys=True), *lines[2:]]) + "\n")
    b = estate.bucket
    for args in (
        ["--plan", str(edited), "--shard", "0/2", "--results", str(tmp_path / "res"),
         "--key", str(estate.key.private), "--endpoint-url", b.endpoint],
        ["merge", str(edited), str(tmp_path)],
    ):  # fmt: skip
        r = cli(tmp_path / "data", "audit", *args)
        assert r.returncode == 2, r.stderr
        assert str(edited) in r.stderr and "SHA-256 does not match" in r.stderr
    assert not (tmp_path / "res").exists()


def test_shard_index_from_the_engine(plan: Path, tmp_path: Path) -> None:
    for args, env, words in (
        (["--shard", "auto/2"], {}, "JOB_COMPLETION_INDEX nor AWS_BATCH_JOB_ARRAY_INDEX"),
        (["--shard", "2/2"], {}, "not below 2"),
        (["--shard", "auto/2"], {"JOB_COMPLETION_INDEX": "5"}, "not below 2"),
    ):
        r = cli(tmp_path, "audit", "--plan", str(plan), *args, "--results", str(tmp_path),
                env={"JOB_COMPLETION_INDEX": "", "AWS_BATCH_JOB_ARRAY_INDEX": "", **env})  # fmt: skip
        assert r.returncode == 2 and words in r.stderr, r.stderr
