import os

# Qt tests run without a display; core tests never import Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest_plugins = [
    "fixtures.common",
    "fixtures.keyring_session",
    "fixtures.databases",
    "fixtures.softhsm",
    "fixtures.s3servers",
]
pytest_plugins += ["fixtures.restoretest"]
