import os

import pytest

# Qt tests run without a display; core tests never import Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest_plugins = [
    "fixtures.common",
    "fixtures.keyring_session",
    "fixtures.databases",
    "fixtures.softhsm",
    "fixtures.s3servers",
]
pytest_plugins += ["fixtures.restoretest", "fixtures.physical"]


@pytest.fixture(autouse=True)
def _isolated_history(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every verify/restore the tests run (CLI subprocesses too) records into a
    throwaway history, never the user's."""
    monkeypatch.setenv("SEALCHECK_DATA_DIR", str(tmp_path_factory.mktemp("sealcheck-data")))
