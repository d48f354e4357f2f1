"""``audit --cluster`` options (issue 15): what is accepted, and clear refusals before
any listing. In the headless core venv (no dask extra) the CLI says how to install it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fixtures.common import run_cli
from sealcheck.core.audit.cluster import ClusterSpec, parse_cluster
from sealcheck.core.errors import UsageError


def test_cluster_specs() -> None:
    assert parse_cluster("local:3") == ClusterSpec(workers=3)
    assert parse_cluster("local:3").describe() == "local:3" and parse_cluster("local:3").encrypted
    tcp = parse_cluster("tcp://10.0.0.5:8786")
    assert tcp.address == "tcp://10.0.0.5:8786" and not tcp.encrypted
    pem = Path("x.pem")
    tls = parse_cluster("tls://sched:8786", tls_ca=pem, tls_cert=pem, tls_key=pem)
    assert tls.encrypted and tls.tls_ca == pem
    assert parse_cluster("tls://sched:8786").tls_ca is None  # Dask's own TLS configuration
    for bad, words in (
        ("local:0", "local:N"),
        ("local:x", "local:N"),
        ("sched:8786", "tcp://HOST:PORT"),
        ("tls://", "tls://HOST:PORT"),
    ):
        with pytest.raises(UsageError, match=words):
            parse_cluster(bad)
    with pytest.raises(UsageError, match="all of --cluster-tls-ca"):
        parse_cluster("tls://sched:8786", tls_ca=pem)
    with pytest.raises(UsageError, match="tls:// address"):
        parse_cluster("tcp://sched:8786", tls_ca=pem, tls_cert=pem, tls_key=pem)
    with pytest.raises(UsageError, match="makes its own"):
        parse_cluster("local:2", tls_ca=pem, tls_cert=pem, tls_key=pem)


def test_cli_refuses_before_listing(tmp_path: Path) -> None:
    # No S3 endpoint answers at this address: a refusal must come before any request.
    env_args = ("--endpoint-url", "http://127.0.0.1:9")
    r = run_cli("audit", "s3://b/p/", "--cluster", "local:0", *env_args)
    assert r.returncode == 2 and "local:N" in r.stderr
    r = run_cli("audit", "s3://b/p/", "--cluster-tls-ca", str(tmp_path / "ca.pem"), *env_args)
    assert r.returncode == 2 and "go with --cluster tls://" in r.stderr
    if importlib.util.find_spec("distributed") is None:  # the headless core venv
        r = run_cli("audit", "s3://b/p/", "--cluster", "local:2", *env_args)
        assert r.returncode == 2 and "sealcheck[dask]" in r.stderr, r.stderr
