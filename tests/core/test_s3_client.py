"""The S3 client factory: one parse of S3's service model per process, and a profile
that is not configured is a usage error, as before the loader was shared."""

from __future__ import annotations

import gc

import pytest

from sealcheck.core.errors import UsageError
from sealcheck.core.storage.s3.client import S3Settings, make_client


def test_clients_share_the_parsed_service_model() -> None:
    settings = S3Settings(endpoint_url="http://127.0.0.1:9")  # nothing is sent
    first = make_client(settings)
    gc.collect()
    before = len(gc.get_objects())
    second = make_client(settings)
    made = len(gc.get_objects()) - before
    # Each client parsed the model again before (~35,000 objects, ~65 ms with the GIL held).
    assert made < 10_000, made
    assert first.meta.service_model.service_name == second.meta.service_model.service_name


def test_a_profile_that_is_not_configured_is_a_usage_error(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    with pytest.raises(UsageError, match="'nowhere' is not configured"):
        make_client(S3Settings(profile="nowhere"))
